//! Synod's replicated state machine: an MVCC key-value store with etcd v3's semantics
//! (a global revision; per key a create revision, mod revision and version; ranges, prefixes,
//! transactions and compaction), leases as replicated state, and the change feed that watchers
//! replay. No protocol code here: Multi-Paxos orders the commands, and
//! [`Store`] applies them deterministically.

mod auth;
mod detached;
mod error;
mod events;
mod history;
mod keys_encode;
mod layers;
mod lease;
mod machine;
mod maintenance;
mod nesting;
mod range;
mod restore_check;
mod store;
mod txn;
mod types;

pub use auth::{AuthCommand, AuthState, PermKind, Permission, User, ROOT_ROLE, ROOT_USER};
pub use error::KvError;
pub use events::{Event, EventKind, EventSpan};
pub use lease::{Expiry, Lease, MAX_LEASE_TTL};
pub use machine::{KvCommand, KvOutput, KvResult};
pub use maintenance::{Alarm, AlarmCommand, AlarmKind};
pub use range::KeyRange;
pub use store::Store;
pub use types::*;
