//! Opening a whole store: the latest valid snapshot plus the log records after it.

use crate::error::{Result, StorageError};
use crate::report::StorageReport;
use crate::snapshot::{Snapshot, SnapshotStore};
use crate::wal::{Record, Wal, WalOptions};
use std::path::Path;

/// How [`open`] lays out and opens a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageOptions {
    /// Options of the log (in the `wal/` subdirectory).
    pub wal: WalOptions,
    /// Snapshots kept in the `snap/` subdirectory (at least 1). Keeping two means a damaged
    /// newest snapshot can fall back on the previous one, as long as the log still reaches back.
    pub keep_snapshots: usize,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            wal: WalOptions::default(),
            keep_snapshots: 2,
        }
    }
}

/// An opened store and everything recovered from it.
#[derive(Debug)]
pub struct Opened {
    /// The log, ready for appends.
    pub wal: Wal,
    /// Where to save snapshots.
    pub snapshots: SnapshotStore,
    /// The newest valid snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// The log records after the snapshot, in order: replay them on top of it.
    pub records: Vec<Record>,
    /// What recovery found and did.
    pub report: StorageReport,
}

/// Opens the store in `dir` (`dir/wal`, `dir/snap`), creating it if needed.
///
/// The snapshot and the log must meet: the log has to hold every record after the snapshot.
/// If the log ends before the snapshot (a snapshot installed from a peer, or a crash midway
/// through [`Wal::reset`]), it is restarted just after the snapshot, and reported. If records
/// between the snapshot and the log's start are missing, that is corruption.
///
/// To take a snapshot at index `i`: [`SnapshotStore::save`] it, then [`Wal::compact`]`(i + 1)`.
pub fn open(dir: impl AsRef<Path>, opts: &StorageOptions) -> Result<Opened> {
    let dir = dir.as_ref();
    // The log first: it takes the directory's lock, and opening the snapshots removes their
    // temporary files, which may be a running member's checkpoint being written.
    let (mut wal, recovered) = Wal::open(dir.join("wal"), opts.wal.clone())?;
    let (snapshots, removed_temp_snapshots) =
        SnapshotStore::open(dir.join("snap"), opts.keep_snapshots)?;
    let loaded = snapshots.load_latest()?;
    let mut report = StorageReport {
        wal: recovered.report,
        snapshot_index: loaded.snapshot.as_ref().map(|s| s.index),
        skipped_snapshots: loaded.skipped,
        removed_temp_snapshots,
        log_restarted_at: None,
    };
    let covered = loaded
        .snapshot
        .as_ref()
        .map_or(opts.wal.first_index - 1, |s| s.index);
    let mut records = recovered.records;
    if wal.last_index() < covered {
        wal.reset(covered + 1)?;
        report.log_restarted_at = Some(covered + 1);
        records.clear();
    } else if wal.first_index() > covered + 1 {
        let what = match &loaded.snapshot {
            Some(s) => format!("the newest usable snapshot covers up to index {}", s.index),
            None => "there is no usable snapshot".to_string(),
        };
        return Err(StorageError::corrupt(
            wal.dir(),
            0,
            format!(
                "the log starts at index {} but {what}: records {}..{} are missing",
                wal.first_index(),
                covered + 1,
                wal.first_index() - 1
            ),
        ));
    }
    records.retain(|r| r.index > covered);
    Ok(Opened {
        wal,
        snapshots,
        snapshot: loaded.snapshot,
        records,
        report,
    })
}
