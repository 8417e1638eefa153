//! Admin HTTP, and input from the network that must be refused without harm.

use crate::common::{http_get, Cluster};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn wait_healthy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, _) = http_get(port, "/health");
        if code == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "never healthy (last {code})");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A cluster of `nodes`, its first member healthy, and a client of all of them.
async fn healthy_cluster(nodes: u64) -> (Cluster, etcd_client::Client) {
    let cluster = Cluster::start(nodes);
    wait_healthy(cluster.admin_ports[0]);
    let c = etcd_client::Client::connect(cluster.endpoints(), None)
        .await
        .unwrap();
    (cluster, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_http_reports_health_status_and_metrics() {
    let (cluster, mut c) = healthy_cluster(3).await;
    for i in 0..10 {
        c.put(format!("k{i}"), "v", None).await.unwrap();
    }
    // A follower learns the commit point from the leader's next accept or heartbeat, so it may
    // trail the last acknowledged put for a moment: wait for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let v = loop {
        let (code, body) = http_get(cluster.admin_ports[1], "/status");
        assert_eq!(code, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if v["commit_index"].as_u64().unwrap_or(0) >= 10 {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "follower never caught up: {body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(v["id"], 2);
    assert!(v["leader"].as_u64().is_some(), "{v}");
    assert_eq!(v["members"].as_array().unwrap().len(), 3);

    let leader = v["leader"].as_u64().unwrap() as usize;
    let (code, text) = http_get(cluster.admin_ports[leader - 1], "/metrics");
    assert_eq!(code, 200);
    for name in [
        "synod_proposals_total",
        "synod_applied_slots_total",
        "synod_batch_size_bucket",
        "synod_fsync_seconds_bucket",
        "synod_elections_total",
        "synod_commands_rerouted_total",
        "synod_peer_messages_sent_total{kind=\"accept\"}",
    ] {
        assert!(text.contains(name), "missing {name} in:\n{text}");
    }
    // The client balances over every member, so its puts are timed by whichever it reached.
    let put_timed = cluster.admin_ports.iter().any(|&port| {
        http_get(port, "/metrics")
            .1
            .contains("synod_client_request_seconds_bucket{method=\"put\"")
    });
    assert!(put_timed, "no member timed a put request");
    assert_eq!(http_get(cluster.admin_ports[0], "/nope").0, 404);
}

/// The value of `synod_log_batches_total{thread="..."}` in a `/metrics` page, 0 if absent.
fn batches(metrics: &str, thread: &str) -> u64 {
    counter(
        metrics,
        &format!("synod_log_batches_total{{thread=\"{thread}\"}}"),
    )
}

/// The value of the counter `name` (with its labels) on a `/metrics` page; 0 if absent.
fn counter(metrics: &str, name: &str) -> u64 {
    let prefix = format!("{name} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lone_writes_are_synced_on_the_node_loops_own_thread() {
    let (cluster, mut c) = healthy_cluster(3).await;
    // One put at a time, with the log idle between them: no node has other work waiting.
    for i in 0..10 {
        c.put(format!("lone{i}"), "v", None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pages: Vec<String> = cluster
        .admin_ports
        .iter()
        .map(|&port| http_get(port, "/metrics").1)
        .collect();
    let on_loop: u64 = pages.iter().map(|p| batches(p, "loop")).sum();
    assert!(
        on_loop > 0,
        "no sync ran on a node loop's thread:\n{}",
        pages.join("\n")
    );
    // Every put was synced by a quorum (the leader and the follower that voted; the puts
    // follow one another, so no two share a batch) and reached the third member's log too,
    // unsynced (thrifty accepts, the default). Not every put: one still in flight after a
    // heartbeat round (a loaded machine) is sent to the third member as well, which then
    // votes and syncs it, and chosen values held for a tick may share a batch.
    let synced: u64 = pages
        .iter()
        .map(|p| batches(p, "loop") + batches(p, "flusher"))
        .sum();
    let unsynced: u64 = pages
        .iter()
        .map(|p| counter(p, "synod_log_unsynced_batches_total"))
        .sum();
    assert!(synced >= 20, "{synced} synced batches for 10 puts");
    assert!(unsynced > 0, "no unsynced batch for 10 puts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_are_refused_with_a_clear_error() {
    let (_cluster, mut c) = healthy_cluster(1).await;
    let big = vec![b'x'; 2 * 1024 * 1024];
    let err = c.put("big", big, None).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("message length too large") || msg.contains("larger than max"),
        "{msg}"
    );
    c.put("small", "ok", None)
        .await
        .expect("the server still serves");
}

/// A gRPC call of `path` with an empty request, at `endpoint`; its status code.
async fn raw_call(endpoint: &str, path: &'static str) -> tonic::Code {
    use tonic::codegen::http::uri::PathAndQuery;
    let channel = tonic::transport::Channel::from_shared(format!("http://{endpoint}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path = PathAndQuery::from_static(path);
    match grpc.unary(tonic::Request::new(()), path, codec).await {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_grpc_services_and_methods_are_unimplemented() {
    let (cluster, mut c) = healthy_cluster(1).await;
    let endpoint = &cluster.endpoints()[0];
    for path in [
        "/nope.Nothing/Call",
        "/etcdserverpb.KV/Nope",
        "/etcdserverpb.KV/",
        "/etcdserverpb.KV",
        "/v3lockpb.Lock/Put",
    ] {
        let code = raw_call(endpoint, path).await;
        assert_eq!(code, tonic::Code::Unimplemented, "{path}");
    }
    // Maintenance.Status takes an empty request, so a known method answers it.
    let code = raw_call(endpoint, "/etcdserverpb.Maintenance/Status").await;
    assert_eq!(code, tonic::Code::Ok);
    c.put("k", "v", None)
        .await
        .expect("the server still serves");
}

/// The peer port of node 1 (the one after its client port in the harness's list is not
/// known, so read it from /status).
fn peer_port(cluster: &Cluster, i: usize) -> u16 {
    let (_, body) = http_get(cluster.admin_ports[i], "/status");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let addr = v["members"][i]["peer_addr"].as_str().unwrap().to_string();
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn malformed_peer_frames_and_impostors_are_disconnected_and_the_node_survives() {
    let cluster = Cluster::start(1);
    wait_healthy(cluster.admin_ports[0]);
    let port = peer_port(&cluster, 0);
    // An impostor claiming to be a node that is not a member.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(&[0, 0, 0, 1, 99]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        s.read(&mut buf).unwrap_or(0),
        0,
        "impostor connection is closed"
    );
    // Garbage: a frame claiming 4 GiB.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(
        s.read(&mut buf).unwrap_or(0),
        0,
        "garbage connection is closed"
    );
    // Random bytes.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _ = s.write_all(b"GET / HTTP/1.1\r\n\r\n");
    drop(s);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        http_get(cluster.admin_ports[0], "/health").0,
        200,
        "node still healthy"
    );
}
