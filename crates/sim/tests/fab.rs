//! Fast Byzantine Paxos in the simulator: safe and live with up to f lying acceptors on top of
//! every network fault and crash-restarts; the liars do lie, and slots do recover; a calm run
//! decides in two message delays.

use std::collections::BTreeSet;
use synod_sim::fab::{FabOutcome, FabSim, FabSimConfig, Lie};
use synod_sim::{run_many, Faults, Protocol, SimOptions};

fn quick() -> bool {
    std::env::var_os("SYNOD_SIM_QUICK").is_some()
}

fn sweep(nodes: usize, seeds: u64) {
    let opts = SimOptions {
        protocol: Protocol::FastByzantine,
        nodes,
        faults: Faults::ALL,
        ..Default::default()
    };
    let s = run_many(&opts, 0, seeds, |_| {}).expect("valid options");
    if let Some(r) = &s.first_failure {
        panic!(
            "{nodes} acceptors, seed {}: {}\nreplay: {}",
            r.seed,
            r.violation.as_ref().expect("violation"),
            opts.replay_command(r.seed)
        );
    }
    let cfg = FabSimConfig::default();
    let per_seed = (cfg.clients * cfg.commands) as u64;
    assert_eq!(s.stats.ops, seeds * per_seed, "every request finishes");
    assert!(
        s.stats.crashes > 0 && s.stats.partitions > 0,
        "{:?}",
        s.stats
    );
}

#[test]
fn fast_byzantine_holds_with_f_liars_under_every_fault() {
    let (six, eleven) = if quick() { (60, 10) } else { (400, 60) };
    sweep(6, six);
    sweep(11, eleven);
}

fn measured(cfg: FabSimConfig, seed: u64) -> FabOutcome {
    let (report, _, outcome) = FabSim::new(cfg, seed).expect("setup").run_measured();
    assert!(report.violation.is_none(), "seed {seed}: {report:?}");
    outcome
}

/// Over a few hundred seeds the liars use every lie, mostly f of them per run; slots go
/// through recovery views and some are filled with no-ops.
#[test]
fn liars_lie_every_way_and_slots_recover() {
    let mut lies = BTreeSet::new();
    let (mut with_f, mut recovering) = (0, 0);
    let seeds = if quick() { 60 } else { 200 };
    for seed in 0..seeds {
        let o = measured(FabSimConfig::default(), seed);
        with_f += u64::from(o.liars.len() == 1);
        lies.extend(o.liars.values().flatten().copied());
        recovering += u64::from(o.recoveries > 0);
    }
    assert_eq!(lies.len(), Lie::ALL.len(), "lies seen: {lies:?}");
    assert!(with_f > seeds / 2, "{with_f} of {seeds} runs with f liars");
    assert!(
        recovering > seeds / 2,
        "{recovering} of {seeds} runs recovered a slot"
    );
}

/// Without faults or liars a lone client's request is executed two message delays after it
/// sent it (its proposal, then the acceptors' votes), with no recovery. An acceptor that heard
/// a peer's vote before the client's proposal votes one hop later, and a learner whose fast
/// quorum that vote completed counts three: the simulator counts the hops of the message that
/// completed a step. Most requests count two, none more than three.
#[test]
fn a_calm_run_decides_in_two_message_delays() {
    let (mut at_two, mut counted) = (0, 0);
    for seed in 0..20 {
        let cfg = FabSimConfig {
            liars: Some(0),
            clients: 1,
            faults: Faults::NONE,
            ..Default::default()
        };
        let requests = (cfg.clients * cfg.commands) as u64;
        let o = measured(cfg, seed);
        assert_eq!(o.recoveries, 0, "seed {seed}: {o:?}");
        assert_eq!(o.nulls, 0, "seed {seed}: {o:?}");
        assert_eq!(o.slots, requests, "seed {seed}: {o:?}");
        assert!(
            o.delays.keys().all(|d| *d == 2 || *d == 3),
            "seed {seed}: {o:?}"
        );
        at_two += o.delays.get(&2).copied().unwrap_or(0);
        counted += o.delays.values().sum::<u64>();
    }
    assert!(2 * at_two > counted, "most count 2: {at_two} of {counted}");
}

/// A calm request costs a proposal to every acceptor (a), every acceptor's vote to every other
/// (a (a - 1)), and every acceptor's reply (a): 42 with six acceptors. An acceptor that
/// executed a request on its peers' votes before the client's proposal reached it answers the
/// proposal with the reply again (it cannot tell it from a client's retry), so replies run a
/// little over a.
#[test]
fn a_calm_request_costs_one_broadcast_round() {
    for a in [6u64, 11] {
        let per = synod_sim::latency::fab_messages(a as usize, 10).expect("calm runs");
        let got = |kind: &str| per.get(kind).copied().unwrap_or(0.0);
        assert_eq!(got("Propose"), a as f64, "{per:?}");
        assert_eq!(got("Accepted"), (a * (a - 1)) as f64, "{per:?}");
        let replies = got("Reply");
        assert!(
            replies >= a as f64 && replies < a as f64 * 1.05,
            "{a} acceptors: {replies} replies per request: {per:?}"
        );
        assert_eq!(got("Report") + got("Choice") + got("Lost"), 0.0, "{per:?}");
    }
}

#[test]
fn more_liars_than_f_and_too_few_acceptors_are_refused() {
    let cfg = FabSimConfig {
        liars: Some(2),
        ..Default::default()
    };
    let err = FabSim::new(cfg, 0).err().expect("refused");
    assert!(err.contains("at most 1"), "{err}");
    let cfg = FabSimConfig {
        acceptors: 5,
        ..Default::default()
    };
    assert!(FabSim::new(cfg, 0).is_err(), "5 acceptors tolerate no liar");
}

#[test]
fn a_seed_replays_the_same_run() {
    for seed in [3, 17] {
        let cfg = FabSimConfig {
            trace: true,
            ..Default::default()
        };
        let (a, ta, oa) = FabSim::new(cfg.clone(), seed)
            .expect("setup")
            .run_measured();
        let (b, tb, ob) = FabSim::new(cfg, seed).expect("setup").run_measured();
        assert_eq!(a.stats, b.stats, "seed {seed}");
        assert_eq!(oa, ob, "seed {seed}");
        assert_eq!(ta.len(), tb.len(), "seed {seed}");
        assert!(!ta.is_empty());
    }
}
