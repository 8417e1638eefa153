//! etcd's server-side Lock and Election services, through an etcd client library (the
//! `etcd-client` crate, which calls them directly rather than running client-side recipes as
//! etcdctl does).

use crate::common::{connect, Cluster};
use etcd_client::{LockOptions, ProclaimOptions, ResignOptions};
use std::time::Duration;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(15);
/// Long enough that a waiter that would wrongly get the lock has got it.
const BLOCKED: Duration = Duration::from_millis(800);

async fn lease(c: &mut etcd_client::Client) -> i64 {
    timeout(WAIT, async {
        loop {
            match c.lease_grant(60, None).await {
                Ok(l) => return l.id(),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
    .await
    .expect("a lease granted once a leader is elected")
}

#[test]
fn a_lock_admits_one_holder_at_a_time_and_forgets_waiters_that_left() {
    let c = Cluster::start(3);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut a = connect(vec![c.endpoint(1)]).await;
        let mut b = connect(vec![c.endpoint(2)]).await;
        let mut d = connect(vec![c.endpoint(3)]).await;
        let (la, lb) = (lease(&mut a).await, lease(&mut b).await);
        let held = a
            .lock("job", Some(LockOptions::new().with_lease(la)))
            .await
            .expect("a free lock");
        assert!(held.key().starts_with(b"job/"), "{:?}", held.key());
        // The holder's key is a real key, tied to its lease.
        let got = a.get(held.key(), None).await.unwrap();
        assert_eq!(got.kvs()[0].lease(), la);

        // A second caller waits.
        let mut b2 = b.clone();
        let second = tokio::spawn(async move {
            b2.lock("job", Some(LockOptions::new().with_lease(lb)))
                .await
                .map(|r| r.key().to_vec())
        });
        tokio::time::sleep(BLOCKED).await;
        assert!(!second.is_finished(), "two holders at once");
        // A third gives up while waiting: its key must not keep anyone out later.
        let gave_up = timeout(BLOCKED, d.lock("job", None)).await;
        assert!(gave_up.is_err(), "the third got a held lock");

        a.unlock(held.key()).await.unwrap();
        let key_b = timeout(WAIT, second)
            .await
            .expect("the waiter got the lock after the unlock")
            .unwrap()
            .unwrap();
        assert_ne!(key_b, held.key());
        b.unlock(key_b).await.unwrap();
        // Only the third's abandoned key could be in the way now, and it was deleted.
        let next = timeout(WAIT, a.lock("job", Some(LockOptions::new().with_lease(la))))
            .await
            .expect("nobody holds the lock")
            .unwrap();
        let waiting = a
            .get("job/", Some(etcd_client::GetOptions::new().with_prefix()))
            .await
            .unwrap();
        assert_eq!(waiting.kvs().len(), 1, "only the holder's key is left");
        // A holder whose lease is revoked loses the lock.
        let mut b3 = b.clone();
        let after = tokio::spawn(async move { b3.lock("job", None).await.map(|_| ()) });
        tokio::time::sleep(BLOCKED).await;
        assert!(!after.is_finished());
        a.lease_revoke(la).await.unwrap();
        timeout(WAIT, after)
            .await
            .expect("the lock passed on when the holder's lease ended")
            .unwrap()
            .unwrap();
        drop(next);
    });
}

#[test]
fn an_election_has_one_leader_whose_values_observers_see_in_order() {
    let c = Cluster::start(3);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut a = connect(vec![c.endpoint(1)]).await;
        let mut b = connect(vec![c.endpoint(2)]).await;
        let mut o = connect(vec![c.endpoint(3)]).await;
        let (la, lb) = (lease(&mut a).await, lease(&mut b).await);
        let won = a.campaign("pilot", "a1", la).await.expect("no rival");
        let leader_a = won.leader().expect("a leader key").clone();
        let mut seen = o.observe("pilot").await.unwrap();
        let first = timeout(WAIT, seen.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(first.kv().unwrap().value(), b"a1");

        let mut b2 = b.clone();
        let rival = tokio::spawn(async move { b2.campaign("pilot", "b1", lb).await });
        tokio::time::sleep(BLOCKED).await;
        assert!(!rival.is_finished(), "two leaders at once");
        let now = o.leader("pilot").await.unwrap();
        assert_eq!(now.kv().unwrap().value(), b"a1");

        a.proclaim(
            "a2",
            Some(ProclaimOptions::new().with_leader(leader_a.clone())),
        )
        .await
        .unwrap();
        let next = timeout(WAIT, seen.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(next.kv().unwrap().value(), b"a2");

        a.resign(Some(ResignOptions::new().with_leader(leader_a.clone())))
            .await
            .unwrap();
        let won_b = timeout(WAIT, rival)
            .await
            .expect("the rival leads once the leader resigned")
            .unwrap()
            .unwrap();
        let leader_b = won_b.leader().unwrap().clone();
        let next = timeout(WAIT, seen.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(next.kv().unwrap().value(), b"b1");

        // The old leader's key no longer leads: it can neither proclaim nor unseat the new one.
        let stale = a
            .proclaim(
                "a3",
                Some(ProclaimOptions::new().with_leader(leader_a.clone())),
            )
            .await;
        assert!(
            stale
                .as_ref()
                .is_err_and(|e| e.to_string().contains("not leader")),
            "{stale:?}"
        );
        a.resign(Some(ResignOptions::new().with_leader(leader_a)))
            .await
            .unwrap();
        let now = o.leader("pilot").await.unwrap();
        assert_eq!(now.kv().unwrap().value(), b"b1");
        b.resign(Some(ResignOptions::new().with_leader(leader_b)))
            .await
            .unwrap();
        let none = o.leader("pilot").await;
        assert!(
            none.as_ref()
                .is_err_and(|e| e.to_string().contains("no leader")),
            "{none:?}"
        );
    });
}
