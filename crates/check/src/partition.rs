//! Splitting a history by key, and preparing each key's operations for the search.
//!
//! Linearizability is local (Herlihy and Wing): a history is linearizable iff each key's
//! sub-history is, so each key is searched on its own and the search space is the product of
//! small ones instead of one huge one.

use crate::history::{Entry, Outcome};
use crate::model::{Action, State, Values, ABSENT};
use std::collections::{BTreeMap, HashMap, HashSet};

/// One operation of a key, ready for the search.
#[derive(Clone, Debug)]
pub(crate) struct KeyOp {
    /// Index into the whole history.
    pub entry: usize,
    pub action: Action,
    /// Whether the client learned the result (outcome `Ok`).
    pub known: bool,
    pub call: u64,
    /// Latest instant it can take effect; `None` for +infinity (outcome unknown).
    pub ret: Option<u64>,
}

impl KeyOp {
    /// The value this operation may write: not a CAS the client was told failed.
    pub(crate) fn may_write(&self) -> Option<State> {
        match self.action {
            Action::Cas { ok: false, .. } if self.known => None,
            a => a.writes(),
        }
    }
}

/// The operations of one key.
pub(crate) struct KeyHistory<'a> {
    pub key: &'a str,
    pub ops: Vec<KeyOp>,
}

/// Splits `history` by key (in key order), dropping what cannot matter and tightening what
/// can be tightened without changing the verdict.
///
/// Malformed entries are read leniently rather than rejected, since an in-memory caller has no
/// error path: an `Ok` entry without `ret` counts as unknown, and a `ret` before `call` is
/// swapped (the widest reading, so the checker never blames the system for a recording bug).
pub(crate) fn partition(history: &[Entry]) -> Vec<KeyHistory<'_>> {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in history.iter().enumerate() {
        if e.matters() {
            by_key.entry(e.key.as_str()).or_default().push(i);
        }
    }
    by_key
        .into_iter()
        .map(|(key, idx)| {
            let mut values = Values::default();
            let mut ops: Vec<KeyOp> = idx
                .into_iter()
                .filter_map(|i| {
                    let e = &history[i];
                    let known = e.outcome == Outcome::Ok && e.ret.is_some();
                    if !known && e.op.written().is_none() {
                        return None; // a read whose result nobody saw
                    }
                    let (call, ret) = match e.end() {
                        Some(r) if known => (e.call.min(r), Some(e.call.max(r))),
                        _ => (e.call, None),
                    };
                    Some(KeyOp {
                        entry: i,
                        action: values.action(&e.op),
                        known,
                        call,
                        ret,
                    })
                })
                .collect();
            bound_observed_writes(&mut ops);
            merge_unread_values(&mut ops, values.len() as State + 1);
            KeyHistory { key, ops }
        })
        .collect()
}

/// Gives an unknown-outcome write a deadline when its effect was seen: if it is the only
/// operation that ever writes its value, it must have taken effect before the first operation
/// that saw the value returned. All linearizations already obey this, so the verdict is the
/// same; but an operation without a deadline stays a candidate at every later point of the
/// search, which is what makes unknown outcomes expensive.
///
/// "Seen" includes being the expected value of an unknown CAS that itself got a deadline
/// (its own value was seen, so it took effect, so it matched), hence the worklist: timed-out
/// CASes in a chain all get deadlines.
fn bound_observed_writes(ops: &mut [KeyOp]) {
    let mut writers: HashMap<State, Vec<usize>> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let Some(v) = op.may_write() {
            writers.entry(v).or_default().push(i);
        }
    }
    // Absent is the initial state too: seeing it proves nothing about a delete.
    writers.remove(&ABSENT);
    let mut seen_by: HashMap<State, u64> = HashMap::new();
    for op in ops.iter().filter(|o| o.known) {
        if let (Some(v), Some(ret)) = (op.action.needs(), op.ret) {
            let t = seen_by.entry(v).or_insert(ret);
            *t = (*t).min(ret);
        }
    }
    let mut work: Vec<State> = seen_by.keys().copied().collect();
    while let Some(v) = work.pop() {
        let (Some(&t), Some([w])) = (seen_by.get(&v), writers.get(&v).map(Vec::as_slice)) else {
            continue;
        };
        let op = &mut ops[*w];
        // Seen before it was even invoked: no deadline helps; let the search say so.
        if op.known || t < op.call || op.ret.is_some_and(|r| r <= t) {
            continue;
        }
        op.ret = Some(t);
        if let Action::Cas { expected, .. } = op.action {
            let e = seen_by.entry(expected).or_insert(t);
            if *e >= t {
                *e = t;
                work.push(expected);
            }
        }
    }
}

