//! Builders for hand-written histories, a generator of histories of a real register, and a
//! brute-force checker to compare the real one against.

#![allow(dead_code)] // each test file uses a different part

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use synod_check::{Entry, Op, Outcome};

pub fn entry(client: u64, op: Op, call: u64, ret: u64) -> Entry {
    Entry {
        client,
        key: "k".into(),
        op,
        call,
        ret: Some(ret),
        outcome: Outcome::Ok,
    }
}
pub fn put(c: u64, v: &str, call: u64, ret: u64) -> Entry {
    entry(c, Op::Put { value: v.into() }, call, ret)
}
pub fn del(c: u64, call: u64, ret: u64) -> Entry {
    entry(c, Op::Delete, call, ret)
}
pub fn get(c: u64, v: Option<&str>, call: u64, ret: u64) -> Entry {
    let value = v.map(Into::into);
    entry(c, Op::Get { value }, call, ret)
}
pub fn cas(c: u64, e: Option<&str>, v: &str, ok: bool, call: u64, ret: u64) -> Entry {
    let (expected, value) = (e.map(Into::into), v.into());
    entry(
        c,
        Op::Cas {
            expected,
            value,
            ok,
        },
        call,
        ret,
    )
}
/// The same operation, timed out: it may or may not have taken effect.
pub fn unknown(mut e: Entry) -> Entry {
    e.outcome = Outcome::Unknown;
    e.ret = None;
    e
}
pub fn on(key: &str, mut e: Entry) -> Entry {
    e.key = key.into();
    e
}

/// How the generator shapes a history.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub clients: u64,
    pub per_client: usize,
    pub keys: usize,
    /// Chance that a write times out (then it takes effect, or not, each half the time).
    pub unknown: f64,
    /// Longest operation, in ticks.
    pub max_latency: u64,
}

/// A real atomic register per key under random overlapping operations: always linearizable.
/// Each operation takes effect at a random instant inside its interval; a timed-out write
/// takes effect at a random instant after its call (possibly after the client moved on), or
/// never. Values are unique per write.
pub fn register_history(seed: u64, s: Shape) -> Vec<Entry> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    struct Plan {
        client: u64,
        key: usize,
        call: u64,
        at: Option<u64>,
        ret: Option<u64>,
        kind: u8,
        n: usize,
    }
    let mut plan = Vec::new();
    for c in 0..s.clients {
        let mut t = rng.gen_range(0..10);
        for n in 0..s.per_client {
            let call = t;
            let kind = rng.gen_range(0..4u8);
            let timed_out = rng.gen_bool(s.unknown);
            let (at, ret) = if timed_out {
                let at = rng
                    .gen_bool(0.5)
                    .then(|| call + rng.gen_range(0..4 * s.max_latency));
                (at, None)
            } else {
                let at = call + rng.gen_range(0..=s.max_latency / 2);
                (Some(at), Some(at + rng.gen_range(0..=s.max_latency / 2)))
            };
            let key = rng.gen_range(0..s.keys);
            plan.push(Plan {
                client: c,
                key,
                call,
                at,
                ret,
                kind,
                n,
            });
            t = ret.unwrap_or(call + s.max_latency) + rng.gen_range(1..10);
        }
    }
    plan.sort_by_key(|p| (p.at.unwrap_or(u64::MAX), p.client));
    let mut regs: Vec<Option<String>> = vec![None; s.keys];
    let mut out = Vec::new();
    for p in plan {
        let reg = &mut regs[p.key];
        let fresh = format!("c{}-{}", p.client, p.n);
        let applies = p.at.is_some();
        let op = match p.kind {
            0 => Op::Get { value: reg.clone() },
            1 => {
                if applies {
                    *reg = Some(fresh.clone());
                }
                Op::Put { value: fresh }
            }
            2 if rng.gen_bool(0.2) => {
                if applies {
                    *reg = None;
                }
                Op::Delete
            }
            _ => {
                let expected = if rng.gen_bool(0.7) {
                    reg.clone()
                } else {
                    Some("nope".into())
                };
                let ok = expected == *reg;
                if ok && applies {
                    *reg = Some(fresh.clone());
                }
                Op::Cas {
                    expected,
                    value: fresh,
                    ok,
                }
            }
        };
        out.push(Entry {
            client: p.client,
            key: format!("k{}", p.key),
            op,
            call: p.call,
            ret: p.ret,
            outcome: if p.ret.is_some() {
                Outcome::Ok
            } else {
                Outcome::Unknown
            },
        });
    }
    out
}

