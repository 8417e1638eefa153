//! Four `synod server --protocol pbft` processes on loopback, keys from `synod keygen`, the
//! primary lying: `synod pbft` and `synod bench run --protocol pbft` still get right answers.

use crate::common::free_ports;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

fn synod(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(args)
        .output()
        .expect("synod runs")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The replicas, killed when dropped.
struct Replicas(Vec<Child>);

impl Drop for Replicas {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start(dir: &Path, peers: &str, liar: Option<(u64, &str)>) -> Replicas {
    let mut children = Vec::new();
    for id in 1..=4u64 {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_synod"));
        cmd.args([
            "server",
            "--protocol",
            "pbft",
            "--peers",
            peers,
            "--tick-ms",
            "5",
        ])
        .arg("--id")
        .arg(id.to_string())
        .arg("--keys")
        .arg(dir.join("keys"))
        .arg("--data-dir")
        .arg(dir.join(format!("pbft{id}")))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if let Some((_, mode)) = liar.filter(|(l, _)| *l == id) {
            cmd.args(["--byzantine", mode]);
        }
        children.push(cmd.spawn().expect("synod server starts"));
    }
    Replicas(children)
}

#[test]
fn a_pbft_cluster_with_an_equivocating_primary_answers_correctly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let keys = tmp.path().join("keys");
    let keys = keys.to_str().expect("utf-8 path");
    let out = synod(&["keygen", "--dir", keys, "--nodes", "4", "--clients", "3"]);
    assert!(out.status.success(), "{}", text(&out));
    let ports = free_ports(4);
    let peers = (1..=4)
        .map(|i| format!("{i}=127.0.0.1:{}", ports[i - 1]))
        .collect::<Vec<_>>()
        .join(",");
    let _replicas = start(tmp.path(), &peers, Some((1, "equivocate")));
    let client = [
        "pbft",
        "--replicas",
        &peers,
        "--keys",
        keys,
        "--timeout-ms",
        "30000",
    ];
    let run = |extra: &[&str]| synod(&[&client[..], extra].concat());
    let out = run(&["put", "greeting", "hello"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\n");
    let out = run(&["get", "greeting"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello\n",
        "{}",
        text(&out)
    );
    let out = run(&["delete", "greeting"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1\n",
        "{}",
        text(&out)
    );
    let out = run(&["get", "greeting"]);
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "{}",
        text(&out)
    );

    let json = tmp.path().join("bench.json");
    let out = synod(&[
        "bench",
        "run",
        "--protocol",
        "pbft",
        "--replicas",
        &peers,
        "--key-dir",
        keys,
        "--clients",
        "2",
        "--keys",
        "20",
        "--warmup",
        "0s",
        "--duration",
        "2s",
        "--quiet",
        "--json",
        json.to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json");
    assert!(r["ops"].as_u64().expect("ops") > 0, "{r}");
    assert_eq!(r["errors"].as_u64(), Some(0), "{r}");
}

#[test]
fn pbft_flags_that_do_not_fit_are_refused_with_a_reason() {
    let peers = "1=127.0.0.1:1,2=127.0.0.1:2,3=127.0.0.1:3,4=127.0.0.1:4";
    for (args, says) in [
        (
            vec![
                "server",
                "--protocol",
                "pbft",
                "--id",
                "1",
                "--peers",
                peers,
                "--listen-client",
                "127.0.0.1:1",
            ],
            "--listen-client does not apply",
        ),
        (
            vec![
                "server",
                "--protocol",
                "pbft",
                "--id",
                "1",
                "--peers",
                "1=127.0.0.1:1",
            ],
            "at least 4",
        ),
        (
            vec![
                "server",
                "--protocol",
                "pbft",
                "--id",
                "1",
                "--peers",
                peers,
                "--keys",
                "/nonexistent",
            ],
            "synod keygen",
        ),
        (
            vec!["server", "--id", "1", "--byzantine", "silent"],
            "--protocol pbft only",
        ),
        (
            vec!["server", "--protocol", "pbft", "--byzantine", "sneaky"],
            "equivocate, forge or silent",
        ),
        (vec!["server", "--protocol", "raft"], "pbft"),
        (
            vec![
                "pbft",
                "--replicas",
                peers,
                "--keys",
                "/nonexistent",
                "get",
                "k",
            ],
            "synod keygen",
        ),
        (vec!["bench", "run", "--protocol", "pbft"], "--replicas"),
    ] {
        let out = synod(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
