//! Multi-Paxos for state machine replication, with proposer, acceptor and learner collapsed into
//! one [`Replica`].
//!
//! - A candidate runs phase 1 **once** for every slot from its first unchosen slot on
//!   ([`leader::Scout`]); after winning it re-proposes, per slot, the highest-ballot value among
//!   the promises and fills holes with no-ops; then, while it stays leader, each new slot needs
//!   phase 2 only ([`leader::Active`]).
//! - Leadership: heartbeats, and randomized election timeouts counted in ticks so that two
//!   candidates rarely collide twice.
//! - Batching (many client commands per slot) and pipelining (a window of slots in flight).
//! - The commit point rides on accepts and heartbeats; lagging or restarted replicas catch up by
//!   asking for chosen values; an acceptor that knows a slot is chosen answers with its value.
//! - Linearizable reads without a log slot ([`reads`]): the leader confirms with a quorum that it
//!   still leads, waits until its log is applied up to where it ended when the read arrived, and
//!   answers from its state machine.
//! - Leadership transfer ([`Replica::transfer_leadership`]): the leader lets its slots in
//!   flight be chosen, holds new commands, and asks its successor to stand at once.
//! - Membership is replicated state ([`membership`]): a change chosen in slot `i` governs the
//!   slots from `i + α` on, so every slot has one configuration, and the replica counts each
//!   slot's votes with it.
//! - Cheap Paxos ([`auxiliary`]): auxiliary acceptors vote only while a main member does not
//!   answer; the leader then takes the silent main out of the quorum through the log, and puts
//!   it back once it has caught up.
//! - Exactly-once: a command carries `(client, seq)`; a retry after a leader change is applied
//!   once and answered from the session table.

pub mod acceptor;
pub mod auxiliary;
mod config;
pub mod leader;
pub mod learner;
mod log;
pub mod membership;
mod messages;
pub mod notices;
pub mod reads;
mod replica;
mod snapshot;
mod state_machine;

pub use config::{Config, ConfigError};
pub use log::{DurableState, Entry};
pub use membership::{
    ChangeId, ChangeOutcome, ConfigChange, Configuration, MemberInfo, MemberOp, Membership,
    MembershipError, RejectReason, Role,
};
pub use messages::{
    ClientId, Command, Message, MultiEffects, Output, Persist, PromiseEntry, Slot, Snapshot,
    SnapshotHead, SnapshotV1, Timer, Value, ValueDigest,
};
pub use reads::ReadId;
pub use replica::{Replica, RoleKind, TransferError};
pub use snapshot::{Compacted, PendingSnapshot, StateWritten};
pub use state_machine::{EncodeState, StateEncoder, StateMachine};
