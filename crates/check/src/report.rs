//! Verdicts, and the readable account of an anomaly.

use crate::history::{Entry, Op, Outcome};
use std::fmt;

/// What the checker concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's history has a linearization.
    Linearizable {
        /// Operations that took part in the check (failed ones and unknown reads do not).
        ops: usize,
        /// Keys checked.
        keys: usize,
    },
    /// Some key's history has none (the first such key in key order).
    NotLinearizable(Box<Anomaly>),
    /// The search gave up on a key before reaching a verdict.
    Unknown {
        /// The key.
        key: String,
        /// Which limit stopped it.
        reason: Inconclusive,
    },
}

impl Verdict {
    /// True for [`Verdict::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable { .. })
    }
}

/// Which limit of [`crate::Options`] stopped a search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inconclusive {
    /// `max_steps_per_key`.
    Steps,
    /// `time_limit`.
    Time,
    /// `max_memory`.
    Memory,
}

/// Why a key's history is not linearizable: how far an order could be found, and the
/// operations around the point where every attempt to extend it failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    /// The key whose history has no linearization.
    pub key: String,
    /// How many of the key's operations took part in the check.
    pub ops: usize,
    /// `None` if the account starts at the beginning of the history, with the key absent.
    /// `Some(t)` if it only looks at the operations from time `t` on, whatever the key held
    /// then: a short window that no order explains, which proves as much and reads better
    /// than an account of everything before it.
    pub since: Option<u64>,
    /// How many operations could be put in a valid order (the longest one the search found).
    pub prefix: usize,
    /// The last operations of that order (at most [`Anomaly::TAIL`]), oldest first, each with
    /// the value the key held after it.
    pub tail: Vec<Linearized>,
    /// What the key held at the end of that order.
    pub value: Held,
    /// The operation that no order could explain from there: it had to take effect by
    /// `deadline`, and neither it nor anything that could go before it fits.
    pub stuck: Entry,
    /// When `stuck` must have taken effect: its return, or for an operation whose outcome is
    /// unknown, the return of the first operation that saw what it wrote.
    pub deadline: u64,
    /// The operations outside the order that could have gone next (invoked before the first
    /// return still ahead), in call order: the candidates the search tried. Only those invoked
    /// since the first operation of `tail`; the others are counted in `pending_earlier`.
    pub pending: Vec<Entry>,
    /// How many more candidates were invoked earlier: operations with an unknown outcome,
    /// which may take effect at any time.
    pub pending_earlier: usize,
}

/// One operation of a partial linearization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Linearized {
    /// Its position in the order (0-based).
    pub position: usize,
    /// The operation.
    pub entry: Entry,
    /// What the key held after it.
    pub after: Held,
}

/// What a key held at some point of an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Held {
    /// Nothing: the key did not exist.
    Absent,
    /// This value.
    Value(String),
    /// Not known: the order starts in the middle of the history (see [`Anomaly::since`])
    /// and nothing has told the value yet.
    Unknown,
}

impl Held {
    /// What the key holds after `op` (`known`: whether its recorded result counts).
    pub(crate) fn after(&self, op: &Op, known: bool) -> Held {
        match (op, self) {
            (Op::Put { value }, _) => Held::Value(value.clone()),
            (Op::Delete, _) => Held::Absent,
            (Op::Get { value }, Held::Unknown) if known => Held::from(value.clone()),
            (
                Op::Cas {
                    value, ok: true, ..
                },
                Held::Unknown,
            ) if known => Held::Value(value.clone()),
            (
                Op::Cas {
                    expected, value, ..
                },
                held,
            ) if *held != Held::Unknown && Held::from(expected.clone()) == *held => {
                Held::Value(value.clone())
            }
            (_, held) => held.clone(),
        }
    }
}

impl From<Option<String>> for Held {
    fn from(v: Option<String>) -> Held {
        v.map_or(Held::Absent, Held::Value)
    }
}

impl fmt::Display for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Held::Absent => f.write_str("<absent>"),
            Held::Value(v) => f.write_str(&show(Some(v))),
            Held::Unknown => f.write_str("?"),
        }
    }
}

impl Anomaly {
    /// How many operations of the order are kept for the report.
    pub const TAIL: usize = 8;

    /// Pending operations shown in the text report (all are kept in [`Anomaly::pending`]).
    const SHOWN_PENDING: usize = 20;
}

/// A value as shown to a person: long values are cut, absence is spelled out.
pub(crate) fn show(v: Option<&str>) -> String {
    const MAX: usize = 32;
    match v {
        None => "<absent>".into(),
        Some(v) if v.chars().count() > MAX => {
            format!("{}…", v.chars().take(MAX - 1).collect::<String>())
        }
        Some(v) => v.into(),
    }
}

