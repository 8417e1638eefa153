//! A Byzantine fault-tolerant key-value cluster: `3f + 1` PBFT replicas over TCP, each
//! message signed with Ed25519, and a client that takes a result only when `f + 1` replicas
//! agree on it.
//!
//! The protocol is [`synod_core::pbft`]; this crate gives it a disk ([`disk`]), a network
//! ([`node`], [`wire`]), the replicated map ([`kv`]), the client ([`client`]) and, for tests,
//! replicas that lie ([`byzantine`]).

#![warn(missing_docs)]

pub mod byzantine;
pub mod client;
mod conn;
pub mod disk;
pub mod keys;
pub mod kv;
pub mod members;
pub mod node;
pub mod wire;

pub use byzantine::Byzantine;
pub use client::{BftClient, ClientError, ClientOptions};
pub use kv::{KvOp, KvResult, KvStore};
pub use members::{parse_members, Members};
pub use node::{start, ReplicaOptions, RunningReplica};
