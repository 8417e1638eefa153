//! Synod's replicated state machine: an MVCC key-value store with etcd v3's semantics
//! (a global revision; per key a create revision, mod revision and version; ranges, prefixes,
//! transactions and compaction). No protocol code here: Multi-Paxos orders the commands, and
//! [`Store`] applies them deterministically.

mod error;
mod machine;
mod range;
mod store;
mod txn;
mod types;

pub use error::KvError;
pub use machine::{KvCommand, KvOutput, KvResult};
pub use range::KeyRange;
pub use store::Store;
pub use types::*;
