//! The Fast Multi-Paxos learner: a slot's entry is chosen when a quorum of one round voted for
//! it there (a fast quorum in a fast round, a classic one in a classic round). It also spots
//! collisions for the leader, and catches up from its peers.

use super::messages::{is_member, Entry, EntryVote, FmEffects, Message, Output, Slot, Timer};
use crate::ballot::NodeId;
use crate::fast::{Round, Value};
use crate::quorum::FastQuorum;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How many chosen slots one answer to a `Query` carries.
const QUERY_BATCH: usize = 256;

/// Votes in one slot, by round: the round's kind as its first vote said, and who voted what.
type SlotVotes<V> = BTreeMap<Round, (bool, BTreeMap<NodeId, Entry<V>>)>;

/// A learner.
#[derive(Clone, Debug)]
pub struct Learner<V> {
    quorum: Arc<FastQuorum>,
    /// Other learners, asked when this one falls behind.
    peers: Vec<NodeId>,
    query_ticks: u64,
    votes: BTreeMap<Slot, SlotVotes<V>>,
    chosen: BTreeMap<Slot, Entry<V>>,
    /// Every slot below this one is chosen.
    prefix: Slot,
    /// Every slot below this one is chosen, as some leader said.
    commit: Slot,
}

impl<V: Value> Learner<V> {
    /// A learner over `quorum`'s acceptors that asks `peers` every `query_ticks` when behind.
    pub fn new(id: NodeId, quorum: Arc<FastQuorum>, peers: Vec<NodeId>, query_ticks: u64) -> Self {
        let peers = peers.into_iter().filter(|&p| p != id).collect();
        Learner {
            quorum,
            peers,
            query_ticks,
            votes: BTreeMap::new(),
            chosen: BTreeMap::new(),
            prefix: 0,
            commit: 0,
        }
    }

    /// Every slot below this one is chosen and known here.
    pub fn prefix(&self) -> Slot {
        self.prefix
    }

    /// The entry chosen in `slot`, if known.
    pub fn chosen(&self, slot: Slot) -> Option<&Entry<V>> {
        self.chosen.get(&slot)
    }

    /// The highest slot anything was heard of (a vote or a decision), if any.
    pub fn highest_heard(&self) -> Option<Slot> {
        let v = self.votes.keys().next_back().copied();
        let c = self.chosen.keys().next_back().copied();
        v.max(c)
    }

    /// Starts the queries.
    pub fn start(&mut self) -> FmEffects<V> {
        let mut fx = FmEffects::new();
        fx.arm(Timer::Query, self.query_ticks);
        fx
    }

    /// A leader says every slot below `commit` is chosen.
    pub fn note_commit(&mut self, commit: Slot) {
        self.commit = self.commit.max(commit);
    }

    /// Handles a message; returns, with the effects, a slot and fast round whose votes just
    /// collided (no entry can reach a fast quorum there any more).
    pub fn on_message(
        &mut self,
        from: NodeId,
        msg: Message<V>,
    ) -> (FmEffects<V>, Option<(Slot, Round)>) {
        let mut fx = FmEffects::new();
        let mut collided = None;
        match msg {
            Message::Accepted { slot, vote } if is_member(&self.quorum, from) => {
                collided = self.on_vote(from, slot, vote, &mut fx);
            }
            Message::Chosen { slot, value } if is_member(&self.quorum, from) => {
                self.learn(slot, value, &mut fx);
            }
            Message::Query { from: first } => fx.extend(self.tell(from, first)),
            _ => {}
        }
        (fx, collided)
    }

    /// Tells `to` what was chosen from slot `first` on (a batch of it).
    pub fn tell(&self, to: NodeId, first: Slot) -> FmEffects<V> {
        let mut fx = FmEffects::new();
        for (&slot, value) in self.chosen.range(first..).take(QUERY_BATCH) {
            let value = value.clone();
            fx.send(to, Message::Chosen { slot, value });
        }
        fx
    }

    /// Handles its timer: asks the peers about slots known to be chosen but not known here.
    pub fn on_timer(&mut self, kind: Timer) -> FmEffects<V> {
        let mut fx = FmEffects::new();
        if kind == Timer::Query {
            let behind = self.commit > self.prefix
                || self
                    .chosen
                    .keys()
                    .next_back()
                    .is_some_and(|&s| s > self.prefix);
            if behind {
                let from = self.prefix;
                fx.broadcast(&self.peers, Message::Query { from });
            }
            fx.arm(Timer::Query, self.query_ticks);
        }
        fx
    }

    fn on_vote(
        &mut self,
        from: NodeId,
        slot: Slot,
        vote: EntryVote<V>,
        fx: &mut FmEffects<V>,
    ) -> Option<(Slot, Round)> {
        if self.chosen.contains_key(&slot) {
            return None;
        }
        let round = self.votes.entry(slot).or_default();
        let (fast, voters) = round
            .entry(vote.round)
            .or_insert_with(|| (vote.fast, BTreeMap::new()));
        if *fast != vote.fast {
            // A round is fast or classic for every acceptor; only a bad peer says otherwise.
            return None;
        }
        let fast = *fast;
        voters.insert(from, vote.value.clone());
        let with: BTreeSet<NodeId> = voters
            .iter()
            .filter(|(_, v)| **v == vote.value)
            .map(|(&id, _)| id)
            .collect();
        if self.quorum.is_quorum(&with, fast) {
            self.learn(slot, vote.value, fx);
            return None;
        }
        let votes: BTreeMap<NodeId, Entry<V>> = voters.clone();
        (fast && crate::fast::collision(&self.quorum, &votes)).then_some((slot, vote.round))
    }

    fn learn(&mut self, slot: Slot, value: Entry<V>, fx: &mut FmEffects<V>) {
        if self.chosen.contains_key(&slot) {
            return;
        }
        self.votes.remove(&slot);
        self.chosen.insert(slot, value.clone());
        fx.output(Output::Chosen { slot, value });
        while self.chosen.contains_key(&self.prefix) {
            self.prefix += 1;
        }
    }
}