/// The operation and what the client was told, e.g. `get = a`, `cas a -> b: failed`.
pub(crate) fn describe(e: &Entry) -> String {
    let known = e.outcome == Outcome::Ok;
    let op = match &e.op {
        Op::Get { value } if known => format!("get = {}", show(value.as_deref())),
        Op::Get { .. } => "get".into(),
        Op::Put { value } => format!("put {}", show(Some(value))),
        Op::Delete => "delete".into(),
        Op::Cas {
            expected,
            value,
            ok,
        } => {
            let what = format!("cas {} -> {}", show(expected.as_deref()), show(Some(value)));
            match (known, ok) {
                (true, true) => format!("{what}: ok"),
                (true, false) => format!("{what}: failed"),
                (false, _) => what,
            }
        }
    };
    match e.outcome {
        Outcome::Ok => op,
        Outcome::Unknown => format!("{op} (outcome unknown)"),
        Outcome::Fail => format!("{op} (failed)"),
    }
}

impl fmt::Display for Inconclusive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Inconclusive::Steps => "the step budget ran out (raise it, or check a shorter history)",
            Inconclusive::Time => "the time limit ran out",
            Inconclusive::Memory => {
                "the memo outgrew the memory limit (check a shorter history or with fewer clients)"
            }
        })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable { ops, keys } => {
                write!(f, "linearizable: {ops} operations on {keys} keys")
            }
            Verdict::Unknown { key, reason } => {
                write!(f, "unknown: no verdict on key {key:?}: {reason}")
            }
            Verdict::NotLinearizable(a) => a.fmt(f),
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "NOT linearizable: key {:?}", self.key)?;
        match self.since {
            None => write!(f, "{} of its {} operations", self.prefix, self.ops)?,
            Some(t) => write!(
                f,
                "Looking only at its operations from time {t} on (whatever the key held then), \
                 {} of them",
                self.prefix
            )?,
        }
        writeln!(
            f,
            " can be put in an order that fits their results and times (# below), leaving \
             the key at {}.",
            self.value,
        )?;
        write!(f, "From there, nothing explains the operation marked >>>")?;
        if self.stuck.outcome != Outcome::Ok {
            write!(
                f,
                " (its outcome is unknown, but an operation that returned at {} saw what it \
                 wrote)",
                self.deadline
            )?;
        }
        writeln!(f, ":")?;
        writeln!(
            f,
            "     {:>6}  {:>8}  {:>14}  {:>14}  {:<40}  key after",
            "#", "client", "call", "ret", "operation"
        )?;
        let mut rows: Vec<(&Entry, String, String)> = Vec::new();
        for l in &self.tail {
            let after = l.after.to_string();
            rows.push((&l.entry, (l.position + 1).to_string(), after));
        }
        rows.push((&self.stuck, ">>>".into(), String::new()));
        for e in self.pending.iter().take(Self::SHOWN_PENDING) {
            rows.push((e, String::new(), String::new()));
        }
        rows.sort_by_key(|(e, ..)| (e.call, e.client));
        for (e, pos, after) in rows {
            let (mark, pos) = match pos.as_str() {
                ">>>" => (">>>", String::new()),
                _ => ("", pos),
            };
            let ret = match e.end() {
                Some(r) => r.to_string(),
                None => "?".into(),
            };
            writeln!(
                f,
                "{mark:>3}  {pos:>6}  {:>8}  {:>14}  {ret:>14}  {:<40}  {after}",
                e.client,
                e.call,
                describe(e),
            )?;
        }
        let more = self.pending.len().saturating_sub(Self::SHOWN_PENDING);
        if more > 0 {
            writeln!(
                f,
                "     ... and {more} more operations that could have gone next"
            )?;
        }
        if self.pending_earlier > 0 {
            writeln!(
                f,
                "     (and {} operations invoked earlier whose outcome is unknown)",
                self.pending_earlier
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions() {
        let e = |op, outcome| Entry {
            client: 1,
            key: "k".into(),
            op,
            call: 0,
            ret: Some(1),
            outcome,
        };
        let cas = Op::Cas {
            expected: None,
            value: "v".into(),
            ok: false,
        };
        assert_eq!(
            describe(&e(cas.clone(), Outcome::Ok)),
            "cas <absent> -> v: failed"
        );
        assert_eq!(
            describe(&e(cas, Outcome::Unknown)),
            "cas <absent> -> v (outcome unknown)"
        );
        assert_eq!(
            describe(&e(Op::Get { value: None }, Outcome::Ok)),
            "get = <absent>"
        );
        assert_eq!(show(Some(&"x".repeat(100))).chars().count(), 32);
    }
}
