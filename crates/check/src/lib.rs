//! A linearizability checker for key-value histories.
//!
//! A history lists what clients invoked on which key, when, and what they were told. It is
//! linearizable if every operation can be given an instant between its call and its return at
//! which it takes effect atomically, such that every result is what a single register per key
//! would have returned. [`check`] decides that, or names the key and the point where no order
//! fits (a stale read, a lost write, two successful compare-and-sets from the same value).
//!
//! Linearizability is local, so the history is split by key, and each key is searched with the
//! Wing–Gong–Lowe algorithm with Lowe's memoization, as Porcupine does. An operation whose
//! outcome is unknown (timed out) may take effect at any time after its call, or never.
//!
//! Used by the simulator (in memory) and by `synod check history.jsonl` (via [`read_history`]).
//!
//! ```
//! use synod_check::{check, Entry, Op, Outcome, DEFAULT_BUDGET};
//! let op = |client, op, call, ret| Entry {
//!     client, key: "k".into(), op, call, ret: Some(ret), outcome: Outcome::Ok,
//! };
//! let history = [
//!     op(1, Op::Put { value: "a".into() }, 0, 10),
//!     op(1, Op::Put { value: "b".into() }, 20, 30),
//!     op(2, Op::Get { value: Some("a".into()) }, 40, 50), // stale
//! ];
//! let verdict = check(&history, DEFAULT_BUDGET);
//! assert!(!verdict.is_linearizable());
//! println!("{verdict}"); // a table around the stale read
//! ```
//!
//! # JSON-lines format
//!
//! One operation per line, in any order (the checker orders them by time):
//!
//! ```text
//! {"client":1,"key":"k","op":"put","value":"v1","call":100,"ret":180,"outcome":"ok"}
//! {"client":2,"key":"k","op":"get","value":"v1","call":150,"ret":190,"outcome":"ok"}
//! {"client":2,"key":"k","op":"get","value":null,"call":200,"ret":230,"outcome":"ok"}
//! {"client":3,"key":"k","op":"cas","expected":"v1","value":"v2","ok":true,"call":210,"ret":260,"outcome":"ok"}
//! {"client":1,"key":"k","op":"delete","call":300,"outcome":"unknown"}
//! {"client":4,"key":"k","op":"put","value":"v3","call":310,"ret":311,"outcome":"fail"}
//! ```
//!
//! | field      | type            | meaning |
//! |------------|-----------------|---------|
//! | `client`   | integer         | who invoked it (only shown in reports) |
//! | `key`      | string          | the key |
//! | `op`       | string          | `get`, `put`, `delete` (alias `del`) or `cas` |
//! | `value`    | string or null  | `get`: what was read, `null` for absent (required when `outcome` is `ok`); `put`: what was written; `cas`: what is written on success (alias `new`) |
//! | `expected` | string or null  | `cas` only: the value required, `null` for absent (required) |
//! | `ok`       | bool            | `cas` only: whether it took effect (required when `outcome` is `ok`) |
//! | `call`     | integer         | invocation time, in any one unit for the whole file (ns, ms, ticks) |
//! | `ret`      | integer         | completion time; required when `outcome` is `ok`, not before `call`; otherwise ignored |
//! | `outcome`  | string          | `ok` (done, and the result fields are what the client was told); `fail` (alias `failed`: certainly did not take effect, e.g. refused before doing anything; skipped); `unknown` (aliases `info`, `indeterminate`: timed out or lost, may have taken effect at any time after `call`, or never) |
//!
//! Other fields are ignored, so a recorder may annotate lines. Blank lines are skipped.
//! [`Entry`]'s serde implementations read and write exactly this form, and [`write_history`]
//! writes a whole history.
//!
//! # Cost
//!
//! On a linearizable history with modest concurrency the search is close to linear in the
//! number of operations (50,000 operations of 20 clients on one key: a fraction of a
//! second). Proving that a history is *not* linearizable means ruling out every order of
//! everything before the anomaly; when that takes long, the checker looks for a short window
//! around the anomaly that fails on its own ([`Anomaly::since`]), which is usually quick. Both
//! can still take exponential time in the number of concurrent operations, and more so with
//! many timed-out writes; [`Options`] bounds steps, time and memory so that the caller gets
//! [`Verdict::Unknown`] instead of a hang.

mod config;
mod events;
mod history;
mod idle;
mod jsonl;
mod local;
mod model;
mod partition;
mod report;
mod supply;
mod timeline;
mod visited;
mod wgl;

pub use history::{Entry, Op, Outcome};
pub use jsonl::{read_history, write_history, HistoryError};
pub use report::{Anomaly, Held, Inconclusive, Linearized, Verdict};

use partition::{partition, KeyHistory, KeyOp};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use wgl::{Deepest, GaveUp, Limits, Search, Searcher};

/// Search steps allowed per key by default. A linearizable history takes a few dozen steps per
/// operation; this bounds a hopeless search to some seconds.
pub const DEFAULT_BUDGET: u64 = 50_000_000;

/// Limits on a check, so that a hard history yields [`Verdict::Unknown`] instead of a hang.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Search steps allowed per key.
    pub max_steps_per_key: u64,
    /// Wall-clock time allowed for the whole check.
    pub time_limit: Option<Duration>,
    /// Bytes the memo of one key's search may hold (1 GiB by default).
    pub max_memory: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_steps_per_key: DEFAULT_BUDGET,
            time_limit: None,
            max_memory: 1 << 30,
        }
    }
}

