//! A simulated disk holding a node's actual log records and checkpoint, as bytes.
//!
//! Records are encoded exactly as the server writes them ([`synod_node::record`]) and read back
//! at restart through the server's own recovery function. Written records stay volatile until
//! a sync; a crash keeps a random prefix of them (the records that happened to reach the
//! platter first; a record torn in the middle is dropped whole, as the write-ahead log's CRC
//! check does).

use bytes::Bytes;
use synod_core::multi::Persist;
use synod_kv::KvCommand;
use synod_node::record::{
    checkpoint_head, checkpoint_state, encode_boot, encode_checkpoint, encode_persist, recover,
    recover_aux, write_checkpoint_tail, RecoverError,
};
use synod_node::{AuxRecovered, Checkpoint, Recovered};

/// One node's disk.
#[derive(Default)]
pub struct SimDisk {
    /// Synced records: index and bytes.
    durable: Vec<(u64, Vec<u8>)>,
    /// Written, not yet synced: index, bytes, and the record (for ground truth).
    written: Vec<(u64, Vec<u8>, Persist<KvCommand>)>,
    /// The newest batch written.
    written_batch: u64,
    /// The latest checkpoint: the last record index it covers, and its bytes.
    checkpoint: Option<(u64, Bytes)>,
    /// Index of the last record ever written.
    last_index: u64,
}

impl SimDisk {
    /// Writes batch `batch` (volatile until [`SimDisk::sync`]).
    pub fn write(&mut self, batch: u64, records: Vec<Persist<KvCommand>>) {
        for r in records {
            self.last_index += 1;
            self.written.push((self.last_index, encode_persist(&r), r));
        }
        self.written_batch = batch;
    }

    /// Records written and not synced.
    pub fn unsynced(&self) -> usize {
        self.written.len()
    }

    /// Makes everything written durable; returns the newest batch now durable and the records
    /// that became durable.
    pub fn sync(&mut self) -> (u64, Vec<Persist<KvCommand>>) {
        let records = self.keep(self.written.len());
        (self.written_batch, records)
    }

    /// A crash: the first `keep` unsynced records reach the disk, the rest are lost. Returns the
    /// records that became durable.
    pub fn crash(&mut self, keep: usize) -> Vec<Persist<KvCommand>> {
        let kept = self.keep(keep);
        self.written_batch = 0;
        kept
    }

    fn keep(&mut self, n: usize) -> Vec<Persist<KvCommand>> {
        let mut out = Vec::new();
        for (i, (index, bytes, record)) in std::mem::take(&mut self.written).into_iter().enumerate()
        {
            if i < n {
                self.durable.push((index, bytes));
                out.push(record);
            } else {
                // Lost: the next record written takes its index again, as the log would.
                self.last_index = self.last_index.min(index - 1);
            }
        }
        out
    }

    /// Writes and syncs a boot record (at start, before anything else); returns its index.
    pub fn boot(&mut self, boot: u64) -> u64 {
        debug_assert!(self.written.is_empty());
        self.last_index += 1;
        self.durable.push((self.last_index, encode_boot(boot)));
        self.last_index
    }

    /// Saves `checkpoint` as covering records up to `covered` and drops them from the log.
    /// Returns the checkpoint's size. Two checkpoints may be saved out of order (the server
    /// saves each on a thread of its own); as the server's snapshot store does, the one that
    /// covers more is the one read back.
    pub fn save_checkpoint(&mut self, covered: u64, checkpoint: &Checkpoint) -> u64 {
        // What the checkpoint covers is durable; records the node wrote after it asked for the
        // checkpoint (in reply to the sync that preceded it) may still be in flight.
        debug_assert!(
            self.written.iter().all(|(i, _, _)| *i > covered),
            "saved once what it covers is durable"
        );
        let bytes = checkpoint_bytes(covered, checkpoint);
        let n = bytes.len() as u64;
        if self.checkpoint.as_ref().is_some_and(|(c, _)| *c >= covered) {
            return n;
        }
        self.checkpoint = Some((covered, bytes.into()));
        self.durable.retain(|(i, _)| *i > covered);
        n
    }

