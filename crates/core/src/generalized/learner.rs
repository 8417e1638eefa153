//! The Generalized Paxos learner: what it has learned is a history that only grows, the lub of
//! what every quorum chose.

use super::cstruct::CStruct;
use super::messages::{GenEffects, Message, Output, Round, Timer};
use super::relation::Relation;
use super::safe::chosen_in_round;
use crate::ballot::NodeId;
use crate::quorum::{FastQuorum, QuorumSystem};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Rounds of votes a learner keeps (the latest ones).
const ROUNDS_KEPT: usize = 8;

/// A learner, which also tells clients when their commands are learned.
#[derive(Clone, Debug)]
pub struct Learner {
    id: NodeId,
    quorum: Arc<FastQuorum>,
    rel: Arc<dyn Relation>,
    peers: Vec<NodeId>,
    query_ticks: u64,
    votes: BTreeMap<Round, BTreeMap<NodeId, CStruct>>,
    learned: CStruct,
}

impl Learner {
    /// A learner that asks the acceptors and `peers` (other learners, leaders) every
    /// `query_ticks`.
    pub fn new(
        id: NodeId,
        quorum: Arc<FastQuorum>,
        rel: Arc<dyn Relation>,
        peers: Vec<NodeId>,
        query_ticks: u64,
    ) -> Self {
        Learner {
            id,
            quorum,
            rel,
            peers: peers.into_iter().filter(|&p| p != id).collect(),
            query_ticks,
            votes: BTreeMap::new(),
            learned: CStruct::new(),
        }
    }

    /// This learner's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// What it has learned: the stable history.
    pub fn learned(&self) -> &CStruct {
        &self.learned
    }

    /// Arms the query timer.
    pub fn start(&mut self) -> GenEffects {
        let mut fx = GenEffects::new();
        fx.arm(Timer::Query, self.query_ticks);
        fx
    }

    /// Handles one message.
    pub fn on_message(&mut self, from: NodeId, msg: Message) -> GenEffects {
        let mut fx = GenEffects::new();
        match msg {
            Message::Accepted { round, value } => self.on_vote(from, round, value, &mut fx),
            Message::Learned { value } => self.grow(value, &mut fx),
            Message::Query if !self.learned.is_empty() => {
                let value = self.learned.clone();
                fx.send(from, Message::Learned { value });
            }
            Message::Propose { cmd } if self.learned.contains(&cmd) => {
                fx.send(from, Message::Done { cmd });
            }
            _ => {}
        }
        fx
    }

    /// Counts a vote: the acceptor's history in `round` now.
    pub fn on_vote(&mut self, from: NodeId, round: Round, value: CStruct, fx: &mut GenEffects) {
        if !self.quorum.members().contains(&from) {
            return;
        }
        let rel = self.rel.clone();
        let by = self.votes.entry(round).or_default();
        match by.get(&from) {
            // A late copy of an older history of the same round.
            Some(old) if value.is_prefix_of(old, rel.as_ref()) => return,
            _ => by.insert(from, value),
        };
        while self.votes.len() > ROUNDS_KEPT {
            self.votes.pop_first();
        }
        if let Some(chosen) = self
            .votes
            .get(&round)
            .and_then(|v| chosen_in_round(&self.quorum, v, rel.as_ref()))
        {
            self.grow(chosen, fx);
        }
    }

    /// Adds what a quorum chose (or a peer learned) to what it has learned.
    fn grow(&mut self, chosen: CStruct, fx: &mut GenEffects) {
        let rel = self.rel.clone();
        // Incompatible values never come from correct peers; refuse rather than shrink.
        let Some(next) = self.learned.lub(&chosen, rel.as_ref()) else {
            return;
        };
        if next.len() == self.learned.len() {
            return;
        }
        for c in next.commands() {
            if !self.learned.contains(c) {
                fx.send(c.client, Message::Done { cmd: c.clone() });
            }
        }
        debug_assert!(self.learned.is_prefix_of(&next, rel.as_ref()));
        self.learned = next;
        fx.output(Output::Learned(self.learned.clone()));
    }

    /// Handles a timer.
    pub fn on_timer(&mut self, kind: Timer) -> GenEffects {
        let mut fx = GenEffects::new();
        if kind == Timer::Query {
            fx.broadcast(self.quorum.members(), Message::Query);
            fx.broadcast(&self.peers, Message::Query);
            fx.arm(Timer::Query, self.query_ticks);
        }
        fx
    }
}
