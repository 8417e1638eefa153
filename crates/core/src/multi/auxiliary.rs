//! Cheap Paxos's auxiliary acceptor: a vote and nothing else.
//!
//! Lamport and Massa's Cheap Paxos runs `f + 1` main replicas and `f` auxiliary acceptors. An
//! auxiliary counts in quorums like any acceptor, so the cluster survives `f` failures, but the
//! leader sends it work only when a main does not answer (replica/cheap.rs): in steady state
//! the mains alone are a quorum, and the auxiliary receives nothing. It keeps no state machine,
//! no membership and no log beyond its votes, and it forgets those once every main has learned
//! them (the leader says so with a heartbeat whose commit point is what all mains have
//! learned). So it can run on a small machine, or share one.
//!
//! Forgetting is safe because a candidate ignores the promise of an auxiliary that forgot slots
//! the candidate still needs (`log_start > from`): leaving a promise out never makes two values
//! chosen, it only makes a quorum harder to reach, and the mains that have learned those slots
//! are the ones that stand.

use super::acceptor::{Acceptor, Vote};
use super::log::Entry;
use super::messages::{Message, MultiEffects, Persist, Slot, Value};
use crate::ballot::{Ballot, NodeId};
use std::collections::BTreeMap;

/// What an auxiliary's step asks of its driver: persists, sends; it has no outputs or timers.
pub type AuxEffects<C> = MultiEffects<C, ()>;

/// What an auxiliary keeps on disk, rebuilt by applying its records in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuxDurable<C> {
    /// Its promise.
    pub promised: Ballot,
    /// Its votes at or above `forgotten`.
    pub votes: BTreeMap<Slot, Entry<C>>,
    /// Every vote below this was dropped: those slots are learned by every main.
    pub forgotten: Slot,
}

impl<C> Default for AuxDurable<C> {
    fn default() -> Self {
        AuxDurable {
            promised: Ballot::ZERO,
            votes: BTreeMap::new(),
            forgotten: 0,
        }
    }
}

impl<C: Clone> AuxDurable<C> {
    /// Applies one record. An auxiliary writes promises, votes and forget points only; any
    /// other record (from a replica's disk given by mistake) changes nothing.
    pub fn apply(&mut self, record: &Persist<C>) {
        match record {
            Persist::Promise(b) => self.promised = self.promised.max(*b),
            Persist::Accept {
                slot,
                ballot,
                value,
            } => {
                self.promised = self.promised.max(*ballot);
                if *slot >= self.forgotten {
                    let entry = Entry {
                        ballot: *ballot,
                        value: value.clone(),
                        chosen: false,
                    };
                    self.votes.insert(*slot, entry);
                }
            }
            Persist::Forget(upto) if *upto > self.forgotten => {
                self.votes = self.votes.split_off(upto);
                self.forgotten = *upto;
            }
            _ => {}
        }
    }
}

/// An auxiliary acceptor: answers prepares, accepts and read probes, and forgets on request.
#[derive(Clone, Debug)]
pub struct Auxiliary<C> {
    id: NodeId,
    acceptor: Acceptor<C>,
}

impl<C: Clone + Eq + std::fmt::Debug> Auxiliary<C> {
    /// An auxiliary resuming from what its disk holds.
    pub fn new(id: NodeId, durable: AuxDurable<C>) -> Self {
        let mut acceptor = Acceptor::new(durable.promised, durable.votes, None);
        acceptor.drop_below(durable.forgotten);
        Auxiliary { id, acceptor }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Its promise.
    pub fn promised(&self) -> Ballot {
        self.acceptor.promised()
    }

    /// The votes it holds: the whole of its state besides the promise.
    pub fn votes(&self) -> usize {
        self.acceptor.log().len()
    }

    /// Every vote below this was forgotten.
    pub fn forgotten(&self) -> Slot {
        self.acceptor.log_start()
    }

    /// Every vote it holds: slot, ballot, value.
    pub fn votes_held(&self) -> impl Iterator<Item = (Slot, Ballot, &Value<C>)> + '_ {
        (self.acceptor.log().iter()).map(|(&s, e)| (s, e.ballot, &e.value))
    }

    /// The vote it holds for `slot`, if any.
    pub fn vote(&self, slot: Slot) -> Option<(Ballot, &Value<C>)> {
        self.acceptor.log().get(&slot).map(|e| (e.ballot, &e.value))
    }

