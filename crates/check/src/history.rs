//! Histories: what clients invoked, when, and what they were told.

use serde::{Deserialize, Serialize};

/// A key-value operation and the result the client saw.
///
/// The result lives inside the operation (a read's value, a compare-and-set's success) so that
/// one type describes a line of a history; for an operation whose [`Outcome`] is not
/// [`Outcome::Ok`] the result fields are ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Op {
    /// A read and the value it returned.
    Get {
        /// What was read (`None`: the key was absent).
        value: Option<String>,
    },
    /// A write.
    Put {
        /// What was written.
        value: String,
    },
    /// A deletion.
    Delete,
    /// A compare-and-set: writes `value` iff the key currently holds `expected`.
    Cas {
        /// The value required (`None`: the key must be absent).
        expected: Option<String>,
        /// The value written on success.
        value: String,
        /// Whether it took effect (what the client was told).
        ok: bool,
    },
}

impl Op {
    /// The value this operation writes when it takes effect (`Some(None)` for a delete), or
    /// `None` for a read.
    pub fn written(&self) -> Option<Option<&str>> {
        match self {
            Op::Get { .. } => None,
            Op::Put { value } | Op::Cas { value, .. } => Some(Some(value)),
            Op::Delete => Some(None),
        }
    }
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Completed; the result in the op is what the client saw.
    Ok,
    /// Certainly did not take effect (e.g. refused before anything happened): not checked.
    #[serde(alias = "failed")]
    Fail,
    /// May or may not have taken effect, at any time after its call (timed out, connection
    /// lost): its completion time is taken as +infinity.
    #[serde(alias = "info", alias = "indeterminate")]
    Unknown,
}

/// One operation of a history.
///
/// Serializes to (and deserializes from, with validation) one line of the JSON-lines format
/// described in the [crate docs](crate#json-lines-format).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "crate::jsonl::Line", into = "crate::jsonl::Line")]
pub struct Entry {
    /// The client that invoked it (shown in reports; not used by the search).
    pub client: u64,
    /// The key.
    pub key: String,
    /// The operation and its result.
    pub op: Op,
    /// Invocation time, in any one unit for the whole history.
    pub call: u64,
    /// Completion time; `None` when the client never heard back.
    pub ret: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
}

impl Entry {
    /// When the operation certainly ended: its `ret` for a completed operation, `None`
    /// (+infinity) for one whose outcome is unknown or whose `ret` is missing.
    pub fn end(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Ok => self.ret,
            _ => None,
        }
    }

    /// Whether this entry constrains the check at all: failed operations never took effect,
    /// and a read with an unknown outcome changed nothing and told nobody anything.
    pub fn matters(&self) -> bool {
        !matches!(
            (self.outcome, &self.op),
            (Outcome::Fail, _) | (Outcome::Unknown, Op::Get { .. })
        )
    }

    /// Why this entry is malformed, if it is: a completed operation must have a `ret` no
    /// earlier than its `call`.
    pub fn problem(&self) -> Option<String> {
        if self.outcome != Outcome::Ok {
            return None;
        }
        match self.ret {
            None => Some("a completed (\"ok\") operation needs a ret time".into()),
            Some(r) if r < self.call => Some(format!("ret {r} is before call {}", self.call)),
            Some(_) => None,
        }
    }
}
