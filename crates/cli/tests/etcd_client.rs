//! A 3-node cluster driven through the etcd-client crate: the KV API, a leader killed with -9,
//! and every node killed with -9 and restarted.

use crate::common::{connect, put_retry, Cluster};
use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
use std::time::{Duration, Instant};

async fn leader(c: &mut Client, endpoints: &[String]) -> u64 {
    for ep in endpoints {
        if let Ok(s) = c.status().await {
            if s.leader() != 0 {
                return s.leader();
            }
        }
        let _ = ep;
    }
    panic!("no leader reported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_api_works_like_etcd() {
    let cluster = Cluster::start(3);
    let mut c = connect(cluster.endpoints()).await;
    put_retry(&mut c, "foo/a", "1", None).await;
    c.put("foo/b", "2", None).await.unwrap();
    let r = c
        .put("foo/a", "3", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert_eq!(r.prev_key().unwrap().value(), b"1");

    let r = c
        .get("foo/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    let kvs: Vec<(&[u8], &[u8])> = r.kvs().iter().map(|kv| (kv.key(), kv.value())).collect();
    assert_eq!(
        kvs,
        vec![(&b"foo/a"[..], &b"3"[..]), (&b"foo/b"[..], &b"2"[..])]
    );
    assert_eq!(r.kvs()[0].version(), 2);
    let rev = r.header().unwrap().revision();

    // Serializable reads are served by whichever member the client reached, from what it has
    // applied: committed data, but possibly not yet the latest (a member left out of thrifty
    // accepts hears of a write up to a tick later), as in etcd. So the read sees "2" or
    // nothing yet, and "2" within a moment.
    let mut seen = false;
    for _ in 0..100 {
        let r = c
            .get("foo/b", Some(GetOptions::new().with_serializable()))
            .await
            .unwrap();
        if let Some(kv) = r.kvs().first() {
            assert_eq!(kv.value(), b"2");
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen, "a serializable read never saw the committed put");

    // Compare-and-set.
    let txn = Txn::new()
        .when(vec![Compare::value("foo/a", CompareOp::Equal, "3")])
        .and_then(vec![TxnOp::put("foo/a", "4", None)])
        .or_else(vec![TxnOp::get("foo/a", None)]);
    assert!(c.txn(txn.clone()).await.unwrap().succeeded());
    assert!(!c.txn(txn).await.unwrap().succeeded());

    // Delete a range, then read the past.
    let d = c
        .delete(
            "foo/",
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    assert_eq!(d.deleted(), 2);
    let old = c
        .get("foo/a", Some(GetOptions::new().with_revision(rev)))
        .await
        .unwrap();
    assert_eq!(old.kvs()[0].value(), b"3");

    // Compact, and the past is gone with etcd's error.
    let now = c.get("x", None).await.unwrap().header().unwrap().revision();
    c.compact(now, None).await.unwrap();
    let err = c
        .get("foo/a", Some(GetOptions::new().with_revision(rev)))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("required revision has been compacted"),
        "{err}"
    );

    let members = c.member_list().await.unwrap();
    assert_eq!(members.members().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_and_no_acknowledged_write_is_lost() {
    let mut cluster = Cluster::start(3);
    let mut c = connect(cluster.endpoints()).await;
    for i in 0..20 {
        put_retry(&mut c, &format!("k{i}"), &format!("v{i}"), None).await;
    }
    let old = leader(&mut c, &cluster.endpoints()).await;
    cluster.kill(old);
    let mut c = connect(cluster.endpoints()).await;
    for i in 20..40 {
        put_retry(&mut c, &format!("k{i}"), &format!("v{i}"), None).await;
    }
    let new = leader(&mut c, &cluster.endpoints()).await;
    assert_ne!(new, old, "a dead node cannot lead");

    // Everything dies at once, then comes back from disk.
    for i in cluster.ids.clone() {
        cluster.kill(i);
    }
    for i in cluster.ids.clone() {
        cluster.restart(i);
    }
    let mut c = connect(cluster.endpoints()).await;
    put_retry(&mut c, "after", "restart", None).await;
    let r = c
        .get("k", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(r.count(), 40, "every acknowledged write survives");
    for kv in r.kvs() {
        let k = String::from_utf8_lossy(kv.key()).to_string();
        assert_eq!(kv.value(), format!("v{}", &k[1..]).as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_bound_the_log_and_bring_a_restarted_node_up_to_date() {
    let mut cluster = Cluster::start_with(3, &["--snapshot-every", "20"]);
    let mut c = connect(cluster.endpoints()).await;
    put_retry(&mut c, "warm", "up", None).await;
    cluster.kill(3);
    let mut c = connect(cluster.endpoints()).await;
    for i in 0..150 {
        put_retry(&mut c, &format!("s{i:03}"), &format!("{i}"), None).await;
    }
    // The live nodes checkpointed: snapshots on disk, so log segments below them can go.
    let snaps = std::fs::read_dir(cluster.data_dir(1).join("snap"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".snap")
        })
        .count();
    assert!(snaps >= 1, "no checkpoint was written");
    // Each was encoded straight into its file: such a checkpoint's numbers are written at
    // their widest (`synod_node::record::checkpoint_head`), so its data (after the file's
    // 32-byte header) begins with a continued varint, where a checkpoint encoded whole begins
    // with the boot epoch in one byte. The restarts below read them back.
    let mut drafted = 0;
    for e in std::fs::read_dir(cluster.data_dir(1).join("snap")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "snap") {
            // A checkpoint saved meanwhile may have pruned it.
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            assert!(bytes[32] & 0x80 != 0, "{path:?} was not drafted");
            drafted += 1;
        }
    }
    assert!(drafted >= 1, "no checkpoint left to look at");
    // Node 3 missed everything, and its peers no longer have those slots: it must catch up
    // from a snapshot, then serve the data locally.
    cluster.restart(3);
    let mut c3 = connect(vec![cluster.endpoint(3)]).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = c3
            .get(
                "s",
                Some(GetOptions::new().with_prefix().with_serializable()),
            )
            .await;
        if let Ok(r) = r {
            if r.count() == 150 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "node 3 never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And after a restart of everything, the data comes back from snapshots plus logs.
    for i in cluster.ids.clone() {
        cluster.kill(i);
    }
    for i in cluster.ids.clone() {
        cluster.restart(i);
    }
    let mut c = connect(cluster.endpoints()).await;
    put_retry(&mut c, "after", "restart", None).await;
    let r = c
        .get("s", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(r.count(), 150);
}
