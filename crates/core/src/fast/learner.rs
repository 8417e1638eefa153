//! The Fast Paxos learner: a value is chosen when a quorum of one round voted for it, a fast
//! quorum if the round is fast, a classic one if it is classic.

use super::messages::{FastEffects, Message, Output, Round, Timer, Value, Vote};
use crate::ballot::NodeId;
use crate::quorum::{FastQuorum, QuorumSystem};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A learner, which also answers clients (the seed's `Response`).
#[derive(Clone, Debug)]
pub struct Learner<V> {
    id: NodeId,
    quorum: Arc<FastQuorum>,
    clients: Vec<NodeId>,
    /// Other learners and coordinators, asked too: one that knows the decision answers.
    peers: Vec<NodeId>,
    query_ticks: u64,
    /// Votes by round: the round's kind as its first vote said, and who voted what.
    votes: BTreeMap<Round, (bool, BTreeMap<NodeId, V>)>,
    learned: Option<V>,
}

impl<V: Value> Learner<V> {
    /// A learner over `quorum`'s acceptors that tells `clients` the decision and asks the
    /// acceptors again every `query_ticks` until it learns.
    pub fn new(
        id: NodeId,
        quorum: Arc<FastQuorum>,
        clients: Vec<NodeId>,
        query_ticks: u64,
    ) -> Self {
        Learner {
            id,
            quorum,
            clients,
            peers: Vec::new(),
            query_ticks,
            votes: BTreeMap::new(),
            learned: None,
        }
    }

    /// Also asks `peers` (other learners, coordinators) when it queries. Acceptors report
    /// only their latest votes, which after a decision may lie in different rounds and make no
    /// quorum in any one; a peer that learned the decision answers with it.
    pub fn ask_also(mut self, peers: Vec<NodeId>) -> Self {
        self.peers = peers;
        self.peers.retain(|&p| p != self.id);
        self
    }

    /// This learner's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// What it learned.
    pub fn learned(&self) -> Option<&V> {
        self.learned.as_ref()
    }

    /// Arms the query timer.
    pub fn start(&mut self) -> FastEffects<V> {
        let mut fx = FastEffects::new();
        fx.arm(Timer::Query, self.query_ticks);
        fx
    }

    /// Handles one message.
    pub fn on_message(&mut self, from: NodeId, msg: Message<V>) -> FastEffects<V> {
        let mut fx = FastEffects::new();
        match msg {
            Message::Accepted { vote } => self.on_vote(from, vote, &mut fx),
            Message::Propose { .. } | Message::Query => {
                if let Some(value) = self.learned.clone() {
                    fx.send(from, Message::Chosen { value });
                }
            }
            // Only learners and coordinators send this, and only what they learned.
            Message::Chosen { value } if self.learned.is_none() => {
                self.learned = Some(value.clone());
                fx.output(Output::Chosen(value.clone()));
                fx.broadcast(&self.clients, Message::Chosen { value });
            }
            _ => {}
        }
        fx
    }

    /// Counts a vote, learning once a quorum of one round voted alike.
    pub(super) fn on_vote(&mut self, from: NodeId, vote: Vote<V>, fx: &mut FastEffects<V>) {
        if self.learned.is_some() || !self.quorum.members().contains(&from) {
            return;
        }
        let (fast, voters) = self
            .votes
            .entry(vote.round)
            .or_insert_with(|| (vote.fast, BTreeMap::new()));
        if *fast != vote.fast {
            // Peers disagree on the round's kind: not a vote this learner can count.
            return;
        }
        voters.insert(from, vote.value.clone());
        let fast = *fast;
        let same: BTreeSet<NodeId> = voters
            .iter()
            .filter(|(_, v)| **v == vote.value)
            .map(|(id, _)| *id)
            .collect();
        if self.quorum.is_quorum(&same, fast) {
            self.learned = Some(vote.value.clone());
            fx.output(Output::Chosen(vote.value.clone()));
            fx.broadcast(&self.clients, Message::Chosen { value: vote.value });
        }
    }

    /// Handles a timer.
    pub fn on_timer(&mut self, kind: Timer) -> FastEffects<V> {
        let mut fx = FastEffects::new();
        if kind == Timer::Query && self.learned.is_none() {
            fx.broadcast(self.quorum.members(), Message::Query);
            fx.broadcast(&self.peers, Message::Query);
            fx.arm(Timer::Query, self.query_ticks);
        }
        fx
    }
}
