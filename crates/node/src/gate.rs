//! The durability gate: which records go to the log in which batch, and which messages wait
//! for which batch to be durable.
//!
//! The core sorts each step's messages ([`synod_core::Effects::send_after_sync`]); the gate only
//! keeps the order. Records of many steps share one batch (group commit): one
//! [`crate::Action::Write`] per loop turn at most, one sync for all of it. A message that waits
//! is released once the newest batch handed to the log when it was produced is durable, which
//! covers its own step's records and every earlier step's.
//!
//! A commit point alone is not worth a sync (losing it costs a catch-up, never safety): it
//! rides along with the next records that need one. Nor are chosen values learned from others
//! (a member left out of thrifty accepts, a catch-up): a batch of nothing else is written
//! without a sync of its own, and becomes durable with the next batch that has one, since the
//! log keeps the order, or with one of its own once it is old (`NodeCore::sync_old_tail`).
//! Losing such a tail in a crash loses nothing that was not chosen elsewhere; what was written
//! after it is lost with it, and the node catches up again.

use std::collections::VecDeque;
use synod_core::multi::{Message, Persist};
use synod_core::Outgoing;
use synod_kv::KvCommand;

/// Messages to peers (or to this node itself).
pub type Outgoings = Vec<Outgoing<Message<KvCommand>>>;

/// Batches handed to the log and messages held for them.
#[derive(Debug, Default)]
pub struct Gate {
    /// Batches handed to the log so far (numbered from 1).
    batches: u64,
    /// The newest batch known durable.
    synced: u64,
    /// Messages waiting for a batch, oldest first.
    held: VecDeque<(u64, Outgoings)>,
    /// The newest commit point not yet handed to the log.
    lazy_commit: Option<Persist<KvCommand>>,
    /// Records staged this turn, written as one batch at the end of it.
    staged: Vec<Persist<KvCommand>>,
    /// Some record or message staged this turn needs the batch synced.
    staged_sync: bool,
    /// The newest batch that is synced once written, and the newest that is not.
    last_synced_batch: u64,
    last_unsynced_batch: u64,
}

/// A record whose loss in a crash costs a catch-up, never safety: a chosen value (chosen by
/// durable votes elsewhere) or a commit point.
fn needs_no_sync(p: &Persist<KvCommand>) -> bool {
    matches!(p, Persist::Chosen { .. } | Persist::Commit(_))
}

impl Gate {
    /// Stages one step's records for this turn's batch. A step whose messages wait for the
    /// disk (`gated`) writes the commit point held back too: such a message may report it
    /// (a main's or learner's `Progress`, which a Cheap Paxos leader tells auxiliaries to
    /// forget by), so it must survive a restart before the message leaves.
    ///
    /// A gated step with nothing to write while an unsynced batch is the newest must be given
    /// a record by the caller ([`Gate::unsynced_tail`]): its messages may rest on that batch.
    pub fn stage(&mut self, mut persist: Vec<Persist<KvCommand>>, gated: bool) {
        self.staged_sync |= gated || !persist.iter().all(needs_no_sync);
        if gated && persist.is_empty() {
            if let Some(c) = self.lazy_commit.take() {
                self.staged.push(c);
            }
            return;
        }
        let lazy = !gated && self.staged.is_empty();
        if lazy && persist.iter().all(|p| matches!(p, Persist::Commit(_))) {
            if let Some(c) = persist.pop() {
                self.lazy_commit = Some(c);
            }
            return;
        }
        if persist.is_empty() {
            return;
        }
        if let Some(c) = self.lazy_commit.take() {
            self.staged.push(c);
        }
        self.staged.extend(persist);
    }

    #[cfg(test)]
    fn stage_plain(&mut self, persist: Vec<Persist<KvCommand>>) {
        self.stage(persist, false);
    }

    /// True when records were staged this turn and not yet cut into a batch, or a batch is
    /// not yet durable: a message that must wait, waits.
    pub fn unsynced(&self) -> bool {
        !self.staged.is_empty() || self.last_synced_batch > self.synced || self.unsynced_tail()
    }

