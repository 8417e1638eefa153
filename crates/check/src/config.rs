//! The memo's key for a configuration of the search: the set of linearized operations and the
//! register's state.
//!
//! Storing the set as a bitset costs O(n) per step on an n-operation key. Instead operations
//! of the event list are ranked by return event, and the set is stored as `k`, the lowest rank
//! not linearized, plus the linearized ranks above `k`. The search only ever linearizes
//! operations whose call precedes the first return still in the list, so those ranks belong to
//! operations concurrent with operation `k`: a handful, not O(n). Idle operations (`idle.rs`),
//! which stay linearized ranks above `k` to the end, are stored apart as one interned set id.
//! Both forms are canonical, so the memo is exact, not a hash that could confuse two sets.

use crate::model::State;

/// `[state, idle set, k, linearized ranks above k, descending]` (descending so that the ranks
/// `k` catches up with are popped off the end).
pub(crate) struct Config(Vec<u32>);

const K: usize = 2;

impl Config {
    /// Nothing linearized, the key holding `initial`.
    pub(crate) fn new(initial: State) -> Config {
        Config(vec![initial, 0, 0])
    }

    pub(crate) fn state(&self) -> State {
        self.0[0]
    }

    pub(crate) fn set_state(&mut self, s: State) {
        self.0[0] = s;
    }

    /// The idle operations linearized (an id from `idle::Sets`).
    pub(crate) fn idle(&self) -> u32 {
        self.0[1]
    }

    pub(crate) fn set_idle(&mut self, set: u32) {
        self.0[1] = set;
    }

    /// The lowest rank not linearized.
    pub(crate) fn k(&self) -> u32 {
        self.0[K]
    }

    /// The whole key, to look up in the memo.
    pub(crate) fn key(&self) -> &[u32] {
        &self.0
    }

    /// Adds the operation of rank `r` (not yet in the set).
    pub(crate) fn add(&mut self, r: u32) {
        let c = &mut self.0;
        if r == c[K] {
            let mut k = r + 1;
            while c.len() > K + 1 && c[c.len() - 1] == k {
                c.pop();
                k += 1;
            }
            c[K] = k;
        } else {
            let at = K + 1 + c[K + 1..].partition_point(|&x| x > r);
            c.insert(at, r);
        }
    }

    /// Undoes `add(r)` made when `k` was `prev_k`.
    pub(crate) fn remove(&mut self, r: u32, prev_k: u32) {
        let c = &mut self.0;
        if r == prev_k {
            c.extend((prev_k + 1..c[K]).rev());
            c[K] = prev_k;
        } else {
            let at = K + 1 + c[K + 1..].partition_point(|&x| x > r);
            c.remove(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_remove_are_inverse() {
        let mut c = Config::new(0);
        c.add(2);
        c.add(3);
        assert_eq!(c.key(), [0, 0, 0, 3, 2]);
        c.add(0);
        assert_eq!(c.key(), [0, 0, 1, 3, 2]);
        c.add(1);
        assert_eq!(c.key(), [0, 0, 4]);
        c.remove(1, 1);
        assert_eq!(c.key(), [0, 0, 1, 3, 2]);
        c.remove(0, 0);
        c.remove(3, 0);
        c.set_idle(7);
        assert_eq!(c.key(), [0, 7, 0, 2]);
    }
}
