//! The acceptor role of a Multi-Paxos replica: one promise for the whole log, one vote per slot.

use super::log::Entry;
use super::messages::{MultiEffects, Persist, PromiseEntry, Slot, Value};
use crate::ballot::Ballot;
use crate::bugs::PlantedBug;
use std::collections::BTreeMap;

/// How an acceptor answered an accept request.
#[derive(Debug, PartialEq, Eq)]
pub enum Vote<C> {
    /// Voted; the vote is in the step's persist records.
    Accepted,
    /// Refused: the ballot is below this promise.
    Refused(Ballot),
    /// Did not vote: the slot is already chosen, with this value.
    AlreadyChosen(Value<C>),
    /// Did not vote: the slot is chosen and compacted into a snapshot (its value is gone).
    Compacted,
}

/// The acceptor: its promise and its log of votes (which also holds chosen values, since a
/// replica's learner reads the same log).
///
/// Invariants (asserted): the promise never decreases; every vote is at or above the promise
/// in force when it was cast (unless `AcceptBelowPromise` is planted); a chosen entry is never
/// replaced by a vote.
#[derive(Clone, Debug)]
pub struct Acceptor<C> {
    promised: Ballot,
    log: BTreeMap<Slot, Entry<C>>,
    /// Slots below this were compacted into a snapshot.
    log_start: Slot,
    bug: Option<PlantedBug>,
}

impl<C: Clone + Eq + std::fmt::Debug> Acceptor<C> {
    /// An acceptor resuming from its durable promise and log.
    pub fn new(promised: Ballot, log: BTreeMap<Slot, Entry<C>>, bug: Option<PlantedBug>) -> Self {
        Acceptor {
            promised,
            log,
            log_start: 0,
            bug,
        }
    }

    /// The first slot still in the log.
    pub fn log_start(&self) -> Slot {
        self.log_start
    }

    /// Removes every slot below `upto`, which this replica has applied and snapshotted: each of
    /// them must be known chosen here. Returns what was removed, for the caller to drop.
    pub fn compact(&mut self, upto: Slot) -> BTreeMap<Slot, Entry<C>> {
        debug_assert!(
            self.log.range(..upto).all(|(_, e)| e.chosen),
            "compacting a slot that is not known chosen"
        );
        self.remove_below(upto)
    }

    /// Drops every slot below `upto` because a snapshot covering them was installed: the
    /// snapshot, not this log, is the proof that they are chosen.
    pub fn drop_below(&mut self, upto: Slot) {
        self.remove_below(upto);
    }

    fn remove_below(&mut self, upto: Slot) -> BTreeMap<Slot, Entry<C>> {
        if upto <= self.log_start {
            return BTreeMap::new();
        }
        let kept = self.log.split_off(&upto);
        self.log_start = upto;
        std::mem::replace(&mut self.log, kept)
    }

    /// The current promise.
    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// The log.
    pub fn log(&self) -> &BTreeMap<Slot, Entry<C>> {
        &self.log
    }

    /// Phase 1b. Promises `ballot` (persisting it) and returns the votes from `from` on, or
    /// refuses with the higher promise.
    pub fn prepare<R>(
        &mut self,
        ballot: Ballot,
        from: Slot,
        fx: &mut MultiEffects<C, R>,
    ) -> Result<Vec<PromiseEntry<C>>, Ballot> {
        if ballot < self.promised {
            return Err(self.promised);
        }
        if ballot > self.promised {
            self.promised = ballot;
            if self.bug != Some(PlantedBug::PromiseNotPersisted) {
                fx.persist(Persist::Promise(ballot));
            }
        }
        Ok(self
            .log
            .range(from.max(self.log_start)..)
            .map(|(&slot, e)| {
                debug_assert!(e.chosen || e.ballot <= ballot, "vote above a new promise");
                PromiseEntry {
                    slot,
                    ballot: e.ballot,
                    value: e.value.clone(),
                    chosen: e.chosen,
                }
            })
            .collect())
    }

