//! Histories known to be linearizable and known not to be.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use synod_check::*;

fn op(client: u64, key: &str, op: Op, call: u64, ret: u64) -> Entry {
    Entry {
        client,
        key: key.into(),
        op,
        call,
        ret: Some(ret),
        outcome: Outcome::Ok,
    }
}
fn put(c: u64, v: &str, call: u64, ret: u64) -> Entry {
    op(c, "k", Op::Put { value: v.into() }, call, ret)
}
fn get(c: u64, v: Option<&str>, call: u64, ret: u64) -> Entry {
    op(
        c,
        "k",
        Op::Get {
            value: v.map(Into::into),
        },
        call,
        ret,
    )
}
fn cas(c: u64, e: Option<&str>, v: &str, ok: bool, call: u64, ret: u64) -> Entry {
    op(
        c,
        "k",
        Op::Cas {
            expected: e.map(Into::into),
            value: v.into(),
            ok,
        },
        call,
        ret,
    )
}
fn unknown(mut e: Entry) -> Entry {
    e.outcome = Outcome::Unknown;
    e.ret = None;
    e
}
fn ok(h: &[Entry]) -> bool {
    check(h, DEFAULT_BUDGET).is_linearizable()
}

#[test]
fn sequential_and_concurrent_histories_that_are_fine() {
    assert!(ok(&[put(1, "a", 0, 10), get(2, Some("a"), 20, 30)]));
    assert!(ok(&[get(1, None, 0, 5)]));
    // Concurrent put and get: the read may see either value.
    assert!(ok(&[
        put(1, "a", 0, 10),
        put(2, "b", 5, 20),
        get(3, Some("a"), 12, 25)
    ]));
    assert!(ok(&[
        put(1, "a", 0, 10),
        put(2, "b", 5, 20),
        get(3, Some("b"), 12, 25)
    ]));
    // Touching intervals are concurrent.
    assert!(ok(&[put(1, "a", 0, 10), get(2, None, 10, 12)]));
}

#[test]
fn stale_read_is_caught() {
    let h = [
        put(1, "a", 0, 10),
        put(1, "b", 20, 30),
        get(2, Some("a"), 40, 50),
    ];
    let v = check(&h, DEFAULT_BUDGET);
    match &v {
        Verdict::NotLinearizable(a) => {
            assert_eq!(a.key, "k");
            assert_eq!(
                a.stuck.op,
                Op::Get {
                    value: Some("a".into())
                }
            );
        }
        other => panic!("{other:?}"),
    }
    let text = v.to_string();
    assert!(
        text.contains("NOT linearizable") && text.contains("get -> a"),
        "{text}"
    );
}

#[test]
fn lost_write_is_caught() {
    // An acknowledged write that a later read does not see.
    assert!(!ok(&[put(1, "a", 0, 10), get(2, None, 20, 30)]));
}

#[test]
fn double_successful_cas_is_caught() {
    let h = [
        put(1, "a", 0, 10),
        cas(2, Some("a"), "b", true, 20, 40),
        cas(3, Some("a"), "c", true, 25, 45),
    ];
    assert!(!ok(&h));
    let h = [
        put(1, "a", 0, 10),
        cas(2, Some("a"), "b", true, 20, 40),
        cas(3, Some("a"), "c", false, 25, 45),
    ];
    assert!(ok(&h));
}

#[test]
fn read_of_a_value_never_written_is_caught() {
    assert!(!ok(&[put(1, "a", 0, 10), get(2, Some("zzz"), 5, 15)]));
}

#[test]
fn unknown_writes_may_or_may_not_have_happened() {
    let w = unknown(put(1, "x", 0, 0));
    assert!(
        ok(&[w.clone(), get(2, Some("x"), 100, 110)]),
        "it took effect"
    );
    assert!(ok(&[w.clone(), get(2, None, 100, 110)]), "it did not");
    // But it cannot take effect before it was invoked.
    let late = unknown(put(1, "x", 50, 0));
    assert!(!ok(&[late, get(2, Some("x"), 10, 20)]));
    // Failed operations are ignored.
    let mut failed = put(1, "y", 0, 5);
    failed.outcome = Outcome::Fail;
    assert!(ok(&[failed, get(2, None, 10, 20)]));
}

#[test]
fn keys_are_checked_independently() {
    let mut other = get(2, Some("a"), 20, 30);
    other.key = "other".into();
    assert!(!ok(&[put(1, "a", 0, 10), other]));
}

