//! The load generator against a single-node Synod served in this process, on free ports: every
//! workload completes requests, the histogram and the JSON hold what they should.

use std::time::{Duration, Instant};
use synod_bench::procs::free_ports;
use synod_bench::{run, KeyDist, RunConfig, Workload};
use synod_server::config::{Member, ServerConfig};

/// A one-node Synod on free loopback ports; stops when the returned sender is dropped.
async fn start_synod(dir: &std::path::Path) -> (String, tokio::sync::oneshot::Sender<()>) {
    let ports = free_ports(2).expect("free ports");
    let peer = format!("127.0.0.1:{}", ports[0]).parse().expect("addr");
    let client = format!("127.0.0.1:{}", ports[1]).parse().expect("addr");
    let cfg = ServerConfig {
        id: 1,
        members: vec![Member {
            id: 1,
            peer_addr: peer,
            client_addr: Some(client),
        }],
        client_addr: client,
        admin_addr: None,
        data_dir: dir.join("node1"),
        tick: Duration::from_millis(5),
        heartbeat_ticks: 5,
        election_ticks: (12, 24),
        window: 64,
        max_batch: 256,
        max_request_bytes: 1536 * 1024,
        snapshot_every: 10_000,
        snapshot_pace: synod_server::pace::DEFAULT_FACTOR,
        unsafe_local_reads: false,
        watch_progress_interval: Duration::from_secs(600),
        protocol: Default::default(),
        join: false,
        auxiliaries: Vec::new(),
        aux_digest_min: None,
        read_probes: Default::default(),
        accept_targets: Default::default(),
        notice_ticks: 1,
        auxiliary: false,
        client_tls: None,
        peer_tls: None,
        auth_token_ttl: Duration::from_secs(300),
        auth_token: "simple".into(),
        quota_backend_bytes: 0,
        auto_compaction: Default::default(),
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let stop = async move {
            let _ = rx.await;
        };
        if let Err(e) = synod_server::server::run(cfg, stop).await {
            eprintln!("server stopped: {e}");
        }
    });
    let endpoint = client.to_string();
    // Ready once a write goes through (the node must first elect itself).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = match etcd_client::Client::connect([&endpoint], None).await {
            Ok(mut c) => c.put("ready", "1", None).await.is_ok(),
            Err(_) => false,
        };
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "the server never accepted a put");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (endpoint, tx)
}

fn config(endpoint: &str, workload: Workload) -> RunConfig {
    RunConfig {
        endpoints: vec![endpoint.to_string()],
        workload,
        clients: 4,
        conns: 2,
        value_size: 64,
        keys: 50,
        dist: KeyDist::Zipf { s: 0.99 },
        read_percent: 50,
        rate: None,
        warmup: Duration::from_millis(100),
        duration: Duration::from_millis(400),
        seed: 5,
        preload: true,
        system: Some("synod".into()),
        progress: None,
        // The server runs in this very process.
        server_pids: vec![std::process::id()],
        security: Default::default(),
        timeline: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_against_synod() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (endpoint, _stop) = start_synod(dir.path()).await;

    for w in Workload::ALL {
        let r = run(&config(&endpoint, w)).await.expect("run");
        assert_eq!(r.errors, 0, "{w}: {:?}", r.error_samples);
        assert!(r.ops > 0, "{w}: no request completed");
        let l = &r.latency_ms;
        assert_eq!(
            l.count, r.ops,
            "{w}: every completed request is in the histogram"
        );
        assert!(
            0.0 < l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99,
            "{w}: {l:?}"
        );
        assert!(l.p99 <= l.p999 && l.p999 <= l.max, "{w}: {l:?}");
        assert!((r.throughput - r.ops as f64 / 0.4).abs() < 1e-6);
        // Server and load generator share this process, so both count the same CPU time, but
        // for a clock tick that may fall between the two reads at either end.
        let (Some(server), Some(own)) = (r.server_cpu_us_per_op, r.loadgen_cpu_us_per_op) else {
            panic!("{w}: no CPU figures: {r:?}");
        };
        assert!(server > 0.0, "{w}: {server}");
        assert!(
            ((server - own) * r.ops as f64).abs() <= 20_000.0,
            "{w}: {server} vs {own} us/op over {} ops",
            r.ops
        );
        assert!(
            r.service_ms.is_none(),
            "closed loop has no separate service time"
        );
        match (w, &r.cas) {
            (Workload::Cas, Some(c)) => {
                assert_eq!(c.succeeded + c.failed, r.ops);
                // Each client learns a key's revision on its first, failing, attempt.
                assert!(c.succeeded > 0, "no compare-and-set ever succeeded: {c:?}");
            }
            (Workload::Cas, None) => panic!("cas run without cas counts"),
            (_, c) => assert!(c.is_none()),
        }

        let json: serde_json::Value = serde_json::to_value(&r).expect("json");
        for field in [
            "system",
            "workload",
            "clients",
            "conns",
            "value_size",
            "keys",
            "dist",
            "rate",
            "warmup_s",
            "duration_s",
            "ops",
            "errors",
            "throughput",
            "latency_ms",
        ] {
            assert!(json.get(field).is_some(), "{w}: JSON lacks {field}");
        }
        for p in ["p50", "p90", "p99", "p999", "max", "mean", "count"] {
            assert!(
                json["latency_ms"].get(p).is_some(),
                "{w}: JSON lacks latency_ms.{p}"
            );
        }
        assert_eq!(json["workload"], w.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_charges_from_the_intended_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (endpoint, _stop) = start_synod(dir.path()).await;
    let mut cfg = config(&endpoint, Workload::Put);
    cfg.rate = Some(200.0);
    let r = run(&cfg).await.expect("run");
    assert_eq!(r.errors, 0, "{:?}", r.error_samples);
    // The schedule holds 200/s x 0.4 s = 80 requests in the measured window, never more.
    assert!(r.ops > 0 && r.ops <= 80, "ops {}", r.ops);
    let service = r.service_ms.expect("open loop reports service time");
    assert_eq!(service.count, r.ops);
    // Each request's latency from its intended time is at least its service time, so every
    // percentile is too.
    assert!(
        r.latency_ms.p50 >= service.p50,
        "{:?} vs {service:?}",
        r.latency_ms
    );
    assert!(r.latency_ms.max >= service.max);
}

#[tokio::test]
async fn bad_settings_are_refused_before_connecting() {
    let mut cfg = config("127.0.0.1:1", Workload::Put);
    cfg.conns = 8;
    assert!(run(&cfg).await.is_err());
    let mut cfg = config("127.0.0.1:1", Workload::Put);
    cfg.rate = Some(0.0);
    let e = run(&cfg).await.expect_err("zero rate");
    assert!(e.to_string().contains("--rate"), "{e}");
    let mut cfg = config("127.0.0.1:1", Workload::Put);
    cfg.timeline = Some(std::time::Duration::ZERO);
    let e = run(&cfg).await.expect_err("zero timeline");
    assert!(e.to_string().contains("--timeline"), "{e}");
}
