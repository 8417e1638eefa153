//! The replica's log and its durable form.

use super::messages::{Persist, Slot, Snapshot, Value};
use crate::ballot::Ballot;
use std::collections::BTreeMap;

/// One slot of the log: the latest vote, and whether it is known to be the chosen value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<C> {
    /// The ballot of the vote (meaningless once `chosen`).
    pub ballot: Ballot,
    /// The value.
    pub value: Value<C>,
    /// The value is known chosen.
    pub chosen: bool,
}

/// What a replica keeps on disk: rebuilt by applying its [`Persist`] records in order.
///
/// Invariant kept by the replica: every slot below `commit` has an entry holding its chosen
/// value, written before the `Commit` record that covers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurableState<C> {
    /// The acceptor's promise (and the highest ballot the node used).
    pub promised: Ballot,
    /// Votes and chosen values by slot.
    pub log: BTreeMap<Slot, Entry<C>>,
    /// Every slot below this is chosen.
    pub commit: Slot,
    /// The latest snapshot; the log holds only slots at or above its `slot`.
    pub snapshot: Option<Snapshot>,
}

impl<C> Default for DurableState<C> {
    fn default() -> Self {
        DurableState {
            promised: Ballot::ZERO,
            log: BTreeMap::new(),
            commit: 0,
            snapshot: None,
        }
    }
}

impl<C: Clone> DurableState<C> {
    fn install(&mut self, s: Snapshot) {
        if self.snapshot.as_ref().is_none_or(|old| old.slot < s.slot) {
            self.log = self.log.split_off(&s.slot);
            self.commit = self.commit.max(s.slot);
            self.snapshot = Some(s);
        }
    }

    /// The first slot the log holds (everything below is in the snapshot).
    pub fn log_start(&self) -> Slot {
        self.snapshot.as_ref().map_or(0, |s| s.slot)
    }

    /// Applies one record, in the order they were persisted.
    pub fn apply(&mut self, record: &Persist<C>) {
        match record {
            Persist::Promise(b) => self.promised = self.promised.max(*b),
            Persist::Accept {
                slot,
                ballot,
                value,
            } => {
                self.promised = self.promised.max(*ballot);
                // A vote never overwrites a chosen value (the acceptor refuses to vote there).
                let chosen = self.log.get(slot).is_some_and(|e| e.chosen);
                if !chosen {
                    self.log.insert(
                        *slot,
                        Entry {
                            ballot: *ballot,
                            value: value.clone(),
                            chosen: false,
                        },
                    );
                }
            }
            Persist::Chosen { slot, value } => {
                let ballot = self.log.get(slot).map_or(Ballot::ZERO, |e| e.ballot);
                self.log.insert(
                    *slot,
                    Entry {
                        ballot,
                        value: value.clone(),
                        chosen: true,
                    },
                );
            }
            Persist::Snapshot(s) => self.install(s.clone()),
            // Only an auxiliary writes it, and it keeps its own state (`AuxDurable`).
            Persist::Forget(_) => {}
            Persist::SnapshotV1(s) => self.install(s.clone().into()),
            Persist::Commit(c) => {
                if *c > self.commit {
                    for (_, e) in self.log.range_mut(self.commit..*c) {
                        e.chosen = true;
                    }
                    self.commit = *c;
                }
            }
        }
    }
}
