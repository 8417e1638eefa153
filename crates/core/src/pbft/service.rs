//! The state machine a PBFT group replicates.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

use crate::ballot::NodeId;

/// A deterministic state machine: every correct replica that executes the same operations in
/// the same order holds the same state and returns the same results, which is what lets a
/// client trust `f + 1` matching replies.
pub trait Service: Clone {
    /// An operation.
    type Op: Clone + Debug + Eq + Serialize + DeserializeOwned;
    /// What executing one returns.
    type Result: Clone + Debug + Eq + Serialize + DeserializeOwned;
    /// Executes `op` for `client`.
    fn execute(&mut self, client: NodeId, op: &Self::Op) -> Self::Result;
    /// The whole state, for checkpoints and state transfer.
    fn encode(&self) -> Vec<u8>;
    /// A state from [`Service::encode`]'s bytes; `None` if they are not one (a peer's bytes are
    /// checked against a quorum's digest first, but are still only data).
    fn decode(bytes: &[u8]) -> Option<Self>;
}

/// The simplest service: a log of operations, each executed to its position in it. The
/// simulator and the flow charts run it, since a wrong order shows in every result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpLog<V> {
    /// The operations, in execution order.
    pub ops: Vec<V>,
}

impl<V: Clone + Debug + Eq + Serialize + DeserializeOwned> Service for OpLog<V> {
    type Op = V;
    type Result = u64;

    fn execute(&mut self, _client: NodeId, op: &V) -> u64 {
        self.ops.push(op.clone());
        self.ops.len() as u64 - 1
    }

    fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("encoding into memory does not fail")
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes(bytes).ok()
    }
}
