//! Small histories known to be linearizable and known not to be.

mod common;

use common::*;
use synod_check::*;

fn ok(h: &[Entry]) -> bool {
    let v = check(h, DEFAULT_BUDGET);
    assert!(!matches!(v, Verdict::Unknown { .. }), "{v}");
    assert_eq!(
        v.is_linearizable(),
        brute_force(h),
        "disagrees with brute force"
    );
    v.is_linearizable()
}

fn anomaly(h: &[Entry]) -> Anomaly {
    match check(h, DEFAULT_BUDGET) {
        Verdict::NotLinearizable(a) => *a,
        other => panic!("expected an anomaly, got {other}"),
    }
}

#[test]
fn empty_and_sequential_histories_are_fine() {
    assert!(ok(&[]));
    assert!(ok(&[get(1, None, 0, 5)]));
    assert!(ok(&[put(1, "a", 0, 10), get(2, Some("a"), 20, 30)]));
    assert!(ok(&[
        put(1, "a", 0, 10),
        del(2, 20, 30),
        get(1, None, 40, 50),
        cas(1, None, "b", true, 60, 70),
        cas(2, Some("a"), "c", false, 80, 90),
        get(2, Some("b"), 100, 110),
    ]));
}

#[test]
fn concurrent_operations_may_go_in_either_order() {
    for seen in ["a", "b"] {
        assert!(ok(&[
            put(1, "a", 0, 10),
            put(2, "b", 5, 20),
            get(3, Some(seen), 12, 25)
        ]));
    }
    // A read overlapping a write may see the old or the new value...
    assert!(ok(&[put(1, "a", 0, 100), get(2, None, 10, 20)]));
    assert!(ok(&[put(1, "a", 0, 100), get(2, Some("a"), 10, 20)]));
    // ...but not new then old.
    assert!(!ok(&[
        put(1, "a", 0, 100),
        get(2, Some("a"), 10, 20),
        get(2, None, 30, 40)
    ]));
    // Touching intervals are concurrent.
    assert!(ok(&[put(1, "a", 0, 10), get(2, None, 10, 12)]));
}

#[test]
fn stale_read_is_caught_and_shown() {
    let h = [
        put(1, "a", 0, 10),
        put(1, "b", 20, 30),
        get(2, Some("a"), 40, 50),
        put(3, "c", 45, 60),
    ];
    assert!(!ok(&h));
    let a = anomaly(&h);
    assert_eq!(a.key, "k");
    assert_eq!(a.stuck, h[2]);
    assert_eq!(a.prefix, 2);
    assert_eq!(a.value, Held::Value("b".into()), "the key held b");
    assert_eq!(a.since, None);
    let order: Vec<&Entry> = a.tail.iter().map(|l| &l.entry).collect();
    assert_eq!(order, [&h[0], &h[1]]);
    assert_eq!(
        a.pending,
        [h[3].clone()],
        "the concurrent put is a candidate"
    );
    let text = a.to_string();
    for needle in [
        "NOT linearizable",
        "get = a",
        "put b",
        ">>>",
        "leaving the key at b",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from\n{text}");
    }
    let svg = a.to_svg();
    assert!(svg.starts_with("<svg") && svg.contains("get = a") && svg.contains("#f4a4a4"));
}

#[test]
fn lost_write_is_caught() {
    // An acknowledged write that a later read does not see.
    assert!(!ok(&[put(1, "a", 0, 10), get(2, None, 20, 30)]));
    let h = [
        put(1, "a", 0, 10),
        put(2, "b", 20, 30),
        get(3, Some("a"), 15, 40),
        get(3, Some("a"), 50, 60),
    ];
    assert!(!ok(&h));
    assert_eq!(anomaly(&h).stuck, h[3]);
}

#[test]
fn double_successful_cas_is_caught() {
    let h = [
        put(1, "a", 0, 10),
        cas(2, Some("a"), "b", true, 20, 40),
        cas(3, Some("a"), "c", true, 25, 45),
    ];
    assert!(!ok(&h));
    assert!(matches!(anomaly(&h).stuck.op, Op::Cas { .. }));
    let mut fine = h.clone();
    fine[2] = cas(3, Some("a"), "c", false, 25, 45);
    assert!(ok(&fine));
    // A failed CAS that should have succeeded.
    assert!(!ok(&[
        put(1, "a", 0, 10),
        cas(2, Some("a"), "b", false, 20, 30)
    ]));
}

#[test]
fn read_of_a_value_never_written_is_caught() {
    let h = [put(1, "a", 0, 10), get(2, Some("zzz"), 5, 15)];
    assert!(!ok(&h));
    assert_eq!(anomaly(&h).stuck, h[1]);
}

