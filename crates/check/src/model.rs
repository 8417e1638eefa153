//! The sequential specification: one register per key.

use crate::history::Op;

/// Applies `op` to a register holding `state`. Returns the new state if the op's recorded
/// result is possible from `state`, or `None` if it is not. `known` is false for an operation
/// whose outcome is unknown: then any result is acceptable and only its effect matters.
pub fn step(state: &Option<String>, op: &Op, known: bool) -> Option<Option<String>> {
    match op {
        Op::Get { value } => (!known || value == state).then(|| state.clone()),
        Op::Put { value } => Some(Some(value.clone())),
        Op::Delete => Some(None),
        Op::Cas {
            expected,
            value,
            ok,
        } => {
            let matches = expected == state;
            if !known {
                Some(if matches {
                    Some(value.clone())
                } else {
                    state.clone()
                })
            } else if *ok && matches {
                Some(Some(value.clone()))
            } else if !*ok && !matches {
                Some(state.clone())
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn register_rules() {
        assert_eq!(
            step(&s("a"), &Op::Get { value: s("a") }, true),
            Some(s("a"))
        );
        assert_eq!(step(&s("a"), &Op::Get { value: s("b") }, true), None);
        assert_eq!(
            step(&None, &Op::Put { value: "x".into() }, true),
            Some(s("x"))
        );
        let cas = |e: Option<String>, ok| Op::Cas {
            expected: e,
            value: "n".into(),
            ok,
        };
        assert_eq!(step(&s("a"), &cas(s("a"), true), true), Some(s("n")));
        assert_eq!(step(&s("a"), &cas(s("a"), false), true), None);
        assert_eq!(step(&s("a"), &cas(s("b"), false), true), Some(s("a")));
        assert_eq!(step(&None, &cas(None, true), true), Some(s("n")));
        assert_eq!(
            step(&s("a"), &cas(s("a"), false), false),
            Some(s("n")),
            "unknown: takes effect if it can"
        );
    }
}
