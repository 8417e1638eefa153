//! The real etcd tool against a 3-node Synod cluster. `.ci/run` installs Debian's etcd-client.

mod common;

use common::Cluster;
use std::process::Command;
use std::time::{Duration, Instant};

fn etcdctl(endpoints: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg("--command-timeout=5s")
        .args(args)
        .output()
        .expect("etcdctl is not installed: `apt-get install etcd-client` (the README says so)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn until_ok(endpoints: &str, args: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (ok, out) = etcdctl(endpoints, args);
        if ok {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "etcdctl {args:?} kept failing: {out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={eps}"))
        .args(["txn"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("etcdctl");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"value(\"app/b\") = \"2\"\n\nput app/b 20\nget other\n\n\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let txt = String::from_utf8_lossy(&out.stdout);
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
