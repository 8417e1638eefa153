//! The commit protocols in the simulator: each protocol's expected result under its fault, the
//! comparison's claims, and replays that reproduce the very same violation.

use synod_sim::commit::compare;
use synod_sim::{run_many, Faults, Protocol, SimOptions};

fn opts(protocol: Protocol, faults: &str) -> SimOptions {
    SimOptions {
        protocol,
        nodes: 3,
        faults: faults.parse::<Faults>().expect("faults"),
        ..Default::default()
    }
}

/// Runs `seeds` seeds and returns the first failing seed's check and detail, after checking
/// that replaying it gives the same violation.
fn first_violation(o: &SimOptions, seeds: u64) -> Option<(u64, &'static str, String)> {
    let s = run_many(o, 0, seeds, |_| {}).expect("runs");
    let r = s.first_failure?;
    let v = r.violation.expect("a failure has a violation");
    let (again, _) = o.run_one(r.seed, true).expect("replay");
    assert_eq!(
        again.violation.as_ref(),
        Some(&v),
        "replaying seed {} gave another outcome: {}",
        r.seed,
        o.replay_command(r.seed)
    );
    Some((r.seed, v.check, v.detail))
}

#[test]
fn two_pc_blocks_after_a_coordinator_crash() {
    let o = opts(Protocol::TwoPc, "crash");
    let (seed, check, detail) = first_violation(&o, 200).expect("2PC must block within 200 seeds");
    assert_eq!(check, "non-blocking", "seed {seed}: {detail}");
    assert!(detail.contains("blocked"), "seed {seed}: {detail}");
    assert!(
        detail.contains("C since"),
        "the coordinator is down: {detail}"
    );
}

#[test]
fn three_pc_splits_under_a_partition() {
    let o = opts(Protocol::ThreePc, "partition");
    let (seed, check, detail) = first_violation(&o, 200).expect("3PC must split within 200 seeds");
    assert_eq!(check, "atomicity", "seed {seed}: {detail}");
    assert!(
        detail.contains("commit") && detail.contains("abort"),
        "{detail}"
    );
    assert!(detail.contains("partition"), "{detail}");
}

#[test]
fn paxos_commit_holds_under_every_fault() {
    let quick = std::env::var("SYNOD_SIM_QUICK").is_ok();
    for n in [1, 3, 5] {
        let mut o = opts(Protocol::PaxosCommit, "all");
        o.nodes = n;
        let seeds = if quick { 100 } else { 1000 };
        if let Some((seed, check, detail)) = first_violation(&o, seeds) {
            panic!(
                "{check} with {n} participants, seed {seed}: {detail}\nreplay: {}",
                o.replay_command(seed)
            );
        }
    }
}

#[test]
fn two_pc_and_three_pc_hold_without_the_faults_that_break_them() {
    // 2PC is safe under partitions and message faults (it only blocks on crashes).
    let o = opts(Protocol::TwoPc, "partition,loss,dup,reorder");
    assert_eq!(first_violation(&o, 200), None);
    // 3PC neither splits nor blocks under message faults alone.
    let o = opts(Protocol::ThreePc, "loss,dup,reorder");
    assert_eq!(first_violation(&o, 200), None);
}

#[test]
fn the_comparison_tells_the_story() {
    let (rows, costs) = compare(100, 3).expect("compare");
    let row = |p: &str, f: &str| {
        rows.iter()
            .find(|r| r.protocol == p && r.faults == f)
            .unwrap_or_else(|| panic!("no row {p} {f}"))
    };
    for p in ["2pc", "3pc", "paxos-commit"] {
        let r = row(p, "none");
        assert_eq!((r.decided, r.blocked, r.split), (r.begun, 0, 0), "{r:?}");
    }
    assert!(row("2pc", "crash").blocked > 0, "{:?}", row("2pc", "crash"));
    assert_eq!(row("2pc", "crash").split, 0);
    assert!(row("3pc", "partition").split > 0);
    for f in ["crash", "partition", "loss,dup,reorder", "all"] {
        let r = row("paxos-commit", f);
        assert_eq!((r.blocked, r.split, r.invalid), (0, 0, 0), "{r:?}");
    }
    let delays: Vec<(&str, u64)> = costs.iter().map(|c| (c.protocol, c.delays)).collect();
    assert_eq!(delays, vec![("2pc", 3), ("3pc", 5), ("paxos-commit", 4)]);
    // Acks included: 2PC sends 4 per participant, 3PC 6; Paxos Commit pays for its acceptors.
    let msgs: Vec<f64> = costs.iter().map(|c| c.messages).collect();
    assert_eq!(msgs, vec![12.0, 18.0, 24.0]);
}