    /// Phase 2b for one slot.
    pub fn accept<R>(
        &mut self,
        ballot: Ballot,
        slot: Slot,
        value: &Value<C>,
        fx: &mut MultiEffects<C, R>,
    ) -> Vote<C> {
        if slot < self.log_start {
            return Vote::Compacted;
        }
        if let Some(e) = self.log.get(&slot) {
            if e.chosen {
                return Vote::AlreadyChosen(e.value.clone());
            }
        }
        let allowed = ballot >= self.promised || self.bug == Some(PlantedBug::AcceptBelowPromise);
        if !allowed {
            return Vote::Refused(self.promised);
        }
        if (self.log.get(&slot)).is_some_and(|e| e.ballot == ballot && e.value == *value) {
            // A retransmission of a vote we cast: it is on disk already, or in a batch that
            // an answer held for the sync waits for, since the gate releases a message only
            // after every batch written before it. Writing it again cost a large value's
            // bytes once more per heartbeat while it was in flight.
            return Vote::Accepted;
        }
        let before = self.promised;
        self.promised = self.promised.max(ballot);
        assert!(self.promised >= before, "promise went backwards");
        self.log.insert(
            slot,
            Entry {
                ballot,
                value: value.clone(),
                chosen: false,
            },
        );
        if self.bug != Some(PlantedBug::VoteNotPersisted) {
            fx.persist(Persist::Accept {
                slot,
                ballot,
                value: value.clone(),
            });
        }
        Vote::Accepted
    }

    /// Records that `slot` is chosen with `value`. Returns true if this is news.
    ///
    /// Persists the value only when the log does not already hold it; when it does, the
    /// replica's later `Commit` record is what marks it chosen on disk.
    pub fn learn<R>(&mut self, slot: Slot, value: &Value<C>, fx: &mut MultiEffects<C, R>) -> bool {
        if slot < self.log_start {
            return false;
        }
        match self.log.get_mut(&slot) {
            // A peer's news that contradicts a value known chosen is refused: only a faulty
            // peer (or a broken protocol, which the simulator's agreement check reports) sends
            // it, and it must not crash this node.
            Some(e) if e.chosen => false,
            Some(e) if e.value == *value => {
                e.chosen = true;
                true
            }
            _ => {
                let ballot = self.log.get(&slot).map_or(Ballot::ZERO, |e| e.ballot);
                self.log.insert(
                    slot,
                    Entry {
                        ballot,
                        value: value.clone(),
                        chosen: true,
                    },
                );
                fx.persist(Persist::Chosen {
                    slot,
                    value: value.clone(),
                });
                true
            }
        }
    }

    /// The chosen value of `slot`, if known.
    pub fn chosen(&self, slot: Slot) -> Option<&Value<C>> {
        self.log.get(&slot).filter(|e| e.chosen).map(|e| &e.value)
    }

