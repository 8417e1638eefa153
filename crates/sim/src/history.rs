//! Client histories recorded by the simulator, and their linearizability check.

use crate::kv::{KvOp, KvResult};

/// A completed (or never completed) key-value operation, with what it returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HistoryOp {
    /// A read and the value it saw.
    Get {
        /// The key.
        key: String,
        /// What was read.
        value: Option<String>,
    },
    /// A write.
    Put {
        /// The key.
        key: String,
        /// What was written.
        value: String,
    },
    /// A compare-and-set and whether it took effect.
    Cas {
        /// The key.
        key: String,
        /// Value required.
        expected: Option<String>,
        /// Value written on success.
        new: String,
        /// Whether it succeeded.
        ok: bool,
    },
}

impl HistoryOp {
    /// Builds the record of `op` that returned `result`.
    pub fn from_kv(op: &KvOp, result: &KvResult) -> Self {
        match (op, result) {
            (KvOp::Get(k), KvResult::Value(v)) => HistoryOp::Get {
                key: k.to_string(),
                value: v.as_ref().map(|v| v.to_string()),
            },
            (KvOp::Put(k, v), _) => HistoryOp::Put {
                key: k.to_string(),
                value: v.to_string(),
            },
            (KvOp::Cas { key, expected, new }, r) => HistoryOp::Cas {
                key: key.to_string(),
                expected: expected.as_ref().map(|v| v.to_string()),
                new: new.to_string(),
                ok: *r == KvResult::Swapped(true),
            },
            (KvOp::Get(k), other) => panic!("a get of {k} returned {other:?}"),
        }
    }
}

/// One client operation: invoked at `call`, answered at `ret` (`None`: never answered).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRecord {
    /// The client.
    pub client: u64,
    /// The operation and its result.
    pub op: HistoryOp,
    /// Invocation time.
    pub call: u64,
    /// Completion time.
    pub ret: Option<u64>,
}

impl OpRecord {
    /// The record in the checker's form (the sim's keys and values are plain strings).
    pub fn to_entry(&self) -> synod_check::Entry {
        use synod_check::{Entry, Op, Outcome};
        let (key, op) = match &self.op {
            HistoryOp::Get { key, value } => (
                key,
                Op::Get {
                    value: value.clone(),
                },
            ),
            HistoryOp::Put { key, value } => (
                key,
                Op::Put {
                    value: value.clone(),
                },
            ),
            HistoryOp::Cas {
                key,
                expected,
                new,
                ok,
            } => (
                key,
                Op::Cas {
                    expected: expected.clone(),
                    value: new.clone(),
                    ok: *ok,
                },
            ),
        };
        Entry {
            client: self.client,
            key: key.clone(),
            op,
            call: self.call,
            ret: self.ret,
            outcome: if self.ret.is_some() {
                Outcome::Ok
            } else {
                Outcome::Unknown
            },
        }
    }
}

/// Checks a history for linearizability against a single-copy key-value store.
/// Returns a readable account of the first anomaly.
pub fn check_history(history: &[OpRecord]) -> Result<(), String> {
    let entries: Vec<synod_check::Entry> = history.iter().map(OpRecord::to_entry).collect();
    match synod_check::check(&entries, synod_check::DEFAULT_BUDGET) {
        v if v.is_linearizable() => Ok(()),
        v => Err(v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(client: u64, op: HistoryOp, call: u64, ret: u64) -> OpRecord {
        OpRecord {
            client,
            op,
            call,
            ret: Some(ret),
        }
    }

    #[test]
    fn the_simulators_histories_go_through_the_checker() {
        let put = HistoryOp::Put {
            key: "k".into(),
            value: "a".into(),
        };
        let stale = HistoryOp::Get {
            key: "k".into(),
            value: None,
        };
        assert!(check_history(&[rec(1, put.clone(), 0, 5)]).is_ok());
        let err = check_history(&[rec(1, put, 0, 5), rec(2, stale, 10, 12)]).unwrap_err();
        assert!(err.contains("NOT linearizable"), "{err}");
    }
}