    /// True when the newest batch was written without a sync and no sync has covered it yet.
    pub fn unsynced_tail(&self) -> bool {
        self.last_unsynced_batch > self.last_synced_batch.max(self.synced)
    }

    /// The batch the newest held messages wait for, if no batch to be synced was cut at or
    /// after it: nothing the driver reports would release them (only the old tail's own sync,
    /// `NodeCore::sync_old_tail`, ticks later). `None` after every loop turn.
    pub fn stranded(&self) -> Option<u64> {
        let (batch, _) = self.held.back()?;
        (*batch > self.last_synced_batch).then_some(*batch)
    }

    /// Holds messages until everything staged or written so far is durable.
    pub fn hold(&mut self, msgs: Outgoings) {
        // The batch the staged records will be cut into, or the newest one written.
        let batch = self.batches + u64::from(!self.staged.is_empty());
        match self.held.back_mut() {
            Some((b, m)) if *b == batch => m.extend(msgs),
            _ => self.held.push_back((batch, msgs)),
        }
    }

    /// Cuts the records staged this turn into the next batch, if there are any: its number,
    /// its records, and whether it must be synced (a batch of chosen values and commit points
    /// only, with no message waiting for it, need not be).
    pub fn cut(&mut self) -> Option<(u64, Vec<Persist<KvCommand>>, bool)> {
        if self.staged.is_empty() {
            self.staged_sync = false;
            return None;
        }
        self.batches += 1;
        let sync = std::mem::take(&mut self.staged_sync);
        match sync {
            true => self.last_synced_batch = self.batches,
            false => self.last_unsynced_batch = self.batches,
        }
        Some((self.batches, std::mem::take(&mut self.staged), sync))
    }

