//! Members added to and taken out of a running cluster through the real etcdctl, as an
//! operator grows and shrinks an etcd cluster: `member add` (as a learner, then promoted, or
//! as a voter at once), a new `synod server --initial-cluster-state existing` joining from a
//! peer's snapshot, and `member remove`, all while a client keeps writing.

use crate::common::{etcdctl, free_ports, member_list as members, member_roles as roles, Cluster};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

fn until_ok<S: AsRef<str> + std::fmt::Debug>(args: &[S]) -> String {
    crate::common::etcdctl_until_ok(args, Duration::from_secs(20))
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Polls `check` every 100 ms for up to 30 s.
fn eventually(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match check() {
            Ok(()) => return,
            Err(last) if Instant::now() > deadline => panic!("{what}: {last}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A client writing `load/N` keys one after another to `eps` until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    thread: JoinHandle<(u64, Vec<String>)>,
}

impl Load {
    fn start(eps: String) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let acked_now = Arc::new(AtomicU64::new(0));
        let count = acked_now.clone();
        let thread = std::thread::spawn(move || {
            let (mut acked, mut failed) = (0, Vec::new());
            while !flag.load(Ordering::Relaxed) {
                let key = format!("load/{acked:05}");
                let put = || etcdctl(&["--endpoints", &eps, "put", &key, "v"]);
                let (mut ok, mut out) = put();
                // A member killed (the restart below) or stopped (a removal) with this put in
                // flight closes its connection: the outcome is unknown, and a client retries
                // (the same key and value, so a retry is harmless). Seen once in a full run.
                if !ok && out.contains("code = Unavailable") {
                    (ok, out) = put();
                }
                if ok {
                    acked += 1;
                    count.store(acked, Ordering::Relaxed);
                } else {
                    failed.push(out);
                }
            }
            (acked, failed)
        });
        Load {
            stop,
            acked: acked_now,
            thread,
        }
    }

    /// Waits until `n` more writes than now were acknowledged.
    fn more(&self, n: u64) -> u64 {
        let target = self.acked.load(Ordering::Relaxed) + n;
        eventually("the load goes on", || {
            let now = self.acked.load(Ordering::Relaxed);
            (now >= target).then_some(()).ok_or(format!("{now} acked"))
        });
        target
    }

    /// Writes acknowledged (keys `load/00000` on), and the failures' messages.
    fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the load thread")
    }
}

/// The leader the members at `eps` name.
fn leader(eps: &str) -> Option<u64> {
    let (ok, out) = etcdctl(&["--endpoints", eps, "endpoint", "status", "-w", "json"]);
    let v = ok.then(|| json(&out))?;
    v[0]["Status"]["leader"].as_u64().filter(|&l| l != 0)
}

fn add(ep: &str, name: &str, peer_port: u16, learner: bool) -> String {
    let url = format!("--peer-urls=http://127.0.0.1:{peer_port}");
    let mut args = vec!["--endpoints", ep, "member", "add", name, &url];
    if learner {
        args.push("--learner");
    }
    until_ok(&args)
}

/// Waits until new member `id` at `ep` serves `key` as `value` from its own state (it joined
/// and caught up), then promotes it through `eps` once the leader finds it in sync.
fn caught_up_and_promoted(ep: &str, eps: &str, id: u64, key: &str, value: &str) {
    eventually(&format!("node {id} joins and catches up"), || {
        let (ok, out) = etcdctl(&[
            "--endpoints",
            ep,
            "get",
            key,
            "--consistency=s",
            "--print-value-only",
        ]);
        (ok && out.trim() == value).then_some(()).ok_or(out)
    });
    eventually(&format!("node {id} is promoted once in sync"), || {
        let (ok, out) = etcdctl(&["--endpoints", eps, "member", "promote", &id.to_string()]);
        ok.then_some(()).ok_or(out)
    });
}

#[test]
fn a_cluster_grows_from_three_to_five_under_load_and_shrinks_back() {
    let mut c = Cluster::start(3);
    let eps = c.endpoints().join(",");
    until_ok(&["--endpoints", &eps, "put", "before", "the-growth"]);
    let load = Load::start(eps.clone());
    let before = load.more(3);

    // A learner first, as etcd recommends: it votes only once promoted.
    let p4 = free_ports(1)[0];
    let out = add(&eps, "n4", p4, true);
    assert!(out.contains(&format!("Member {:16x} added", 4)), "{out}");
    assert!(
        out.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{out}"
    );
    assert_eq!(
        roles(&eps),
        vec![(1, false), (2, false), (3, false), (4, true)]
    );
    // Not up yet, so not in sync: refused with etcd's words.
    let (ok, out) = etcdctl(&["--endpoints", &eps, "member", "promote", "4"]);
    assert!(!ok && out.contains("in sync with leader"), "{out}");
    c.join(4, p4);
    let ep4 = c.endpoint(4);
    caught_up_and_promoted(&ep4, &eps, 4, "before", "the-growth");

    // A voter at once: safe, though until it is up it is a voter fewer to spare.
    let p5 = free_ports(1)[0];
    let out = add(&eps, "n5", p5, false);
    assert!(out.contains(&format!("Member {:16x} added", 5)), "{out}");
    c.join(5, p5);
    let ep5 = c.endpoint(5);
    eventually("both new members record where they serve clients", || {
        let m = members(&ep5);
        let urls: Vec<_> = m.iter().map(|(_, _, u)| u.len()).collect();
        (m.len() == 5 && m.iter().all(|(_, l, u)| !l && !u.is_empty()))
            .then_some(())
            .ok_or(format!("{m:?} {urls:?}"))
    });
    assert!(members(&ep5)[4].2[0].ends_with(&ep5), "{:?}", members(&ep5));
    // Both take writes and linearizable reads, as every member does.
    until_ok(&["--endpoints", &ep4, "put", "via", "four"]);
    until_ok(&["--endpoints", &ep5, "put", "via", "five"]);
    let out = until_ok(&["--endpoints", &ep4, "get", "via", "--print-value-only"]);
    assert_eq!(out.trim(), "five");

    // An operator lists the new members in every node's --peers; a first member restarted so
    // still starts from the first members it had (pinned in its data directory), replays the
    // changes, and agrees with the others on who is in.
    c.list_joined_in_peers();
    let follower = (1..=3)
        .find(|&i| leader(&eps) != Some(i))
        .expect("a follower");
    c.kill(follower);
    c.restart(follower);
    let ep = c.endpoint(follower);
    eventually("the restarted member agrees on the members", || {
        let (mine, theirs) = (roles(&ep), roles(&ep5));
        (mine == theirs)
            .then_some(())
            .ok_or(format!("{mine:?} {theirs:?}"))
    });
    assert_eq!(roles(&ep).len(), 5);

    // And shrink back, one at a time.
    for gone in [5, 4] {
        let out = until_ok(&[
            "--endpoints",
            &eps,
            "member",
            "remove",
            &format!("{gone:x}"),
        ]);
        assert!(out.contains("removed"), "{out}");
    }
    assert_eq!(roles(&eps), vec![(1, false), (2, false), (3, false)]);
    until_ok(&["--endpoints", &eps, "put", "after", "the-shrink"]);
    load.more(3);

    let (acked, failed) = load.stop();
    assert!(failed.is_empty(), "writes failed: {failed:?}");
    eprintln!("{} writes acknowledged during the changes", acked - before);
    // Every acknowledged write is there, at every member left.
    for i in 1..=3 {
        let out = until_ok(&[
            "--endpoints",
            &c.endpoint(i),
            "get",
            "load/",
            "--prefix",
            "--keys-only",
            "--consistency=s",
        ]);
        let keys = out.split_whitespace().count() as u64;
        assert!(keys >= acked, "node {i} has {keys} of {acked} keys");
    }
}

#[test]
fn member_add_refuses_what_etcd_refuses() {
    let c = Cluster::start(3);
    let ep = c.endpoint(1);
    let taken = format!("--peer-urls=http://{}", c.peer_endpoint(2));
    let (ok, out) = etcdctl(&["--endpoints", &ep, "member", "add", "x", &taken]);
    assert!(!ok && out.contains("Peer URLs already exists"), "{out}");
    let (ok, out) = etcdctl(&[
        "--endpoints",
        &ep,
        "member",
        "add",
        "x",
        "--peer-urls=http://node4:2380",
    ]);
    assert!(!ok && out.contains("http://IP:PORT"), "{out}");
    // Nothing was added.
    assert_eq!(roles(&ep), vec![(1, false), (2, false), (3, false)]);
}

/// A store larger than the largest peer message (64 MiB) still reaches a new member: the
/// snapshot it joins from goes in pieces.
#[test]
fn a_new_member_joins_a_store_larger_than_any_peer_message() {
    let mut c = Cluster::start(3);
    let eps = c.endpoints();
    let value = |i: usize| format!("{i:03}").repeat((1 << 20) / 3).into_bytes();
    let keys = 66;
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    rt.block_on(async {
        let mut client = etcd_client::Client::connect(eps.clone(), None)
            .await
            .expect("connects");
        for i in 0..keys {
            let key = format!("big/{i:03}");
            // A client library retries what a leader change interrupted; so does this one.
            let mut tries = 0;
            while let Err(e) = client.put(key.clone(), value(i), None).await {
                tries += 1;
                assert!(tries < 20, "put {key}: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    // Every member snapshots now, so whichever the joiner asks sends a stored snapshot.
    for ep in &eps {
        until_ok(&["--endpoints", ep, "defrag"]);
    }
    let p4 = free_ports(1)[0];
    add(&eps.join(","), "n4", p4, true);
    c.join(4, p4);
    let ep4 = c.endpoint(4);
    eventually("node 4 joins from the large snapshot", || {
        let (ok, out) = etcdctl(&[
            "--endpoints",
            &ep4,
            "get",
            "big/",
            "--prefix",
            "--keys-only",
            "--consistency=s",
        ]);
        let n = out.split_whitespace().count();
        let log = std::fs::read_to_string(c.log_path(4)).unwrap_or_default();
        (ok && n == keys)
            .then_some(())
            .ok_or(format!("{n} keys: {out:.300}\n{log}"))
    });
    let got = rt.block_on(async {
        let mut client = etcd_client::Client::connect([ep4], None)
            .await
            .expect("connects");
        let opts = etcd_client::GetOptions::new().with_serializable();
        let r = client.get("big/065", Some(opts)).await;
        let log = std::fs::read_to_string(c.log_path(4)).unwrap_or_default();
        let r = r.unwrap_or_else(|e| panic!("a get: {e}\n{log}"));
        r.kvs().first().map(|kv| kv.value().to_vec())
    });
    assert!(got == Some(value(65)), "node 4 holds another value");
}

/// A member whose disk was wiped is replaced as etcd's runbook says: remove it, add a new member
/// (a new id: the old one's promises and votes are gone with its disk) at the same peer URL, start
/// it empty to join, and promote it once in sync; a client writes throughout.
#[test]
fn a_member_whose_disk_was_wiped_is_replaced_under_load() {
    let mut c = Cluster::start(3);
    let eps = c.endpoints().join(",");
    until_ok(&["--endpoints", &eps, "put", "before", "the-wipe"]);
    let load = Load::start(c.endpoints()[..2].join(","));
    let before = load.more(3);

    // Node 3 loses its disk.
    c.kill(3);
    std::fs::remove_dir_all(c.data_dir(3)).expect("wipe node 3");
    let survivors = c.endpoints().join(",");
    let out = until_ok(&["--endpoints", &survivors, "member", "remove", "3"]);
    assert!(out.contains("removed"), "{out}");
    load.more(3);

    // Its replacement takes the same peer URL, under a new id.
    let addr = c.peer_endpoint(3);
    let port: u16 = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let out = add(&survivors, "n3-again", port, true);
    assert!(out.contains(&format!("Member {:16x} added", 4)), "{out}");
    c.join(4, port);
    let ep4 = c.endpoint(4);
    caught_up_and_promoted(&ep4, &survivors, 4, "before", "the-wipe");
    assert_eq!(roles(&ep4), vec![(1, false), (2, false), (4, false)]);
    load.more(3);

    // Three voters again: the cluster survives losing one of the old members.
    let (acked, failed) = load.stop();
    assert!(failed.is_empty(), "writes failed: {failed:?}");
    eprintln!(
        "{} writes acknowledged during the replacement",
        acked - before
    );
    c.kill(1);
    let rest = [c.endpoint(2), ep4.clone()].join(",");
    until_ok(&["--endpoints", &rest, "put", "after", "the-replacement"]);
    let out = until_ok(&[
        "--endpoints",
        &ep4,
        "get",
        "load/",
        "--prefix",
        "--keys-only",
        "--consistency=s",
    ]);
    let keys = out.split_whitespace().count() as u64;
    assert!(keys >= acked, "node 4 has {keys} of {acked} keys");
}
