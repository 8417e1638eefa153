//! The single-decree acceptor: the memory of Paxos.

use super::messages::{BasicEffects, Message, Persist};
use crate::ballot::{Ballot, NodeId};
use crate::bugs::PlantedBug;

/// What an acceptor keeps on disk, rebuilt from its [`Persist`] records after a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptorState<V> {
    /// The highest ballot promised (or accepted).
    pub promised: Ballot,
    /// The latest vote.
    pub accepted: Option<(Ballot, V)>,
}

impl<V> Default for AcceptorState<V> {
    fn default() -> Self {
        AcceptorState {
            promised: Ballot::ZERO,
            accepted: None,
        }
    }
}

impl<V: Clone> AcceptorState<V> {
    /// Applies one persisted record, in the order they were written.
    pub fn apply(&mut self, record: &Persist<V>) {
        match record {
            Persist::Promised(b) => self.promised = self.promised.max(*b),
            Persist::Accepted(b, v) => {
                self.promised = self.promised.max(*b);
                self.accepted = Some((*b, v.clone()));
            }
            Persist::Round(_) => {}
        }
    }
}

/// A single-decree acceptor.
///
/// Invariants (asserted): the promise never decreases; a vote is never below the promise it was
/// made under (unless the `AcceptBelowPromise` bug is planted on purpose).
#[derive(Clone, Debug)]
pub struct Acceptor<V> {
    id: NodeId,
    learners: Vec<NodeId>,
    state: AcceptorState<V>,
    bug: Option<PlantedBug>,
}

impl<V: Clone + Eq + std::fmt::Debug> Acceptor<V> {
    /// A fresh acceptor that reports its votes to `learners` (and to the proposer that asked).
    pub fn new(id: NodeId, learners: Vec<NodeId>) -> Self {
        Self::recover(id, learners, AcceptorState::default())
    }

    /// An acceptor restarted from what it had persisted.
    pub fn recover(id: NodeId, learners: Vec<NodeId>, state: AcceptorState<V>) -> Self {
        Acceptor {
            id,
            learners,
            state,
            bug: None,
        }
    }

    /// Plants a bug on purpose (tests of the simulator's checkers only).
    pub fn plant(&mut self, bug: Option<PlantedBug>) {
        self.bug = bug;
    }

    /// This acceptor's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The promise and vote as they stand.
    pub fn state(&self) -> &AcceptorState<V> {
        &self.state
    }

