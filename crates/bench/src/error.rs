//! What can go wrong while benchmarking.

use std::path::PathBuf;
use thiserror::Error;

/// Why a benchmark could not run or finish.
#[derive(Debug, Error)]
pub enum BenchError {
    /// A setting is out of range or inconsistent.
    #[error("invalid setting: {0}")]
    Config(String),
    /// The etcd client failed where the benchmark cannot go on (connecting, preloading keys).
    #[error("{what}: {source}")]
    Client {
        /// What the benchmark was doing.
        what: String,
        /// The client's error.
        source: etcd_client::Error,
    },
    /// A process (etcd, synod, perf, apt-get) could not be started or misbehaved.
    #[error("{what}: {source}")]
    Process {
        /// Which process and what for.
        what: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A cluster did not become ready in time.
    #[error("{0}")]
    NotReady(String),
    /// A file could not be written or read.
    #[error("cannot write or read {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The plot could not be drawn.
    #[error("cannot draw the plot {path}: {message}")]
    Plot {
        /// The SVG file.
        path: PathBuf,
        /// What plotters said.
        message: String,
    },
    /// A required program is missing and could not be installed.
    #[error("{0}")]
    Missing(String),
}

/// Results of this crate.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;

impl BenchError {
    pub(crate) fn client(what: impl Into<String>, source: etcd_client::Error) -> Self {
        BenchError::Client {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn process(what: impl Into<String>, source: std::io::Error) -> Self {
        BenchError::Process {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BenchError::File {
            path: path.into(),
            source,
        }
    }
}
