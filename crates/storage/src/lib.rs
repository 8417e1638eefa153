//! Synod's durable storage: what makes an acceptor's promise and vote survive a crash.
//!
//! - [`Wal`]: a segmented write-ahead log of opaque byte records with consecutive `u64`
//!   indexes; each record framed with its length, index and a CRC32C; segments preallocated
//!   with zeros; suffix truncation ([`Wal::truncate_after`]), compaction below a snapshot
//!   ([`Wal::compact`]) and restart after a snapshot ([`Wal::reset`]).
//! - [`GroupCommitter`]: many writer threads, one `fdatasync` per batch; writers block until
//!   durable, or get a callback or a channel.
//! - [`SnapshotStore`]: snapshots written atomically (temporary file, fsync, rename, directory
//!   fsync), checksummed; the newest valid one is loaded on start.
//! - [`open`]: a whole store, snapshot plus the log records after it.
//! - [`bench::bench()`]: records/s at 1, 16 and 64 writers against the raw `fdatasync` rate.
//!
//! # Durability contract
//! A record is durable once [`Wal::sync`] returns (or a [`CommitHandle`] reports it): it then
//! survives `kill -9` and power loss, as far as `fdatasync` does. Files are created and renamed
//! only with a directory fsync after. After any write or sync error, the log refuses further
//! work until reopened: after a failed `fdatasync` Linux may drop the dirty pages, so a retry
//! could falsely succeed.
//!
//! # Recovery
//! Opening a log returns every intact record in order and a [`RecoveryReport`]. A torn tail (a
//! partial or damaged last record followed only by zeros or garbage, with no intact later
//! record) is the normal leftover of a crash: it is cut and reported. A damaged record followed
//! by an intact later one, or damage in any but the last segment, is corruption: opening fails
//! naming the file and byte offset, unless [`WalOptions::repair`] is set, which cuts the log
//! there and reports it. Nothing is skipped silently; decoding arbitrary bytes never panics.
//! See the `recovery` module source for the rules and the one case they cannot distinguish.
//!
//! # On-disk format (all integers little-endian)
//! ```text
//! DIR/wal/{first_index:020}.wal   segment: 32-byte header, then frames, then zeros
//!   header: "SYNODWAL" | version u32 = 1 | 0 u32 | first_index u64 | 0 u32 | crc32c(0..28) u32
//!   frame:  crc32c u32 (of the rest of the frame) | len u32 | index u64 | payload | zero pad to 8
//! DIR/snap/{index:020}.snap       snapshot
//!   "SYNODSNP" | version u32 = 1 | meta_len u32 | index u64 | data_len u64 | meta | data
//!   | crc32c u32 (of everything before it)
//! *.tmp                           unfinished segment, snapshot or draft, removed on open
//! ```

#![warn(missing_docs)]

pub mod bench;
mod draft;
mod error;
mod fsutil;
mod group;
mod open;
mod pieces;
pub mod record;
mod recovery;
mod report;
pub mod segment;
mod snapshot;
mod wal;

pub use draft::SnapshotDraft;
pub use error::{Result, StorageError};
pub use group::{CommitHandle, CommitResult, GroupCommitter};
pub use open::{open, Opened, StorageOptions};
pub use report::{RecoveryReport, SkippedSnapshot, StorageReport, Truncation, TruncationKind};
pub use snapshot::{decode_snapshot, encode_snapshot, LoadedSnapshot, Snapshot, SnapshotStore};
pub use wal::{Record, Recovered, Wal, WalOptions, WalStats};
