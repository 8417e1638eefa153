//! The sequential specification: one register per key.
//!
//! Values are interned as small integers so that a search step, done millions of times,
//! compares numbers instead of strings and never allocates.

use crate::history::Op;
use std::collections::HashMap;

/// A register's content: [`ABSENT`] or an interned value.
pub(crate) type State = u32;

/// The content of a key that does not exist (also the initial state).
pub(crate) const ABSENT: State = 0;

/// Some value not yet known: the start of a window cut out of the middle of a history (see
/// `local.rs`). A read from it learns the value; anything else keeps it unknown, which allows
/// more than the truth ever could, so a window that fails from here fails from any start.
pub(crate) const ANY: State = State::MAX - 1;

/// An operation on interned values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Action {
    /// A read that returned this.
    Get(State),
    /// A blind write (a delete writes [`ABSENT`]).
    Put(State),
    /// A compare-and-set and whether the client was told it took effect.
    Cas {
        expected: State,
        new: State,
        ok: bool,
    },
}

impl Action {
    /// The register after this operation, if its recorded result is possible from `s`.
    /// `known` is false for an operation whose outcome is unknown: then any result is
    /// acceptable and only its effect matters.
    pub(crate) fn step(self, s: State, known: bool) -> Option<State> {
        if s == ANY {
            return Some(match self {
                Action::Get(v) if known => v,
                Action::Put(v) => v,
                Action::Cas { new, ok: true, .. } if known => new,
                _ => ANY,
            });
        }
        match self {
            Action::Get(v) => (!known || v == s).then_some(s),
            Action::Put(v) => Some(v),
            // An unknown CAS that would match takes effect here; "it matched but did not take
            // effect" needs no branch of its own, because it looks the same as the CAS taking
            // effect never, which the search already tries.
            Action::Cas { expected, new, .. } if !known => {
                Some(if expected == s { new } else { s })
            }
            Action::Cas { expected, new, ok } => match (ok, expected == s) {
                (true, true) => Some(new),
                (false, false) => Some(s),
                _ => None,
            },
        }
    }

    /// Whether the operation, wherever its recorded result fits, leaves the register as it
    /// is: a read, or a CAS the client was told failed.
    pub(crate) fn is_read(self) -> bool {
        matches!(self, Action::Get(_) | Action::Cas { ok: false, .. })
    }

    /// The value the register must hold for this operation's recorded result, if any (when
    /// the operation's outcome is known).
    pub(crate) fn needs(self) -> Option<State> {
        match self {
            Action::Get(v)
            | Action::Cas {
                expected: v,
                ok: true,
                ..
            } => Some(v),
            _ => None,
        }
    }

    /// The value this operation writes if it takes effect.
    pub(crate) fn writes(self) -> Option<State> {
        match self {
            Action::Get(_) => None,
            Action::Put(v) | Action::Cas { new: v, .. } => Some(v),
        }
    }
}

/// Interns one key's values.
#[derive(Default)]
pub(crate) struct Values<'a> {
    ids: HashMap<&'a str, State>,
}

impl<'a> Values<'a> {
    fn id(&mut self, v: Option<&'a str>) -> State {
        let Some(v) = v else { return ABSENT };
        let next = self.ids.len() as State + 1;
        *self.ids.entry(v).or_insert(next)
    }

    /// The interned form of `op`.
    pub(crate) fn action(&mut self, op: &'a Op) -> Action {
        match op {
            Op::Get { value } => Action::Get(self.id(value.as_deref())),
            Op::Put { value } => Action::Put(self.id(Some(value))),
            Op::Delete => Action::Put(ABSENT),
            Op::Cas {
                expected,
                value,
                ok,
            } => Action::Cas {
                expected: self.id(expected.as_deref()),
                new: self.id(Some(value)),
                ok: *ok,
            },
        }
    }

    /// How many distinct values were interned.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_rules() {
        let (a, b, n) = (1, 2, 3);
        assert_eq!(Action::Get(a).step(a, true), Some(a));
        assert_eq!(Action::Get(b).step(a, true), None);
        assert_eq!(Action::Get(b).step(a, false), Some(a));
        assert_eq!(Action::Put(a).step(ABSENT, true), Some(a));
        let cas = |expected, ok| Action::Cas {
            expected,
            new: n,
            ok,
        };
        assert_eq!(cas(a, true).step(a, true), Some(n));
        assert_eq!(cas(a, false).step(a, true), None);
        assert_eq!(cas(b, true).step(a, true), None);
        assert_eq!(cas(b, false).step(a, true), Some(a));
        assert_eq!(cas(ABSENT, true).step(ABSENT, true), Some(n));
        assert_eq!(
            cas(a, false).step(a, false),
            Some(n),
            "unknown: takes effect"
        );
        assert_eq!(cas(b, false).step(a, false), Some(a), "unknown: no match");
        assert_eq!(Action::Get(a).step(ANY, true), Some(a), "a read learns");
        assert_eq!(cas(a, true).step(ANY, true), Some(n));
        assert_eq!(cas(a, false).step(ANY, true), Some(ANY));
        assert_eq!(cas(a, false).step(ANY, false), Some(ANY));
    }

    #[test]
    fn values_intern_and_name() {
        let ops = [
            Op::Put { value: "x".into() },
            Op::Get { value: None },
            Op::Delete,
            Op::Cas {
                expected: Some("x".into()),
                value: "y".into(),
                ok: true,
            },
        ];
        let mut v = Values::default();
        let acts: Vec<Action> = ops.iter().map(|o| v.action(o)).collect();
        assert_eq!(acts[0], Action::Put(1));
        assert_eq!(acts[1], Action::Get(ABSENT));
        assert_eq!(acts[2], Action::Put(ABSENT));
        assert_eq!(
            acts[3],
            Action::Cas {
                expected: 1,
                new: 2,
                ok: true
            }
        );
        assert_eq!(v.len(), 2);
    }
}
