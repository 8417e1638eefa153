//! `synod bench run` refuses what it cannot measure before it starts any load, and keeps a
//! throughput timeline through a leader transfer without a failed request.

use crate::common::Cluster;
use std::process::Command;
use std::time::Duration;

#[test]
fn server_pids_that_cannot_be_read_are_refused_up_front() {
    let out = Command::new(env!("CARGO_BIN_EXE_synod"))
        .args([
            "bench",
            "run",
            "--endpoints",
            "127.0.0.1:1",
            "--server-pids",
            &std::process::id().to_string(),
        ])
        .arg("--server-pids=4294967295")
        .output()
        .expect("synod runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read the CPU time of process 4294967295"),
        "{err}"
    );
}

#[test]
fn a_timeline_spans_the_run_and_a_leader_transfer_fails_no_request() {
    let c = Cluster::start(3);
    let eps = c.endpoints().join(",");
    crate::common::etcdctl_until_ok(
        &["--endpoints", &eps, "put", "ready", "1"],
        Duration::from_secs(20),
    );
    let bench = std::process::Command::new(env!("CARGO_BIN_EXE_synod"))
        .args([
            "bench",
            "run",
            "--endpoints",
            &eps,
            "--clients",
            "8",
            "--conns",
            "3",
            "--warmup",
            "500ms",
            "--duration",
            "3s",
            "--timeline",
            "250ms",
            "--keys",
            "100",
            "--quiet",
            "--json",
            "-",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("synod bench runs");
    // Mid-run, hand leadership to whichever member does not lead.
    std::thread::sleep(Duration::from_millis(1500));
    let status = crate::common::etcdctl_until_ok(
        &["--endpoints", &eps, "endpoint", "status", "-w", "json"],
        Duration::from_secs(10),
    );
    let v: serde_json::Value = serde_json::from_str(status.trim()).expect("JSON");
    let leader = v[0]["Status"]["leader"].as_u64().expect("a leader");
    let target = c.other_than(leader);
    let moved = crate::common::etcdctl_until_ok(
        &["--endpoints", &eps, "move-leader", &format!("{target:x}")],
        Duration::from_secs(10),
    );
    assert!(moved.contains("Leadership transferred"), "{moved}");
    let out = bench.wait_with_output().expect("bench finishes");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("timeline, 250 ms intervals: median"),
        "{text}"
    );
    let json = &text[text.find('{').expect("JSON follows")..];
    let r: serde_json::Value = serde_json::from_str(json).expect("the run as JSON");
    assert_eq!(r["errors"], 0, "{json}");
    let ops: Vec<u64> = r["timeline"]["ops"]
        .as_array()
        .expect("a timeline")
        .iter()
        .map(|n| n.as_u64().expect("a count"))
        .collect();
    assert_eq!(ops.len(), 12, "3 s in 250 ms intervals: {ops:?}");
    // Every measured request is in an interval, but for the one each client may have had in
    // flight when the window closed.
    let (sum, all) = (ops.iter().sum::<u64>(), r["ops"].as_u64().expect("ops"));
    assert!(sum <= all && all - sum <= 8, "{sum} of {all}");
}
