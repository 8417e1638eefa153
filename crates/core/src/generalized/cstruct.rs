//! Command histories: the c-structs of Generalized Paxos.
//!
//! A history is a sequence of distinct commands in which two adjacent commands that commute may
//! swap places without changing it: what it fixes is the order of every pair of conflicting
//! commands. `u ⊑ v` (u is a prefix of v) when v is u followed by more commands; two histories
//! are compatible when some history extends both; their least upper bound (`lub`) is the
//! smallest such, and their greatest lower bound (`glb`) the longest common prefix.
//!
//! A history is stored as one of its sequences; every operation compares only the order of
//! conflicting pairs, so any sequence of the same history gives the same answers.

use super::relation::{Command, Relation};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A command history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CStruct {
    cmds: Vec<Command>,
}

impl CStruct {
    /// The empty history, a prefix of every history.
    pub fn new() -> Self {
        CStruct::default()
    }

    /// A history of these commands, in this order (repeats after the first are dropped).
    pub fn from_commands(cmds: impl IntoIterator<Item = Command>) -> Self {
        let mut h = CStruct::new();
        for c in cmds {
            h.append(c);
        }
        h
    }

    /// The commands, in one of the history's orders.
    pub fn commands(&self) -> &[Command] {
        &self.cmds
    }

    /// How many commands.
    pub fn len(&self) -> usize {
        self.cmds.len()
    }

    /// True for the empty history.
    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }

    /// True when `c` is in the history.
    pub fn contains(&self, c: &Command) -> bool {
        self.cmds.contains(c)
    }

    fn pos(&self, c: &Command) -> Option<usize> {
        self.cmds.iter().position(|x| x == c)
    }

    /// Appends `c` (`u • c`); a command already present is not appended again.
    pub fn append(&mut self, c: Command) {
        if !self.contains(&c) {
            self.cmds.push(c);
        }
    }

    /// `self ⊑ other`: every command of `self` is in `other`, conflicting pairs of `self` keep
    /// their order there, and no command `other` adds comes before one of `self` it conflicts
    /// with.
    pub fn is_prefix_of(&self, other: &CStruct, rel: &dyn Relation) -> bool {
        let mut at = Vec::with_capacity(self.cmds.len());
        for c in &self.cmds {
            match other.pos(c) {
                Some(p) => at.push(p),
                None => return false,
            }
        }
        for i in 0..self.cmds.len() {
            for j in i + 1..self.cmds.len() {
                if rel.conflict(&self.cmds[i].op, &self.cmds[j].op) && at[i] > at[j] {
                    return false;
                }
            }
        }
        for (px, x) in other.cmds.iter().enumerate() {
            if self.contains(x) {
                continue;
            }
            for (i, y) in self.cmds.iter().enumerate() {
                if px < at[i] && rel.conflict(&x.op, &y.op) {
                    return false;
                }
            }
        }
        true
    }

    /// The same history (each a prefix of the other).
    pub fn equivalent(&self, other: &CStruct, rel: &dyn Relation) -> bool {
        self.len() == other.len() && self.is_prefix_of(other, rel)
    }

    /// The least upper bound, or `None` when the two are incompatible (they order some
    /// conflicting pair differently, or one lacks a command the other puts first).
    pub fn lub(&self, other: &CStruct, rel: &dyn Relation) -> Option<CStruct> {
        // Any upper bound starts with `self`, and must hold `other`'s extra commands after it
        // in `other`'s order; so this is the only candidate, up to equivalence.
        let mut w = self.clone();
        for c in &other.cmds {
            w.append(c.clone());
        }
        other.is_prefix_of(&w, rel).then_some(w)
    }

    /// True when some history extends both.
    pub fn compatible(&self, other: &CStruct, rel: &dyn Relation) -> bool {
        self.lub(other, rel).is_some()
    }

    /// The greatest lower bound: the longest common prefix.
    pub fn glb(&self, other: &CStruct, rel: &dyn Relation) -> CStruct {
        // Common prefixes are closed under union, so adding, while one fits, any command that
        // keeps the result a prefix of both reaches the longest.
        let mut w = CStruct::new();
        loop {
            let next = self.cmds.iter().find(|c| {
                if w.contains(c) || !other.contains(c) {
                    return false;
                }
                let mut t = w.clone();
                t.cmds.push((*c).clone());
                t.is_prefix_of(self, rel) && t.is_prefix_of(other, rel)
            });
            match next {
                Some(c) => w.cmds.push(c.clone()),
                None => return w,
            }
        }
    }

    /// The glb of several histories (`None` for none at all: the glb of nothing is the top).
    pub fn glb_all<'a>(
        mut hs: impl Iterator<Item = &'a CStruct>,
        rel: &dyn Relation,
    ) -> Option<CStruct> {
        let first = hs.next()?.clone();
        Some(hs.fold(first, |acc, h| acc.glb(h, rel)))
    }
}

