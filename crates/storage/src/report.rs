//! What recovery found and did, for the operator's log and for tests.

use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

/// Why bytes were cut off the log while opening it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TruncationKind {
    /// A partial or damaged last record with nothing intact after it: what a crash in the middle
    /// of an append leaves behind. None of these records had been reported durable.
    TornTail,
    /// Corruption before the tail, discarded because repair was asked for. Records reported
    /// durable may have been lost.
    Repaired,
}

/// Bytes cut off the log while opening it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Truncation {
    /// Torn tail or repair.
    pub kind: TruncationKind,
    /// The segment where the cut starts.
    pub path: PathBuf,
    /// Byte offset in that segment where the cut starts (the log now ends there).
    pub offset: u64,
    /// Non-zero bytes discarded in that segment.
    pub bytes: u64,
    /// Later segments removed (repair only).
    pub removed_segments: Vec<PathBuf>,
    /// What was found at the cut.
    pub reason: String,
}

/// What opening a write-ahead log found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    /// Segment files read.
    pub segments: usize,
    /// Records recovered.
    pub records: u64,
    /// Index of the first record the log holds (or would hold, if empty).
    pub first_index: u64,
    /// Index of the last record recovered (`first_index - 1` if none).
    pub last_index: u64,
    /// What was cut off, if anything.
    pub truncation: Option<Truncation>,
    /// Leftover temporary files (from a crash while creating a segment) that were removed.
    pub removed_temp_files: Vec<PathBuf>,
    /// True if the directory held no segment and a new log was started.
    pub created: bool,
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} records ({}..={}) in {} segment(s)",
            self.records, self.first_index, self.last_index, self.segments
        )?;
        if self.created {
            write!(f, "; new log")?;
        }
        if let Some(t) = &self.truncation {
            let what = match t.kind {
                TruncationKind::TornTail => "torn tail cut",
                TruncationKind::Repaired => "REPAIRED: corrupt log cut",
            };
            write!(
                f,
                "; {what} at {} offset {} ({} bytes: {})",
                t.path.display(),
                t.offset,
                t.bytes,
                t.reason
            )?;
            if !t.removed_segments.is_empty() {
                write!(f, ", {} later segment(s) removed", t.removed_segments.len())?;
            }
        }
        if !self.removed_temp_files.is_empty() {
            write!(
                f,
                "; {} temporary file(s) removed",
                self.removed_temp_files.len()
            )?;
        }
        Ok(())
    }
}

/// A snapshot file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedSnapshot {
    /// The file.
    pub path: PathBuf,
    /// Why it was not used.
    pub reason: String,
}

/// What opening the whole store (snapshots and log) found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StorageReport {
    /// The log's recovery.
    pub wal: RecoveryReport,
    /// Index covered by the snapshot loaded, if any.
    pub snapshot_index: Option<u64>,
    /// Newer snapshot files that failed their checks and were passed over.
    pub skipped_snapshots: Vec<SkippedSnapshot>,
    /// Leftover temporary snapshot files (from a crash while saving) that were removed.
    pub removed_temp_snapshots: Vec<PathBuf>,
    /// If the log ended before the snapshot, it was restarted at this index.
    pub log_restarted_at: Option<u64>,
}

impl fmt::Display for StorageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.snapshot_index {
            Some(i) => write!(f, "snapshot at index {i}; ")?,
            None => write!(f, "no snapshot; ")?,
        }
        write!(f, "log: {}", self.wal)?;
        for s in &self.skipped_snapshots {
            write!(f, "; skipped snapshot {}: {}", s.path.display(), s.reason)?;
        }
        if !self.removed_temp_snapshots.is_empty() {
            write!(
                f,
                "; {} unfinished snapshot file(s) removed",
                self.removed_temp_snapshots.len()
            )?;
        }
        if let Some(i) = self.log_restarted_at {
            write!(f, "; log was behind the snapshot, restarted at index {i}")?;
        }
        Ok(())
    }
}
