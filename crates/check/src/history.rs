//! Histories: what clients invoked, when, and what they were told.
//!
//! # JSON-lines format
//!
//! One operation per line:
//!
//! ```text
//! {"client":1,"key":"k","op":"put","value":"v1","call":100,"ret":180,"outcome":"ok"}
//! {"client":2,"key":"k","op":"get","value":"v1","call":150,"ret":190,"outcome":"ok"}
//! {"client":2,"key":"k","op":"get","value":null,"call":200,"ret":230,"outcome":"ok"}
//! {"client":3,"key":"k","op":"cas","expected":"v1","value":"v2","ok":true,"call":210,"ret":260,"outcome":"ok"}
//! {"client":1,"key":"k","op":"delete","call":300,"outcome":"unknown"}
//! ```
//!
//! - `op`: `get` (`value` is what was read, `null` for absent), `put` (`value` written),
//!   `delete`, or `cas` (`expected`, `null` for absent; `value` written on success; `ok` whether
//!   it took effect).
//! - `call`, `ret`: invocation and completion times in any one unit (nanoseconds, ticks).
//! - `outcome`: `ok`; `fail` (it certainly did not take effect; dropped from the check); or
//!   `unknown` (timed out: it may or may not have taken effect, at any time after `call`;
//!   `ret` is ignored).

use serde::{Deserialize, Serialize};
use std::io::BufRead;
use thiserror::Error;

/// A key-value operation and the result the client saw.
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
    /// A compare-and-set.
    Cas {
        /// The value required (`None`: absent).
        expected: Option<String>,
        /// The value written on success.
        value: String,
        /// Whether it took effect.
        #[serde(default)]
        ok: bool,
    },
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Completed; the result in the op is what the client saw.
    Ok,
    /// Certainly did not take effect.
    Fail,
    /// May or may not have taken effect.
    Unknown,
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The client (for display).
    pub client: u64,
    /// The key.
    pub key: String,
    /// The operation and its result.
    #[serde(flatten)]
    pub op: Op,
    /// Invocation time.
    pub call: u64,
    /// Completion time (`None` for an unknown outcome).
    #[serde(default)]
    pub ret: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
}

/// Why a history file could not be read.
#[derive(Debug, Error)]
pub enum HistoryError {
    /// Reading failed.
    #[error("cannot read history: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not a valid operation.
    #[error("line {line}: {reason}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Reads a JSON-lines history; blank lines are skipped.
pub fn read_history(input: impl BufRead) -> Result<Vec<Entry>, HistoryError> {
    let mut out = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let e: Entry = serde_json::from_str(&line).map_err(|err| HistoryError::Parse {
            line: i + 1,
            reason: err.to_string(),
        })?;
        if e.outcome == Outcome::Ok {
            match e.ret {
                Some(r) if r < e.call => {
                    return Err(HistoryError::Parse {
                        line: i + 1,
                        reason: format!("ret {r} is before call {}", e.call),
                    })
                }
                None => {
                    return Err(HistoryError::Parse {
                        line: i + 1,
                        reason: "an ok operation needs a ret time".into(),
                    })
                }
                _ => {}
            }
        }
        out.push(e);
    }
    Ok(out)
}