/// A real atomic register with random overlapping operations: always linearizable. Each op
/// takes effect at a random instant inside its interval.
fn random_history(seed: u64, clients: u64, per_client: usize) -> Vec<Entry> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    struct Pending {
        client: u64,
        call: u64,
        at: u64,
        ret: u64,
        kind: u8,
        n: usize,
    }
    let mut plan = Vec::new();
    for c in 0..clients {
        let mut t = rng.gen_range(0..10);
        for n in 0..per_client {
            let call = t;
            let at = call + rng.gen_range(0..20);
            let ret = at + rng.gen_range(0..20);
            plan.push(Pending {
                client: c,
                call,
                at,
                ret,
                kind: rng.gen_range(0..3),
                n,
            });
            t = ret + rng.gen_range(1..10);
        }
    }
    plan.sort_by_key(|p| (p.at, p.client));
    let mut reg: Option<String> = None;
    let mut out = Vec::new();
    for p in plan {
        let fresh = format!("c{}-{}", p.client, p.n);
        let o = match p.kind {
            0 => Op::Get { value: reg.clone() },
            1 => {
                reg = Some(fresh.clone());
                Op::Put { value: fresh }
            }
            _ => {
                let expected = if rng.gen_bool(0.5) {
                    reg.clone()
                } else {
                    Some("nope".into())
                };
                let ok = expected == reg;
                if ok {
                    reg = Some(fresh.clone());
                }
                Op::Cas {
                    expected,
                    value: fresh,
                    ok,
                }
            }
        };
        out.push(op(p.client, "k", o, p.call, p.ret));
    }
    out
}

#[test]
fn random_register_histories_pass_and_a_stale_read_in_them_fails() {
    for seed in 0..30 {
        let h = random_history(seed, 6, 60);
        assert!(
            ok(&h),
            "seed {seed}: a real register's history was rejected"
        );
        // Find puts W1, W2 and a read R with W1 over before W2 began and W2 over before R
        // began: W2 certainly overwrote W1, so R reading W1's value is stale.
        let mut bad = h.clone();
        let puts: Vec<(u64, u64, String)> = bad
            .iter()
            .filter_map(|e| match &e.op {
                Op::Put { value } => Some((e.call, e.ret.unwrap(), value.clone())),
                _ => None,
            })
            .collect();
        let found = bad.iter().enumerate().find_map(|(i, r)| {
            if !matches!(r.op, Op::Get { .. }) {
                return None;
            }
            puts.iter().find_map(|w1| {
                puts.iter()
                    .any(|w2| w1.1 < w2.0 && w2.1 < r.call)
                    .then(|| (i, w1.2.clone()))
            })
        });
        let Some((i, stale)) = found else { continue };
        bad[i].op = Op::Get { value: Some(stale) };
        assert!(!ok(&bad), "seed {seed}: stale read at op {i} not caught");
    }
}

#[test]
fn a_large_history_is_checked_in_reasonable_time() {
    let h = random_history(99, 10, 2_000);
    assert_eq!(h.len(), 20_000);
    let t = std::time::Instant::now();
    let v = check(&h, DEFAULT_BUDGET);
    assert!(v.is_linearizable(), "{v}");
    println!("20,000 operations checked in {:?}", t.elapsed());
}

#[test]
fn json_lines_round_trip_and_errors_name_the_line() {
    let text = r#"{"client":1,"key":"k","op":"put","value":"v1","call":100,"ret":180,"outcome":"ok"}
{"client":2,"key":"k","op":"get","value":"v1","call":150,"ret":190,"outcome":"ok"}

{"client":3,"key":"k","op":"cas","expected":null,"value":"v2","ok":false,"call":210,"ret":260,"outcome":"ok"}
{"client":1,"key":"k","op":"delete","call":300,"outcome":"unknown"}
"#;
    let h = read_history(text.as_bytes()).unwrap();
    assert_eq!(h.len(), 4);
    assert!(ok(&h));
    let err = read_history("{\"client\":1}\n".as_bytes()).unwrap_err();
    assert!(err.to_string().starts_with("line 1:"), "{err}");
    let err = read_history(
        r#"{"client":1,"key":"k","op":"get","value":null,"call":10,"ret":5,"outcome":"ok"}"#
            .as_bytes(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("before call"), "{err}");
}