/// Checks a history with at most `budget` search steps per key and otherwise default
/// [`Options`].
///
/// Failed operations and reads with an unknown outcome are skipped: they changed nothing. A
/// malformed entry (see [`Entry::problem`]) is read leniently: an `Ok` entry without `ret`
/// counts as unknown, a `ret` before `call` is swapped with it.
pub fn check(history: &[Entry], budget: u64) -> Verdict {
    check_with(
        history,
        &Options {
            max_steps_per_key: budget,
            ..Options::default()
        },
    )
}

/// Checks a history within `options`. Keys are checked in key order; the verdict names the
/// first key that is not linearizable or could not be decided.
pub fn check_with(history: &[Entry], options: &Options) -> Verdict {
    let limits = Limits {
        max_steps: options.max_steps_per_key,
        deadline: options.time_limit.map(|t| Instant::now() + t),
        max_memory: options.max_memory,
    };
    let parts = partition(history);
    let keys = parts.len();
    let mut ops = 0;
    for part in &parts {
        ops += part.ops.len();
        if let Some(v) = check_key(history, part, &limits) {
            return v;
        }
    }
    Verdict::Linearizable { ops, keys }
}

/// Checks one key; `None` if it is linearizable.
fn check_key(history: &[Entry], part: &KeyHistory, limits: &Limits) -> Option<Verdict> {
    let mut steps = 0;
    let mut full = Searcher::new(&part.ops, model::ABSENT);
    // A linearizable history takes a few steps per operation. Past that it is probably not
    // linearizable, and a local proof is much cheaper than ruling out every order of
    // everything before the anomaly; if there is none, the full search goes on.
    let first = Limits {
        max_steps: limits
            .max_steps
            .min(1_000_000 + 100 * part.ops.len() as u64),
        ..*limits
    };
    let mut verdict = full.run(&first, &mut steps);
    let gave_up = |v: &Search, why| *v == Search::GaveUp(why);
    if gave_up(&verdict, GaveUp::Steps) && first.max_steps < limits.max_steps
        || gave_up(&verdict, GaveUp::Memory)
    {
        let budget = limits.max_steps.saturating_sub(steps) / 4;
        if let Some(p) = local::find(&part.ops, limits, budget, &mut steps) {
            let a = anomaly(history, part, &p.ops, p.deepest, p.since);
            return Some(Verdict::NotLinearizable(Box::new(a)));
        }
        if gave_up(&verdict, GaveUp::Steps) {
            verdict = full.run(limits, &mut steps);
        }
    }
    match verdict {
        Search::Linearizable => None,
        Search::Violation(d) => {
            let a = anomaly(history, part, &part.ops, d, None);
            Some(Verdict::NotLinearizable(Box::new(a)))
        }
        Search::GaveUp(why) => Some(Verdict::Unknown {
            key: part.key.to_string(),
            reason: match why {
                GaveUp::Steps => Inconclusive::Steps,
                GaveUp::Time => Inconclusive::Time,
                GaveUp::Memory => Inconclusive::Memory,
            },
        }),
    }
}

/// The report on a dead end `d` of a search of `ops` (all or a window of `part`'s operations,
/// the window starting at `since`).
fn anomaly(
    history: &[Entry],
    part: &KeyHistory,
    ops: &[KeyOp],
    d: Deepest,
    since: Option<u64>,
) -> Anomaly {
    let op = |i: u32| &ops[i as usize];
    let entry = |i: u32| history[op(i).entry].clone();
    // Replay the order on the recorded values to learn what the key held after each
    // operation (the search keeps only its own encoding of the value at the end).
    let mut held = if since.is_some() {
        Held::Unknown
    } else {
        Held::Absent
    };
    let mut after = Vec::with_capacity(d.order.len());
    for &i in &d.order {
        held = held.after(&history[op(i).entry].op, op(i).known);
        after.push(held.clone());
    }
    let start = d.order.len().saturating_sub(Anomaly::TAIL);
    let tail = (start..d.order.len())
        .map(|p| Linearized {
            position: p,
            entry: entry(d.order[p]),
            after: after[p].clone(),
        })
        .collect();
    let deadline = op(d.stuck).ret.unwrap_or(u64::MAX);
    // The candidates at the dead end: invoked before the first return still ahead.
    let horizon = d
        .frontier
        .and_then(|f| op(f).ret)
        .unwrap_or(deadline)
        .min(deadline);
    let done: HashSet<u32> = d.order.iter().copied().collect();
    let waiting = |i: &u32| *i != d.stuck && !done.contains(i) && op(*i).call <= horizon;
    // Only those invoked since the shown part of the order began: the others are operations
    // with an unknown outcome from long ago, counted but not listed.
    let shown_from = d.order[start..].iter().map(|&i| op(i).call).min();
    let shown_from = shown_from.unwrap_or(0).min(op(d.stuck).call);
    let (mut pending, earlier): (Vec<u32>, Vec<u32>) = (0..ops.len() as u32)
        .filter(waiting)
        .partition(|&i| op(i).call >= shown_from);
    pending.sort_by_key(|&i| (op(i).call, history[op(i).entry].client));
    Anomaly {
        key: part.key.to_string(),
        ops: part.ops.len(),
        since,
        prefix: d.order.len(),
        tail,
        value: held,
        stuck: entry(d.stuck),
        deadline,
        pending: pending.into_iter().map(entry).collect(),
        pending_earlier: earlier.len(),
    }
}