impl fmt::Display for CStruct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.cmds.iter().map(|c| c.to_string()).collect();
        write!(f, "<{}>", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generalized::relation::{Keys, Op, Registers};
    use proptest::prelude::*;

    fn cmd(id: u64, op: Op) -> Command {
        Command {
            client: 1,
            seq: id,
            op,
        }
    }

    fn h(cmds: &[&Command]) -> CStruct {
        CStruct::from_commands(cmds.iter().map(|c| (*c).clone()))
    }

    #[test]
    fn the_seeds_example_permutation_is_the_same_history() {
        // <1:Read(A), 2:Read(B), 3:Write(B), 4:Read(B), 5:Read(A), 6:Write(A)> and the same
        // with 5:Read(A) moved before 3:Write(B).
        let c: Vec<Command> = [
            Op::read("A"),
            Op::read("B"),
            Op::write("B"),
            Op::read("B"),
            Op::read("A"),
            Op::write("A"),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, op)| cmd(i as u64 + 1, op))
        .collect();
        let a = h(&[&c[0], &c[1], &c[2], &c[3], &c[4], &c[5]]);
        assert!(!a.is_empty() && CStruct::new().is_empty());
        assert_eq!(a.len(), 6);
        let b = h(&[&c[0], &c[1], &c[4], &c[2], &c[3], &c[5]]);
        assert!(a.equivalent(&b, &Registers));
        // Swapping 3:Write(B) and 4:Read(B) is another history.
        let x = h(&[&c[0], &c[1], &c[3], &c[2], &c[4], &c[5]]);
        assert!(!a.equivalent(&x, &Registers));
        assert!(!a.compatible(&x, &Registers));
        // Their longest common prefix leaves out the two B commands they order differently,
        // and keeps 5:Read(A) and 6:Write(A), which conflict with neither.
        let g = a.glb(&x, &Registers);
        assert!(
            g.equivalent(&h(&[&c[0], &c[1], &c[4], &c[5]]), &Registers),
            "{g}"
        );
    }

    #[test]
    fn keys_conflict_on_the_same_key_even_for_two_reads() {
        let (r1, r2) = (cmd(1, Op::read("k")), cmd(2, Op::read("k")));
        let (a, b) = (h(&[&r1, &r2]), h(&[&r2, &r1]));
        assert!(a.equivalent(&b, &Registers));
        assert!(!a.compatible(&b, &Keys));
        let other = cmd(3, Op::write("j"));
        assert!(h(&[&r1, &other]).equivalent(&h(&[&other, &r1]), &Keys));
    }

    #[test]
    fn lub_puts_the_other_histories_extra_commands_after() {
        let (ra, wb, rb) = (
            cmd(1, Op::read("A")),
            cmd(2, Op::write("B")),
            cmd(3, Op::read("B")),
        );
        let u = h(&[&ra, &wb]);
        let v = h(&[&ra, &rb]);
        // Write(B) and Read(B) conflict: u then Read(B) extends u, but not v (there Read(B)
        // comes with nothing before it).
        assert_eq!(u.lub(&v, &Registers), None);
        let w = h(&[&ra]);
        let l = w.lub(&v, &Registers).expect("w is a prefix of v");
        assert!(l.equivalent(&v, &Registers));
    }

    fn pool() -> Vec<Command> {
        let ops = [Op::read("A"), Op::write("A"), Op::read("B"), Op::write("B")];
        (0..8)
            .map(|i| cmd(i, ops[i as usize % 4].clone()))
            .collect()
    }

    /// A random history: a random subset of the pool in a random order.
    fn history() -> impl Strategy<Value = CStruct> {
        (proptest::collection::vec(0usize..8, 0..8)).prop_map(|idx| {
            let p = pool();
            CStruct::from_commands(idx.into_iter().map(|i| p[i].clone()))
        })
    }

    proptest! {
        #[test]
        fn glb_is_a_common_prefix_and_symmetric(u in history(), v in history()) {
            for rel in [&Registers as &dyn Relation, &Keys] {
                let g = u.glb(&v, rel);
                prop_assert!(g.is_prefix_of(&u, rel));
                prop_assert!(g.is_prefix_of(&v, rel));
                prop_assert!(g.equivalent(&v.glb(&u, rel), rel));
                prop_assert!(u.glb(&u, rel).equivalent(&u, rel));
            }
        }

        #[test]
        fn lub_is_a_common_upper_bound_when_it_exists(u in history(), v in history()) {
            for rel in [&Registers as &dyn Relation, &Keys] {
                match (u.lub(&v, rel), v.lub(&u, rel)) {
                    (Some(a), Some(b)) => {
                        prop_assert!(u.is_prefix_of(&a, rel) && v.is_prefix_of(&a, rel));
                        prop_assert!(a.equivalent(&b, rel));
                        prop_assert!(u.glb(&v, rel).is_prefix_of(&a, rel));
                    }
                    (None, None) => prop_assert!(!u.compatible(&v, rel)),
                    _ => prop_assert!(false, "lub must not depend on the order"),
                }
            }
        }

        #[test]
        fn a_prefix_is_compatible_and_its_lub_and_glb_are_the_two_ends(
            u in history(), extra in proptest::collection::vec(0usize..8, 0..4)
        ) {
            let p = pool();
            let mut v = u.clone();
            for i in extra {
                v.append(p[i].clone());
            }
            for rel in [&Registers as &dyn Relation, &Keys] {
                prop_assert!(u.is_prefix_of(&v, rel));
                prop_assert!(u.lub(&v, rel).expect("compatible").equivalent(&v, rel));
                prop_assert!(u.glb(&v, rel).equivalent(&u, rel));
            }
        }

        #[test]
        fn swapping_adjacent_commuting_commands_keeps_the_history(u in history(), at in 0usize..8) {
            let rel = &Registers;
            let mut cmds = u.commands().to_vec();
            if at + 1 < cmds.len() && !rel.conflict(&cmds[at].op, &cmds[at + 1].op) {
                cmds.swap(at, at + 1);
                let v = CStruct::from_commands(cmds);
                prop_assert!(u.equivalent(&v, rel));
            }
        }
    }
}
