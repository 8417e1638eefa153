//! The Fast Paxos acceptor: promises and votes as in classic Paxos, plus fast rounds, where it
//! votes for the first client proposal it sees, and uncoordinated recovery, where it resolves a
//! collision with its peers without a coordinator.

use super::messages::{FastEffects, Message, Persist, Recovery, Round, Value, Vote};
use super::pick::{pick, Pick};
use crate::ballot::NodeId;
use crate::bugs::PlantedBug;
use crate::quorum::{FastQuorum, QuorumSystem};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What an acceptor keeps on disk, rebuilt from its [`Persist`] records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptorState<V> {
    /// The highest round promised or voted in.
    pub promised: Round,
    /// The latest vote.
    pub vote: Option<Vote<V>>,
}

impl<V> Default for AcceptorState<V> {
    fn default() -> Self {
        AcceptorState {
            promised: Round::ZERO,
            vote: None,
        }
    }
}

impl<V: Value> AcceptorState<V> {
    /// Applies one persisted record, in the order written.
    pub fn apply(&mut self, record: &Persist<V>) {
        match record {
            Persist::Promised(r) => self.promised = self.promised.max(*r),
            Persist::Voted(v) => {
                self.promised = self.promised.max(v.round);
                self.vote = Some(v.clone());
            }
            Persist::Number(_) => {}
        }
    }

    fn voted_at_or_above(&self, round: Round) -> bool {
        self.vote.as_ref().is_some_and(|v| v.round >= round)
    }
}

/// Who an acceptor reports its votes to.
#[derive(Clone, Debug)]
pub struct AcceptorConfig {
    /// This acceptor.
    pub id: NodeId,
    /// Every acceptor, this one included, with the quorum sizes.
    pub quorum: Arc<FastQuorum>,
    /// Learners, told of every vote.
    pub learners: Vec<NodeId>,
    /// A bug planted on purpose (simulator tests only).
    pub bug: Option<PlantedBug>,
}

/// A Fast Paxos acceptor.
///
/// Invariants (asserted): the promise never decreases; a vote is never below the promise it
/// was cast under, and never a second one in the same round.
#[derive(Clone, Debug)]
pub struct Acceptor<V> {
    cfg: AcceptorConfig,
    state: AcceptorState<V>,
    /// The fast round announced by `Any`, and its recovery rule. Volatile: losing it in a crash
    /// costs only the fast path until the coordinator's next round.
    any: Option<(Round, Recovery)>,
    /// The first client proposal seen, voted for when an `Any` arrives after it.
    pending: Option<V>,
    /// Peers' votes in fast rounds of the announced lineage, for uncoordinated recovery.
    heard: BTreeMap<Round, BTreeMap<NodeId, V>>,
}

impl<V: Value> Acceptor<V> {
    /// An acceptor restarted from what it persisted (or fresh, from the default state).
    pub fn recover(cfg: AcceptorConfig, state: AcceptorState<V>) -> Self {
        Acceptor {
            cfg,
            state,
            any: None,
            pending: None,
            heard: BTreeMap::new(),
        }
    }

    /// This acceptor's id.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// The promise and vote as they stand.
    pub fn state(&self) -> &AcceptorState<V> {
        &self.state
    }

    /// Handles one message.
    pub fn on_message(&mut self, from: NodeId, msg: Message<V>) -> FastEffects<V> {
        let mut fx = FastEffects::new();
        match msg {
            Message::Prepare { round } => self.on_prepare(from, round, &mut fx),
            Message::Any { round, recovery } => {
                if round >= self.state.promised && !self.state.voted_at_or_above(round) {
                    self.any = Some((round, recovery));
                    self.heard.retain(|r, _| round.same_lineage(*r));
                    // The waiting proposal gets this round's vote, and only this round's.
                    if let Some(value) = self.pending.take() {
                        self.vote(round, true, value, &mut fx);
                    }
                }
            }
            Message::Accept { round, value } => {
                if round < self.state.promised {
                    self.nack(from, round, &mut fx);
                } else if !self.state.voted_at_or_above(round) {
                    self.vote(round, false, value, &mut fx);
                }
            }
            Message::Propose { value } => self.on_propose(value, &mut fx),
            Message::Accepted { vote } => self.on_peer_vote(from, vote, &mut fx),
            Message::Query => {
                if let Some(vote) = self.state.vote.clone() {
                    fx.send_after_sync(from, Message::Accepted { vote });
                }
            }
            Message::Promise { .. } | Message::Nack { .. } | Message::Chosen { .. } => {}
        }
        fx
    }

