//! Verdicts and the readable account of an anomaly.

use crate::history::{Entry, Op, Outcome};
use std::fmt;

/// Why a history is not linearizable: the key, and the operations around the point where every
/// attempt to order them failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    /// The key whose history has no linearization.
    pub key: String,
    /// The operation whose result could not be explained at the deepest point of the search.
    pub stuck: Entry,
    /// How many of the key's operations could be put in order before that.
    pub prefix: usize,
    /// Operations of the key overlapping the stuck one in time, and the last few that finished
    /// before it began (the smallest useful window).
    pub window: Vec<Entry>,
}

/// What the checker concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's history has a linearization.
    Linearizable {
        /// Operations checked.
        ops: usize,
        /// Keys checked.
        keys: usize,
    },
    /// Some key's history has none.
    NotLinearizable(Box<Anomaly>),
    /// The budget ran out before a verdict on this key.
    Unknown {
        /// The key.
        key: String,
    },
}

impl Verdict {
    /// True for [`Verdict::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable { .. })
    }
}

fn describe(op: &Op) -> String {
    let v = |x: &Option<String>| x.clone().unwrap_or_else(|| "<absent>".into());
    match op {
        Op::Get { value } => format!("get -> {}", v(value)),
        Op::Put { value } => format!("put {value}"),
        Op::Delete => "delete".into(),
        Op::Cas {
            expected,
            value,
            ok,
        } => format!("cas {} -> {value}: {ok}", v(expected)),
    }
}

fn row(e: &Entry) -> String {
    let ret = match (e.outcome, e.ret) {
        (Outcome::Ok, Some(r)) => r.to_string(),
        _ => "?".into(),
    };
    let op = match e.outcome {
        Outcome::Unknown => format!("{} (outcome unknown)", describe(&e.op)),
        _ => describe(&e.op),
    };
    format!("  {:>8}  {:>12}  {:>12}  {}", e.client, e.call, ret, op)
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable { ops, keys } => {
                write!(f, "linearizable: {ops} operations on {keys} keys")
            }
            Verdict::Unknown { key } => write!(
                f,
                "unknown: the search budget ran out on key {key:?} (raise the budget or shorten the history)"
            ),
            Verdict::NotLinearizable(a) => {
                writeln!(
                    f,
                    "NOT linearizable: key {:?}; {} of its operations can be ordered, but then no order explains:",
                    a.key, a.prefix
                )?;
                writeln!(f, "{}", row(&a.stuck))?;
                writeln!(f, "operations just before it and overlapping it in time:")?;
                writeln!(f, "  {:>8}  {:>12}  {:>12}  operation", "client", "call", "ret")?;
                for e in &a.window {
                    writeln!(f, "{}", row(e))?;
                }
                Ok(())
            }
        }
    }
}
