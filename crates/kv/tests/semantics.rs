//! The store against etcd v3's documented behaviour.

use proptest::prelude::*;
use synod_kv::*;

fn put(s: &mut Store, k: &str, v: &str) -> PutResponse {
    s.put(&PutRequest {
        key: k.into(),
        value: v.to_string().into(),
        prev_kv: true,
        ..Default::default()
    })
    .unwrap()
}

fn get_at(s: &Store, k: &str, rev: i64) -> Result<Option<KeyValue>, KvError> {
    s.range(&RangeRequest {
        key: k.into(),
        revision: rev,
        ..Default::default()
    })
    .map(|r| r.kvs.into_iter().next())
}

fn prefix(p: &str) -> RangeRequest {
    RangeRequest {
        key: p.into(),
        range_end: KeyRange::prefix_end(p.as_bytes()),
        ..Default::default()
    }
}

#[test]
fn revisions_versions_and_recreation() {
    let mut s = Store::new();
    assert_eq!(s.revision(), 1);
    assert_eq!(put(&mut s, "a", "1").prev_kv, None);
    let kv = s.get(b"a").unwrap().clone();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 2, 1));
    let prev = put(&mut s, "a", "2").prev_kv.unwrap();
    assert_eq!(prev.value, &b"1"[..]);
    let kv = s.get(b"a").unwrap().clone();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    let d = s
        .delete_range(&DeleteRangeRequest {
            key: "a".into(),
            prev_kv: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!((d.deleted, s.revision()), (1, 4));
    assert_eq!(d.prev_kvs[0].value, &b"2"[..]);
    put(&mut s, "a", "3");
    let kv = s.get(b"a").unwrap().clone();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1));
}

#[test]
fn deleting_nothing_creates_no_revision() {
    let mut s = Store::new();
    let d = s
        .delete_range(&DeleteRangeRequest {
            key: "nope".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!((d.deleted, s.revision()), (0, 1));
}

#[test]
fn reads_travel_in_time_within_bounds() {
    let mut s = Store::new();
    put(&mut s, "k", "v1"); // rev 2
    put(&mut s, "k", "v2"); // rev 3
    assert_eq!(get_at(&s, "k", 2).unwrap().unwrap().value, &b"v1"[..]);
    assert_eq!(get_at(&s, "k", 1).unwrap(), None);
    assert_eq!(get_at(&s, "k", 4), Err(KvError::FutureRevision));
    s.compact(&CompactionRequest { revision: 3 }).unwrap();
    assert_eq!(get_at(&s, "k", 2), Err(KvError::Compacted));
    assert_eq!(get_at(&s, "k", 3).unwrap().unwrap().value, &b"v2"[..]);
    assert_eq!(
        s.compact(&CompactionRequest { revision: 3 }),
        Err(KvError::Compacted)
    );
    assert_eq!(
        s.compact(&CompactionRequest { revision: 9 }),
        Err(KvError::FutureRevision)
    );
    assert_eq!(
        KvError::Compacted.to_string(),
        "mvcc: required revision has been compacted"
    );
}

#[test]
fn ranges_prefixes_limits_counts_and_sorting() {
    let mut s = Store::new();
    for (k, v) in [
        ("foo/b", "2"),
        ("foo/a", "3"),
        ("foo/c", "1"),
        ("fop", "x"),
        ("fo", "y"),
    ] {
        put(&mut s, k, v);
    }
    let r = s.range(&prefix("foo/")).unwrap();
    let keys: Vec<_> = r
        .kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).to_string())
        .collect();
    assert_eq!(keys, vec!["foo/a", "foo/b", "foo/c"]);
    assert_eq!((r.count, r.more), (3, false));

    let r = s
        .range(&RangeRequest {
            limit: 2,
            ..prefix("foo/")
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.count, r.more), (2, 3, true));

    let r = s
        .range(&RangeRequest {
            sort_order: SortOrder::Descend,
            sort_target: SortTarget::Value,
            ..prefix("foo/")
        })
        .unwrap();
    assert_eq!(r.kvs[0].value, &b"3"[..]);

    let r = s
        .range(&RangeRequest {
            sort_target: SortTarget::Mod,
            ..prefix("foo/")
        })
        .unwrap();
    assert_eq!(
        r.kvs[0].key, b"foo/b",
        "a non-key target with no order sorts ascending"
    );

    let r = s
        .range(&RangeRequest {
            keys_only: true,
            ..prefix("foo/")
        })
        .unwrap();
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
    let r = s
        .range(&RangeRequest {
            count_only: true,
            ..prefix("foo/")
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.count), (0, 3));

    let r = s
        .range(&RangeRequest {
            min_mod_revision: 3,
            max_mod_revision: 4,
            ..prefix("foo/")
        })
        .unwrap();
    assert_eq!(r.count, 2);

    let all = s
        .range(&RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(all.count, 5);
}

fn cas(key: &str, expected: &str, new: &str) -> TxnRequest {
    TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal,
            target: CompareTarget::Value(expected.into()),
            key: key.into(),
            range_end: vec![],
        }],
        success: vec![RequestOp::Put(PutRequest {
            key: key.into(),
            value: new.to_string().into(),
            ..Default::default()
        })],
        failure: vec![RequestOp::Range(RangeRequest {
            key: key.into(),
            ..Default::default()
        })],
    }
}

