//! Commands and the commutativity relations that say which of them conflict.

use crate::ballot::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a command does: read or write one register (or key).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Op {
    /// Reads the named register.
    Read(String),
    /// Writes the named register.
    Write(String),
}

impl Op {
    /// `Read(name)`.
    pub fn read(name: &str) -> Op {
        Op::Read(name.to_string())
    }

    /// `Write(name)`.
    pub fn write(name: &str) -> Op {
        Op::Write(name.to_string())
    }

    /// The register it touches.
    pub fn key(&self) -> &str {
        match self {
            Op::Read(k) | Op::Write(k) => k,
        }
    }
}

/// A command: unique by its client and sequence number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Command {
    /// The client that issued it.
    pub client: NodeId,
    /// The client's sequence number.
    pub seq: u64,
    /// What it does.
    pub op: Op,
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.op {
            Op::Read(k) => write!(f, "Read{k}"),
            Op::Write(k) => write!(f, "Write{k}"),
        }
    }
}

/// Which commands conflict: two that conflict must be ordered alike everywhere; two that do
/// not commute and may be learned in either order. Must be symmetric.
pub trait Relation: fmt::Debug + Send + Sync {
    /// True when `a` and `b` do not commute.
    fn conflict(&self, a: &Op, b: &Op) -> bool;
}

/// The seed's table over registers: reads commute with reads; a write conflicts with every
/// operation on its register; operations on different registers commute.
#[derive(Clone, Copy, Debug, Default)]
pub struct Registers;

impl Relation for Registers {
    fn conflict(&self, a: &Op, b: &Op) -> bool {
        a.key() == b.key() && (matches!(a, Op::Write(_)) || matches!(b, Op::Write(_)))
    }
}

/// Key-value commands: two commute exactly when their keys differ.
#[derive(Clone, Copy, Debug, Default)]
pub struct Keys;

impl Relation for Keys {
    fn conflict(&self, a: &Op, b: &Op) -> bool {
        a.key() == b.key()
    }
}

/// The planted bug: the register table with a read and a write of one register said to commute.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadsCommuteWithWrites;

impl Relation for ReadsCommuteWithWrites {
    fn conflict(&self, a: &Op, b: &Op) -> bool {
        a.key() == b.key() && matches!((a, b), (Op::Write(_), Op::Write(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_table() {
        let ops = [Op::read("A"), Op::write("A"), Op::read("B"), Op::write("B")];
        // Rows and columns: Read(A), Write(A), Read(B), Write(B); true = does not commute.
        let want = [
            [false, true, false, false],
            [true, true, false, false],
            [false, false, false, true],
            [false, false, true, true],
        ];
        for (i, a) in ops.iter().enumerate() {
            for (j, b) in ops.iter().enumerate() {
                assert_eq!(Registers.conflict(a, b), want[i][j], "{a:?} {b:?}");
                assert_eq!(Keys.conflict(a, b), a.key() == b.key());
                assert_eq!(Registers.conflict(a, b), Registers.conflict(b, a));
            }
        }
        assert!(!ReadsCommuteWithWrites.conflict(&ops[0], &ops[1]));
    }
}
