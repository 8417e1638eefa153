//! A snapshot can come from a peer (a leader installs one on a follower that fell behind), so
//! the store treats its bytes as input: damaged or made-up bytes are refused with an error,
//! never a panic or an abort, and what it does accept is a store that works.

use proptest::prelude::*;
use synod_core::multi::StateMachine;
use synod_kv::*;

/// A store with something of everything a snapshot carries: keys with histories, deletions, a
/// compaction, a lease with a key attached, users and roles, and an alarm.
fn sample() -> Vec<u8> {
    sample_store().snapshot()
}

/// The sample as a snapshot in layers: its store encoded whole, then a layer of later writes
/// (a put under the lease, a deletion, a new key, another alarm) laid on it.
fn layered_sample() -> Vec<u8> {
    let mut s = sample_store();
    let base = s.snapshot_later().to_vec_after(&s.snapshot(), &mut |_| {});
    for (key, lease) in [("key-1", 7), ("fresh", 0)] {
        s.put(&PutRequest {
            key: key.into(),
            value: b"later".to_vec().into(),
            lease,
            ..Default::default()
        })
        .unwrap();
    }
    s.delete_range(&DeleteRangeRequest {
        key: b"key-2".to_vec(),
        ..Default::default()
    })
    .unwrap();
    let alarm = s.apply(&KvCommand::Alarm(AlarmCommand::Activate(Alarm {
        member: 3,
        kind: AlarmKind::Corrupt,
    })));
    assert!(alarm.result.is_ok(), "{alarm:?}");
    let layered = s.snapshot_later().to_vec_after(&base, &mut |_| {});
    assert!(
        layered.starts_with(&base),
        "a layer laid on the whole snapshot"
    );
    assert_eq!(Store::restore(&layered).unwrap(), s);
    layered
}

fn sample_store() -> Store {
    let mut s = Store::new();
    let grant = s.apply(&KvCommand::LeaseGrant { id: 7, ttl: 60 });
    assert!(grant.result.is_ok(), "{grant:?}");
    for i in 0..40u32 {
        let put = PutRequest {
            key: format!("key-{}", i % 13).into_bytes(),
            value: vec![i as u8; (i % 9) as usize].into(),
            lease: if i % 5 == 0 { 7 } else { 0 },
            ..Default::default()
        };
        s.put(&put).unwrap();
        if i % 11 == 0 {
            s.delete_range(&DeleteRangeRequest {
                key: format!("key-{}", i % 13).into_bytes(),
                ..Default::default()
            })
            .unwrap();
        }
    }
    s.compact(&CompactionRequest { revision: 10 }).unwrap();
    for cmd in [
        AuthCommand::UserAdd {
            name: "ann".into(),
            password_hash: Some("not-a-real-hash".into()),
        },
        AuthCommand::RoleAdd { name: "r".into() },
    ] {
        let out = s.apply(&KvCommand::Auth(cmd));
        assert!(out.result.is_ok(), "{out:?}");
    }
    let alarm = s.apply(&KvCommand::Alarm(AlarmCommand::Activate(Alarm {
        member: 2,
        kind: AlarmKind::NoSpace,
    })));
    assert!(alarm.result.is_ok(), "{alarm:?}");
    s
}

/// One change to a snapshot's bytes.
#[derive(Clone, Debug)]
enum Damage {
    /// A byte set to a value (0x80 and up make varints run on, 0xFF claims huge lengths).
    Set(usize, u8),
    /// Cut at a point.
    Truncate(usize),
    /// Bytes put in at a point.
    Insert(usize, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Damage::Set(at, b)),
        (
            any::<usize>(),
            prop_oneof![Just(0xFFu8), Just(0x80), Just(0x7F)]
        )
            .prop_map(|(at, b)| Damage::Set(at, b)),
        any::<usize>().prop_map(Damage::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..12))
            .prop_map(|(at, b)| Damage::Insert(at, b)),
    ]
}

fn apply(bytes: &mut Vec<u8>, d: &Damage) {
    let len = bytes.len().max(1);
    match d {
        Damage::Set(at, b) => {
            if let Some(x) = bytes.get_mut(at % len) {
                *x = *b;
            }
        }
        Damage::Truncate(at) => bytes.truncate(at % len),
        Damage::Insert(at, more) => {
            let at = (at % len).min(bytes.len());
            bytes.splice(at..at, more.iter().copied());
        }
    }
}

/// A store that was accepted must answer, take writes, and snapshot and restore to itself.
fn works(mut s: Store) {
    let all = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    };
    let _ = s.range(&all);
    let _ = s.put(&PutRequest {
        key: b"after".to_vec(),
        value: b"v".to_vec().into(),
        ..Default::default()
    });
    let bytes = s.snapshot();
    let again = Store::restore(&bytes).expect("a store's own snapshot restores");
    assert_eq!(again.snapshot(), bytes);
}

#[test]
fn the_samples_restore_and_work() {
    works(Store::restore(&sample()).unwrap());
    works(Store::restore(&layered_sample()).unwrap());
}

proptest! {
    // A fixed seed: the same cases on every run (a failure prints its input to replay).
    #![proptest_config(ProptestConfig {
        cases: 2_000,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5EED_0002),
        ..ProptestConfig::default()
    })]

    #[test]
    fn damaged_snapshots_are_refused_or_work(damages in prop::collection::vec(damage(), 1..4)) {
        let mut bytes = sample();
        for d in &damages {
            apply(&mut bytes, d);
        }
        if let Ok(s) = Store::restore(&bytes) {
            works(s);
        }
    }

    #[test]
    fn damaged_layered_snapshots_are_refused_or_work(damages in prop::collection::vec(damage(), 1..4)) {
        let mut bytes = layered_sample();
        for d in &damages {
            apply(&mut bytes, d);
        }
        if let Ok(s) = Store::restore(&bytes) {
            works(s);
        }
    }

    #[test]
    fn made_up_snapshots_are_refused_or_work(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(s) = Store::restore(&bytes) {
            works(s);
        }
    }
}