    /// Handles one message from `from`.
    pub fn on_message(&mut self, from: NodeId, msg: Message<V>) -> BasicEffects<V> {
        let mut fx = BasicEffects::new();
        match msg {
            Message::Prepare { ballot } => {
                if ballot >= self.state.promised {
                    if ballot > self.state.promised {
                        self.state.promised = ballot;
                        fx.persist(Persist::Promised(ballot));
                    }
                    let accepted = self.state.accepted.clone();
                    fx.send_after_sync(from, Message::Promise { ballot, accepted });
                } else {
                    fx.send(
                        from,
                        Message::Nack {
                            ballot,
                            promised: self.state.promised,
                        },
                    );
                }
            }
            Message::Accept { ballot, value } => {
                let allowed = ballot >= self.state.promised
                    || self.bug == Some(PlantedBug::AcceptBelowPromise);
                if allowed {
                    let before = self.state.promised;
                    self.state.promised = self.state.promised.max(ballot);
                    self.state.accepted = Some((ballot, value.clone()));
                    debug_assert!(self.state.promised >= before, "promise went backwards");
                    fx.persist(Persist::Accepted(ballot, value.clone()));
                    let reply = Message::Accepted { ballot, value };
                    fx.send_after_sync(from, reply.clone());
                    for &l in &self.learners {
                        if l != from {
                            fx.send_after_sync(l, reply.clone());
                        }
                    }
                } else {
                    fx.send(
                        from,
                        Message::Nack {
                            ballot,
                            promised: self.state.promised,
                        },
                    );
                }
            }
            Message::Query => {
                // The vote may have been cast by a step whose sync is still to come.
                if let Some((ballot, value)) = self.state.accepted.clone() {
                    fx.send_after_sync(from, Message::Accepted { ballot, value });
                }
            }
            // Answers meant for proposers and learners are not for us.
            Message::Promise { .. } | Message::Accepted { .. } | Message::Nack { .. } => {}
        }
        fx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(r: u64, n: NodeId) -> Ballot {
        Ballot::new(r, n)
    }

    #[test]
    fn promises_once_then_refuses_lower_ballots() {
        let mut a: Acceptor<&str> = Acceptor::new(10, vec![20]);
        assert_eq!(a.id(), 10);
        let fx = a.on_message(1, Message::Prepare { ballot: b(2, 1) });
        assert_eq!(fx.persist, vec![Persist::Promised(b(2, 1))]);
        assert!(fx.send.is_empty(), "a promise waits for its record");
        assert_eq!(
            fx.send_after_sync[0].msg,
            Message::Promise {
                ballot: b(2, 1),
                accepted: None
            }
        );

        let fx = a.on_message(3, Message::Prepare { ballot: b(2, 1) });
        assert!(
            fx.persist.is_empty(),
            "a repeated promise is not written again"
        );
        assert!(matches!(fx.send_after_sync[0].msg, Message::Promise { .. }));

        let fx = a.on_message(2, Message::Prepare { ballot: b(1, 2) });
        assert!(fx.persist.is_empty());
        assert_eq!(
            fx.send[0].msg,
            Message::Nack {
                ballot: b(1, 2),
                promised: b(2, 1)
            }
        );
        let fx = a.on_message(
            2,
            Message::Accept {
                ballot: b(1, 2),
                value: "x",
            },
        );
        assert!(fx.persist.is_empty(), "must not vote below its promise");
        assert!(matches!(fx.send[0].msg, Message::Nack { .. }));
    }

    #[test]
    fn votes_are_persisted_reported_to_proposer_and_learners_and_returned_in_promises() {
        let mut a = Acceptor::new(10, vec![20, 21]);
        let fx = a.on_message(
            1,
            Message::Accept {
                ballot: b(1, 1),
                value: "v",
            },
        );
        assert_eq!(fx.persist, vec![Persist::Accepted(b(1, 1), "v")]);
        assert!(fx.send.is_empty(), "a vote waits for its record");
        let to: Vec<_> = fx.send_after_sync.iter().map(|o| o.to).collect();
        assert_eq!(to, vec![1, 20, 21]);

        let fx = a.on_message(2, Message::Prepare { ballot: b(2, 2) });
        assert_eq!(
            fx.send_after_sync[0].msg,
            Message::Promise {
                ballot: b(2, 2),
                accepted: Some((b(1, 1), "v"))
            }
        );
    }

    #[test]
    fn restart_keeps_promise_and_vote() {
        let mut a = Acceptor::new(10, vec![]);
        let mut disk = AcceptorState::default();
        for fx in [
            a.on_message(1, Message::Prepare { ballot: b(3, 1) }),
            a.on_message(
                1,
                Message::Accept {
                    ballot: b(3, 1),
                    value: 7u32,
                },
            ),
        ] {
            fx.persist.iter().for_each(|p| disk.apply(p));
        }
        let mut a = Acceptor::recover(10, vec![], disk);
        let fx = a.on_message(
            2,
            Message::Accept {
                ballot: b(2, 2),
                value: 8,
            },
        );
        assert!(matches!(fx.send[0].msg, Message::Nack { promised, .. } if promised == b(3, 1)));
        assert_eq!(a.state().accepted, Some((b(3, 1), 7)));
    }

    #[test]
    fn planted_bug_accepts_below_promise() {
        let mut a = Acceptor::new(10, vec![]);
        a.plant(Some(PlantedBug::AcceptBelowPromise));
        a.on_message(1, Message::Prepare { ballot: b(5, 1) });
        let fx = a.on_message(
            2,
            Message::Accept {
                ballot: b(1, 2),
                value: "bad",
            },
        );
        assert_eq!(fx.persist, vec![Persist::Accepted(b(1, 2), "bad")]);
    }

    #[test]
    fn query_repeats_the_latest_vote() {
        let mut a = Acceptor::new(10, vec![]);
        assert!(a
            .on_message(20, Message::Query)
            .all_sends()
            .next()
            .is_none());
        a.on_message(
            1,
            Message::Accept {
                ballot: b(1, 1),
                value: 'v',
            },
        );
        let fx = a.on_message(20, Message::Query);
        assert_eq!(
            fx.send_after_sync[0].msg,
            Message::Accepted {
                ballot: b(1, 1),
                value: 'v'
            }
        );
    }
}
