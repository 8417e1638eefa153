//! `synod server --protocol fast-multi`: a 3-node cluster driven through the etcd-client crate,
//! with writes sent to followers, the leader killed with -9, and every node killed and
//! restarted.

use crate::common::{connect, put_retry, Cluster};
use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use std::time::{Duration, Instant};

/// The value of `k`, read linearizably (retried while the cluster recovers).
async fn get_retry(c: &mut Client, k: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match c.get(k, None).await {
            Ok(r) => {
                return r
                    .kvs()
                    .first()
                    .map(|kv| kv.value_str().unwrap().to_string())
            }
            Err(e) if Instant::now() > deadline => panic!("get {k} never succeeded: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_multi_paxos_serves_the_kv_api_and_survives_kills() {
    let mut cluster = Cluster::start_with(3, &["--protocol", "fast-multi"]);
    // Writes through node 2, reads through node 3: every node proposes for its own clients.
    let mut via2 = connect(vec![cluster.endpoint(2)]).await;
    let mut via3 = connect(vec![cluster.endpoint(3)]).await;
    for i in 0..20 {
        put_retry(&mut via2, &format!("k{i}"), &format!("v{i}"), None).await;
    }
    for i in 0..20 {
        assert_eq!(
            get_retry(&mut via3, &format!("k{i}")).await,
            Some(format!("v{i}"))
        );
    }
    // Concurrent writers on every node race into the same slots: collisions are recovered.
    let mut tasks = Vec::new();
    for node in 1..=3u64 {
        let ep = cluster.endpoint(node);
        tasks.push(tokio::spawn(async move {
            let mut c = connect(vec![ep]).await;
            for i in 0..30 {
                put_retry(&mut c, &format!("n{node}/{i}"), "x", None).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = via3
        .get("n", Some(etcd_client::GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(r.kvs().len(), 90, "every racing write landed once");
    // A transaction is one command: its compare sees every write before it.
    let txn = Txn::new()
        .when([Compare::value("k1", CompareOp::Equal, "v1")])
        .and_then([TxnOp::put("k1", "swapped", None)]);
    assert!(via2.txn(txn).await.unwrap().succeeded());
    assert_eq!(get_retry(&mut via3, "k1").await.as_deref(), Some("swapped"));

    // The first leader (node 1: the shortest election timeout) dies; the others go on.
    cluster.kill(1);
    put_retry(&mut via2, "after-kill", "yes", None).await;
    assert_eq!(
        get_retry(&mut via3, "after-kill").await.as_deref(),
        Some("yes")
    );

    // Every node dies at once and comes back: the log is rebuilt from the acceptors' votes.
    cluster.kill(2);
    cluster.kill(3);
    for i in 1..=3 {
        cluster.restart(i);
    }
    let mut any = connect(cluster.endpoints()).await;
    assert_eq!(
        get_retry(&mut any, "after-kill").await.as_deref(),
        Some("yes")
    );
    assert_eq!(get_retry(&mut any, "k1").await.as_deref(), Some("swapped"));
    assert_eq!(get_retry(&mut any, "k19").await.as_deref(), Some("v19"));
}

#[test]
fn a_data_directory_of_the_other_protocol_is_refused_with_a_reason() {
    let mut cluster = Cluster::start(1);
    let deadline = Instant::now() + Duration::from_secs(10);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = connect(cluster.endpoints()).await;
        while c.put("a", "1", None).await.is_err() {
            assert!(Instant::now() < deadline, "no leader");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    cluster.kill(1);
    let free = crate::common::free_ports(3);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(["server", "--id", "1", "--protocol", "fast-multi"])
        .args(["--peers", &format!("1=127.0.0.1:{}", free[0])])
        .args(["--listen-client", &format!("127.0.0.1:{}", free[1])])
        .args(["--listen-admin", &format!("127.0.0.1:{}", free[2])])
        .arg("--data-dir")
        .arg(cluster.data_dir(1))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not written by --protocol fast-multi"),
        "{err}"
    );
}
