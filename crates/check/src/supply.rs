//! Which values can still appear in the register, and which operations still need them: the
//! search's early warning. A completed read of `v` not yet linearized needs the register to
//! hold `v` at some later point; if it does not hold `v` now and nothing left can write `v`,
//! no order extends the current one, however far ahead that read is. Noticing this when the
//! register moves off `v`, instead of when the search reaches the read, keeps the search from
//! exploring every order of everything in between.

use crate::model::{State, ANY};
use crate::partition::KeyOp;

pub(crate) struct Supply {
    /// Per value, operations not yet linearized that may write it.
    writers: Vec<u32>,
    /// Per value, operations with a known outcome not yet linearized that need it.
    readers: Vec<u32>,
    /// Per value, the operations that need it (to name one in a report).
    needed_by: Vec<Vec<u32>>,
    /// How many values have readers and no writers left.
    starved: u32,
}

impl Supply {
    pub(crate) fn new(ops: &[KeyOp]) -> Supply {
        let top = ops
            .iter()
            .flat_map(|o| [o.may_write(), o.action.needs()])
            .flatten()
            .max()
            .unwrap_or(0) as usize;
        let mut s = Supply {
            writers: vec![0; top + 1],
            readers: vec![0; top + 1],
            needed_by: vec![Vec::new(); top + 1],
            starved: 0,
        };
        for (i, o) in ops.iter().enumerate() {
            if let Some(v) = o.may_write() {
                s.writers[v as usize] += 1;
            }
            if let Some(v) = needs(o) {
                s.readers[v as usize] += 1;
                s.needed_by[v as usize].push(i as u32);
            }
        }
        s.starved = (0..=top).filter(|&v| s.is_starved(v as State)).count() as u32;
        s
    }

    fn is_starved(&self, v: State) -> bool {
        self.readers[v as usize] > 0 && self.writers[v as usize] == 0
    }

    /// Whether no order can extend one that leaves the register at `state`.
    pub(crate) fn doomed(&self, state: State) -> bool {
        if state == ANY {
            return false; // it may turn out to be any one of them
        }
        // The register holding a starved value is fine for now: its readers can go.
        let held = self.readers.get(state as usize).is_some() && self.is_starved(state);
        self.starved > u32::from(held)
    }

    /// An operation that can no longer be linearized, when `doomed(state)`: its index in the
    /// ops (`done` tells which are linearized).
    pub(crate) fn a_starved_reader(&self, state: State, done: impl Fn(u32) -> bool) -> u32 {
        (0..self.readers.len() as State)
            .filter(|&v| v != state && self.is_starved(v))
            .flat_map(|v| self.needed_by[v as usize].iter().copied())
            .find(|&op| !done(op))
            .unwrap_or(0)
    }

    /// Records that `op` was linearized (`by` 1) or taken back (`by` -1).
    pub(crate) fn went(&mut self, op: &KeyOp, by: i32) {
        let mut change = |counts: fn(&mut Supply) -> &mut Vec<u32>, v: State| {
            let before = self.is_starved(v);
            let c = &mut counts(self)[v as usize];
            *c = c.wrapping_add_signed(-by);
            let after = self.is_starved(v);
            self.starved = self
                .starved
                .wrapping_add_signed(i32::from(after) - i32::from(before));
        };
        if let Some(v) = op.may_write() {
            change(|s| &mut s.writers, v);
        }
        if let Some(v) = needs(op) {
            change(|s| &mut s.readers, v);
        }
    }
}

/// The value `op` needs the register to hold, if its outcome is known.
fn needs(op: &KeyOp) -> Option<State> {
    op.known.then(|| op.action.needs()).flatten()
}
