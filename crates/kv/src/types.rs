//! Requests and responses, shaped like etcd v3's `etcdserverpb` messages so the gRPC layer maps
//! them field by field. They are also the commands carried in the replicated log. Byte strings
//! are serialized as such (`serde_bytes`), in one copy rather than element by element.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A key's current (or historical) value and its revisions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Revision of the write that created the key (since its last deletion).
    pub create_revision: i64,
    /// Revision of the last write to the key.
    pub mod_revision: i64,
    /// Writes since creation: 1 after the first put.
    pub version: i64,
    /// The value. Shared with the put that wrote it: the log keeps that put until the next
    /// snapshot, and a copy of each value there cost a node up to a store's worth of values.
    pub value: Bytes,
    /// The lease the key is attached to (0: none).
    pub lease: i64,
}

/// Order of range results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortOrder {
    /// By key, ascending (etcd's default).
    #[default]
    None,
    /// Ascending by the sort target.
    Ascend,
    /// Descending by the sort target.
    Descend,
}

/// What range results are sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortTarget {
    /// The key.
    #[default]
    Key,
    /// The version.
    Version,
    /// The create revision.
    Create,
    /// The mod revision.
    Mod,
    /// The value.
    Value,
}

/// Read a key, a range, or a prefix, at the latest or an older revision.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRequest {
    /// First key (or the only one).
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// See [`crate::KeyRange::new`].
    #[serde(with = "serde_bytes")]
    pub range_end: Vec<u8>,
    /// At most this many keys (0: no limit).
    pub limit: i64,
    /// Read as of this revision (0: latest).
    pub revision: i64,
    /// Result order.
    pub sort_order: SortOrder,
    /// Sort key.
    pub sort_target: SortTarget,
    /// Served locally without confirming leadership (a stale read is allowed).
    pub serializable: bool,
    /// Return keys without values.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
    /// Filters on revisions (0: no filter).
    pub min_mod_revision: i64,
    /// Filter.
    pub max_mod_revision: i64,
    /// Filter.
    pub min_create_revision: i64,
    /// Filter.
    pub max_create_revision: i64,
}

/// The keys read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeResponse {
    /// The keys (up to the limit).
    pub kvs: Vec<KeyValue>,
    /// More keys matched than the limit allowed.
    pub more: bool,
    /// How many keys matched in all.
    pub count: i64,
}

/// Write one key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutRequest {
    /// The key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// The value (one allocation of its own, never a slice of a larger buffer: the store
    /// keeps it).
    pub value: Bytes,
    /// Attach to this lease (0: none).
    pub lease: i64,
    /// Return the previous key-value.
    pub prev_kv: bool,
    /// Keep the current value (the key must exist).
    pub ignore_value: bool,
    /// Keep the current lease (the key must exist).
    pub ignore_lease: bool,
}

/// What a put replaced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutResponse {
    /// The previous key-value, if asked for and present.
    pub prev_kv: Option<KeyValue>,
}

/// Delete a key or a range.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeRequest {
    /// First key (or the only one).
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// See [`crate::KeyRange::new`].
    #[serde(with = "serde_bytes")]
    pub range_end: Vec<u8>,
    /// Return what was deleted.
    pub prev_kv: bool,
}

/// What a delete removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeResponse {
    /// Keys deleted.
    pub deleted: i64,
    /// Their last values, if asked for.
    pub prev_kvs: Vec<KeyValue>,
}

/// How a compare relates the key's field to the given value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareResult {
    /// Equal.
    Equal,
    /// Field greater than the value.
    Greater,
    /// Field less than the value.
    Less,
    /// Not equal.
    NotEqual,
}

/// The field a compare reads, and the value to compare it with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    /// The version (0 if the key does not exist).
    Version(i64),
    /// The create revision (0 if absent).
    Create(i64),
    /// The mod revision (0 if absent).
    Mod(i64),
    /// The value (a compare on an absent key's value is false).
    Value(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The lease (0 if none or absent).
    Lease(i64),
}

/// One condition of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    /// The relation.
    pub result: CompareResult,
    /// Field and value.
    pub target: CompareTarget,
    /// The key (or the first key of a range: every key in it must satisfy the compare).
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// See [`crate::KeyRange::new`].
    #[serde(with = "serde_bytes")]
    pub range_end: Vec<u8>,
}

/// One operation in a transaction branch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestOp {
    /// A read.
    Range(RangeRequest),
    /// A write.
    Put(PutRequest),
    /// A delete.
    DeleteRange(DeleteRangeRequest),
    /// A nested transaction.
    Txn(#[serde(deserialize_with = "crate::nesting::nested")] TxnRequest),
}

/// The result of one operation in a transaction branch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseOp {
    /// A read's result.
    Range(RangeResponse),
    /// A write's result.
    Put(PutResponse),
    /// A delete's result.
    DeleteRange(DeleteRangeResponse),
    /// A nested transaction's result (kept in the session table that snapshots carry).
    Txn(#[serde(deserialize_with = "crate::nesting::nested")] TxnResponse),
}

/// If every compare holds, run `success`, else `failure`; atomically, at one revision.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRequest {
    /// Conditions.
    pub compare: Vec<Compare>,
    /// Run when all conditions hold.
    pub success: Vec<RequestOp>,
    /// Run otherwise.
    pub failure: Vec<RequestOp>,
}

/// Which branch ran, and its results.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnResponse {
    /// The compares held.
    pub succeeded: bool,
    /// One result per operation of the branch that ran.
    pub responses: Vec<ResponseOp>,
}

/// Drop history below `revision`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionRequest {
    /// Keep only what is visible at or after this revision.
    pub revision: i64,
}