    /// Bytes in the log (written or durable).
    pub fn log_bytes(&self) -> u64 {
        let d: usize = self.durable.iter().map(|(_, b)| b.len()).sum();
        let w: usize = self.written.iter().map(|(_, b, _)| b.len()).sum();
        (d + w) as u64
    }

    /// Index of the last record written.
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// Reads the durable state back, as the server does at start.
    pub fn recover(&self) -> Result<Recovered, RecoverError> {
        recover(
            self.checkpoint.clone(),
            self.durable.iter().map(|(i, b)| (*i, &b[..])),
        )
    }

    /// What an auxiliary acceptor's node reads back at restart.
    pub fn recover_aux(&self) -> Result<AuxRecovered, RecoverError> {
        recover_aux(
            self.checkpoint.clone(),
            self.durable.iter().map(|(i, b)| (*i, &b[..])),
        )
    }

    /// The latest checkpoint's snapshot slot and state, sharing the checkpoint's bytes: what the
    /// server maps from its checkpoint file and hands the replica in place of its own copy.
    pub fn snapshot_state(&self) -> Option<(u64, Bytes)> {
        self.checkpoint
            .as_ref()
            .and_then(|(_, b)| checkpoint_state(b))
    }

    /// Bytes held: the checkpoint and the log.
    pub fn bytes(&self) -> u64 {
        self.checkpoint.as_ref().map_or(0, |(_, b)| b.len() as u64) + self.log_bytes()
    }
}

/// A checkpoint's bytes as the server writes them: encoded whole, or, for one that begins with
/// a snapshot, as a head of fixed width, the state and the rest, the way the server writes a
/// checkpoint whose snapshot it encoded straight into the file. Both decode alike; each seed
/// saves both kinds (by the parity of `covered`), so recovery reads both.
fn checkpoint_bytes(covered: u64, c: &Checkpoint) -> Vec<u8> {
    match c.records.first() {
        Some(Persist::Snapshot(s)) if covered.is_multiple_of(2) => {
            let head = checkpoint_head(c.boot, c.records.len(), s.slot, s.state.len() as u64);
            let mut out = head.to_vec();
            out.extend_from_slice(&s.state);
            write_checkpoint_tail(c, &mut out).expect("writing to memory");
            out
        }
        _ => encode_checkpoint(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_core::Ballot;

    fn promise(r: u64) -> Persist<KvCommand> {
        Persist::Promise(Ballot::new(r, 1))
    }

    #[test]
    fn only_synced_records_and_a_prefix_of_the_rest_survive_a_crash() {
        let mut d = SimDisk::default();
        d.boot(1);
        d.write(1, vec![promise(1)]);
        assert_eq!(d.sync(), (1, vec![promise(1)]));
        d.write(2, vec![promise(2), promise(3), promise(4)]);
        assert_eq!(d.crash(1), vec![promise(2)]);
        let r = d.recover().unwrap();
        assert_eq!((r.boot, r.durable.promised), (1, Ballot::new(2, 1)));
        assert_eq!(
            d.last_index(),
            3,
            "the lost records' indexes are used again"
        );
        let i = d.boot(2);
        assert_eq!(i, 4);
        d.write(1, vec![promise(5)]);
        d.sync();
        let covered = d.last_index();
        let cp = Checkpoint {
            boot: 2,
            records: vec![promise(5)],
        };
        d.save_checkpoint(covered, &cp);
        d.write(2, vec![promise(6)]);
        d.sync();
        // An older checkpoint saved late changes nothing.
        let older = Checkpoint {
            boot: 1,
            records: vec![],
        };
        d.save_checkpoint(covered - 1, &older);
        let r = d.recover().unwrap();
        assert_eq!((r.boot, r.durable.promised), (2, Ballot::new(6, 1)));
    }
}
