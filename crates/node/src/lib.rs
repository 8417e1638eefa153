//! The sans-IO node layer: everything a Synod server node decides around its Multi-Paxos replica,
//! as a pure state machine that both the tokio server and the simulator drive.
//!
//! [`NodeCore`] takes inputs (a client's proposal or read, a peer's message, a tick, a batch of
//! log records made durable, a snapshot encoded, a checkpoint saved) and queues [`Action`]s for
//! its driver (send a message, write and sync records, answer a client, encode a snapshot, save
//! a checkpoint). It owns the client lanes and sessions, the read ids, the durability gate with
//! its lazy commit record, the checkpoint and compaction schedule, the lease clock, and the
//! resubmit and give-up timers. It has no sockets, files, clocks, threads or randomness of its
//! own: a driver that feeds it the same inputs gets the same actions.
//!
//! The driver's contract, per loop turn:
//! 1. feed inputs (any number);
//! 2. call [`NodeCore::flush`] once;
//! 3. carry out [`NodeCore::take_actions`] in order. A [`Action::Write`] is durable only once
//!    the driver says so with [`NodeCore::synced`]; a crash may keep any prefix of the records
//!    not yet reported synced.

mod aux_node;
mod compactor;
mod gate;
mod lanes;
pub mod lease_clock;
mod node;
mod reads;
pub mod record;

pub use aux_node::{AuxNode, AuxRecovered, AUX_CHECKPOINT_RECORDS};
pub use compactor::{AutoCompaction, Compactor};
pub use lanes::LANES;
pub use node::{Action, NodeConfig, NodeCore, NodeCounters, UNSYNCED_TAIL_TICKS};
pub use record::{Checkpoint, LogRecord, Recovered};

/// The driver's name for a client request awaiting an answer.
pub type Ticket = u64;

/// Why a client request did not complete.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ProposeError {
    /// No leader could be reached in time.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// The node is shutting down.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// This node does not lead (for reads that only a leader serves).
    #[error("etcdserver: not leader")]
    NotLeader,
    /// A membership change took this node out of the cluster: ask another member.
    #[error("etcdserver: the member has been permanently removed from the cluster")]
    Removed,
}

/// A read's store revision and result, or why it was not served.
pub type ReadResult =
    Result<(i64, Result<synod_kv::RangeResponse, synod_kv::KvError>), ProposeError>;
