//! A PBFT replica's disk: its [`Persist`] records in Synod's write-ahead log, and, at each
//! stable checkpoint, a snapshot of the whole [`Durable`] state so that the log can be cut.

use crate::kv::KvOp;
use crate::wire::MAX_FRAME;
use std::path::Path;
use synod_core::pbft::{Durable, Persist};
use synod_storage::{SnapshotStore, StorageError, StorageOptions, Wal};

/// What the disk refused.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The log or a snapshot could not be read or written.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A record or snapshot passed its checksum but is not a PBFT replica's: another
    /// program's directory, or another version's format.
    #[error("{what} does not decode as a PBFT replica's ({err}); is this another node's data directory?")]
    Foreign {
        /// Which record.
        what: String,
        /// The decoder's complaint.
        err: postcard::Error,
    },
}

/// Marks snapshots as a PBFT replica's, so that a Multi-Paxos data directory is refused.
const SNAPSHOT_META: &[u8] = b"synod-pbft-durable-v1";

/// A replica's log and snapshots, and the durable state they add up to.
pub struct Disk {
    wal: Wal,
    snapshots: SnapshotStore,
    durable: Durable<KvOp>,
    /// The log index of the newest snapshot. The log is cut only below the one before it, so
    /// that a damaged newest snapshot can fall back on the older one and the log after it.
    newest: Option<u64>,
}

impl Disk {
    /// Opens (or creates) the store in `dir` and rebuilds the durable state from it.
    pub fn open(dir: &Path) -> Result<Disk, DiskError> {
        let mut opts = StorageOptions::default();
        opts.wal.max_record_size = MAX_FRAME;
        let opened = synod_storage::open(dir, &opts)?;
        let mut durable = match &opened.snapshot {
            None => Durable::default(),
            Some(s) => {
                if s.meta != SNAPSHOT_META {
                    return Err(DiskError::Storage(StorageError::InvalidArgument(format!(
                        "snapshot {} in {} is not a PBFT replica's",
                        s.index,
                        dir.display()
                    ))));
                }
                postcard::from_bytes(&s.data).map_err(|err| DiskError::Foreign {
                    what: format!("snapshot {}", s.index),
                    err,
                })?
            }
        };
        for r in &opened.records {
            let record: Persist<KvOp> =
                postcard::from_bytes(&r.data).map_err(|err| DiskError::Foreign {
                    what: format!("log record {}", r.index),
                    err,
                })?;
            durable.apply(&record);
        }
        Ok(Disk {
            newest: opened.snapshot.as_ref().map(|s| s.index),
            wal: opened.wal,
            snapshots: opened.snapshots,
            durable,
        })
    }

    /// The durable state, as of the last [`Disk::write`].
    pub fn durable(&self) -> &Durable<KvOp> {
        &self.durable
    }

    /// Appends `records` and makes them durable with one sync. A new stable checkpoint among
    /// them is followed by a snapshot, and the log before the previous snapshot is removed.
    /// A stable checkpoint's record holds the whole store, so a store above
    /// [`MAX_FRAME`] bytes cannot be checkpointed: the write fails and the replica stops.
    pub fn write(&mut self, records: &[Persist<KvOp>]) -> Result<(), DiskError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut last = 0;
        let mut stable = false;
        for record in records {
            let bytes = postcard::to_stdvec(record).expect("encoding into memory does not fail");
            last = self.wal.append(&bytes)?;
            self.durable.apply(record);
            stable |= matches!(record, Persist::Stable { .. });
        }
        self.wal.sync()?;
        if stable {
            // The snapshot holds everything the records up to `last` said, so they can go.
            let data =
                postcard::to_stdvec(&self.durable).expect("encoding into memory does not fail");
            self.snapshots.save(last, SNAPSHOT_META, &data)?;
            if let Some(older) = self.newest.replace(last) {
                self.wal.compact(older + 1)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut disk = Disk::open(dir.path()).expect("opens");
        let records = vec![
            Persist::View {
                view: 3,
                changing: true,
            },
            Persist::Floor { seq: 9 },
        ];
        disk.write(&records).expect("writes");
        let want = disk.durable().clone();
        drop(disk);
        let back = Disk::open(dir.path()).expect("reopens");
        assert_eq!(back.durable(), &want);
        assert_eq!((want.view, want.changing, want.floor), (3, true, 9));
    }

    fn stable(seq: u64) -> Persist<KvOp> {
        use synod_core::auth::{Signed, SimKeyring};
        use synod_core::pbft::Checkpoint;
        let keys = SimKeyring::new(1, [1, 2, 3]);
        let body = Checkpoint {
            seq,
            state: [7; 32],
        };
        let proof = [1, 2, 3]
            .map(|id| Signed::new(&keys.signer(id), body))
            .to_vec();
        Persist::Stable {
            proof,
            state: vec![seq as u8; 10],
        }
    }

    #[test]
    fn checkpoints_snapshot_and_the_records_after_them_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut disk = Disk::open(dir.path()).expect("opens");
        let view = |view| Persist::View {
            view,
            changing: false,
        };
        for batch in [
            vec![view(1)],
            vec![stable(4), view(2)],
            vec![view(3)],
            vec![stable(8)],
            vec![Persist::Floor { seq: 9 }],
        ] {
            disk.write(&batch).expect("writes");
        }
        let want = disk.durable().clone();
        assert_eq!((want.stable_seq(), want.view, want.floor), (8, 3, 9));
        drop(disk);
        let snaps = std::fs::read_dir(dir.path().join("snap"))
            .expect("snapshot dir")
            .count();
        assert_eq!(snaps, 2, "both checkpoints kept a snapshot");
        let back = Disk::open(dir.path()).expect("reopens");
        assert_eq!(back.durable(), &want);
    }

    #[test]
    fn a_foreign_log_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut wal, _) =
            Wal::open(dir.path().join("wal"), Default::default()).expect("opens the log");
        wal.append(&[0xff; 16]).expect("appends");
        wal.sync().expect("syncs");
        drop(wal);
        let err = Disk::open(dir.path()).err().expect("refused");
        assert!(err.to_string().contains("another node"), "{err}");
    }
}
