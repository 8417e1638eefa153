//! Leases as replicated state, and the change feed watchers replay.

use proptest::prelude::*;
use std::collections::BTreeMap;
use synod_core::multi::StateMachine;
use synod_kv::*;

fn put_lease(s: &mut Store, k: &str, v: &str, lease: i64) -> Result<PutResponse, KvError> {
    s.put(&PutRequest {
        key: k.into(),
        value: v.to_string().into(),
        lease,
        ..Default::default()
    })
}

fn keys_of(s: &Store, id: i64) -> Vec<String> {
    s.lease(id)
        .map(|l| {
            l.keys
                .iter()
                .map(|k| String::from_utf8_lossy(k).into())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn keys_attach_move_and_detach() {
    let mut s = Store::new();
    s.lease_grant(7, 10).unwrap();
    s.lease_grant(8, 10).unwrap();
    assert_eq!(s.lease_grant(7, 5), Err(KvError::LeaseExists));
    assert_eq!(put_lease(&mut s, "a", "1", 9), Err(KvError::LeaseNotFound));
    put_lease(&mut s, "a", "1", 7).unwrap();
    put_lease(&mut s, "b", "1", 7).unwrap();
    assert_eq!(keys_of(&s, 7), ["a", "b"]);
    // Rewriting with another lease moves the key; without one detaches it.
    put_lease(&mut s, "a", "2", 8).unwrap();
    put_lease(&mut s, "b", "2", 0).unwrap();
    assert_eq!(keys_of(&s, 7), Vec::<String>::new());
    assert_eq!(keys_of(&s, 8), ["a"]);
    // ignore_lease keeps the attachment.
    s.put(&PutRequest {
        key: "a".into(),
        value: "3".into(),
        ignore_lease: true,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.get(b"a").unwrap().lease, 8);
    s.delete_range(&DeleteRangeRequest {
        key: "a".into(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(keys_of(&s, 8), Vec::<String>::new());
}

#[test]
fn a_failed_transaction_attaches_nothing() {
    let mut s = Store::new();
    s.lease_grant(7, 10).unwrap();
    let t = TxnRequest {
        compare: vec![],
        success: vec![
            RequestOp::Put(PutRequest {
                key: "a".into(),
                value: "1".into(),
                lease: 7,
                ..Default::default()
            }),
            RequestOp::Put(PutRequest {
                key: "b".into(),
                value: "1".into(),
                lease: 99,
                ..Default::default()
            }),
        ],
        failure: vec![],
    };
    assert_eq!(s.txn(&t), Err(KvError::LeaseNotFound));
    assert_eq!(keys_of(&s, 7), Vec::<String>::new());
    assert_eq!(s.get(b"a"), None);
    assert_eq!(s.revision(), 1);
}

#[test]
fn revoke_deletes_every_attached_key_in_one_revision() {
    let mut s = Store::new();
    s.lease_grant(7, 10).unwrap();
    put_lease(&mut s, "a", "1", 7).unwrap();
    put_lease(&mut s, "b", "1", 7).unwrap();
    put_lease(&mut s, "c", "1", 0).unwrap();
    let before = s.revision();
    s.lease_revoke(7).unwrap();
    assert_eq!(s.revision(), before + 1);
    assert_eq!(s.get(b"a"), None);
    assert_eq!(s.get(b"b"), None);
    assert!(s.get(b"c").is_some());
    assert!(s.lease(7).is_none());
    assert_eq!(s.lease_revoke(7), Err(KvError::LeaseNotFound));
    // A lease with no keys goes without a new revision.
    s.lease_grant(8, 10).unwrap();
    s.lease_revoke(8).unwrap();
    assert_eq!(s.revision(), before + 1);
}

#[test]
fn an_expiry_decided_before_a_keep_alive_is_ignored() {
    let mut s = Store::new();
    s.lease_grant(7, 10).unwrap();
    put_lease(&mut s, "a", "1", 7).unwrap();
    assert_eq!(s.lease_keep_alive(7), Ok(10));
    // The leader decided with 0 keep-alives seen; one was ordered first.
    assert_eq!(s.lease_expire(7, 0), Ok(Expiry::Refreshed));
    assert!(s.get(b"a").is_some());
    assert_eq!(s.lease_expire(7, 1), Ok(Expiry::Expired));
    assert_eq!(s.get(b"a"), None);
    assert_eq!(s.lease_expire(7, 1), Ok(Expiry::Absent));
    assert_eq!(s.lease_keep_alive(7), Err(KvError::LeaseNotFound));
}

#[test]
fn leases_survive_a_snapshot() {
    let mut s = Store::new();
    s.lease_grant(7, 10).unwrap();
    put_lease(&mut s, "a", "1", 7).unwrap();
    let r = Store::restore(&s.snapshot()).unwrap();
    assert_eq!(r, s);
    assert_eq!(keys_of(&r, 7), ["a"]);
}

fn all() -> KeyRange {
    KeyRange::new(&[0], &[0])
}

#[test]
fn events_carry_kind_prev_kv_and_revision_order() {
    let mut s = Store::new();
    put_lease(&mut s, "a", "1", 0).unwrap(); // rev 2
    put_lease(&mut s, "b", "1", 0).unwrap(); // rev 3
    put_lease(&mut s, "a", "2", 0).unwrap(); // rev 4
    s.delete_range(&DeleteRangeRequest {
        key: "b".into(),
        ..Default::default()
    })
    .unwrap(); // rev 5
    let span = s.events(&all(), 2, i64::MAX, usize::MAX).unwrap();
    assert_eq!(span.through, 5);
    type Seen<'a> = (EventKind, &'a [u8], i64, Option<&'a [u8]>);
    let got: Vec<Seen> = span
        .events
        .iter()
        .map(|e| {
            (
                e.kind,
                e.kv.key.as_slice(),
                e.kv.mod_revision,
                e.prev_kv.as_ref().map(|p| &p.value[..]),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (EventKind::Put, &b"a"[..], 2, None),
            (EventKind::Put, &b"b"[..], 3, None),
            (EventKind::Put, &b"a"[..], 4, Some(&b"1"[..])),
            (EventKind::Delete, &b"b"[..], 5, Some(&b"1"[..])),
        ]
    );
    // A range selects keys; `max` stops at a revision boundary.
    let only_a = s
        .events(&KeyRange::new(b"a", b""), 2, 5, usize::MAX)
        .unwrap();
    assert_eq!(only_a.events.len(), 2);
    let first = s.events(&all(), 2, 5, 1).unwrap();
    assert_eq!((first.events.len(), first.through), (1, 2));
    // Nothing yet above the current revision.
    let none = s.events(&all(), 6, 10, 10).unwrap();
    assert_eq!((none.events.len(), none.through), (0, 5));
}

#[test]
fn a_transaction_is_one_revision_of_events_in_write_order() {
    let mut s = Store::new();
    let t = TxnRequest {
        compare: vec![],
        success: vec![
            RequestOp::Put(PutRequest {
                key: "z".into(),
                value: "1".into(),
                ..Default::default()
            }),
            RequestOp::Put(PutRequest {
                key: "a".into(),
                value: "1".into(),
                ..Default::default()
            }),
        ],
        failure: vec![],
    };
    s.txn(&t).unwrap();
    let span = s.events(&all(), 2, 2, usize::MAX).unwrap();
    let keys: Vec<&[u8]> = span.events.iter().map(|e| e.kv.key.as_slice()).collect();
    assert_eq!(keys, vec![&b"z"[..], &b"a"[..]]);
}

#[test]
fn watching_from_below_the_compaction_is_refused_but_at_it_sees_its_deletion() {
    let mut s = Store::new();
    put_lease(&mut s, "a", "1", 0).unwrap(); // 2
    s.delete_range(&DeleteRangeRequest {
        key: "a".into(),
        ..Default::default()
    })
    .unwrap(); // 3
    put_lease(&mut s, "b", "1", 0).unwrap(); // 4
    s.compact(&CompactionRequest { revision: 3 }).unwrap();
    assert_eq!(s.events(&all(), 2, 4, 10), Err(KvError::Compacted));
    let span = s.events(&all(), 3, 4, 10).unwrap();
    let got: Vec<(EventKind, i64)> = span
        .events
        .iter()
        .map(|e| (e.kind, e.kv.mod_revision))
        .collect();
    assert_eq!(got, vec![(EventKind::Delete, 3), (EventKind::Put, 4)]);
}

#[derive(Clone, Debug)]
enum Op {
    Put(u8, u8),
    Del(u8),
    DelAll,
    Compact(f64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0u8..6).prop_map(Op::Del),
        1 => Just(Op::DelAll),
        1 => (0.0f64..1.0).prop_map(Op::Compact),
    ]
}

fn state_at(s: &Store, rev: i64) -> BTreeMap<Vec<u8>, KeyValue> {
    s.range(&RangeRequest {
        key: vec![0],
        range_end: vec![0],
        revision: rev,
        ..Default::default()
    })
    .unwrap()
    .kvs
    .into_iter()
    .map(|kv| (kv.key.clone(), kv))
    .collect()
}

proptest! {
    /// Replaying the feed from any readable revision onto the state read there rebuilds the
    /// current state exactly, through snapshots and compactions: no gap, no duplicate.
    #[test]
    fn replaying_events_rebuilds_the_current_state(ops in prop::collection::vec(op(), 1..60), start in 0.0f64..1.0, step in 1usize..5, restore in any::<bool>()) {
        let mut s = Store::new();
        for o in &ops {
            match o {
                Op::Put(k, v) => { s.put(&PutRequest { key: vec![b'k', *k], value: vec![*v].into(), ..Default::default() }).unwrap(); }
                Op::Del(k) => { s.delete_range(&DeleteRangeRequest { key: vec![b'k', *k], ..Default::default() }).unwrap(); }
                Op::DelAll => { s.delete_range(&DeleteRangeRequest { key: vec![0], range_end: vec![0], ..Default::default() }).unwrap(); }
                Op::Compact(f) => {
                    let rev = s.compacted().max(1) + ((s.revision() - s.compacted().max(1)) as f64 * f) as i64;
                    if rev > s.compacted() { s.compact(&CompactionRequest { revision: rev }).unwrap(); }
                }
            }
        }
        if restore {
            s = Store::restore(&s.snapshot()).unwrap();
        }
        let low = s.compacted().max(1);
        let from = low + ((s.revision() - low) as f64 * start) as i64;
        let mut state = state_at(&s, from);
        let mut next = from + 1;
        while next <= s.revision() {
            let span = s.events(&all(), next, s.revision(), step).unwrap();
            for e in span.events {
                prop_assert!(e.kv.mod_revision >= next && e.kv.mod_revision <= span.through);
                match e.kind {
                    EventKind::Put => {
                        prop_assert_eq!(e.prev_kv.as_ref(), state.get(&e.kv.key));
                        state.insert(e.kv.key.clone(), e.kv);
                    }
                    EventKind::Delete => {
                        prop_assert!(state.remove(&e.kv.key).is_some(), "deleted an absent key");
                    }
                }
            }
            prop_assert!(span.through >= next);
            next = span.through + 1;
        }
        prop_assert_eq!(state, state_at(&s, s.revision()));
    }
}
