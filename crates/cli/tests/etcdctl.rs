//! The real etcd tool against a 3-node Synod cluster. `.ci/run` installs Debian's etcd-client.

use crate::common::Cluster;
use std::process::Command;
use std::time::{Duration, Instant};

fn etcdctl(endpoints: &str, args: &[&str]) -> (bool, String) {
    let endpoints = format!("--endpoints={endpoints}");
    let args: Vec<&str> = [endpoints.as_str(), "--command-timeout=5s"]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    crate::common::etcdctl_with(&args, None)
}

fn until_ok(endpoints: &str, args: &[&str]) -> String {
    let endpoints = format!("--endpoints={endpoints}");
    let args: Vec<&str> = std::iter::once(endpoints.as_str())
        .chain(args.iter().copied())
        .collect();
    crate::common::etcdctl_until_ok(&args, Duration::from_secs(15))
}

#[test]
fn etcdctl_put_get_del_txn_status_and_member_list() {
    let cluster = Cluster::start(3);
    let eps = cluster.endpoints().join(",");
    assert_eq!(until_ok(&eps, &["put", "app/a", "1"]).trim(), "OK");
    until_ok(&eps, &["put", "app/b", "2"]);
    until_ok(&eps, &["put", "other", "3"]);

    let got = until_ok(&eps, &["get", "--prefix", "app/"]);
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        vec!["app/a", "1", "app/b", "2"]
    );

    let deleted = until_ok(&eps, &["del", "app/a"]);
    assert_eq!(deleted.trim(), "1");

    // txn reads its script from stdin in interactive mode; use the non-interactive form.
    let script = "value(\"app/b\") = \"2\"\n\nput app/b 20\nget other\n\n\n";
    let (_, txt) =
        crate::common::etcdctl_with(&[&format!("--endpoints={eps}"), "txn"], Some(script));
    assert!(txt.starts_with("SUCCESS"), "{txt}");
    assert!(txt.contains("OK") && txt.contains("other\n3"), "{txt}");
    assert_eq!(
        until_ok(&eps, &["get", "app/b", "--print-value-only"]).trim(),
        "20"
    );

    let status = until_ok(&eps, &["endpoint", "status", "-w", "table"]);
    assert_eq!(
        status.matches("true").count(),
        1,
        "exactly one leader:\n{status}"
    );
    for ep in cluster.endpoints() {
        assert!(status.contains(&ep), "{status}");
    }

    let members = until_ok(&eps, &["member", "list"]);
    assert_eq!(members.lines().count(), 3, "{members}");
    assert!(
        members.contains("node1") && members.contains("started"),
        "{members}"
    );
}

#[test]
fn auto_compaction_drops_history_older_than_it_keeps_with_auth_on() {
    auto_compaction_with(&[]);
}

#[test]
fn fast_multi_auto_compaction_drops_history_older_than_it_keeps_with_auth_on() {
    auto_compaction_with(&["--protocol", "fast-multi"]);
}

