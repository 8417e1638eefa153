//! Operations with an unknown outcome and no deadline: each may take effect at any time after
//! its call, or never. Left in the event list they would be candidates at every later point
//! of the search, multiplying it; so they are kept apart, grouped, and offered to the search
//! only where they can matter (see `wgl.rs`).
//!
//! Operations of a group have the same action, so once invoked any of them can stand in for
//! any other from then on: trying each in turn at one point would repeat the same search. They
//! are linearized in call order only, and the memo sees "the first two of these three" instead
//! of each pair.

use crate::model::{Action, State};
use crate::partition::KeyOp;
use std::collections::HashMap;

pub(crate) struct Idle {
    /// Per operation, its group, if it is idle.
    group: Vec<Option<u32>>,
    /// Per group, its operations in call order.
    members: Vec<Vec<u32>>,
    /// Per group, how many have been linearized.
    used: Vec<u32>,
    /// Groups of blind writes (puts, deletes), which can change any state.
    blind: Vec<u32>,
    /// Groups of CASes by expected value: only those expecting the current state can change it.
    by_expected: HashMap<State, Vec<u32>>,
}

impl Idle {
    pub(crate) fn new(ops: &[KeyOp]) -> Idle {
        let mut idle: Vec<u32> = (0..ops.len() as u32)
            .filter(|&i| Self::is_idle(&ops[i as usize]))
            .collect();
        idle.sort_by_key(|&i| (ops[i as usize].call, i));
        let mut ids: HashMap<Action, u32> = HashMap::new();
        let mut g = Idle {
            group: vec![None; ops.len()],
            members: Vec::new(),
            used: Vec::new(),
            blind: Vec::new(),
            by_expected: HashMap::new(),
        };
        for i in idle {
            let action = ops[i as usize].action;
            let id = *ids.entry(action).or_insert_with(|| {
                let id = g.members.len() as u32;
                g.members.push(Vec::new());
                g.used.push(0);
                match action {
                    Action::Cas { expected, .. } => {
                        g.by_expected.entry(expected).or_default().push(id)
                    }
                    _ => g.blind.push(id),
                }
                id
            });
            g.group[i as usize] = Some(id);
            g.members[id as usize].push(i);
        }
        g
    }

    pub(crate) fn is_idle(op: &KeyOp) -> bool {
        !op.known && op.ret.is_none()
    }

    /// The `i`-th group worth trying in `state` (blind writes, then CASes expecting `state`),
    /// as the operation of it to try: `Some(None)` if the group is used up, `None` past the
    /// last group. The order is fixed for a given state, so that backtracking can resume it.
    pub(crate) fn branch(&self, state: State, i: usize) -> Option<Option<u32>> {
        let cas = self.by_expected.get(&state).map_or(&[][..], Vec::as_slice);
        let g = *self
            .blind
            .get(i)
            .or_else(|| cas.get(i - self.blind.len()))?;
        Some(self.next_of(g))
    }

    /// Whether a group of CASes expecting `state` has a next operation for which `avail`
    /// holds.
    pub(crate) fn cas_expecting(&self, state: State, avail: impl Fn(u32) -> bool) -> bool {
        self.by_expected
            .get(&state)
            .is_some_and(|gs| gs.iter().filter_map(|&g| self.next_of(g)).any(avail))
    }

    fn next_of(&self, g: u32) -> Option<u32> {
        self.members[g as usize]
            .get(self.used[g as usize] as usize)
            .copied()
    }

    /// Records that `op` was linearized (`by` 1) or taken back (`by` -1).
    pub(crate) fn went(&mut self, op: u32, by: i32) {
        if let Some(g) = self.group[op as usize] {
            self.used[g as usize] = self.used[g as usize].wrapping_add_signed(by);
        }
    }
}

/// Sets of idle operations, interned: each set has an id, and adding an operation to a set
/// always gives the same id for the same resulting set, whatever the order of additions.
/// Sets are paths in a trie whose elements increase from the root.
pub(crate) struct Sets {
    /// Per id (but the empty set, 0): the set without its largest element, and that element.
    nodes: Vec<(u32, u32)>,
    ids: HashMap<(u32, u32), u32>,
}

impl Sets {
    pub(crate) fn new() -> Sets {
        Sets {
            nodes: vec![(0, 0)],
            ids: HashMap::new(),
        }
    }

    /// The id of `set` with `x` (not in it) added.
    pub(crate) fn with(&mut self, mut set: u32, x: u32) -> u32 {
        // Take off the elements above `x`, add `x`, put them back.
        let mut above = Vec::new();
        while set != 0 && self.nodes[set as usize].1 > x {
            let (rest, top) = self.nodes[set as usize];
            above.push(top);
            set = rest;
        }
        set = self.intern(set, x);
        for &top in above.iter().rev() {
            set = self.intern(set, top);
        }
        set
    }

    fn intern(&mut self, set: u32, x: u32) -> u32 {
        let next = self.nodes.len() as u32;
        let id = *self.ids.entry((set, x)).or_insert(next);
        if id == next {
            self.nodes.push((set, x));
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_are_interned_whatever_the_order() {
        let mut s = Sets::new();
        let a = s.with(0, 5);
        let a = s.with(a, 2);
        let a = s.with(a, 9);
        let b = s.with(0, 9);
        let b = s.with(b, 5);
        let b = s.with(b, 2);
        assert_eq!(a, b);
        let c = s.with(0, 2);
        let c = s.with(c, 5);
        assert_ne!(a, c);
        assert_eq!(s.with(c, 9), a);
    }
}
