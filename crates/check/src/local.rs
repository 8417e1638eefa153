//! Local proofs: a short window of the history that no order explains, whatever the key held
//! when the window began.
//!
//! Proving a history has no linearization means ruling out every order, and the search does
//! that for everything before the anomaly: on a long, busy history with an anomaly in the
//! middle, that can exhaust any budget. But a stale read or a lost write is usually visible in
//! a few dozen operations around it. A window starts from an unknown value (`model::ANY`);
//! operations invoked before it and not certainly over by its start may take effect in it or
//! may already have, so they count as having an unknown outcome; operations still running at
//! its end count the same (by the same argument that makes a prefix of a linearizable history
//! linearizable). All of this only ever allows more, so a window that fails proves the whole
//! history fails; one that passes proves nothing.

use crate::model::{Action, ABSENT, ANY};
use crate::partition::KeyOp;
use crate::wgl::{Deepest, Limits, Search, Searcher};

/// Operations per window; windows overlap by half, so any two operations within half a
/// window of each other (in call order) share one.
const WINDOW: usize = 192;

/// A window that no order explains: its operations (as searched) and the dead end.
pub(crate) struct Proof {
    pub ops: Vec<KeyOp>,
    pub deepest: Deepest,
    /// When the window starts (`None`: at the beginning of the history).
    pub since: Option<u64>,
}

/// Looks for a window of `ops` that fails, spending at most `budget` steps in all and
/// `per_window` on any one window.
pub(crate) fn find(ops: &[KeyOp], limits: &Limits, budget: u64, steps: &mut u64) -> Option<Proof> {
    let mut by_call: Vec<usize> = (0..ops.len()).collect();
    by_call.sort_by_key(|&i| (ops[i].call, i));
    let per_window = (budget / (2 * by_call.len() as u64 / WINDOW as u64 + 1)).max(200_000);
    let mut start = 0;
    let mut spent = 0;
    while start < by_call.len() && spent < budget {
        let end = (start + WINDOW).min(by_call.len());
        let window = cut(ops, &by_call, start, end);
        let mut used = 0;
        let window_limits = Limits {
            max_steps: per_window,
            ..*limits
        };
        let initial = if start == 0 { ABSENT } else { ANY };
        let verdict = Searcher::new(&window, initial).run(&window_limits, &mut used);
        spent += used;
        *steps += used;
        if let Search::Violation(deepest) = verdict {
            return Some(Proof {
                ops: window,
                deepest,
                since: (start > 0).then(|| ops[by_call[start]].call),
            });
        }
        if end == by_call.len() {
            break;
        }
        start += WINDOW / 2;
    }
    None
}

/// The operations `by_call[start..end]` as a history of their own.
fn cut(ops: &[KeyOp], by_call: &[usize], start: usize, end: usize) -> Vec<KeyOp> {
    let from = ops[by_call[start]].call;
    let until = by_call.get(end).map_or(u64::MAX, |&i| ops[i].call);
    let unknown = |o: &KeyOp| KeyOp {
        known: false,
        ret: None,
        ..o.clone()
    };
    let mut out = Vec::new();
    for &i in &by_call[..start] {
        let o = &ops[i];
        if matches!(o.action, Action::Get(_)) || o.ret.is_some_and(|r| r < from) {
            continue; // no effect, or certainly over before the window
        }
        // Perhaps not over at the window's start: it may have taken effect before the window,
        // or take effect in it (not after its return, but forgetting that only allows more,
        // and keeps it from being tried everywhere: see `wgl::wanted`).
        out.push(unknown(o));
    }
    for &i in &by_call[start..end] {
        let o = &ops[i];
        match o.ret {
            Some(r) if o.known && r < until => out.push(o.clone()),
            // Still running when the window ends: only its effect may matter.
            _ if matches!(o.action, Action::Get(_)) => {}
            // The deadline of an operation whose outcome is unknown comes from one that saw
            // its effect, which may not be in the window, or not count there: drop it.
            _ => out.push(unknown(o)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Entry, Op, Outcome};
    use crate::partition::partition;

    /// A busy register with timeouts, with unique values: every window must pass.
    fn register(seed: u64, clients: u64, per_client: u64) -> Vec<Entry> {
        // A small LCG keeps this test free of dev-dependencies.
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut rnd = |n: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % n
        };
        let mut plan = Vec::new();
        for c in 0..clients {
            let mut t = rnd(10);
            for n in 0..per_client {
                let (call, at) = (t, t + rnd(20));
                let lost = rnd(3 + seed % 8) == 0;
                let ret = (!lost).then(|| at + rnd(20));
                let effect = if lost && rnd(2) == 0 { None } else { Some(at) };
                plan.push((effect.unwrap_or(u64::MAX), c, n, call, ret, effect, rnd(5)));
                t = ret.unwrap_or(at + 20) + 1 + rnd(5);
            }
        }
        plan.sort();
        let mut reg: Option<String> = None;
        let mut out = Vec::new();
        for (_, client, n, call, ret, effect, kind) in plan {
            let fresh = format!("{client}-{n}");
            let applies = effect.is_some();
            let op = match kind {
                0 | 1 => Op::Get { value: reg.clone() },
                2 => {
                    if applies {
                        reg = Some(fresh.clone());
                    }
                    Op::Put { value: fresh }
                }
                3 => {
                    if applies {
                        reg = None;
                    }
                    Op::Delete
                }
                _ => {
                    let expected = if rnd(3) == 0 {
                        Some("no".into())
                    } else {
                        reg.clone()
                    };
                    let ok = expected == reg;
                    if ok && applies {
                        reg = Some(fresh.clone());
                    }
                    Op::Cas {
                        expected,
                        value: fresh,
                        ok,
                    }
                }
            };
            let outcome = if ret.is_some() {
                Outcome::Ok
            } else {
                Outcome::Unknown
            };
            out.push(Entry {
                client,
                key: "k".into(),
                op,
                call,
                ret,
                outcome,
            });
        }
        out
    }

    #[test]
    fn no_window_of_a_real_register_fails() {
        let limits = Limits {
            max_steps: u64::MAX,
            deadline: None,
            max_memory: 1 << 30,
        };
        for seed in 0..300 {
            let h = register(seed, 1 + seed % 12, 40);
            let part = &partition(&h)[0];
            if let Some(p) = find(&part.ops, &limits, 10_000_000, &mut 0) {
                let since = p.since;
                panic!(
                    "seed {seed}: a window from {since:?} failed: stuck at {:?}",
                    h[p.ops[p.deepest.stuck as usize].entry]
                );
            }
        }
    }
}