/// Decides linearizability by trying every order (tiny histories only): the definition,
/// written as plainly as possible, to hold the real checker to.
pub fn brute_force(history: &[Entry]) -> bool {
    let mut keys: Vec<&str> = history.iter().map(|e| e.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter().all(|k| {
        let ops: Vec<&Entry> = history
            .iter()
            .filter(|e| e.key == k && e.outcome != Outcome::Fail)
            .collect();
        let mut done = vec![false; ops.len()];
        orders(&ops, &mut done, None)
    })
}

fn orders(ops: &[&Entry], done: &mut [bool], state: Option<String>) -> bool {
    let pending_known: Vec<usize> = (0..ops.len())
        .filter(|&i| !done[i] && ops[i].outcome == Outcome::Ok)
        .collect();
    if pending_known.is_empty() {
        return true; // what is left has unknown outcomes: it took effect never
    }
    for i in 0..ops.len() {
        // `i` may go next unless some pending known operation returned before it was called.
        let blocked = pending_known
            .iter()
            .any(|&j| ops[j].ret.is_some_and(|r| r < ops[i].call));
        if done[i] || blocked {
            continue;
        }
        let known = ops[i].outcome == Outcome::Ok;
        let next = match &ops[i].op {
            Op::Get { value } => (!known || *value == state).then(|| state.clone()),
            Op::Put { value } => Some(Some(value.clone())),
            Op::Delete => Some(None),
            Op::Cas {
                expected,
                value,
                ok,
            } => {
                let matches = *expected == state;
                if !known || *ok == matches {
                    Some(if matches {
                        Some(value.clone())
                    } else {
                        state.clone()
                    })
                } else {
                    None
                }
            }
        };
        if let Some(next) = next {
            done[i] = true;
            let found = orders(ops, done, next);
            done[i] = false;
            if found {
                return true;
            }
        }
    }
    false
}

/// Makes one read stale, if the history has the shape for it: puts W1, W2 and a read R of
/// the same key with W1 over before W2 began and W2 over before R began. W2 certainly
/// overwrote W1 before R, and values are unique, so R reading W1's value is a violation.
pub fn make_a_read_stale(h: &mut [Entry]) -> Option<usize> {
    let mut keys: Vec<&str> = h.iter().map(|e| e.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let found = keys.into_iter().find_map(|key| {
        // Completed puts of this key by call time, and the earliest return among each suffix.
        let mut puts: Vec<(u64, u64, &str)> = h
            .iter()
            .filter(|e| e.key == key)
            .filter_map(|e| match (&e.op, e.end()) {
                (Op::Put { value }, Some(ret)) => Some((e.call, ret, value.as_str())),
                _ => None,
            })
            .collect();
        puts.sort_unstable();
        let mut first_ret = vec![u64::MAX; puts.len() + 1];
        for i in (0..puts.len()).rev() {
            first_ret[i] = first_ret[i + 1].min(puts[i].1);
        }
        // From the middle on, so that the search has come a long way when it meets it.
        puts.iter()
            .skip(puts.len() / 2)
            .find_map(|&(_, w1_ret, stale)| {
                let w2_ret = first_ret[puts.partition_point(|p| p.0 <= w1_ret)];
                let r = h.iter().position(|r| {
                    r.key == key
                        && r.outcome == Outcome::Ok
                        && matches!(r.op, Op::Get { .. })
                        && w2_ret < r.call
                })?;
                Some((r, stale.to_string()))
            })
    });
    let (i, stale) = found?;
    h[i].op = Op::Get { value: Some(stale) };
    Some(i)
}
