//! The events of one key's history as a doubly linked list, the structure of the
//! Wing–Gong–Lowe search: linearizing an operation *lifts* its call and return out of the list,
//! backtracking *unlifts* them, both in O(1).

use crate::partition::KeyOp;

/// No node.
pub(crate) const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;

/// A call or return event.
#[derive(Clone, Copy)]
pub(crate) struct Node {
    /// The operation (index into the key's ops).
    pub op: u32,
    pub call: bool,
    /// For a call, its return node (NIL if it has none).
    ret: u32,
    prev: u32,
    next: u32,
}

/// The list. Node indices follow time order, so comparing two indices compares two instants.
pub(crate) struct Events {
    nodes: Vec<Node>,
    /// Per operation, its call node.
    pub call_node: Vec<u32>,
    /// Per operation, its rank in the order of return events; operations without a return
    /// come last.
    pub rank: Vec<u32>,
}

impl Events {
    /// The events of `ops`, in time order behind a sentinel head. At equal times calls come
    /// first: operations that touch in time count as concurrent, the reading that never blames
    /// the system for the granularity of the clock. Operations for which `linked` is false get
    /// a node (so they have a place in time) but are not in the list.
    pub(crate) fn new(ops: &[KeyOp], linked: impl Fn(usize) -> bool) -> Events {
        let mut events: Vec<(u64, bool, u32)> = Vec::with_capacity(2 * ops.len());
        for (i, o) in ops.iter().enumerate() {
            events.push((o.call, false, i as u32));
            if let Some(r) = o.ret {
                events.push((r, true, i as u32));
            }
        }
        events.sort_unstable();
        let mut nodes = Vec::with_capacity(events.len() + 1);
        nodes.push(Node {
            op: NIL,
            call: false,
            ret: NIL,
            prev: NIL,
            next: NIL,
        });
        let mut call_node = vec![NIL; ops.len()];
        let mut rank = vec![NIL; ops.len()];
        let mut next_rank = 0;
        let mut last = HEAD;
        for &(_, is_ret, op) in &events {
            let idx = nodes.len() as u32;
            let in_list = linked(op as usize);
            nodes.push(Node {
                op,
                call: !is_ret,
                ret: NIL,
                prev: if in_list { last } else { NIL },
                next: NIL,
            });
            if in_list {
                nodes[last as usize].next = idx;
                last = idx;
            }
            if is_ret {
                nodes[call_node[op as usize] as usize].ret = idx;
                // Ranks only for returns the search can meet (see `config.rs`).
                if in_list {
                    rank[op as usize] = next_rank;
                    next_rank += 1;
                }
            } else {
                call_node[op as usize] = idx;
            }
        }
        for r in rank.iter_mut().filter(|r| **r == NIL) {
            *r = next_rank;
            next_rank += 1;
        }
        Events {
            nodes,
            call_node,
            rank,
        }
    }

    pub(crate) fn first(&self) -> u32 {
        self.nodes[HEAD as usize].next
    }

    pub(crate) fn node(&self, i: u32) -> Node {
        self.nodes[i as usize]
    }

    pub(crate) fn next(&self, i: u32) -> u32 {
        self.nodes[i as usize].next
    }

    /// The calls that could be linearized next: those before the first return in the list.
    pub(crate) fn candidates(&self) -> impl Iterator<Item = Node> + '_ {
        let mut e = self.first();
        std::iter::from_fn(move || {
            let n = *self.nodes.get(e as usize)?;
            e = n.next;
            n.call.then_some(n)
        })
    }

    /// The first return in the list (NIL if none): no call after it can go next.
    pub(crate) fn frontier(&self) -> u32 {
        let mut e = self.first();
        while e != NIL && self.nodes[e as usize].call {
            e = self.nodes[e as usize].next;
        }
        e
    }

    fn unlink(&mut self, i: u32) {
        let Node { prev, next, .. } = self.nodes[i as usize];
        self.nodes[prev as usize].next = next;
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
    }

    /// Reinserts a node unlinked last-in-first-out: its own links still point at its place.
    fn relink(&mut self, i: u32) {
        let Node { prev, next, .. } = self.nodes[i as usize];
        self.nodes[prev as usize].next = i;
        if next != NIL {
            self.nodes[next as usize].prev = i;
        }
    }

    /// Takes an operation's events out of the list.
    pub(crate) fn lift(&mut self, op: u32) {
        let call = self.call_node[op as usize];
        self.unlink(call);
        let ret = self.nodes[call as usize].ret;
        if ret != NIL {
            self.unlink(ret);
        }
    }

    /// Undoes the last `lift`.
    pub(crate) fn unlift(&mut self, op: u32) {
        let call = self.call_node[op as usize];
        let ret = self.nodes[call as usize].ret;
        if ret != NIL {
            self.relink(ret);
        }
        self.relink(call);
    }
}
