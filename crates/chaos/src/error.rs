//! What can go wrong while setting up or running a chaos run (not what the run finds: anomalies
//! are results, in [`crate::Report`]).

use std::path::PathBuf;
use thiserror::Error;

/// A setup or runtime failure of the harness itself.
#[derive(Debug, Error)]
pub enum ChaosError {
    /// A system command (`ip`, `iptables`) could not be run or failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status and standard error, or why it could not start.
        detail: String,
    },
    /// No free slot for a bridge and namespaces (64 runs at once, or leftovers of killed runs).
    #[error("no free network slot: bridges synch0..synch63 all exist (leftovers of killed runs? `ip link del synchN`)")]
    NoFreeSlot,
    /// A server process could not be started.
    #[error("cannot start node {node} ({binary}): {source}")]
    Spawn {
        /// The node.
        node: u64,
        /// The synod binary.
        binary: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A node never opened its client port, or the cluster never elected a leader.
    #[error("{0}")]
    NotReady(String),
    /// Reading or writing the run's files.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration asks for something this harness cannot do.
    #[error("{0}")]
    Config(String),
    /// An operating-system call (signals) failed.
    #[error("{what}: {source}")]
    Os {
        /// What was attempted.
        what: String,
        /// Why it failed.
        source: nix::Error,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = ChaosError> = std::result::Result<T, E>;