/// Replaces every value that no operation reads or compares against by one stand-in: states
/// that differ only in such values are indistinguishable to every operation, and merging them
/// lets the memo see it (and lets timed-out writes of them be told apart only by their times,
/// see `wgl.rs`).
fn merge_unread_values(ops: &mut [KeyOp], unread: State) {
    let mut read: HashSet<State> = HashSet::new();
    for op in ops.iter() {
        match op.action {
            Action::Get(v) if op.known => read.insert(v),
            Action::Cas { expected, .. } => read.insert(expected),
            _ => false,
        };
    }
    let merge = |v: State| {
        if v == ABSENT || read.contains(&v) {
            v
        } else {
            unread
        }
    };
    for op in ops.iter_mut() {
        op.action = match op.action {
            Action::Put(v) => Action::Put(merge(v)),
            Action::Cas { expected, new, ok } => Action::Cas {
                expected,
                new: merge(new),
                ok,
            },
            get => get,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Op;

    fn e(op: Op, call: u64, ret: Option<u64>, outcome: Outcome) -> Entry {
        Entry {
            client: 1,
            key: "k".into(),
            op,
            call,
            ret,
            outcome,
        }
    }

    #[test]
    fn observed_unknown_writes_get_a_deadline_and_others_do_not() {
        let put = |v: &str| Op::Put { value: v.into() };
        let get = |v: &str| Op::Get {
            value: Some(v.into()),
        };
        let h = [
            e(put("a"), 0, None, Outcome::Unknown),
            e(get("a"), 50, Some(60), Outcome::Ok),
            e(get("a"), 40, Some(55), Outcome::Ok),
            e(put("b"), 0, None, Outcome::Unknown),
            e(put("c"), 0, None, Outcome::Unknown),
            e(put("c"), 0, None, Outcome::Unknown),
            e(get("c"), 40, Some(55), Outcome::Ok),
            e(get("zz"), 0, None, Outcome::Unknown),
            e(put("f"), 0, Some(1), Outcome::Fail),
            e(Op::Delete, 7, Some(3), Outcome::Ok),
        ];
        let parts = partition(&h);
        assert_eq!(parts.len(), 1);
        let ops = &parts[0].ops;
        let rets: Vec<Option<u64>> = ops.iter().map(|o| o.ret).collect();
        assert_eq!(
            rets,
            [
                Some(55),
                Some(60),
                Some(55),
                None,
                None,
                None,
                Some(55),
                Some(7)
            ],
            "a: bounded by the first read; b: unseen; c: two writers"
        );
        assert_eq!(
            ops[7].call, 3,
            "ret before call is read as the wider interval"
        );
    }

    #[test]
    fn a_chain_of_timed_out_cases_all_get_deadlines() {
        let cas = |e: &str, v: &str| Op::Cas {
            expected: Some(e.into()),
            value: v.into(),
            ok: false,
        };
        let h = [
            e(Op::Put { value: "a".into() }, 0, None, Outcome::Unknown),
            e(cas("a", "b"), 10, None, Outcome::Unknown),
            e(cas("b", "c"), 20, None, Outcome::Unknown),
            e(
                Op::Get {
                    value: Some("c".into()),
                },
                30,
                Some(40),
                Outcome::Ok,
            ),
        ];
        let rets: Vec<Option<u64>> = partition(&h)[0].ops.iter().map(|o| o.ret).collect();
        assert_eq!(rets, [Some(40), Some(40), Some(40), Some(40)]);
    }

    #[test]
    fn values_nobody_reads_are_merged() {
        let h = [
            e(Op::Put { value: "a".into() }, 0, Some(1), Outcome::Ok),
            e(Op::Put { value: "b".into() }, 0, None, Outcome::Unknown),
            e(Op::Put { value: "c".into() }, 0, Some(1), Outcome::Ok),
            e(
                Op::Get {
                    value: Some("c".into()),
                },
                0,
                Some(1),
                Outcome::Ok,
            ),
        ];
        let acts: Vec<Action> = partition(&h)[0].ops.iter().map(|o| o.action).collect();
        assert_eq!(acts[0], acts[1], "a and b are never read");
        assert_ne!(acts[0], acts[2]);
    }
}