    /// Handles one message from peer `from`. Anything but a prepare, an accept, a read probe
    /// or a heartbeat is not for an auxiliary and is dropped.
    pub fn on_message(&mut self, from: NodeId, msg: Message<C>) -> AuxEffects<C> {
        let mut fx = AuxEffects::new();
        if from == self.id {
            return fx;
        }
        match msg {
            Message::Prepare { ballot, from: slot } => {
                match self.acceptor.prepare(ballot, slot, &mut fx) {
                    Ok(entries) => {
                        let log_start = self.acceptor.log_start();
                        let promise = Message::Promise {
                            ballot,
                            entries,
                            log_start,
                        };
                        fx.send_after_sync(from, promise);
                    }
                    Err(promised) => fx.send(from, Message::Nack { ballot, promised }),
                }
            }
            Message::Accept {
                ballot,
                slot,
                value,
                ..
            } => match self.acceptor.accept(ballot, slot, &value, &mut fx) {
                Vote::Accepted => fx.send_after_sync(from, Message::Accepted { ballot, slot }),
                Vote::Refused(promised) => fx.send(from, Message::Nack { ballot, promised }),
                // It never learns values, so a slot is "chosen" here only below its forget
                // point, which every main has learned: the sender will hear it from them.
                Vote::AlreadyChosen(_) | Vote::Compacted => {}
            },
            Message::ReadProbe { ballot, round } => {
                let promised = self.acceptor.promised();
                if ballot < promised {
                    fx.send(from, Message::Nack { ballot, promised });
                } else {
                    fx.send(from, Message::ReadAck { ballot, round });
                }
            }
            // The commit point a leader sends an auxiliary is what every main has learned.
            Message::Heartbeat { ballot, commit }
                if ballot >= self.acceptor.promised() && commit > self.acceptor.log_start() =>
            {
                self.acceptor.drop_below(commit);
                fx.persist(Persist::Forget(commit));
            }
            _ => {}
        }
        fx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::Outgoing;

    fn accept(ballot: Ballot, slot: Slot) -> Message<u32> {
        Message::Accept {
            ballot,
            slot,
            value: Value::Noop,
            commit: 0,
        }
    }

    #[test]
    fn it_votes_forgets_and_recovers_from_its_records() {
        let (b1, b2) = (Ballot::new(1, 1), Ballot::new(2, 2));
        let mut aux = Auxiliary::<u32>::new(9, AuxDurable::default());
        let mut disk = AuxDurable::default();
        let mut step = |aux: &mut Auxiliary<u32>, msg| {
            let fx = aux.on_message(1, msg);
            fx.persist.iter().for_each(|p| disk.apply(p));
            (fx.send, fx.send_after_sync)
        };
        for slot in 0..4 {
            let (_, late) = step(&mut aux, accept(b1, slot));
            assert!(matches!(late[0].msg, Message::Accepted { slot: s, .. } if s == slot));
        }
        // A heartbeat of a lower ballot than its promise changes nothing.
        step(
            &mut aux,
            Message::Prepare {
                ballot: b2,
                from: 0,
            },
        );
        step(
            &mut aux,
            Message::Heartbeat {
                ballot: b1,
                commit: 3,
            },
        );
        assert_eq!((aux.votes(), aux.forgotten()), (4, 0));
        step(
            &mut aux,
            Message::Heartbeat {
                ballot: b2,
                commit: 3,
            },
        );
        assert_eq!((aux.votes(), aux.forgotten()), (1, 3));
        // Nothing else is for it.
        let (now, late) = step(&mut aux, Message::CatchUpRequest { from: 0 });
        assert!(now.is_empty() && late.is_empty());
        let back = Auxiliary::new(9, disk.clone());
        assert_eq!(
            (back.votes(), back.forgotten(), back.promised()),
            (1, 3, b2)
        );
        assert_eq!(back.vote(3), Some((b1, &Value::Noop)));
        // An older forget point on disk changes nothing; a read probe is answered like a
        // heartbeat: acknowledged at or above its promise, refused below.
        disk.apply(&Persist::Forget(1));
        assert_eq!(disk.forgotten, 3);
        let mut again = Auxiliary::new(9, disk.clone());
        assert_eq!(again.id(), 9);
        let probe = |ballot| Message::ReadProbe { ballot, round: 4 };
        let fx = again.on_message(1, probe(b2));
        assert!(matches!(
            fx.send[..],
            [Outgoing {
                to: 1,
                msg: Message::ReadAck { round: 4, .. }
            }]
        ));
        let fx = again.on_message(1, probe(b1));
        assert!(matches!(
            fx.send[..],
            [Outgoing {
                msg: Message::Nack { .. },
                ..
            }]
        ));
        // Told a forget point it has already: nothing to write.
        let fx = again.on_message(
            1,
            Message::Heartbeat {
                ballot: b2,
                commit: 3,
            },
        );
        assert!(fx.persist.is_empty());
        // A promise reports where its memory starts.
        let mut back = back;
        let fx = back.on_message(
            2,
            Message::Prepare {
                ballot: Ballot::new(3, 2),
                from: 0,
            },
        );
        let Message::Promise {
            log_start, entries, ..
        } = &fx.send_after_sync[0].msg
        else {
            panic!("no promise");
        };
        assert_eq!((*log_start, entries.len()), (3, 1));
    }
}