#[test]
fn compare_and_set_takes_one_branch() {
    let mut s = Store::new();
    put(&mut s, "k", "a");
    let t = s.txn(&cas("k", "a", "b")).unwrap();
    assert!(t.succeeded);
    assert_eq!(s.get(b"k").unwrap().value, &b"b"[..]);
    let rev = s.revision();
    let t = s.txn(&cas("k", "a", "c")).unwrap();
    assert!(!t.succeeded);
    assert_eq!(s.revision(), rev, "a read-only branch creates no revision");
    match &t.responses[0] {
        ResponseOp::Range(r) => assert_eq!(r.kvs[0].value, &b"b"[..]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn compares_on_missing_keys() {
    let mut s = Store::new();
    let cmp = |target, result| TxnRequest {
        compare: vec![Compare {
            result,
            target,
            key: "missing".into(),
            range_end: vec![],
        }],
        ..Default::default()
    };
    assert!(
        s.txn(&cmp(CompareTarget::Version(0), CompareResult::Equal))
            .unwrap()
            .succeeded
    );
    assert!(
        s.txn(&cmp(CompareTarget::Create(0), CompareResult::Equal))
            .unwrap()
            .succeeded
    );
    assert!(
        !s.txn(&cmp(CompareTarget::Value(vec![]), CompareResult::Equal))
            .unwrap()
            .succeeded
    );
    assert!(
        !s.txn(&cmp(CompareTarget::Mod(0), CompareResult::Greater))
            .unwrap()
            .succeeded
    );
}

#[test]
fn one_txn_one_revision_and_all_or_nothing() {
    let mut s = Store::new();
    let p = |k: &str| {
        RequestOp::Put(PutRequest {
            key: k.into(),
            value: b"v".to_vec().into(),
            ..Default::default()
        })
    };
    let t = TxnRequest {
        success: vec![p("x"), p("y")],
        ..Default::default()
    };
    s.txn(&t).unwrap();
    assert_eq!(s.revision(), 2);
    assert_eq!(
        s.get(b"x").unwrap().mod_revision,
        s.get(b"y").unwrap().mod_revision
    );

    let dup = TxnRequest {
        success: vec![p("z"), p("z")],
        ..Default::default()
    };
    assert_eq!(s.txn(&dup), Err(KvError::DuplicateKey));
    let overlap = TxnRequest {
        success: vec![
            p("x"),
            RequestOp::DeleteRange(DeleteRangeRequest {
                key: "x".into(),
                ..Default::default()
            }),
        ],
        ..Default::default()
    };
    assert_eq!(s.txn(&overlap), Err(KvError::DuplicateKey));

    // The second op fails after the first wrote: the first is undone, no revision is made.
    let failing = TxnRequest {
        success: vec![
            p("new"),
            RequestOp::Put(PutRequest {
                key: "ghost".into(),
                ignore_value: true,
                ..Default::default()
            }),
        ],
        ..Default::default()
    };
    assert_eq!(s.txn(&failing), Err(KvError::KeyNotFound));
    assert_eq!(s.revision(), 2);
    assert!(s.get(b"new").is_none());
}

#[test]
fn reads_inside_a_txn_see_its_earlier_writes_and_nested_txns_share_the_revision() {
    let mut s = Store::new();
    let t = TxnRequest {
        success: vec![
            RequestOp::Put(PutRequest {
                key: "a".into(),
                value: b"1".to_vec().into(),
                ..Default::default()
            }),
            RequestOp::Range(RangeRequest {
                key: "a".into(),
                ..Default::default()
            }),
            RequestOp::Txn(TxnRequest {
                success: vec![RequestOp::Put(PutRequest {
                    key: "b".into(),
                    value: b"2".to_vec().into(),
                    ..Default::default()
                })],
                ..Default::default()
            }),
        ],
        ..Default::default()
    };
    let r = s.txn(&t).unwrap();
    match &r.responses[1] {
        ResponseOp::Range(rr) => assert_eq!(rr.kvs[0].value, &b"1"[..]),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.revision(), 2);
    assert_eq!(s.get(b"b").unwrap().mod_revision, 2);
}

#[test]
fn bad_requests_are_refused_without_side_effects() {
    let mut s = Store::new();
    assert_eq!(s.put(&PutRequest::default()), Err(KvError::EmptyKey));
    assert_eq!(
        s.put(&PutRequest {
            key: "k".into(),
            ignore_lease: true,
            ..Default::default()
        }),
        Err(KvError::KeyNotFound)
    );
    assert_eq!(
        s.put(&PutRequest {
            key: "k".into(),
            lease: 7,
            ..Default::default()
        }),
        Err(KvError::LeaseNotFound)
    );
    assert_eq!(s.revision(), 1);
}

#[derive(Clone, Debug)]
enum Op {
    Put(u8, u8),
    Del(u8),
    DelAll,
    /// One transaction that deletes a key and puts it again in a nested transaction: two
    /// changes of one key in one revision.
    DelThenPut(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0u8..6).prop_map(Op::Del),
        1 => Just(Op::DelAll),
        1 => (0u8..6, any::<u8>()).prop_map(|(k, v)| Op::DelThenPut(k, v)),
    ]
}

fn all_at(s: &Store, rev: i64) -> Vec<KeyValue> {
    s.range(&RangeRequest {
        key: vec![0],
        range_end: vec![0],
        revision: rev,
        ..Default::default()
    })
    .unwrap()
    .kvs
}

fn apply(s: &mut Store, o: &Op) {
    match o {
        Op::Put(k, v) => {
            s.put(&PutRequest {
                key: vec![b'k', *k],
                value: vec![*v].into(),
                ..Default::default()
            })
            .unwrap();
        }
        Op::Del(k) => {
            s.delete_range(&DeleteRangeRequest {
                key: vec![b'k', *k],
                ..Default::default()
            })
            .unwrap();
        }
        Op::DelAll => {
            s.delete_range(&DeleteRangeRequest {
                key: vec![0],
                range_end: vec![0],
                ..Default::default()
            })
            .unwrap();
        }
        Op::DelThenPut(k, v) => {
            let put = RequestOp::Put(PutRequest {
                key: vec![b'k', *k],
                value: vec![*v].into(),
                ..Default::default()
            });
            let nested = RequestOp::Txn(TxnRequest {
                success: vec![put],
                ..Default::default()
            });
            let del = RequestOp::DeleteRange(DeleteRangeRequest {
                key: vec![b'k', *k],
                ..Default::default()
            });
            s.txn(&TxnRequest {
                success: vec![del, nested],
                ..Default::default()
            })
            .unwrap();
        }
    }
}

proptest! {
    /// A compaction walks only the keys changed since the last one (the revision index names
    /// them); compacting again and again as writes go must leave what one compaction at the
    /// last revision leaves, which walks every change since the start.
    #[test]
    fn repeated_compactions_leave_what_one_leaves(
        steps in prop::collection::vec((op(), prop::option::weighted(0.3, 0.0f64..1.0)), 1..80),
    ) {
        let mut repeated = Store::new();
        let mut once = Store::new();
        let mut last = None;
        for (o, compact) in &steps {
            apply(&mut repeated, o);
            apply(&mut once, o);
            if let Some(cut) = compact {
                let (from, top) = (repeated.compacted() + 1, repeated.revision());
                let rev = from + ((top - from) as f64 * cut) as i64;
                if rev > repeated.compacted() && rev <= top {
                    repeated.compact(&CompactionRequest { revision: rev }).unwrap();
                    last = Some(rev);
                }
            }
        }
        if let Some(rev) = last {
            once.compact(&CompactionRequest { revision: rev }).unwrap();
        }
        prop_assert_eq!(&repeated, &once);
    }

    #[test]
    fn compaction_never_changes_what_remains_readable(ops in prop::collection::vec(op(), 1..60), cut in 0.0f64..1.0) {
        let mut s = Store::new();
        for o in &ops {
            match o {
                Op::Put(k, v) => { s.put(&PutRequest { key: vec![b'k', *k], value: vec![*v].into(), ..Default::default() }).unwrap(); }
                Op::Del(k) => { s.delete_range(&DeleteRangeRequest { key: vec![b'k', *k], ..Default::default() }).unwrap(); }
                Op::DelAll => { s.delete_range(&DeleteRangeRequest { key: vec![0], range_end: vec![0], ..Default::default() }).unwrap(); }
                Op::DelThenPut(k, v) => {
                    let put = RequestOp::Put(PutRequest { key: vec![b'k', *k], value: vec![*v].into(), ..Default::default() });
                    let nested = RequestOp::Txn(TxnRequest { success: vec![put], ..Default::default() });
                    let del = RequestOp::DeleteRange(DeleteRangeRequest { key: vec![b'k', *k], ..Default::default() });
                    s.txn(&TxnRequest { success: vec![del, nested], ..Default::default() }).unwrap();
                }
            }
        }
        let top = s.revision();
        let before: Vec<Vec<KeyValue>> = (1..=top).map(|r| all_at(&s, r)).collect();
        // The count kept as writes go is the keys a read sees.
        prop_assert_eq!(s.len(), before[(top - 1) as usize].len());
        let rev = 2 + ((top - 1) as f64 * cut) as i64;
        prop_assume!(rev <= top);
        s.compact(&CompactionRequest { revision: rev }).unwrap();
        prop_assert_eq!(s.len(), before[(top - 1) as usize].len(), "after compacting to {}", rev);
        for r in rev..=top {
            prop_assert_eq!(&all_at(&s, r), &before[(r - 1) as usize], "read at {} after compacting to {}", r, rev);
        }
        if rev > 1 {
            prop_assert_eq!(s.range(&RangeRequest { key: vec![0], range_end: vec![0], revision: rev - 1, ..Default::default() }), Err(KvError::Compacted));
        }
        // The revision index, kept up as writes come and cut by the compaction, is what a
        // restore rebuilds from the histories (`Store`'s equality includes it), and replays
        // the same events.
        use synod_core::multi::StateMachine;
        let back = Store::restore(&s.snapshot()).unwrap();
        prop_assert_eq!(&back, &s);
        let everything = KeyRange::new(&[0], &[0]);
        prop_assert_eq!(back.events(&everything, rev, top, usize::MAX), s.events(&everything, rev, top, usize::MAX));
    }
}

#[test]
fn the_live_key_count_follows_puts_deletes_failed_transactions_and_restores() {
    use synod_core::multi::StateMachine;
    let mut s = Store::new();
    let count = |s: &Store| all_at(s, s.revision()).len();
    put(&mut s, "a", "1");
    put(&mut s, "a", "2");
    put(&mut s, "b", "1");
    assert_eq!((s.len(), count(&s)), (2, 2));
    s.delete_range(&DeleteRangeRequest {
        key: b"a".to_vec(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!((s.len(), count(&s)), (1, 1));
    // Transactions that put a new key, or delete one, and then fail: all of it undone.
    let bad_put = RequestOp::Put(PutRequest {
        key: b"d".to_vec(),
        lease: 42,
        ..Default::default()
    });
    let new_key = RequestOp::Put(PutRequest {
        key: b"c".to_vec(),
        value: b"1".to_vec().into(),
        ..Default::default()
    });
    let delete = RequestOp::DeleteRange(DeleteRangeRequest {
        key: b"b".to_vec(),
        ..Default::default()
    });
    for first in [new_key, delete] {
        let failing = TxnRequest {
            success: vec![first, bad_put.clone()],
            ..Default::default()
        };
        assert_eq!(s.txn(&failing), Err(KvError::LeaseNotFound));
        assert_eq!((s.len(), count(&s)), (1, 1));
    }
    put(&mut s, "a", "3");
    assert_eq!(s.len(), 2);
    let back = Store::restore(&s.snapshot()).unwrap();
    assert_eq!((back.len(), count(&back)), (2, 2));
    assert_eq!(back, s);
}

#[test]
fn a_snapshot_restores_history_revisions_and_compaction() {
    use synod_core::multi::StateMachine;
    let mut s = Store::new();
    put(&mut s, "a", "1");
    put(&mut s, "a", "2");
    put(&mut s, "b", "3");
    s.compact(&CompactionRequest { revision: 3 }).unwrap();
    let back = Store::restore(&s.snapshot()).unwrap();
    assert_eq!(back, s);
    assert_eq!(get_at(&back, "a", 3).unwrap().unwrap().value, &b"2"[..]);
    assert_eq!(get_at(&back, "a", 2), Err(KvError::Compacted));
    assert!(Store::restore(b"garbage").is_err());
}

#[test]
fn a_snapshot_is_the_stores_plain_postcard_encoding_in_one_allocation() {
    use synod_core::multi::StateMachine;
    let mut s = Store::new();
    for i in 0..300 {
        put(&mut s, &format!("k{}", i % 7), &"v".repeat(i));
    }
    let first = s.snapshot();
    // Snapshots written before the buffer was sized up front must still read back.
    assert_eq!(first, postcard::to_stdvec(&s).unwrap());
    assert_eq!(
        first.capacity(),
        first.len(),
        "the first is counted first, then allocated at its final size"
    );
    // Later ones reserve room from the last one's length and skip the count: the same bytes,
    // in room for twice the last and a page.
    put(&mut s, "new", &"w".repeat(5000));
    let room = |last: usize| 2 * last + 4096;
    let second = s.snapshot();
    assert_eq!(second, postcard::to_stdvec(&s).unwrap());
    assert_eq!(second.capacity(), room(first.len()));
    // A copy encoding on another thread tells the store how long it was, and so does a
    // restored snapshot.
    put(&mut s, "newer", &"x".repeat(5000));
    let third = s.snapshot_later().to_vec(&mut |_| {});
    assert_eq!(third.capacity(), room(second.len()));
    assert_eq!(s.snapshot().capacity(), room(third.len()));
    let back = Store::restore(&third).unwrap();
    let again = back.snapshot();
    assert_eq!(again, third);
    assert_eq!(again.capacity(), room(third.len()));
}

#[test]
fn a_snapshot_written_to_a_writer_is_the_snapshot_in_memory() {
    use synod_core::multi::StateMachine;
    let mut s = Store::new();
    for i in 0..8_000 {
        put(&mut s, &format!("k{i}"), &"v".repeat(300 + i % 7));
    }
    // The auth state goes in a trailer after the keys.
    s.apply(&KvCommand::Auth(AuthCommand::UserAdd {
        name: "u".into(),
        password_hash: None,
    }));
    let later = s.snapshot_later();
    let in_memory = s.snapshot_later();
    put(&mut s, "after", "x");
    let (mut out, mut seen) = (Vec::new(), Vec::new());
    let len = later.to_writer(&mut out, &mut |n| seen.push(n)).unwrap();
    assert_eq!(len, out.len() as u64);
    assert!(!seen.is_empty(), "a megabyte reports progress");
    assert_eq!(out, in_memory.to_vec(&mut |_| {}));
    let back = Store::restore(&out).unwrap();
    assert_eq!(back.auth().revision(), s.auth().revision());
    assert!(back.get(b"after").is_none());
    // The next one in memory reserves from the one written last.
    let len = s
        .snapshot_later()
        .to_writer(&mut Vec::new(), &mut |_| {})
        .unwrap();
    assert_eq!(s.snapshot().capacity(), 2 * len as usize + 4096);
}

#[test]
fn a_snapshot_taken_later_holds_the_state_when_it_was_begun() {
    use synod_core::multi::StateMachine;
    let mut s = Store::new();
    put(&mut s, "a", "1");
    put(&mut s, "b", "1");
    let now = s.snapshot();
    let later = s.snapshot_later();
    // Writes after the copy, to a shared history and to a new key, and a compaction.
    put(&mut s, "a", "2");
    put(&mut s, "c", "1");
    s.compact(&CompactionRequest { revision: 4 }).unwrap();
    let bytes = later.to_vec(&mut |_| {});
    assert_eq!(bytes, now);
    let restored = Store::restore(&bytes).unwrap();
    assert_eq!(restored.get(b"a").unwrap().value, &b"1"[..]);
    assert!(restored.get(b"c").is_none());
    assert_eq!(get_at(&restored, "a", 2).unwrap().unwrap().value, &b"1"[..]);
    assert_eq!(s.get(b"a").unwrap().value, &b"2"[..]);
}

#[test]
fn versions_lists_every_write_kept_and_not_deletions() {
    let mut s = Store::new();
    put(&mut s, "a", "1");
    put(&mut s, "a", "2");
    put(&mut s, "b", "3");
    s.delete_range(&DeleteRangeRequest {
        key: b"b".to_vec(),
        ..Default::default()
    })
    .unwrap();
    let mut vals: Vec<String> = s
        .versions()
        .map(|kv| String::from_utf8(kv.value.to_vec()).unwrap())
        .collect();
    vals.sort();
    assert_eq!(vals, vec!["1", "2", "3"]);
}

#[test]
fn each_compare_result_means_what_it_says() {
    let mut s = Store::new();
    put(&mut s, "k", "a");
    put(&mut s, "k", "b"); // version 2
    let holds = |s: &mut Store, key: &str, target, result| {
        s.txn(&TxnRequest {
            compare: vec![Compare {
                result,
                target,
                key: key.into(),
                range_end: vec![],
            }],
            ..Default::default()
        })
        .unwrap()
        .succeeded
    };
    use CompareResult::*;
    use CompareTarget::Version;
    let table = [
        (2, Equal, true),
        (1, Equal, false),
        (2, NotEqual, false),
        (1, NotEqual, true),
        (1, Greater, true),
        (2, Greater, false),
        (3, Less, true),
        (2, Less, false),
    ];
    for (v, result, expected) in table {
        assert_eq!(
            holds(&mut s, "k", Version(v), result),
            expected,
            "version 2 {result:?} {v}"
        );
    }
    // A missing key reads as 0 for every number, compared with the number asked about.
    assert!(holds(&mut s, "missing", Version(1), Less));
    assert!(holds(&mut s, "missing", CompareTarget::Lease(5), NotEqual));
    assert!(!holds(&mut s, "missing", CompareTarget::Create(3), Equal));
}

#[test]
fn a_put_may_keep_the_value_or_the_lease_it_replaces() {
    let mut s = Store::new();
    s.lease_grant(9, 60).unwrap();
    s.put(&PutRequest {
        key: "k".into(),
        value: "v1".into(),
        lease: 9,
        ..Default::default()
    })
    .unwrap();
    s.put(&PutRequest {
        key: "k".into(),
        ignore_value: true,
        ..Default::default()
    })
    .unwrap();
    let kv = s.get(b"k").unwrap();
    assert_eq!((&kv.value[..], kv.lease, kv.version), (&b"v1"[..], 0, 2));
    s.put(&PutRequest {
        key: "k".into(),
        value: "v3".into(),
        ignore_lease: true,
        ..Default::default()
    })
    .unwrap();
    s.put(&PutRequest {
        key: "k".into(),
        value: "v4".into(),
        lease: 9,
        ..Default::default()
    })
    .unwrap();
    s.put(&PutRequest {
        key: "k".into(),
        ignore_value: true,
        ignore_lease: true,
        ..Default::default()
    })
    .unwrap();
    let kv = s.get(b"k").unwrap();
    assert_eq!((&kv.value[..], kv.lease), (&b"v4"[..], 9));
    // Nothing to keep: refused.
    let missing = PutRequest {
        key: "nope".into(),
        ignore_value: true,
        ..Default::default()
    };
    assert_eq!(s.put(&missing), Err(KvError::KeyNotFound));
}

#[test]
fn a_limit_equal_to_the_matches_has_no_more() {
    let mut s = Store::new();
    for k in ["p/a", "p/b", "p/c"] {
        put(&mut s, k, "v");
    }
    let limited = |limit| RangeRequest {
        limit,
        ..prefix("p/")
    };
    let r = s.range(&limited(3)).unwrap();
    assert_eq!((r.kvs.len(), r.more, r.count), (3, false, 3));
    let r = s.range(&limited(2)).unwrap();
    assert_eq!((r.kvs.len(), r.more, r.count), (2, true, 3));
}

#[test]
fn a_store_is_empty_until_a_key_lives_and_again_once_it_is_deleted() {
    let mut s = Store::new();
    assert!(s.is_empty());
    put(&mut s, "k", "v");
    assert!(!s.is_empty());
    s.delete_range(&DeleteRangeRequest {
        key: "k".into(),
        ..Default::default()
    })
    .unwrap();
    assert!(s.is_empty(), "history is kept, but no key lives");
}

#[test]
fn leases_up_to_the_longest_ttl_are_granted_and_listed() {
    let mut s = Store::new();
    s.lease_grant(1, MAX_LEASE_TTL).unwrap();
    assert_eq!(
        s.lease_grant(2, MAX_LEASE_TTL + 1),
        Err(KvError::LeaseTtlTooLarge)
    );
    s.lease_grant(3, 5).unwrap();
    let ids: Vec<(i64, i64)> = s.leases().map(|l| (l.id, l.ttl)).collect();
    assert_eq!(ids, [(1, MAX_LEASE_TTL), (3, 5)]);
}

/// A range keeps only the matches it may answer with and copies out only those it answers
/// with: whatever it keeps, the answer must be the matches in key order, filtered, sorted
/// (stably, so ties stay in key order), cut to the limit, with the count of every match.
#[test]
fn a_range_answers_as_if_it_had_copied_every_match() {
    let mut s = Store::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..60 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        put(&mut s, &format!("k/{}", x % 25), &format!("{}", x % 7));
    }
    put(&mut s, "other", "x");
    let everything = s.range(&prefix("k/")).unwrap().kvs;
    assert!(everything.len() > 15, "{} keys", everything.len());
    let orders = [SortOrder::None, SortOrder::Ascend, SortOrder::Descend];
    let targets = [
        SortTarget::Key,
        SortTarget::Version,
        SortTarget::Create,
        SortTarget::Mod,
        SortTarget::Value,
    ];
    for limit in [-1, 0, 1, 3, 1000, i64::MAX] {
        for order in orders {
            for target in targets {
                for (count_only, keys_only) in [(false, false), (true, false), (false, true)] {
                    for min_mod in [0, 30] {
                        let req = RangeRequest {
                            limit,
                            sort_order: order,
                            sort_target: target,
                            count_only,
                            keys_only,
                            min_mod_revision: min_mod,
                            ..prefix("k/")
                        };
                        let mut want: Vec<KeyValue> = (everything.iter())
                            .filter(|kv| kv.mod_revision >= min_mod)
                            .cloned()
                            .collect();
                        let count = want.len() as i64;
                        let key = |kv: &KeyValue| match target {
                            SortTarget::Key => (0, kv.key.clone()),
                            SortTarget::Version => (kv.version, Vec::new()),
                            SortTarget::Create => (kv.create_revision, Vec::new()),
                            SortTarget::Mod => (kv.mod_revision, Vec::new()),
                            SortTarget::Value => (0, kv.value.to_vec()),
                        };
                        match (order, target) {
                            (SortOrder::None, SortTarget::Key) => {}
                            (SortOrder::Descend, _) => {
                                want.sort_by_key(|kv| std::cmp::Reverse(key(kv)))
                            }
                            _ => want.sort_by_key(key),
                        }
                        if limit > 0 {
                            want.truncate(limit as usize);
                        }
                        if count_only {
                            want.clear();
                        }
                        if keys_only {
                            want.iter_mut().for_each(|kv| kv.value = Default::default());
                        }
                        let got = s.range(&req).unwrap();
                        assert_eq!(got.kvs, want, "{req:?}");
                        assert_eq!(got.count, count, "{req:?}");
                        assert_eq!(got.more, limit > 0 && count > limit, "{req:?}");
                    }
                }
            }
        }
    }
}
