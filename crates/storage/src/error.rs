//! The one error type of the crate.
//!
//! Errors are `Clone` (I/O errors are held in an `Arc`) because one failed `fdatasync` has to be
//! reported to every writer whose records were in that batch.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// Shorthand for results of this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Why a storage operation failed. Every variant says which file and what to do next.
#[derive(Debug, Clone, Error)]
pub enum StorageError {
    /// The operating system refused an operation on a file or directory.
    #[error("{action} {}: {error}", path.display())]
    Io {
        /// What was being done (`"fdatasync"`, `"rename"`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's answer.
        error: Arc<io::Error>,
    },
    /// Data on disk fails its checksum or its structure, and is not a torn write at the tail.
    #[error(
        "{}: corrupt data at byte offset {offset}: {reason}; refusing to open (reopen with \
         repair enabled to discard the log from this point on, or rebuild this replica from \
         its peers)",
        path.display()
    )]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Where in the file the damage starts.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// A record larger than the configured limit.
    #[error(
        "record of {len} bytes exceeds the limit of {max} bytes (WalOptions::max_record_size)"
    )]
    RecordTooLarge {
        /// The record's size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A caller asked for something the log cannot do (the message says what and why).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An earlier write or sync failed. After a failed `fdatasync` the kernel may have dropped
    /// the dirty pages, so retrying could report success for data that is gone: the only safe
    /// way on is to reopen the log and recover from what is really on disk.
    #[error("the log is unusable after an earlier failure ({0}); reopen it to recover")]
    Poisoned(Arc<StorageError>),
    /// Another process (or another handle in this one) has the log open.
    #[error(
        "{}: the log is already open elsewhere (its lock is held); stop the other process first",
        path.display()
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A snapshot file that was saved or loaded earlier no longer reads as one.
    #[error("{}: not the snapshot it was saved as: {reason}", path.display())]
    SnapshotChanged {
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The group committer has been shut down.
    #[error("the group committer has shut down")]
    Closed,
}

impl StorageError {
    /// An [`StorageError::Io`] for `path`.
    pub(crate) fn io(action: &'static str, path: &Path, error: io::Error) -> StorageError {
        StorageError::Io {
            action,
            path: path.to_path_buf(),
            error: Arc::new(error),
        }
    }

    /// A [`StorageError::Corrupt`] for `path`.
    pub(crate) fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> StorageError {
        StorageError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }

    /// True for [`StorageError::Corrupt`].
    pub fn is_corruption(&self) -> bool {
        matches!(self, StorageError::Corrupt { .. })
    }
}

/// Adds the action and path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, action: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, action: &'static str, path: &Path) -> Result<T> {
        self.map_err(|e| StorageError::io(action, path, e))
    }
}