#[test]
fn unknown_writes_may_or_may_not_have_happened() {
    let w = unknown(put(1, "x", 0, 0));
    assert!(
        ok(&[w.clone(), get(2, Some("x"), 100, 110)]),
        "it took effect"
    );
    assert!(ok(&[w.clone(), get(2, None, 100, 110)]), "it did not");
    assert!(
        ok(&[
            w.clone(),
            get(2, None, 100, 110),
            get(2, Some("x"), 120, 130)
        ]),
        "it took effect late"
    );
    assert!(
        !ok(&[
            w.clone(),
            get(2, Some("x"), 100, 110),
            get(2, None, 120, 130)
        ]),
        "once seen, it stays"
    );
    // It cannot take effect before it was invoked.
    let late = unknown(put(1, "x", 50, 0));
    let h = [late, get(2, Some("x"), 10, 20)];
    assert!(!ok(&h));
    assert_eq!(anomaly(&h).stuck, h[1]);
    // An unknown CAS takes effect only if it matches.
    let c = unknown(cas(1, Some("a"), "b", false, 20, 0));
    assert!(ok(&[
        put(2, "a", 0, 10),
        c.clone(),
        get(3, Some("b"), 30, 40)
    ]));
    assert!(!ok(&[put(2, "z", 0, 10), c, get(3, Some("b"), 30, 40)]));
    // An unknown delete.
    let d = unknown(del(1, 20, 0));
    assert!(ok(&[put(2, "a", 0, 10), d.clone(), get(3, None, 30, 40)]));
    assert!(ok(&[put(2, "a", 0, 10), d, get(3, Some("a"), 30, 40)]));
}

#[test]
fn an_unknown_write_seen_must_precede_the_first_read_that_saw_it() {
    let h = [
        unknown(put(1, "x", 0, 0)),
        put(2, "y", 5, 15),
        get(3, Some("x"), 20, 30), // x after y
        get(3, Some("y"), 40, 50), // y again: x must have gone first, contradiction
    ];
    assert!(!ok(&h));
    let a = anomaly(&h);
    assert_eq!(a.stuck, h[3]);
}

#[test]
fn failed_operations_and_unknown_reads_are_skipped() {
    let mut failed = put(1, "y", 0, 5);
    failed.outcome = Outcome::Fail;
    assert!(ok(&[failed, get(2, None, 10, 20)]));
    let lost_read = unknown(get(1, Some("nonsense"), 0, 0));
    let v = check(&[lost_read, put(2, "a", 0, 5)], DEFAULT_BUDGET);
    assert_eq!(v, Verdict::Linearizable { ops: 1, keys: 1 });
}

#[test]
fn keys_are_checked_independently() {
    let h = [put(1, "a", 0, 10), on("other", get(2, Some("a"), 20, 30))];
    assert!(!ok(&h));
    assert_eq!(anomaly(&h).key, "other");
    let h = [put(1, "a", 0, 10), on("other", get(2, None, 20, 30))];
    assert_eq!(
        check(&h, DEFAULT_BUDGET),
        Verdict::Linearizable { ops: 2, keys: 2 }
    );
}

#[test]
fn malformed_entries_are_read_leniently() {
    // ret before call: taken as the wider interval [5, 10].
    let h = [put(1, "a", 10, 5), get(2, None, 6, 7)];
    assert!(check(&h, DEFAULT_BUDGET).is_linearizable());
    assert!(h[0].problem().unwrap().contains("before call"));
    // Ok without ret: taken as unknown.
    let mut e = put(1, "a", 0, 5);
    e.ret = None;
    assert!(check(&[e.clone(), get(2, Some("a"), 50, 60)], DEFAULT_BUDGET).is_linearizable());
    assert!(check(&[e, get(2, None, 50, 60)], DEFAULT_BUDGET).is_linearizable());
}

#[test]
fn limits_give_unknown_instead_of_hanging() {
    let h: Vec<Entry> = (0..200).map(|i| put(i, &i.to_string(), i, i + 5)).collect();
    assert_eq!(
        check(&h, 10),
        Verdict::Unknown {
            key: "k".into(),
            reason: Inconclusive::Steps
        }
    );
    // A busy history with many timeouts: linearizable, but not quickly shown to be.
    let shape = Shape {
        clients: 20,
        per_client: 500,
        keys: 1,
        unknown: 0.2,
        max_latency: 40,
    };
    let h = register_history(7, shape);
    let opts = Options {
        time_limit: Some(std::time::Duration::from_millis(50)),
        ..Options::default()
    };
    let t = std::time::Instant::now();
    let v = check_with(&h, &opts);
    assert!(t.elapsed().as_secs() < 5);
    assert_eq!(
        v,
        Verdict::Unknown {
            key: "k0".into(),
            reason: Inconclusive::Time
        }
    );
    let opts = Options {
        max_memory: 1 << 20,
        ..Options::default()
    };
    let v = check_with(&h, &opts);
    assert!(
        matches!(
            v,
            Verdict::Unknown {
                reason: Inconclusive::Memory,
                ..
            }
        ),
        "{v}"
    );
    assert!(v.to_string().contains("memory"), "{v}");
}