    fn on_prepare(&mut self, from: NodeId, round: Round, fx: &mut FastEffects<V>) {
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

    fn on_propose(&mut self, value: V, fx: &mut FastEffects<V>) {
        match self.any {
            Some((round, _))
                if round >= self.state.promised && !self.state.voted_at_or_above(round) =>
            {
                self.vote(round, true, value, fx)
            }
            _ => {
                if self.pending.is_none() {
                    self.pending = Some(value);
                }
            }
        }
    }

    fn nack(&self, to: NodeId, round: Round, fx: &mut FastEffects<V>) {
        let promised = self.state.promised;
        fx.send(to, Message::Nack { round, promised });
    }

    fn vote(&mut self, round: Round, fast: bool, value: V, fx: &mut FastEffects<V>) {
        assert!(round >= self.state.promised, "vote below the promise");
        assert!(
            !self.state.voted_at_or_above(round),
            "a second vote in a round"
        );
        let vote = Vote { round, fast, value };
        self.state.promised = round;
        self.state.vote = Some(vote.clone());
        fx.persist(Persist::Voted(vote.clone()));
        let msg = Message::Accepted { vote: vote.clone() };
        let mut to: BTreeSet<NodeId> = self.cfg.learners.iter().copied().collect();
        to.insert(round.coordinator);
        if self.uncoordinated(round) {
            to.extend(self.cfg.quorum.members().iter().copied());
            self.heard
                .entry(round)
                .or_default()
                .insert(self.cfg.id, vote.value);
        }
        to.remove(&self.cfg.id);
        fx.broadcast_after_sync(&to, msg);
        if self.uncoordinated(round) {
            self.try_recover(round, fx);
        }
    }

    /// True when `round` is a fast round of the announced lineage with uncoordinated recovery.
    fn uncoordinated(&self, round: Round) -> bool {
        matches!(self.any, Some((any, Recovery::Uncoordinated)) if any.same_lineage(round))
    }

    fn on_peer_vote(&mut self, from: NodeId, vote: Vote<V>, fx: &mut FastEffects<V>) {
        let member = self.cfg.quorum.members().contains(&from);
        // A step with no successor cannot be recovered from; only a bad peer sends one.
        let last_step = vote.round.step == u32::MAX;
        if !member || !vote.fast || last_step || !self.uncoordinated(vote.round) {
            return;
        }
        self.heard
            .entry(vote.round)
            .or_default()
            .insert(from, vote.value);
        self.try_recover(vote.round, fx);
    }

    /// Uncoordinated recovery: once the votes heard in fast round `round` come from a classic
    /// quorum and no value can still reach a fast quorum there, pick by the rule and vote in the
    /// next step, as if its coordinator had sent us that value. Different acceptors may pick
    /// differently; the next step is fast, so that only costs another collision.
    fn try_recover(&mut self, round: Round, fx: &mut FastEffects<V>) {
        let next = round.next_step();
        if self.state.promised > next || self.state.voted_at_or_above(next) {
            return;
        }
        let Some(votes) = self.heard.get(&round) else {
            return;
        };
        let q = &self.cfg.quorum;
        let voters: BTreeSet<NodeId> = votes.keys().copied().collect();
        if !q.is_phase1_quorum(&voters) || !collision(q, votes) {
            return;
        }
        let reports = votes
            .iter()
            .map(|(&id, v)| {
                let vote = Vote {
                    round,
                    fast: true,
                    value: v.clone(),
                };
                (id, Some(vote))
            })
            .collect();
        let value = match pick(q, &reports, self.cfg.bug) {
            Pick::Constrained(v) | Pick::Free(Some(v)) => v,
            Pick::Free(None) => return,
        };
        self.any = self.any.map(|(_, rec)| (next, rec));
        self.vote(next, true, value, fx);
    }
}

/// True when no value can reach a fast quorum among `votes` of one fast round, even with every
/// acceptor not yet heard from.
pub fn collision<V: Value>(q: &FastQuorum, votes: &BTreeMap<NodeId, V>) -> bool {
    let voters: BTreeSet<NodeId> = votes.keys().copied().collect();
    let silent = q.members().len() - q.count(&voters);
    let mut counts: BTreeMap<&V, usize> = BTreeMap::new();
    for (id, v) in votes {
        if q.members().contains(id) {
            *counts.entry(v).or_default() += 1;
        }
    }
    counts.values().all(|&c| c + silent < q.fast())
}
