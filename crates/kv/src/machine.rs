//! The store as the state machine of a Multi-Paxos log.

use crate::error::KvError;
use crate::store::Store;
use crate::types::*;
use serde::{Deserialize, Serialize};
use synod_core::multi::StateMachine;

/// A command in the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvCommand {
    /// A linearizable read, ordered with the writes.
    Range(RangeRequest),
    /// A put.
    Put(PutRequest),
    /// A delete.
    DeleteRange(DeleteRangeRequest),
    /// A transaction.
    Txn(TxnRequest),
    /// A compaction.
    Compact(CompactionRequest),
}

/// The result of a command, with the store's revision after it (etcd's response header).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvOutput {
    /// The revision after the command.
    pub revision: i64,
    /// What the command returned.
    pub result: Result<KvResult, KvError>,
}

/// A successful command's response body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvResult {
    /// Range.
    Range(RangeResponse),
    /// Put.
    Put(PutResponse),
    /// DeleteRange.
    DeleteRange(DeleteRangeResponse),
    /// Txn.
    Txn(TxnResponse),
    /// Compact.
    Compacted,
}

impl StateMachine for Store {
    type Command = KvCommand;
    type Output = KvOutput;

    fn apply(&mut self, cmd: &KvCommand) -> KvOutput {
        let result = match cmd {
            KvCommand::Range(r) => self.range(r).map(KvResult::Range),
            KvCommand::Put(p) => self.put(p).map(KvResult::Put),
            KvCommand::DeleteRange(d) => self.delete_range(d).map(KvResult::DeleteRange),
            KvCommand::Txn(t) => self.txn(t).map(KvResult::Txn),
            KvCommand::Compact(c) => self.compact(c).map(|()| KvResult::Compacted),
        };
        KvOutput {
            revision: self.revision(),
            result,
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("the store serializes")
    }

    fn restore(bytes: &[u8]) -> Result<Self, String> {
        postcard::from_bytes(bytes).map_err(|e| format!("store snapshot: {e}"))
    }
}
