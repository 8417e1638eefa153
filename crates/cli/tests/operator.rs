//! The operator's half of the etcd API, through the real etcdctl: backups and restores, state
//! hashes that prove members equal, the raft term across leader changes, leadership handed over
//! under load, and the NOSPACE alarm with compaction, defragmentation and disarming.

use crate::common::{etcdctl, member_roles as members, Cluster};
use std::process::Command;
use std::time::{Duration, Instant};

/// Retries `args` for up to 20 s (a fresh cluster elects a leader first, a follower catches up).
fn until_ok<S: AsRef<str> + std::fmt::Debug>(args: &[S]) -> String {
    crate::common::etcdctl_until_ok(args, Duration::from_secs(20))
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// The store revision after a put.
fn put_revision(ep: &str, key: &str, value: &str) -> i64 {
    let out = until_ok(&["--endpoints", ep, "put", key, value, "-w", "json"]);
    json(&out)["header"]["revision"]
        .as_i64()
        .expect("a revision")
}

/// HashKV of member `ep` at `rev`, once it has applied that far.
fn hash_at(ep: &str, rev: i64) -> u64 {
    let out = until_ok(&[
        "--endpoints",
        ep,
        "endpoint",
        "hashkv",
        &format!("--rev={rev}"),
        "-w",
        "json",
    ]);
    let v = json(&out);
    v[0]["HashKV"]["hash"].as_u64().expect("a hash")
}

/// Every key and value under `prefix`, as etcdctl prints them.
fn dump(ep: &str, prefix: &str) -> String {
    until_ok(&["--endpoints", ep, "get", "--prefix", prefix])
}

fn synod(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(args)
        .output()
        .expect("run synod");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn a_backup_restores_into_a_new_cluster_that_hashes_the_same() {
    let mut c = Cluster::start(3);
    let ep1 = c.endpoint(1);
    for i in 0..40 {
        put_revision(&ep1, &format!("k{i:02}"), &format!("v{i}"));
    }
    until_ok(&["--endpoints", &ep1, "del", "k07"]);
    let mid = put_revision(&ep1, "k01", "again");
    until_ok(&["--endpoints", &ep1, "compact", &mid.to_string()]);
    let rev = put_revision(&ep1, "last", "x");
    // Every member agrees on the history, whichever applied further since.
    let hashes: Vec<u64> = c.all_endpoints().iter().map(|e| hash_at(e, rev)).collect();
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");
    // A member that diverged would not: a later write changes the hash at the later revision.
    let later = put_revision(&ep1, "k02", "changed");
    assert_ne!(hash_at(&ep1, later), hashes[0]);
    let before = dump(&ep1, "");

    let file = c.dir.path().join("backup.db");
    let file_s = file.display().to_string();
    let out = until_ok(&["--endpoints", &ep1, "snapshot", "save", &file_s]);
    assert!(out.contains("Snapshot saved"), "{out}");
    let (ok, status) = synod(&["snapshot", "status", &file_s]);
    assert!(ok, "{status}");
    assert!(
        status.contains(&format!("revision:          {later}")),
        "{status}"
    );
    assert!(status.contains("keys:              40"), "{status}");
    let backup_hash = hash_at(&ep1, later);
    assert!(
        status.contains(&format!("hash:              {backup_hash}")),
        "{status}"
    );

    // A damaged backup and a used directory are refused, with reasons.
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    let bad = c.dir.path().join("bad.db");
    std::fs::write(&bad, &bytes).unwrap();
    let (ok, out) = synod(&["snapshot", "status", &bad.display().to_string()]);
    assert!(!ok && out.contains("SHA-256"), "{out}");
    let used = c.data_dir(1).display().to_string();
    let (ok, out) = synod(&["snapshot", "restore", &file_s, "--data-dir", &used]);
    assert!(!ok && out.contains("already holds data"), "{out}");

    // The whole cluster is lost; a new one starts from the backup, every member from it.
    for i in 1..=3 {
        c.kill(i);
        std::fs::remove_dir_all(c.data_dir(i)).unwrap();
        let dir = c.data_dir(i).display().to_string();
        let (ok, out) = synod(&["snapshot", "restore", &file_s, "--data-dir", &dir]);
        assert!(ok, "{out}");
    }
    for i in 1..=3 {
        c.restart(i);
    }
    for ep in c.all_endpoints() {
        assert_eq!(hash_at(&ep, later), backup_hash, "member {ep}");
    }
    assert_eq!(dump(&c.endpoint(2), ""), before);
    assert_eq!(put_revision(&c.endpoint(3), "new", "1"), later + 1);
    // Compacted history stays compacted.
    let (ok, out) = etcdctl(&[
        "--endpoints",
        &ep1,
        "get",
        "k01",
        &format!("--rev={}", mid - 1),
    ]);
    assert!(!ok && out.contains("compacted"), "{out}");
}

/// A member's checkpoints after its first are laid in layers on the one before while nothing
/// is compacted (`synod_kv`'s `layers`): one restarted from such a checkpoint holds the same
/// history as before, and so does its backup.
#[test]
fn a_member_restarts_from_checkpoints_laid_in_layers() {
    let mut c = Cluster::start(3);
    let ep1 = c.endpoint(1);
    for round in 0..3 {
        for i in 0..25 {
            let key = format!("k{:02}", (i * 7 + round) % 40);
            put_revision(&ep1, &key, &format!("v{round}-{i}"));
        }
        until_ok(&["--endpoints", &ep1, "del", &format!("k{round:02}")]);
        let out = until_ok(&["--endpoints", &ep1, "defrag"]);
        assert!(out.contains("Finished defragmenting"), "{out}");
    }
    let snaps: Vec<Vec<u8>> = std::fs::read_dir(c.data_dir(1).join("snap"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "snap"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let magic = b"synod-layers1";
    assert!(
        snaps
            .iter()
            .any(|b| b.windows(magic.len()).any(|w| w == magic)),
        "no layered checkpoint among {} files",
        snaps.len()
    );
    let rev = put_revision(&ep1, "last", "x");
    let before = dump(&ep1, "");
    let hash = hash_at(&ep1, rev);
    c.kill(1);
    c.restart(1);
    let ep1 = c.endpoint(1);
    assert_eq!(hash_at(&ep1, rev), hash);
    assert_eq!(dump(&ep1, ""), before);
    // Every revision's history, not only the last: the middle of the first round's writes.
    assert_eq!(hash_at(&ep1, 13), hash_at(&c.endpoint(2), 13));

    let file = c.dir.path().join("layers.db").display().to_string();
    let out = until_ok(&["--endpoints", &ep1, "snapshot", "save", &file]);
    assert!(out.contains("Snapshot saved"), "{out}");
    let (ok, status) = synod(&["snapshot", "status", &file]);
    assert!(ok, "{status}");
    assert!(
        status.contains(&format!("hash:              {hash}")),
        "{status}"
    );
}

/// (leader id, raft term) as member `ep` reports them.
fn leader_and_term(ep: &str) -> Option<(u64, u64)> {
    let (ok, out) = etcdctl(&["--endpoints", ep, "endpoint", "status", "-w", "json"]);
    if !ok {
        return None;
    }
    let v = json(&out);
    let s = &v[0]["Status"];
    let leader = s["leader"].as_u64().filter(|l| *l != 0)?;
    Some((leader, s["raftTerm"].as_u64()?))
}

#[test]
fn the_raft_term_rises_on_every_leader_change() {
    let mut c = Cluster::start(3);
    let (mut last_term, mut killed) = (0, None);
    for round in 0..3 {
        // Wait until the running members agree on a leader, a new one after a kill.
        let (leader, term) = agreed_leader(&c, killed);
        assert!(
            term > last_term,
            "round {round}: term {term} after {last_term}"
        );
        last_term = term;
        // Responses carry it too.
        let out = until_ok(&[
            "--endpoints",
            &c.endpoint(leader),
            "put",
            "k",
            "v",
            "-w",
            "json",
        ]);
        assert_eq!(json(&out)["header"]["raft_term"].as_u64(), Some(term));
        c.kill(leader);
        killed = Some(leader);
        if round > 0 {
            // Keep two of three running: bring back whoever was stopped before.
            for i in c.ids.clone() {
                if i != leader && !c.endpoints().contains(&c.endpoint(i)) {
                    c.restart(i);
                }
            }
        }
    }
}

/// The leader and term every member of `c` agrees on, once they agree (other than `not`).
fn agreed_leader(c: &Cluster, not: Option<u64>) -> (u64, u64) {
    agreed_leader_at(&c.endpoints(), |l| Some(l) != not)
}

/// The leader and term the members at `eps` agree on, once they agree on one `ok` accepts.
fn agreed_leader_at(eps: &[String], ok: impl Fn(u64) -> bool) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen: Vec<Option<(u64, u64)>> = eps.iter().map(|e| leader_and_term(e)).collect();
        if let Some(Some(first)) = seen.first() {
            if ok(first.0) && seen.iter().all(|s| s.as_ref() == Some(first)) {
                return *first;
            }
        }
        assert!(Instant::now() < deadline, "no agreed leader: {seen:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn move_leader_under_load_fails_no_write() {
    let c = Cluster::start(3);
    let eps = c.endpoints().join(",");
    let (leader, term) = agreed_leader(&c, None);
    let target = c.other_than(leader);

    // Writers through every endpoint, each put checked, until told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (stop, eps) = (stop.clone(), eps.clone());
            std::thread::spawn(move || {
                let mut done = Vec::new();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || i < 20 {
                    let key = format!("w{w}-{i:04}");
                    let (ok, out) = etcdctl(&["--endpoints", &eps, "put", &key, "v"]);
                    assert!(ok, "put {key} failed during a leader transfer: {out}");
                    done.push(key);
                    i += 1;
                }
                done
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    // A non-member is refused; etcdctl finds the leader among the endpoints itself.
    let (ok, out) = etcdctl(&["--endpoints", &eps, "move-leader", "63"]);
    assert!(!ok && out.contains("bad leader transferee"), "{out}");
    let out = until_ok(&["--endpoints", &eps, "move-leader", &format!("{target:x}")]);
    assert!(
        out.contains(&format!(
            "Leadership transferred from {leader:x} to {target:x}"
        )),
        "{out}"
    );
    let (now, new_term) = agreed_leader(&c, Some(leader));
    assert_eq!(now, target);
    assert!(new_term > term, "term {new_term} after {term}");
    // Asked of a follower (etcdctl asks the leader only; a client library may not), the RPC
    // is refused as etcd refuses it.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let refused = rt.block_on(async {
        let mut client = etcd_client::Client::connect([c.endpoint(leader)], None)
            .await
            .expect("connect");
        client.move_leader(leader).await
    });
    match refused {
        Err(etcd_client::Error::GRpcStatus(s)) => {
            assert_eq!(format!("{:?}", s.code()), "FailedPrecondition", "{s:?}");
            assert_eq!(s.message(), "etcdserver: not leader");
        }
        other => panic!("a follower moved leadership: {other:?}"),
    }

    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written: Vec<String> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("a writer failed"))
        .collect();
    let keys = until_ok(&["--endpoints", &eps, "get", "--prefix", "w", "--keys-only"]);
    let keys: std::collections::BTreeSet<&str> = keys.lines().filter(|l| !l.is_empty()).collect();
    for k in &written {
        assert!(keys.contains(k.as_str()), "acknowledged put {k} is missing");
    }
}

#[test]
fn a_leader_stopped_by_sigterm_hands_leadership_over_first() {
    let mut c = Cluster::start(3);
    // With info logs, so that the leader says what it did on the way out.
    c.log_level = "info".into();
    for i in c.ids.clone() {
        c.kill(i);
        c.restart(i);
    }
    let (leader, _) = agreed_leader(&c, None);
    let status = c.stop(leader);
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(c.log_path(leader)).expect("log");
    assert!(
        log.contains("handed leadership over before stopping"),
        "{log}"
    );
    // The others agree on the new leader and its term before any write: a member that missed
    // the new leader's prepare (it won with the stopping leader's promise) knows its term from
    // its heartbeats. Then writes go through.
    let (before, _) = agreed_leader(&c, Some(leader));
    assert_ne!(before, leader);
    until_ok(&[
        "--endpoints",
        &c.endpoints().join(","),
        "put",
        "after",
        "stop",
    ]);
    let (now, _) = agreed_leader(&c, Some(leader));
    assert_ne!(now, leader);
}

/// Member `ep`'s database size, as `endpoint status` reports it.
fn db_size(ep: &str) -> u64 {
    let out = until_ok(&["--endpoints", ep, "endpoint", "status", "-w", "json"]);
    json(&out)[0]["Status"]["dbSize"].as_u64().expect("a size")
}

#[test]
fn over_quota_writes_are_refused_until_room_is_made_and_the_alarm_disarmed() {
    let c = Cluster::start_with(3, &["--quota-backend-bytes", "300000"]);
    let ep = c.endpoint(1);
    let all = c.all_endpoints().join(",");
    let value = "x".repeat(20_000);
    until_ok(&["--endpoints", &ep, "put", "warmup", "1"]);
    let mut refused = None;
    for i in 0..40 {
        let (ok, out) = etcdctl(&["--endpoints", &ep, "put", &format!("big{i}"), &value]);
        if !ok {
            refused = Some(out);
            break;
        }
    }
    let out = refused.expect("a put refused within 40 x 20 kB against a 300 kB quota");
    assert!(out.contains("database space exceeded"), "{out}");
    // The alarm goes through the log: every member lists it and refuses writes.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = until_ok(&["--endpoints", &c.endpoint(3), "alarm", "list"]);
        if out.contains("alarm:NOSPACE") {
            assert!(out.contains("memberID:1 "), "{out}");
            break;
        }
        assert!(Instant::now() < deadline, "no alarm listed: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, out) = etcdctl(&["--endpoints", &c.endpoint(2), "put", "small", "1"]);
    assert!(!ok && out.contains("database space exceeded"), "{out}");
    let (ok, out) = etcdctl(&["--endpoints", &c.endpoint(2), "lease", "grant", "60"]);
    assert!(!ok && out.contains("database space exceeded"), "{out}");
    // Reads, deletes and compaction still run: that is how room is made.
    assert!(dump(&c.endpoint(2), "big").contains("big0"));
    let out = until_ok(&["--endpoints", &ep, "del", "--prefix", "big", "-w", "json"]);
    let rev = json(&out)["header"]["revision"]
        .as_i64()
        .expect("a revision");
    until_ok(&["--endpoints", &ep, "compact", &rev.to_string()]);
    let before = db_size(&ep);
    assert!(before > 300_000, "{before}");
    let out = until_ok(&["--endpoints", &all, "defrag"]);
    assert_eq!(out.matches("Finished defragmenting").count(), 3, "{out}");
    let after = db_size(&ep);
    assert!(after < 300_000 && after < before / 2, "{before} -> {after}");
    // Still refused until disarmed.
    let (ok, out) = etcdctl(&["--endpoints", &ep, "put", "small", "1"]);
    assert!(!ok && out.contains("database space exceeded"), "{out}");
    let out = until_ok(&["--endpoints", &ep, "alarm", "disarm"]);
    assert!(out.contains("alarm:NOSPACE"), "{out}");
    assert!(!until_ok(&["--endpoints", &ep, "alarm", "list"]).contains("NOSPACE"));
    until_ok(&["--endpoints", &c.endpoint(2), "put", "small", "1"]);
}

#[test]
fn the_leader_removed_through_a_follower_hands_over_and_stops_serving() {
    let c = Cluster::start(3);
    let (leader, _) = agreed_leader(&c, None);
    let asked = c.other_than(leader);
    let third = (1..=3).find(|&i| i != leader && i != asked).expect("three");
    assert_eq!(
        members(&c.endpoint(asked)),
        vec![(1, false), (2, false), (3, false)]
    );
    put_revision(&c.endpoint(leader), "before", "1");

    // Asked at a follower, which passes it on; answered once applied there.
    let out = until_ok(&[
        "--endpoints",
        &c.endpoint(asked),
        "member",
        "remove",
        &format!("{leader:x}"),
    ]);
    assert!(
        out.contains(&format!("Member {leader:16x} removed")),
        "{out}"
    );
    assert_eq!(members(&c.endpoint(asked)), {
        let mut left = vec![(asked, false), (third, false)];
        left.sort();
        left
    });
    // The two left elect one of their own and take writes.
    let among = [asked, third];
    let eps: Vec<String> = among.iter().map(|&i| c.endpoint(i)).collect();
    let (now, _) = agreed_leader_at(&eps, |l| among.contains(&l));
    assert_ne!(now, leader);
    let eps = format!("{},{}", c.endpoint(asked), c.endpoint(third));
    put_revision(&eps, "after", "2");
    // The member taken out tells its clients to go elsewhere.
    let (ok, out) = etcdctl(&["--endpoints", &c.endpoint(leader), "put", "k", "v"]);
    assert!(!ok && out.contains("permanently removed"), "{out}");

    // What etcd refuses, refused alike.
    let ep = c.endpoint(asked);
    let (ok, out) = etcdctl(&["--endpoints", &ep, "member", "promote", "63"]);
    assert!(!ok && out.contains("member not found"), "{out}");
    let (ok, out) = etcdctl(&[
        "--endpoints",
        &ep,
        "member",
        "promote",
        &format!("{third:x}"),
    ]);
    assert!(
        !ok && out.contains("can only promote a learner member"),
        "{out}"
    );
    let (ok, out) = etcdctl(&[
        "--endpoints",
        &ep,
        "member",
        "remove",
        &format!("{leader:x}"),
    ]);
    assert!(!ok && out.contains("member not found"), "{out}");
}
