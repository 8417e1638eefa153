//! The single-decree learner: finds out which value was chosen.

use super::messages::{BasicEffects, Message, Output, Timer};
use crate::ballot::{Ballot, NodeId};
use crate::quorum::QuorumSystem;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A learner. It counts votes per ballot and learns a value only when a phase-2 quorum of
/// acceptors voted for it in the *same* ballot: votes for one value spread over different
/// ballots prove nothing (see the "multi-identifier majority" flow scenario).
///
/// Its state is volatile: after a restart it asks the acceptors again.
#[derive(Clone, Debug)]
pub struct Learner<V> {
    id: NodeId,
    quorum: Arc<dyn QuorumSystem>,
    query_ticks: u64,
    votes: BTreeMap<Ballot, (V, BTreeSet<NodeId>)>,
    learned: Option<V>,
}

impl<V: Clone + Eq + std::fmt::Debug> Learner<V> {
    /// A learner of the acceptors in `quorum`; if it has learned nothing for `query_ticks`, it
    /// asks them to repeat their votes.
    pub fn new(id: NodeId, quorum: Arc<dyn QuorumSystem>, query_ticks: u64) -> Self {
        Learner {
            id,
            quorum,
            query_ticks,
            votes: BTreeMap::new(),
            learned: None,
        }
    }

    /// This learner's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The value learned, if any.
    pub fn learned(&self) -> Option<&V> {
        self.learned.as_ref()
    }

    /// Arms the first query timer; call once after creating or restarting the learner.
    pub fn start(&mut self) -> BasicEffects<V> {
        let mut fx = BasicEffects::new();
        fx.arm(Timer::Query, self.query_ticks);
        fx
    }

    /// Handles a timer.
    pub fn on_timer(&mut self, timer: Timer) -> BasicEffects<V> {
        let mut fx = BasicEffects::new();
        if timer == Timer::Query && self.learned.is_none() {
            fx.broadcast(self.quorum.members(), Message::Query);
            fx.arm(Timer::Query, self.query_ticks);
        }
        fx
    }

    /// Handles one message from acceptor `from`.
    pub fn on_message(&mut self, from: NodeId, msg: Message<V>) -> BasicEffects<V> {
        let mut fx = BasicEffects::new();
        let Message::Accepted { ballot, value } = msg else {
            return fx;
        };
        if !self.quorum.members().contains(&from) {
            return fx;
        }
        let (v, voters) = self
            .votes
            .entry(ballot)
            .or_insert_with(|| (value.clone(), BTreeSet::new()));
        if *v != value {
            // One ballot proposes one value; a mismatch is a broken proposer, never a vote.
            return fx;
        }
        voters.insert(from);
        if self.learned.is_none() && self.quorum.is_phase2_quorum(voters) {
            self.learned = Some(value.clone());
            fx.output(Output::Chosen(value));
        }
        fx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::Quorum;

    fn learner() -> Learner<&'static str> {
        Learner::new(20, Arc::new(Quorum::majority(&[10, 11, 12]).unwrap()), 5)
    }

    fn accepted(r: u64, v: &'static str) -> Message<&'static str> {
        Message::Accepted {
            ballot: Ballot::new(r, 1),
            value: v,
        }
    }

    #[test]
    fn learns_from_a_quorum_in_one_ballot() {
        let mut l = learner();
        assert!(l.on_message(10, accepted(1, "v")).output.is_empty());
        assert!(
            l.on_message(10, accepted(1, "v")).output.is_empty(),
            "duplicates count once"
        );
        let fx = l.on_message(11, accepted(1, "v"));
        assert_eq!(fx.output, vec![Output::Chosen("v")]);
        assert_eq!((l.id(), l.learned()), (20, Some(&"v")));
        assert!(
            l.on_message(12, accepted(1, "v")).output.is_empty(),
            "reported once"
        );
    }

    #[test]
    fn the_same_value_across_ballots_is_not_a_quorum() {
        let mut l = learner();
        l.on_message(10, accepted(1, "v"));
        l.on_message(11, accepted(2, "v"));
        l.on_message(12, accepted(3, "v"));
        assert_eq!(l.learned(), None);
    }

    #[test]
    fn strangers_do_not_vote_and_queries_stop_once_learned() {
        let mut l = learner();
        l.on_message(99, accepted(1, "v"));
        l.on_message(10, accepted(1, "v"));
        assert_eq!(l.learned(), None);
        assert_eq!(l.on_timer(Timer::Query).send.len(), 3);
        l.on_message(11, accepted(1, "v"));
        assert!(l.on_timer(Timer::Query).is_empty());
    }
}
