//! Watch and Lease through the etcd-client crate against a 3-node cluster: every change seen
//! in order across a leader kill and across nodes, leases that expire, are kept alive (also
//! across a leader change) and are revoked.

use crate::common::{connect, put_retry, Cluster};
use etcd_client::{
    Client, EventType, GetOptions, LeaseTimeToLiveOptions, PutOptions, WatchOptions,
};
use std::time::{Duration, Instant};

/// The leader's id, asking each node until one knows.
async fn leader(cluster: &Cluster) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        for ep in cluster.endpoints() {
            let mut c = connect(vec![ep]).await;
            if let Ok(s) = c.status().await {
                if s.leader() != 0 {
                    return s.leader();
                }
            }
        }
        assert!(Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (revision, put?, key, value) of one event.
type Seen = (i64, bool, String, String);

/// Watches `prefix` on one node from `start` until an event writes `last` to a key.
async fn collect(endpoint: String, prefix: &str, start: i64, last: &str) -> Vec<Seen> {
    let mut c = connect(vec![endpoint]).await;
    let mut opts = WatchOptions::new().with_prefix().with_prev_key();
    if start > 0 {
        opts = opts.with_start_revision(start);
    }
    let mut w = c.watch(prefix, Some(opts)).await.expect("watch");
    let mut seen = Vec::new();
    loop {
        let resp = tokio::time::timeout(Duration::from_secs(30), w.message())
            .await
            .expect("the watch went quiet")
            .expect("watch stream")
            .expect("watch stream ended");
        assert!(!resp.canceled(), "canceled: {}", resp.cancel_reason());
        for e in resp.events() {
            let kv = e.kv().expect("event kv");
            let value = kv.value_str().unwrap().to_string();
            seen.push((
                kv.mod_revision(),
                e.event_type() == EventType::Put,
                kv.key_str().unwrap().to_string(),
                value.clone(),
            ));
            if value == last {
                return seen;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_sees_every_change_in_order_across_a_leader_kill_and_across_nodes() {
    let mut cluster = Cluster::start(3);
    let l = leader(&cluster).await;
    let others: Vec<u64> = cluster.ids.iter().copied().filter(|&i| i != l).collect();
    let (watch_node, resume_node) = (others[0], others[1]);
    let watching = tokio::spawn(collect(cluster.endpoint(watch_node), "w/", 0, "done"));
    // Let the watcher register before the first write.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut c = connect(cluster.all_endpoints()).await;
    let mut written = Vec::new();
    for i in 0..60 {
        if i == 30 {
            cluster.kill(l);
        }
        let (k, v) = (format!("w/k{}", i % 5), format!("v{i}"));
        put_retry(&mut c, &k, &v, None).await;
        written.push((k, v));
        if i % 7 == 0 {
            let _ = c.delete(format!("w/k{}", (i + 1) % 5), None).await;
        }
    }
    put_retry(&mut c, "w/end", "done", None).await;
    let seen = watching.await.unwrap();

    // Revisions only go up, and the puts arrive in the order they were acknowledged (a put
    // retried after a timeout may apply twice: drop repeats of the same write).
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "revisions out of order: {seen:?}"
    );
    let mut puts: Vec<(String, String)> = seen
        .iter()
        .filter(|s| s.1 && s.3 != "done")
        .map(|s| (s.2.clone(), s.3.clone()))
        .collect();
    puts.dedup();
    assert_eq!(puts, written);

    // Another node replays the same history from any revision: resuming after the last event
    // a client saw gives exactly the rest, no gap and no duplicate.
    let first = seen[0].0;
    let replay = collect(cluster.endpoint(resume_node), "w/", first, "done").await;
    assert_eq!(replay, seen, "a replay from revision {first} differs");
    let half = seen.len() / 2;
    let rest = collect(
        cluster.endpoint(resume_node),
        "w/",
        seen[half].0 + 1,
        "done",
    )
    .await;
    assert_eq!(rest, seen[half + 1..].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_below_the_compacted_revision_is_canceled_with_it() {
    let cluster = Cluster::start(3);
    // One node for everything: a watch is served from the node's applied state, which the
    // node's own acknowledgement of the compaction guarantees includes it.
    let mut c = connect(vec![cluster.endpoint(2)]).await;
    put_retry(&mut c, "c/a", "1", None).await;
    c.put("c/a", "2", None).await.unwrap();
    let r = c.put("c/a", "3", None).await.unwrap();
    let rev = r.header().unwrap().revision();
    c.compact(rev, None).await.unwrap();
    let mut w = c
        .watch(
            "c/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(rev - 1),
            ),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = tokio::time::timeout(Duration::from_secs(10), w.message())
            .await
            .expect("no answer")
            .unwrap()
            .expect("stream ended");
        if resp.canceled() {
            assert_eq!(resp.compact_revision(), rev);
            assert!(resp.events().is_empty());
            break;
        }
        assert!(resp.events().is_empty(), "events below the compaction");
        assert!(Instant::now() < deadline);
    }
}

async fn exists(c: &mut Client, k: &str) -> bool {
    !c.get(k, None).await.unwrap().kvs().is_empty()
}

/// Waits up to `limit` for `k` to disappear; returns how long it took.
async fn gone_within(c: &mut Client, k: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    while exists(c, k).await {
        assert!(start.elapsed() < limit, "{k} still there after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_expire_are_kept_alive_and_revoked() {
    lease_lifecycle(&[]).await;
}

/// The same with Fast Multi-Paxos servers, whose leading node keeps the lease clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_expire_are_kept_alive_and_revoked_under_fast_multi_paxos() {
    lease_lifecycle(&["--protocol", "fast-multi"]).await;
}

async fn lease_lifecycle(server_args: &[&str]) {
    let cluster = Cluster::start_with(3, server_args);
    let mut c = connect(cluster.endpoints()).await;
    put_retry(&mut c, "warm", "up", None).await;

    // Expiry deletes the attached keys, and not before the TTL.
    let lease = c.lease_grant(2, None).await.unwrap();
    assert_eq!(lease.ttl(), 2);
    let id = lease.id();
    c.put("l/a", "1", Some(PutOptions::new().with_lease(id)))
        .await
        .unwrap();
    c.put("l/b", "1", Some(PutOptions::new().with_lease(id)))
        .await
        .unwrap();
    let ttl = c
        .lease_time_to_live(id, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .unwrap();
    assert_eq!(ttl.granted_ttl(), 2);
    assert!(ttl.ttl() > 0 && ttl.ttl() <= 2);
    assert_eq!(ttl.keys(), [b"l/a".to_vec(), b"l/b".to_vec()]);
    let leases = c.leases().await.unwrap();
    assert!(leases.leases().iter().any(|l| l.id() == id));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(exists(&mut c, "l/a").await, "expired before its TTL");
    gone_within(&mut c, "l/a", Duration::from_secs(10)).await;
    assert!(!exists(&mut c, "l/b").await);
    assert_eq!(c.lease_time_to_live(id, None).await.unwrap().ttl(), -1);

    // Keep-alives keep it alive well past its TTL; without them it goes.
    let id = c.lease_grant(2, None).await.unwrap().id();
    c.put("l/k", "1", Some(PutOptions::new().with_lease(id)))
        .await
        .unwrap();
    let (mut keeper, mut replies) = c.lease_keep_alive(id).await.unwrap();
    for _ in 0..10 {
        keeper.keep_alive().await.unwrap();
        let r = replies.message().await.unwrap().expect("keep-alive reply");
        assert_eq!((r.id(), r.ttl()), (id, 2));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(exists(&mut c, "l/k").await, "expired while kept alive");
    drop(keeper);
    gone_within(&mut c, "l/k", Duration::from_secs(10)).await;

    // Revoke deletes at once; a put with the revoked lease is refused.
    let id = c.lease_grant(60, None).await.unwrap().id();
    c.put("l/r", "1", Some(PutOptions::new().with_lease(id)))
        .await
        .unwrap();
    c.lease_revoke(id).await.unwrap();
    assert!(!exists(&mut c, "l/r").await);
    let err = c
        .put("l/r", "2", Some(PutOptions::new().with_lease(id)))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("requested lease not found"),
        "{err}"
    );
    // The server answers TTL 0 for a lease that is gone; the client reports it as an error.
    let outcome = match c.lease_keep_alive(id).await {
        Err(e) => e.to_string(),
        Ok((mut keeper, mut replies)) => {
            keeper.keep_alive().await.unwrap();
            match replies.message().await {
                Err(e) => e.to_string(),
                Ok(r) => format!("TTL {:?}", r.map(|r| r.ttl())),
            }
        }
    };
    assert!(outcome.contains("lease not found"), "{outcome}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_lease_survives_a_leader_change() {
    let mut cluster = Cluster::start(3);
    let l = leader(&cluster).await;
    let mut c = connect(cluster.endpoints()).await;
    put_retry(&mut c, "warm", "up", None).await;
    let id = c.lease_grant(2, None).await.unwrap().id();
    c.put("s/session", "1", Some(PutOptions::new().with_lease(id)))
        .await
        .unwrap();
    cluster.kill(l);
    let survivors = cluster.endpoints();
    // Keep it alive through whichever node answers, for several TTLs.
    let start = Instant::now();
    let mut ok_after_kill = 0;
    while start.elapsed() < Duration::from_secs(6) {
        for ep in &survivors {
            let mut c = connect(vec![ep.clone()]).await;
            if let Ok((mut k, mut s)) = c.lease_keep_alive(id).await {
                if k.keep_alive().await.is_ok() {
                    if let Ok(Ok(Some(r))) =
                        tokio::time::timeout(Duration::from_secs(2), s.message()).await
                    {
                        assert!(r.ttl() > 0, "the lease expired during the leader change");
                        ok_after_kill += 1;
                        break;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(ok_after_kill > 3, "keep-alives kept failing");
    let mut c = connect(survivors).await;
    let r = c
        .get("s/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(r.kvs().len(), 1, "the kept-alive session's key is gone");
}
