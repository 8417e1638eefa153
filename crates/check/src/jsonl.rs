//! The JSON-lines form of a history (described in the [crate docs](crate#json-lines-format)).
//!
//! One flat wire struct carries every kind of operation, so that which fields an operation
//! needs can be checked with an error that says which field is missing, instead of serde's
//! generic "data did not match any variant".

use crate::history::{Entry, Op, Outcome};
use serde::{Deserialize, Deserializer, Serialize};
use std::io::{BufRead, Write};
use thiserror::Error;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Get,
    Put,
    #[serde(alias = "del")]
    Delete,
    Cas,
}

/// One line as it is on disk.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Line {
    client: u64,
    key: String,
    op: Kind,
    // Outer `Option`: whether the field is there at all; inner: JSON `null`. A read that
    // forgot its value must not silently become a read of "absent".
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    expected: Option<Option<String>>,
    #[serde(
        default,
        alias = "new",
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    value: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ok: Option<bool>,
    call: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ret: Option<u64>,
    outcome: Outcome,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl TryFrom<Line> for Entry {
    type Error = String;

    fn try_from(l: Line) -> Result<Entry, String> {
        let done = l.outcome == Outcome::Ok;
        let need = |field: Option<Option<String>>, name: &str| {
            field.ok_or_else(|| format!("a {:?} needs \"{name}\"", l.op).to_lowercase())
        };
        let some = |v: Option<String>, name: &str| {
            v.ok_or_else(|| format!("\"{name}\" of a {:?} cannot be null", l.op).to_lowercase())
        };
        let op = match l.op {
            // The value a read saw only matters if it completed.
            Kind::Get if done => Op::Get {
                value: need(l.value, "value")?,
            },
            Kind::Get => Op::Get {
                value: l.value.flatten(),
            },
            Kind::Put => Op::Put {
                value: some(need(l.value, "value")?, "value")?,
            },
            Kind::Delete => Op::Delete,
            Kind::Cas => Op::Cas {
                expected: need(l.expected, "expected")?,
                value: some(need(l.value, "value")?, "value")?,
                ok: match l.ok {
                    Some(ok) => ok,
                    None if done => return Err("a completed cas needs \"ok\"".into()),
                    None => false,
                },
            },
        };
        let e = Entry {
            client: l.client,
            key: l.key,
            op,
            call: l.call,
            ret: l.ret,
            outcome: l.outcome,
        };
        match e.problem() {
            Some(p) => Err(p),
            None => Ok(e),
        }
    }
}

impl From<Entry> for Line {
    fn from(e: Entry) -> Line {
        let (op, expected, value, ok) = match e.op {
            Op::Get { value } => (Kind::Get, None, Some(value), None),
            Op::Put { value } => (Kind::Put, None, Some(Some(value)), None),
            Op::Delete => (Kind::Delete, None, None, None),
            Op::Cas {
                expected,
                value,
                ok,
            } => (Kind::Cas, Some(expected), Some(Some(value)), Some(ok)),
        };
        Line {
            client: e.client,
            key: e.key,
            op,
            expected,
            value,
            ok,
            call: e.call,
            ret: e.ret,
            outcome: e.outcome,
        }
    }
}

/// Reads a JSON-lines history; blank lines are skipped, unknown fields ignored (a recorder
/// may annotate lines, e.g. with the node it talked to or the error it got).
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
        out.push(e);
    }
    Ok(out)
}

/// Writes a history as JSON lines, in the form [`read_history`] reads.
pub fn write_history(mut out: impl Write, history: &[Entry]) -> std::io::Result<()> {
    for e in history {
        serde_json::to_writer(&mut out, e)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