/// A 3-node cluster started with `extra` and one second of history kept: with auth on, an old
/// revision turns unreadable as compacted and the latest value stays.
fn auto_compaction_with(extra: &[&str]) {
    // Keep one second of history, looking every tenth of it.
    let flags = [extra, &["--auto-compaction-retention", "1s"]].concat();
    let cluster = Cluster::start_with(3, &flags);
    let eps = cluster.endpoints().join(",");
    // With auth on a compaction needs a known user: the leader's own run as root.
    until_ok(&eps, &["user", "add", "root", "--new-user-password=rootpw"]);
    until_ok(&eps, &["user", "grant-role", "root", "root"]);
    until_ok(&eps, &["auth", "enable"]);
    let as_root = |more: &[&str]| -> Vec<String> {
        std::iter::once("--user=root:rootpw")
            .chain(more.iter().copied())
            .map(String::from)
            .collect()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        until_ok(&eps, &args)
    };
    run(as_root(&["put", "k", "v1"]));
    let first: serde_json::Value =
        serde_json::from_str(&run(as_root(&["get", "k", "-w", "json"]))).unwrap();
    let rev = first["kvs"][0]["mod_revision"]
        .as_i64()
        .unwrap()
        .to_string();
    run(as_root(&["put", "k", "v2"]));
    let start = Instant::now();
    loop {
        let args = as_root(&["get", "k", "--rev", &rev]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out) = etcdctl(&eps, &args);
        if !ok && out.contains("compacted") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "revision {rev} still readable: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The latest value stays.
    let latest = run(as_root(&["get", "k", "--print-value-only"]));
    assert_eq!(latest.trim(), "v2");
}

/// Starts `etcdctl` with `args` in the background, output captured.
fn etcdctl_bg(endpoints: &str, args: &[&str]) -> std::process::Child {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("etcdctl")
}

fn stop(mut child: std::process::Child, signal: &str) -> String {
    let _ = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn etcdctl_watch_and_leases() {
    let cluster = Cluster::start(3);
    let eps = cluster.endpoints().join(",");
    until_ok(&eps, &["put", "warm", "up"]);
    let watch = etcdctl_bg(&eps, &["watch", "--prefix", "job/"]);
    std::thread::sleep(Duration::from_millis(700));
    until_ok(&eps, &["put", "job/1", "queued"]);
    until_ok(&eps, &["put", "job/1", "running"]);
    until_ok(&eps, &["del", "job/1"]);

    // A lease: grant, attach, inspect, keep alive, revoke.
    let granted = until_ok(&eps, &["lease", "grant", "30"]);
    let id = granted
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("{granted}"))
        .to_string();
    assert!(granted.contains("granted with TTL(30s)"), "{granted}");
    until_ok(&eps, &["put", "--lease", &id, "job/2", "leased"]);
    let ttl = until_ok(&eps, &["lease", "timetolive", "--keys", &id]);
    assert!(ttl.contains("attached keys([job/2])"), "{ttl}");
    let list = until_ok(&eps, &["lease", "list"]);
    assert!(list.contains(&id), "{list}");
    let keeper = etcdctl_bg(&eps, &["lease", "keep-alive", &id]);
    std::thread::sleep(Duration::from_millis(1500));
    let kept = stop(keeper, "-TERM");
    assert!(kept.contains("keepalived with TTL(30)"), "{kept}");
    let revoked = until_ok(&eps, &["lease", "revoke", &id]);
    assert!(revoked.contains("revoked"), "{revoked}");
    assert_eq!(until_ok(&eps, &["get", "job/2"]).trim(), "");
    let gone = until_ok(&eps, &["lease", "timetolive", &id]);
    assert!(gone.contains("already expired"), "{gone}");

    std::thread::sleep(Duration::from_millis(500));
    let seen = stop(watch, "-TERM");
    // etcdctl prints a delete's (empty) value as an empty line.
    let lines: Vec<&str> = seen.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[..11],
        [
            "PUT", "job/1", "queued", "PUT", "job/1", "running", "DELETE", "job/1", "PUT", "job/2",
            "leased"
        ],
        "{seen}"
    );
    assert_eq!(lines[11..13], ["DELETE", "job/2"], "{seen}");
}

#[test]
fn etcdctl_lock_excludes_and_elect_hands_over() {
    let cluster = Cluster::start(3);
    let eps = cluster.endpoints().join(",");
    until_ok(&eps, &["put", "warm", "up"]);

    // Two contenders for one lock, each holding it for a while: their turns never overlap.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("turns");
    let script = |name: &str| {
        format!(
            "echo in-{name} >> {0}; sleep 1; echo out-{name} >> {0}",
            log.display()
        )
    };
    let (a, b) = (script("a"), script("b"));
    let first = etcdctl_bg(&eps, &["lock", "shared", "--", "sh", "-c", &a]);
    let second = etcdctl_bg(&eps, &["lock", "shared", "--", "sh", "-c", &b]);
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let turns = std::fs::read_to_string(&log).unwrap();
    let turns: Vec<&str> = turns.lines().collect();
    assert_eq!(turns.len(), 4, "{turns:?}");
    for pair in turns.chunks(2) {
        let who = pair[0].strip_prefix("in-").expect("a turn starts with in");
        assert_eq!(
            pair[1],
            format!("out-{who}"),
            "overlapping turns: {turns:?}"
        );
    }
    assert_ne!(turns[0], turns[2], "one contender ran twice: {turns:?}");

    // Election: the first candidate leads; the second waits until the first resigns.
    let leader = etcdctl_bg(&eps, &["elect", "office", "alice"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, got) = etcdctl(&eps, &["get", "--prefix", "office/", "--print-value-only"]);
        if got.trim() == "alice" {
            break;
        }
        assert!(Instant::now() < deadline, "alice never led: {got}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let challenger = etcdctl_bg(&eps, &["elect", "office", "bob"]);
    std::thread::sleep(Duration::from_millis(1500));
    let (_, observed) = etcdctl(
        &eps,
        &[
            "get",
            "--prefix",
            "office/",
            "--print-value-only",
            "--sort-by=CREATE",
            "--order=ASCEND",
        ],
    );
    assert_eq!(
        observed.lines().collect::<Vec<_>>(),
        ["alice", "bob"],
        "both proposals queue in order"
    );
    // Ctrl-C makes alice resign; bob's campaign then wins.
    let alice = stop(leader, "-INT");
    assert!(alice.contains("alice"), "{alice}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, got) = etcdctl(&eps, &["get", "--prefix", "office/", "--print-value-only"]);
        if got.trim() == "bob" {
            break;
        }
        assert!(Instant::now() < deadline, "bob never took over: {got}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let bob = stop(challenger, "-INT");
    assert!(
        bob.contains("bob"),
        "bob's campaign did not report winning: {bob}"
    );
}
