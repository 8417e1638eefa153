//! Hundreds of seeds per protocol with every fault on: no violation, and runs are deterministic.

use synod_core::quorum::QuorumSpec;
use synod_sim::{
    run_many, BasicSim, BasicSimConfig, Faults, MultiSim, MultiSimConfig, Protocol, SimOptions,
};

/// `SYNOD_SIM_QUICK=1` runs an eighth of each sweep: the suite mutation testing runs once per
/// mutant (docs/testing.md).
fn scaled(count: u64) -> u64 {
    if std::env::var_os("SYNOD_SIM_QUICK").is_some() {
        (count / 8).max(5)
    } else {
        count
    }
}

/// Runs `count` seeds (scaled); panics with the replay command of the first failure; returns
/// the runs' summed counts.
fn sweep(opts: SimOptions, count: u64) -> synod_sim::Stats {
    let count = scaled(count);
    let summary = run_many(&opts, 0, count, |_| {}).expect("valid options");
    if let Some(r) = &summary.first_failure {
        panic!(
            "seed {} failed: {}\nreplay: {}",
            r.seed,
            r.violation.as_ref().expect("failure"),
            opts.replay_command(r.seed)
        );
    }
    assert_eq!(summary.seeds, count);
    assert!(summary.stats.decisions >= count, "{:?}", summary.stats);
    println!("{:?}", summary.stats);
    summary.stats
}

#[test]
fn multi_paxos_400_seeds_all_faults() {
    let opts = SimOptions {
        protocol: Protocol::Multi,
        ..Default::default()
    };
    sweep(opts, 400);
}

#[test]
fn multi_paxos_3_nodes_200_seeds_all_faults() {
    let opts = SimOptions {
        protocol: Protocol::Multi,
        nodes: 3,
        ..Default::default()
    };
    sweep(opts, 200);
}

/// Every cluster size from one node to seven, each with every fault (the node layer, the real
/// store and the simulated disk included).
#[test]
fn multi_paxos_1_to_7_nodes_hold_under_faults() {
    for nodes in [1, 2, 3, 4, 6, 7] {
        let opts = SimOptions {
            protocol: Protocol::Multi,
            nodes,
            ..Default::default()
        };
        sweep(opts, 40);
    }
}

#[test]
fn basic_paxos_500_seeds_all_faults() {
    let opts = SimOptions {
        protocol: Protocol::Basic,
        ..Default::default()
    };
    sweep(opts, 500);
}

#[test]
fn multi_paxos_flexible_quorums_hold_under_faults() {
    for seed in 0..scaled(120) {
        // Phase-1 quorums of one are the case of the ballot-reuse regression.
        let q = [(4, 2), (2, 4), (1, 5)][seed as usize % 3];
        let cfg = MultiSimConfig {
            quorum: QuorumSpec::Flexible { q1: q.0, q2: q.1 },
            ..Default::default()
        };
        let (r, _, _) = MultiSim::new(cfg, seed).expect("valid").run();
        assert!(r.violation.is_none(), "seed {seed}: {:?}", r.violation);
    }
}

#[test]
fn faults_actually_happen() {
    let opts = SimOptions {
        protocol: Protocol::Multi,
        ..Default::default()
    };
    let s = run_many(&opts, 0, 20, |_| {}).expect("valid");
    assert!(
        s.stats.crashes > 20
            && s.stats.partitions > 20
            && s.stats.pauses > 20
            && s.stats.dropped > 1000
            && s.stats.redelivered > 20
            && s.stats.transfers > 10
            && s.stats.handovers > 5
            && s.stats.checkpoints > 10
            && s.stats.rebased > 10
            && s.stats.reconfigurations > 5
            && s.stats.epochs > 5
            && s.stats.removed > 2,
        "{:?}",
        s.stats
    );
}

#[test]
fn same_seed_same_run() {
    let a = MultiSim::new(
        MultiSimConfig {
            trace: true,
            ..Default::default()
        },
        42,
    )
    .unwrap()
    .run();
    let b = MultiSim::new(
        MultiSimConfig {
            trace: true,
            ..Default::default()
        },
        42,
    )
    .unwrap()
    .run();
    assert_eq!(a.0.stats, b.0.stats);
    assert_eq!(a.1, b.1);
    assert_eq!(a.2, b.2);
    let c = BasicSim::new(BasicSimConfig::default(), 7).unwrap().run();
    let d = BasicSim::new(BasicSimConfig::default(), 7).unwrap().run();
    assert_eq!(c.0.stats, d.0.stats);
    let e = MultiSim::new(
        MultiSimConfig {
            faults: Faults::NONE,
            ..Default::default()
        },
        42,
    )
    .unwrap()
    .run();
    assert_ne!(a.0.stats, e.0.stats);
}

/// CI's `--quorum 1,5` sweep, seed 260: a leader elected on its own promise (q1 = 1) had its
/// next slot moved past slots it had not used yet by obligations a late promise reported above
/// its bound; those slots were never proposed and the commit point stopped for good. The
/// leader now fills them with no-ops (`advance_bound`). Changes to the simulator's timing
/// have moved the case off this seed (2026-12-06: seed 260 passes with the fix taken out, as
/// the planted bug `skipped-slots-left-empty`); `planted_bugs.rs` pins the fix now, with the
/// leader's unproposed slot caught at the step, and so does a hand-driven core test
/// (`a_leader_fills_the_slots_a_late_promises_obligation_skips`, crates/core/tests/regressions.rs).
#[test]
fn a_leader_fills_the_slots_its_obligations_skip() {
    let cfg = MultiSimConfig {
        nodes: 5,
        quorum: QuorumSpec::Flexible { q1: 1, q2: 5 },
        ..Default::default()
    };
    let (report, _, _) = MultiSim::new(cfg, 260).expect("valid").run();
    assert!(report.violation.is_none(), "{:?}", report.violation);
}

/// Cheap Paxos, 2 mains + 1 auxiliary and 3 + 1, under every fault: the auxiliaries crash and
/// are cut off too, mains are taken out of the quorum and put back through the log.
#[test]
fn cheap_paxos_holds_under_faults() {
    for (mains, auxiliaries) in [(2, 1), (3, 1), (3, 2)] {
        let opts = SimOptions {
            protocol: Protocol::Multi,
            nodes: mains,
            auxiliaries,
            ..Default::default()
        };
        let s = sweep(opts, 150);
        let count = scaled(150);
        // The cluster did reshape itself, and the auxiliaries did help, voting on digests in
        // the seeds that send them.
        assert!(
            s.epochs > count / 2 && s.aux_messages > 0 && s.aux_digests > 0,
            "{mains}+{auxiliaries}: {s:?}"
        );
    }
}