    /// The vote for `slot` if it was cast in `ballot`.
    pub fn vote_in(&self, slot: Slot, ballot: Ballot) -> Option<&Value<C>> {
        let any = self.bug == Some(PlantedBug::CommitAnyBallot);
        self.log
            .get(&slot)
            .filter(|e| !e.chosen && (e.ballot == ballot || any))
            .map(|e| &e.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Fx = MultiEffects<u32, ()>;

    fn b(r: u64, n: u64) -> Ballot {
        Ballot::new(r, n)
    }

    #[test]
    fn prepare_returns_votes_from_the_slot_on_and_refuses_lower() {
        let mut a: Acceptor<u32> = Acceptor::new(Ballot::ZERO, BTreeMap::new(), None);
        let mut fx = Fx::new();
        for s in 0..4 {
            assert_eq!(a.accept(b(1, 1), s, &Value::Noop, &mut fx), Vote::Accepted);
        }
        let mut fx = Fx::new();
        let entries = a.prepare(b(2, 2), 2, &mut fx).unwrap();
        assert_eq!(fx.persist, vec![Persist::Promise(b(2, 2))]);
        assert_eq!(
            entries.iter().map(|e| e.slot).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(a.prepare(b(1, 3), 0, &mut fx), Err(b(2, 2)));
        assert_eq!(
            a.accept(b(1, 3), 9, &Value::Noop, &mut fx),
            Vote::Refused(b(2, 2))
        );
        // A retransmitted prepare of the ballot promised gets the promise again, unwritten.
        let mut fx = Fx::new();
        assert!(a.prepare(b(2, 2), 2, &mut fx).is_ok());
        assert!(fx.persist.is_empty());
    }

    #[test]
    fn chosen_slots_answer_with_their_value_and_keep_it() {
        let mut a: Acceptor<u32> = Acceptor::new(Ballot::ZERO, BTreeMap::new(), None);
        let mut fx = Fx::new();
        let v = Value::batch(vec![super::super::Command {
            client: 1,
            seq: 1,
            op: 5,
        }]);
        assert!(a.learn(0, &v, &mut fx));
        assert!(matches!(fx.persist[0], Persist::Chosen { slot: 0, .. }));
        assert!(!a.learn(0, &v, &mut fx), "old news");
        assert_eq!(
            a.accept(b(9, 9), 0, &Value::Noop, &mut fx),
            Vote::AlreadyChosen(v.clone())
        );
        assert_eq!(a.chosen(0), Some(&v));
    }

    #[test]
    fn news_contradicting_a_chosen_value_is_refused() {
        let mut a: Acceptor<u32> = Acceptor::new(Ballot::ZERO, BTreeMap::new(), None);
        let mut fx = Fx::new();
        assert!(a.learn(0, &Value::Noop, &mut fx));
        let mut fx = Fx::new();
        let other = Value::batch(vec![super::super::messages::Command {
            client: 1,
            seq: 1,
            op: 9,
        }]);
        assert!(!a.learn(0, &other, &mut fx));
        assert!(fx.persist.is_empty());
        assert_eq!(a.chosen(0), Some(&Value::Noop));
    }

    #[test]
    fn learning_a_value_already_voted_for_persists_nothing() {
        let mut a: Acceptor<u32> = Acceptor::new(Ballot::ZERO, BTreeMap::new(), None);
        let mut fx = Fx::new();
        a.accept(b(1, 1), 0, &Value::Noop, &mut fx);
        let mut fx = Fx::new();
        assert!(a.learn(0, &Value::Noop, &mut fx));
        assert!(fx.persist.is_empty());
        assert_eq!(a.vote_in(0, b(1, 1)), None, "chosen, no longer a mere vote");
    }

    #[test]
    fn a_retransmitted_vote_is_answered_unwritten_and_a_new_one_is_written() {
        let mut a: Acceptor<u32> = Acceptor::new(Ballot::ZERO, BTreeMap::new(), None);
        let v = |op| {
            Value::batch(vec![super::super::Command {
                client: 1,
                seq: 1,
                op,
            }])
        };
        let mut fx = Fx::new();
        assert_eq!(a.accept(b(1, 1), 0, &v(5), &mut fx), Vote::Accepted);
        assert_eq!(fx.persist.len(), 1);
        let mut fx = Fx::new();
        assert_eq!(a.accept(b(1, 1), 0, &v(5), &mut fx), Vote::Accepted);
        assert!(fx.persist.is_empty(), "the same vote written twice");
        // Another value in the same ballot (a faulty leader) or a higher ballot is a new vote.
        for (ballot, op) in [(b(1, 1), 6), (b(2, 2), 6)] {
            let mut fx = Fx::new();
            assert_eq!(a.accept(ballot, 0, &v(op), &mut fx), Vote::Accepted);
            assert_eq!(fx.persist.len(), 1, "{ballot:?} {op}");
            assert_eq!(a.vote_in(0, ballot), Some(&v(op)));
        }
    }
}