    /// Batch `batch` (and so every earlier one) is durable: returns the messages it releases.
    /// A driver reports batches it synced; it may report one written without a sync once a
    /// later sync covered it, never before.
    pub fn synced(&mut self, batch: u64) -> Outgoings {
        assert!(batch <= self.batches, "batch {batch} was never written");
        self.synced = self.synced.max(batch);
        let mut out = Vec::new();
        while self.held.front().is_some_and(|(b, _)| *b <= self.synced) {
            out.extend(self.held.pop_front().expect("checked").1);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_core::Ballot;

    fn msg(to: u64) -> Outgoings {
        vec![Outgoing {
            to,
            msg: Message::CatchUpRequest { from: 0 },
        }]
    }

    #[test]
    fn held_messages_wait_for_the_batch_their_records_went_into() {
        let mut g = Gate::default();
        assert!(!g.unsynced());
        g.stage_plain(vec![Persist::Promise(Ballot::new(1, 1))]);
        assert!(g.unsynced(), "staged, not yet written");
        g.hold(msg(2));
        assert_eq!(g.cut().map(|(b, r, s)| (b, r.len(), s)), Some((1, 1, true)));
        g.stage_plain(vec![Persist::Promise(Ballot::new(2, 1))]);
        g.hold(msg(3));
        assert_eq!(g.cut().map(|(b, _, _)| b), Some(2));
        assert!(g.synced(1).iter().map(|o| o.to).eq([2]));
        assert!(g.unsynced());
        assert!(g.synced(2).iter().map(|o| o.to).eq([3]));
        assert!(!g.unsynced());
        assert!(g.cut().is_none(), "nothing staged");
    }

    #[test]
    fn a_message_with_nothing_new_to_persist_still_waits_for_earlier_batches() {
        let mut g = Gate::default();
        g.stage_plain(vec![Persist::Promise(Ballot::new(1, 1))]);
        g.cut();
        // A duplicate prepare: no new record, but the promise it repeats is not durable yet.
        assert!(g.unsynced());
        g.hold(msg(2));
        assert!(g.synced(1).iter().map(|o| o.to).eq([2]));
    }

    #[test]
    fn a_commit_point_alone_rides_with_the_next_batch() {
        let mut g = Gate::default();
        g.stage_plain(vec![Persist::Commit(4)]);
        assert!(g.cut().is_none(), "not worth a sync alone");
        g.stage_plain(vec![Persist::Commit(5)]);
        g.stage_plain(vec![Persist::Promise(Ballot::new(1, 1))]);
        let (_, records, _) = g.cut().unwrap();
        assert_eq!(
            records,
            vec![Persist::Commit(5), Persist::Promise(Ballot::new(1, 1))]
        );
    }

    #[test]
    fn a_step_whose_messages_wait_writes_the_commit_point_held_back() {
        let mut g = Gate::default();
        g.stage(vec![Persist::Commit(4)], false);
        // A Progress reporting commit 4 waits for it: the held-back record is written.
        g.stage(Vec::new(), true);
        assert!(g.unsynced(), "the message must wait");
        let (_, records, sync) = g.cut().unwrap();
        assert_eq!((records, sync), (vec![Persist::Commit(4)], true));
        // A commit point in such a step is written at once too.
        g.stage(vec![Persist::Commit(6)], true);
        assert_eq!(g.cut().map(|(_, r, _)| r), Some(vec![Persist::Commit(6)]));
        // With nothing held back, nothing to write.
        g.stage(Vec::new(), true);
        assert!(g.cut().is_none());
    }

    fn chosen(slot: u64) -> Persist<KvCommand> {
        Persist::Chosen {
            slot,
            value: synod_core::multi::Value::Noop,
        }
    }

    #[test]
    fn chosen_values_alone_are_written_unsynced_and_a_sync_after_them_covers_them() {
        let mut g = Gate::default();
        g.stage_plain(vec![chosen(0), Persist::Commit(1)]);
        assert_eq!(
            g.cut().map(|(b, r, s)| (b, r.len(), s)),
            Some((1, 2, false))
        );
        assert!(g.unsynced_tail(), "nothing synced it yet");
        assert!(g.unsynced(), "a message waiting now would need a sync");
        // A vote with them in the turn makes the whole batch a synced one.
        g.stage_plain(vec![chosen(1)]);
        g.stage_plain(vec![Persist::Promise(Ballot::new(1, 1))]);
        g.hold(msg(2));
        assert_eq!(g.cut().map(|(b, _, s)| (b, s)), Some((2, true)));
        assert!(!g.unsynced_tail(), "batch 2's sync will cover batch 1");
        assert!(g.synced(2).iter().map(|o| o.to).eq([2]));
        assert!(!g.unsynced());
        // A step whose messages wait turns a batch of chosen values into a synced one, even
        // with nothing of its own to write.
        g.stage_plain(vec![chosen(2)]);
        g.stage(Vec::new(), true);
        assert_eq!(g.cut().map(|(_, _, s)| s), Some(true));
        // An unsynced batch reported synced later (a driver whose sync covered it) is durable.
        g.synced(3);
        g.stage_plain(vec![chosen(3)]);
        assert_eq!(g.cut().map(|(b, _, s)| (b, s)), Some((4, false)));
        g.synced(4);
        assert!(!g.unsynced_tail() && !g.unsynced());
    }

    #[test]
    fn messages_held_on_an_unsynced_tail_are_stranded_until_a_sync_is_cut_after_them() {
        let mut g = Gate::default();
        g.stage_plain(vec![chosen(0)]);
        assert_eq!(g.cut().map(|(b, _, s)| (b, s)), Some((1, false)));
        // What `NodeCore::sort` must not do: hold with nothing staged on the unsynced tail.
        g.hold(msg(2));
        assert_eq!(g.stranded(), Some(1));
        // The record it stages instead: the batch is cut synced, and its report releases them.
        g.stage(vec![Persist::Commit(1)], true);
        assert_eq!(g.cut().map(|(b, _, s)| (b, s)), Some((2, true)));
        assert_eq!(g.stranded(), None);
        // Held behind a synced batch in flight, they are not stranded either.
        g.stage(vec![Persist::Promise(Ballot::new(1, 1))], true);
        g.hold(msg(3));
        g.cut();
        assert_eq!(g.stranded(), None);
        assert!(g.synced(3).iter().map(|o| o.to).eq([2, 3]));
        assert_eq!(g.stranded(), None);
    }
}
