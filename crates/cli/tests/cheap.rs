//! Cheap Paxos on real processes: two mains (1, 2) and one auxiliary acceptor (3), through the
//! real etcdctl. The auxiliary stays idle while both mains answer; the cluster survives losing
//! either main, shrinking to the live one through the log and growing back when it returns.

use crate::common::{etcdctl, etcdctl_until_ok, http_get, member_roles, Cluster};
use std::time::{Duration, Instant};

const AUX: u64 = 3;

/// A counter or gauge from the auxiliary's `/metrics`.
fn aux_metric(c: &Cluster, name: &str) -> u64 {
    let (code, body) = http_get(c.admin_ports[(AUX - 1) as usize], "/metrics");
    assert_eq!(code, 200, "{body}");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}

fn put(ep: &str, k: &str, v: &str) {
    etcdctl_until_ok(&["--endpoints", ep, "put", k, v], Duration::from_secs(20));
}

fn get(ep: &str, k: &str) -> String {
    etcdctl_until_ok(
        &["--endpoints", ep, "get", k, "--print-value-only"],
        Duration::from_secs(20),
    )
    .trim()
    .to_string()
}

/// Polls `check` every 100 ms for up to 30 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Bytes under `dir`, recursively.
fn du(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = e.metadata().expect("metadata");
        total += match meta.is_dir() {
            true => du(&e.path()),
            false => meta.len(),
        };
    }
    total
}

#[test]
fn the_auxiliary_stays_idle_and_stores_almost_nothing_while_both_mains_answer() {
    // Heartbeats every 100 ms: a main is suspect after 200 ms of silence, which a test
    // machine running many tests at once must not reach by accident.
    let c = Cluster::start_cheap(2, 1, &["--heartbeat-ticks", "10", "--election-ticks", "60"]);
    let eps = c.endpoints().join(",");
    // Steady state starts once a leader has taken a write: at start-up the first candidate
    // may ask the auxiliary too, when the other main is not up yet (seen once in CI).
    put(&eps, "first", "1");
    let counters = |c: &Cluster| {
        let names = [
            "messages_received_total",
            "votes_held",
            "records_written_total",
        ];
        names.map(|n| aux_metric(c, &format!("synod_aux_{n}")))
    };
    let before = counters(&c);
    let value = "v".repeat(200);
    for i in 0..200 {
        put(&eps, &format!("k{i:03}"), &value);
    }
    // A few heartbeat rounds of idling too.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(get(&eps, "k199"), value);
    println!("auxiliary counters before the writes {before:?}");
    assert_eq!(
        counters(&c),
        before,
        "received, votes held, records written"
    );
    // Its data directory: one preallocated 1 MiB log segment holding its boot record, and
    // nothing else (a main's holds a 16 MiB segment and every write).
    let (aux, main) = (du(&c.data_dir(AUX)), du(&c.data_dir(1)));
    println!("data directories: auxiliary {aux} bytes, main {main} bytes");
    assert!(
        aux <= (1 << 20) + 4096,
        "auxiliary {aux} bytes, main {main} bytes"
    );
    // Both mains vote, the auxiliary counts as a member (not a learner).
    assert_eq!(
        member_roles(&c.endpoint(1)),
        vec![(1, false), (2, false), (AUX, false)]
    );
}

#[test]
fn two_mains_and_an_auxiliary_survive_losing_either_main() {
    let mut c = Cluster::start_cheap(2, 1, &[]);
    let (ep1, ep2) = (c.endpoint(1), c.endpoint(2));
    put(&format!("{ep1},{ep2}"), "before", "1");
    // Main 1 dies: main 2 and the auxiliary decide, then main 2 alone once main 1 is made a
    // learner.
    c.kill(1);
    put(&ep2, "without-1", "2");
    assert!(
        aux_metric(&c, "synod_aux_messages_received_total") > 0,
        "the auxiliary voted"
    );
    eventually("main 1 made a learner", || {
        member_roles(&ep2).contains(&(1, true))
    });
    for i in 0..20 {
        put(&ep2, &format!("alone/{i}"), "x");
    }
    // Main 1 returns, catches up, and is made a main again.
    c.restart(1);
    eventually("main 1 a voter again", || {
        member_roles(&ep2) == vec![(1, false), (2, false), (AUX, false)]
    });
    assert_eq!(get(&ep1, "alone/19"), "x");
    // Main 2 dies: main 1 and the auxiliary go on.
    c.kill(2);
    put(&ep1, "without-2", "3");
    eventually("main 2 made a learner", || {
        member_roles(&ep1).contains(&(2, true))
    });
    put(&ep1, "after", "4");
    for (k, v) in [
        ("before", "1"),
        ("without-1", "2"),
        ("without-2", "3"),
        ("after", "4"),
    ] {
        assert_eq!(get(&ep1, k), v, "{k}");
    }
    // The auxiliary was told to forget what every main has learned.
    let held = aux_metric(&c, "synod_aux_votes_held");
    assert!(held < 64, "the auxiliary holds {held} votes");
    let (ok, out) = etcdctl(&["--endpoints", &ep1, "endpoint", "status"]);
    assert!(ok, "{out}");
}

#[test]
fn a_main_sends_the_auxiliary_a_large_value_as_its_digest() {
    // Election timeouts of 2-4 s: main 1 leads with the auxiliary for several seconds before
    // main 2 is made a learner and the auxiliary idles again.
    let mut c = Cluster::start_cheap(2, 1, &["--election-ticks", "200"]);
    let (ep1, ep2) = (c.endpoint(1), c.endpoint(2));
    put(&format!("{ep1},{ep2}"), "before", "1");
    c.kill(2);
    put(&ep1, "without-2", "2");
    let counters = |c: &Cluster| {
        let names = ["records_written_total", "record_bytes_written_total"];
        names.map(|n| aux_metric(c, &format!("synod_aux_{n}")))
    };
    let [records, bytes] = counters(&c);
    let value = "x".repeat(64 * 1024);
    for i in 0..8 {
        put(&ep1, &format!("big/{i}"), &value);
    }
    let [records_after, bytes_after] = counters(&c);
    println!(
        "the auxiliary wrote {} records, {} bytes",
        records_after - records,
        bytes_after - bytes
    );
    assert!(
        records_after >= records + 8,
        "the auxiliary voted for {} slots",
        records_after - records
    );
    // Eight votes for 64 KiB values, written as digests: a few hundred bytes, not 512 KiB
    // (590,088 bytes with --aux-digest-min off, tried by hand).
    assert!(
        bytes_after - bytes < 16 * 1024,
        "the auxiliary wrote {} bytes",
        bytes_after - bytes
    );
    assert_eq!(get(&ep1, "big/7").len(), value.len());
}
