//! The checker agrees with brute force on small random histories, linearizable or not.

mod common;

use common::*;
use proptest::prelude::*;
use synod_check::*;

fn value() -> impl Strategy<Value = Option<String>> {
    // Few values, so that writes repeat them and reads often match by chance.
    prop::option::weighted(
        0.8,
        prop::sample::select(vec!["a", "b", "c"]).prop_map(String::from),
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        value().prop_map(|value| Op::Get { value }),
        value().prop_map(|v| Op::Put {
            value: v.unwrap_or_else(|| "a".into())
        }),
        Just(Op::Delete),
        (value(), value(), any::<bool>()).prop_map(|(expected, v, ok)| Op::Cas {
            expected,
            value: v.unwrap_or_else(|| "b".into()),
            ok,
        }),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        0..4u64,
        prop::sample::select(vec!["x", "y"]),
        op(),
        0..30u64,
        0..15u64,
        prop::sample::select(vec![
            Outcome::Ok,
            Outcome::Ok,
            Outcome::Ok,
            Outcome::Unknown,
            Outcome::Fail,
        ]),
    )
        .prop_map(|(client, key, op, call, len, outcome)| Entry {
            client,
            key: key.into(),
            op,
            call,
            ret: (outcome != Outcome::Unknown).then_some(call + len),
            outcome,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn agrees_with_brute_force(h in prop::collection::vec(entry(), 0..11)) {
        let v = check(&h, DEFAULT_BUDGET);
        prop_assert!(!matches!(v, Verdict::Unknown { .. }), "{}", v);
        prop_assert_eq!(v.is_linearizable(), brute_force(&h), "{}", v);
        if let Verdict::NotLinearizable(a) = &v {
            // The report is about the history, and renders.
            prop_assert!(h.contains(&a.stuck));
            prop_assert!(!a.to_string().is_empty() && a.to_svg().ends_with("</svg>\n"));
        }
    }

    #[test]
    fn a_register_is_linearizable(seed in any::<u64>(), clients in 1..6u64, unknown in 0.0..0.5f64) {
        let shape = Shape { clients, per_client: 12, keys: 2, unknown, max_latency: 20 };
        let h = register_history(seed, shape);
        let v = check(&h, DEFAULT_BUDGET);
        prop_assert!(v.is_linearizable(), "seed {}: {}", seed, v);
    }
}
