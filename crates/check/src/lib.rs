//! A linearizability checker for key-value histories.
//!
//! Linearizability is local: a history is linearizable iff each key's sub-history is. So the
//! history is split by key, and each key is searched with the Wing–Gong–Lowe algorithm and
//! Lowe's memoization of (linearized set, state) pairs, as Porcupine does. Operations whose
//! outcome is unknown may take effect at any time after their call, or never.
//!
//! Used by the simulator (in memory) and by `synod check history.jsonl`.

mod history;
mod model;
mod report;
mod wgl;

pub use history::{read_history, Entry, HistoryError, Op, Outcome};
pub use report::{Anomaly, Verdict};

use std::collections::BTreeMap;

/// Steps the search may take per key before answering [`Verdict::Unknown`].
pub const DEFAULT_BUDGET: u64 = 50_000_000;

/// Checks a history. Failed operations are dropped; reads with an unknown outcome are dropped
/// (they changed nothing).
pub fn check(history: &[Entry], budget: u64) -> Verdict {
    let mut by_key: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    let mut total = 0;
    for e in history {
        let useful = !matches!(
            (e.outcome, &e.op),
            (Outcome::Fail, _) | (Outcome::Unknown, Op::Get { .. })
        );
        if useful {
            by_key.entry(&e.key).or_default().push(e);
            total += 1;
        }
    }
    let keys = by_key.len();
    for (key, ops) in by_key {
        match wgl::check_key(&ops, budget) {
            wgl::KeyVerdict::Linearizable => {}
            wgl::KeyVerdict::Unknown => {
                return Verdict::Unknown {
                    key: key.to_string(),
                }
            }
            wgl::KeyVerdict::Violation { stuck, prefix } => {
                let s = ops[stuck];
                let end = |e: &Entry| match e.outcome {
                    Outcome::Ok => e.ret.unwrap_or(u64::MAX),
                    _ => u64::MAX,
                };
                // Everything concurrent with it, plus the last few operations that finished
                // before it began: those are what a stale read or lost write contradicts.
                let mut before: Vec<&Entry> =
                    ops.iter().copied().filter(|e| end(e) < s.call).collect();
                before.sort_by_key(|e| end(e));
                let mut window: Vec<Entry> = before
                    .iter()
                    .rev()
                    .take(3)
                    .copied()
                    .chain(
                        ops.iter()
                            .copied()
                            .filter(|e| e.call <= end(s) && s.call <= end(e)),
                    )
                    .cloned()
                    .collect();
                window.sort_by_key(|e| (e.call, e.client));
                return Verdict::NotLinearizable(Box::new(Anomaly {
                    key: key.to_string(),
                    stuck: s.clone(),
                    prefix,
                    window,
                }));
            }
        }
    }
    Verdict::Linearizable { ops: total, keys }
}
