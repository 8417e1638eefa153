//! The Generalized Paxos acceptor: in an open round it appends each proposed command to its
//! history and reports the whole history.

use super::cstruct::CStruct;
use super::messages::{GenEffects, Message, Persist, Round};
use super::relation::{Command, Relation};
use crate::ballot::NodeId;
use crate::bugs::PlantedBug;
use crate::quorum::FastQuorum;
use std::sync::Arc;

/// Commands an acceptor holds for a round that has not opened yet.
const MAX_PENDING: usize = 256;

/// What an acceptor keeps on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AcceptorState {
    /// The highest round promised or voted in.
    pub promised: Round,
    /// The round of its latest vote and its history there.
    pub vote: Option<(Round, CStruct)>,
}

impl AcceptorState {
    /// Applies one persisted record, in the order written.
    pub fn apply(&mut self, record: &Persist) {
        match record {
            Persist::Promised(r) => self.promised = self.promised.max(*r),
            Persist::Voted(r, h) => {
                self.promised = self.promised.max(*r);
                self.vote = Some((*r, h.clone()));
            }
            Persist::Number(_) => {}
        }
    }
}

/// How an acceptor is set up.
#[derive(Clone, Debug)]
pub struct AcceptorConfig {
    /// This acceptor.
    pub id: NodeId,
    /// The acceptors and quorum sizes.
    pub quorum: Arc<FastQuorum>,
    /// Learners, told of every vote.
    pub learners: Vec<NodeId>,
    /// Which commands conflict.
    pub relation: Arc<dyn Relation>,
    /// A bug planted on purpose (simulator tests only).
    pub bug: Option<PlantedBug>,
}

/// A Generalized Paxos acceptor.
///
/// Invariants (asserted): the promise never decreases; within a round its history only grows
/// (each vote extends the last); it never votes in a round below its promise.
#[derive(Clone, Debug)]
pub struct Acceptor {
    cfg: AcceptorConfig,
    state: AcceptorState,
    /// Proposals that arrived with no round open, appended when one opens. Volatile.
    pending: Vec<Command>,
}

impl Acceptor {
    /// An acceptor from its persisted state.
    pub fn recover(cfg: AcceptorConfig, state: AcceptorState) -> Self {
        Acceptor {
            cfg,
            state,
            pending: Vec::new(),
        }
    }

    /// The promise and vote as they stand.
    pub fn state(&self) -> &AcceptorState {
        &self.state
    }

    /// Handles one message.
    pub fn on_message(&mut self, from: NodeId, msg: Message) -> GenEffects {
        let mut fx = GenEffects::new();
        match msg {
            Message::Prepare { round } => {
                if round < self.state.promised {
                    return self.nack(from, round, fx);
                }
                if round > self.state.promised {
                    self.state.promised = round;
                    fx.persist(Persist::Promised(round));
                }
                let vote = self.state.vote.clone();
                fx.send_after_sync(from, Message::Promise { round, vote });
            }
            Message::Phase2Start { round, base } => {
                let voted = self.state.vote.as_ref().is_some_and(|(r, _)| *r >= round);
                if round < self.state.promised {
                    return self.nack(from, round, fx);
                }
                if !voted {
                    let mut h = base;
                    for c in std::mem::take(&mut self.pending) {
                        h.append(c);
                    }
                    self.vote(round, h, &mut fx);
                }
            }
            Message::Propose { cmd } => self.on_propose(cmd, &mut fx),
            Message::Query => {
                if let Some((round, value)) = self.state.vote.clone() {
                    fx.send_after_sync(from, Message::Accepted { round, value });
                }
            }
            _ => {}
        }
        fx
    }

    fn on_propose(&mut self, cmd: Command, fx: &mut GenEffects) {
        match self.state.vote.clone() {
            Some((round, mut h)) if round >= self.state.promised => {
                if !h.contains(&cmd) {
                    h.append(cmd.clone());
                    self.vote(round, h, fx);
                    if self.cfg.bug == Some(PlantedBug::DoneBeforeChosen) {
                        fx.send(cmd.client, Message::Done { cmd });
                    }
                }
            }
            other => {
                let known = other.is_some_and(|(_, h)| h.contains(&cmd));
                if !known && !self.pending.contains(&cmd) && self.pending.len() < MAX_PENDING {
                    self.pending.push(cmd);
                }
            }
        }
    }

    fn nack(&self, to: NodeId, round: Round, mut fx: GenEffects) -> GenEffects {
        let promised = self.state.promised;
        fx.send(to, Message::Nack { round, promised });
        fx
    }

    fn vote(&mut self, round: Round, h: CStruct, fx: &mut GenEffects) {
        assert!(round >= self.state.promised, "vote below the promise");
        if let Some((r, old)) = &self.state.vote {
            assert!(*r <= round, "vote in a lower round than the last");
            assert!(
                *r < round || old.is_prefix_of(&h, self.cfg.relation.as_ref()),
                "a history shrank within a round"
            );
        }
        self.state.promised = round;
        self.state.vote = Some((round, h.clone()));
        fx.persist(Persist::Voted(round, h.clone()));
        let msg = Message::Accepted { round, value: h };
        let mut to = self.cfg.learners.clone();
        if !to.contains(&round.coordinator) {
            to.push(round.coordinator);
        }
        to.retain(|&t| t != self.cfg.id);
        fx.broadcast_after_sync(&to, msg);
    }
}
