//! The Wing–Gong–Lowe search, with Lowe's memoization (as in Porcupine): operations are call and
//! return events in a doubly linked list; the search linearizes an operation by lifting its call
//! and return out of the list, backtracks when it meets a return it cannot pass, and never
//! explores the same (set of linearized operations, register state) twice.

use crate::history::{Entry, Outcome};
use crate::model::step;
use std::collections::{HashMap, HashSet};

/// What the search concluded for one key.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyVerdict {
    /// A linearization exists.
    Linearizable,
    /// None exists. `stuck` is the operation (index into the key's ops) whose return could not
    /// be passed at the deepest point the search reached, and `prefix` how many operations
    /// were linearized there.
    Violation {
        /// The operation at the deepest dead end.
        stuck: usize,
        /// Operations linearized at that point.
        prefix: usize,
    },
    /// The step budget ran out.
    Unknown,
}

#[derive(Clone, Copy)]
struct Node {
    op: usize,
    is_call: bool,
    /// For a call, the node of its return.
    partner: usize,
    prev: usize,
    next: usize,
}

const NIL: usize = usize::MAX;

/// Checks the operations of one key (outcomes `Ok` or `Unknown`). `budget` bounds the steps.
pub fn check_key(ops: &[&Entry], budget: u64) -> KeyVerdict {
    let n = ops.len();
    if n == 0 {
        return KeyVerdict::Linearizable;
    }
    // Events: (time, is_return, op). At equal times calls come first: operations that touch
    // in time are concurrent, which is the lenient and correct reading.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, e) in ops.iter().enumerate() {
        let ret = match e.outcome {
            Outcome::Ok => e.ret.unwrap_or(u64::MAX),
            _ => u64::MAX,
        };
        events.push((e.call, false, i));
        events.push((ret, true, i));
    }
    events.sort();
    // Node 0 is a sentinel head.
    let mut nodes = vec![Node {
        op: NIL,
        is_call: false,
        partner: NIL,
        prev: NIL,
        next: 1,
    }];
    let mut call_node = vec![NIL; n];
    for (k, &(_, is_ret, op)) in events.iter().enumerate() {
        let idx = k + 1;
        nodes.push(Node {
            op,
            is_call: !is_ret,
            partner: NIL,
            prev: idx - 1,
            next: if k + 1 < events.len() { idx + 1 } else { NIL },
        });
        if is_ret {
            let c = call_node[op];
            nodes[c].partner = idx;
        } else {
            call_node[op] = idx;
        }
    }

    let known: Vec<bool> = ops.iter().map(|e| e.outcome == Outcome::Ok).collect();
    let mut states: Vec<Option<String>> = vec![None];
    let mut state_ids: HashMap<Option<String>, u32> = HashMap::from([(None, 0)]);
    // The cache keys on a 128-bit fingerprint of the linearized set (the XOR of a random
    // 128-bit tag per operation) instead of the set itself: updating it is O(1) where copying
    // a bitset is O(n). Two different sets collide with probability about 2^-128.
    let tags: Vec<(u64, u64)> = (0..n as u64).map(tag).collect();
    let mut cache: HashSet<(u64, u64, u32)> = HashSet::new();
    let mut linearized = (0u64, 0u64);
    let mut count = 0usize;
    let mut state: u32 = 0;
    let mut calls: Vec<(usize, u32)> = Vec::new();
    let mut deepest = (0usize, 0usize);
    let mut steps = 0u64;

    let lift = |nodes: &mut Vec<Node>, c: usize| {
        let r = nodes[c].partner;
        let (cp, cn) = (nodes[c].prev, nodes[c].next);
        nodes[cp].next = cn;
        if cn != NIL {
            nodes[cn].prev = cp;
        }
        let (rp, rn) = (nodes[r].prev, nodes[r].next);
        nodes[rp].next = rn;
        if rn != NIL {
            nodes[rn].prev = rp;
        }
    };
    let unlift = |nodes: &mut Vec<Node>, c: usize| {
        let r = nodes[c].partner;
        let (rp, rn) = (nodes[r].prev, nodes[r].next);
        nodes[rp].next = r;
        if rn != NIL {
            nodes[rn].prev = r;
        }
        let (cp, cn) = (nodes[c].prev, nodes[c].next);
        nodes[cp].next = c;
        if cn != NIL {
            nodes[cn].prev = c;
        }
    };

    let mut entry = nodes[0].next;
    while nodes[0].next != NIL {
        steps += 1;
        if steps > budget {
            return KeyVerdict::Unknown;
        }
        if entry == NIL {
            // Only possible if every remaining event were a call; returns bound every call.
            unreachable!("ran off the event list");
        }
        let node = nodes[entry];
        if node.is_call {
            let op = node.op;
            if let Some(next) = step(&states[state as usize], &ops[op].op, known[op]) {
                let id = match state_ids.get(&next) {
                    Some(&id) => id,
                    None => {
                        let id = states.len() as u32;
                        states.push(next.clone());
                        state_ids.insert(next, id);
                        id
                    }
                };
                let with = (linearized.0 ^ tags[op].0, linearized.1 ^ tags[op].1);
                if cache.insert((with.0, with.1, id)) {
                    linearized = with;
                    calls.push((entry, state));
                    state = id;
                    count += 1;
                    lift(&mut nodes, entry);
                    entry = nodes[0].next;
                    continue;
                }
            }
            entry = node.next;
        } else {
            // A return we cannot pass: the op is not yet linearized. Backtrack.
            if count >= deepest.1 {
                deepest = (node.op, count);
            }
            let Some((c, prev_state)) = calls.pop() else {
                return KeyVerdict::Violation {
                    stuck: deepest.0,
                    prefix: deepest.1,
                };
            };
            let op = nodes[c].op;
            linearized = (linearized.0 ^ tags[op].0, linearized.1 ^ tags[op].1);
            count -= 1;
            state = prev_state;
            unlift(&mut nodes, c);
            entry = nodes[c].next;
        }
    }
    KeyVerdict::Linearizable
}

/// A well-mixed 128-bit tag for operation `i` (SplitMix64 twice).
fn tag(i: u64) -> (u64, u64) {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (mix(2 * i), mix(2 * i + 1))
}
