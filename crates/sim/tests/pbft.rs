//! PBFT in the simulator: safe and live with up to f liars on top of every network fault and
//! crash-restarts; the liars do lie; a calm run takes the three phases the seed draws.

use std::collections::BTreeSet;
use synod_sim::pbft::{Lie, PbftOutcome, PbftSim, PbftSimConfig};
use synod_sim::{run_many, Faults, Protocol, SimOptions};

fn quick() -> bool {
    std::env::var_os("SYNOD_SIM_QUICK").is_some()
}

fn sweep(nodes: usize, seeds: u64) {
    let opts = SimOptions {
        protocol: Protocol::Pbft,
        nodes,
        faults: Faults::ALL,
        ..Default::default()
    };
    let s = run_many(&opts, 0, seeds, |_| {}).expect("valid options");
    if let Some(r) = &s.first_failure {
        panic!(
            "{nodes} replicas, seed {}: {}\nreplay: {}",
            r.seed,
            r.violation.as_ref().expect("violation"),
            opts.replay_command(r.seed)
        );
    }
    let cfg = PbftSimConfig::default();
    let per_seed = (cfg.clients * cfg.commands) as u64;
    assert_eq!(s.stats.ops, seeds * per_seed, "every request finishes");
    assert!(
        s.stats.crashes > 0 && s.stats.partitions > 0,
        "{:?}",
        s.stats
    );
}

#[test]
fn pbft_holds_with_f_liars_under_every_fault() {
    let (four, seven) = if quick() { (60, 15) } else { (400, 100) };
    sweep(4, four);
    sweep(7, seven);
}

fn measured(cfg: PbftSimConfig, seed: u64) -> PbftOutcome {
    let (report, _, outcome) = PbftSim::new(cfg, seed).expect("setup").run_measured();
    assert!(report.violation.is_none(), "seed {seed}: {report:?}");
    outcome
}

/// Over a few hundred seeds the liars use every lie, mostly f of them per run, and correct
/// replicas are pushed through view changes (a silent or lying primary) and fill null slots.
#[test]
fn liars_lie_every_way_and_force_view_changes() {
    let mut lies = BTreeSet::new();
    let (mut with_f, mut views, mut nulls) = (0, 0, 0);
    let seeds = if quick() { 60 } else { 200 };
    for seed in 0..seeds {
        let o = measured(PbftSimConfig::default(), seed);
        with_f += u64::from(o.liars.len() == 1);
        lies.extend(o.liars.values().flatten().copied());
        views += u64::from(o.views > 0);
        nulls += o.nulls;
    }
    assert_eq!(lies.len(), 7, "lies seen: {lies:?}");
    assert!(lies.contains(&Lie::Equivocate));
    assert!(with_f > seeds / 2, "{with_f} of {seeds} runs with f liars");
    assert!(views > seeds / 4, "{views} of {seeds} runs changed view");
    assert!(nulls > 0, "no null slot in {seeds} runs");
}

/// Without faults or liars a lone client's request is executed four message delays after it
/// sent it (request, pre-prepare, prepare, commit), in view 0. The simulator counts the hops
/// of the message that completed a step, not of the slowest one it needed: a backup that
/// heard another's prepare before the primary's order becomes prepared on the order, one hop
/// short of the prepare's chain, so some requests count three (rarely two). A request first
/// executed through a status round's retransmission descends from a timer and is not counted.
#[test]
fn a_calm_run_takes_four_message_delays_per_request() {
    let (mut at_four, mut counted) = (0, 0);
    for seed in 0..20 {
        let cfg = PbftSimConfig {
            liars: Some(0),
            clients: 1,
            faults: Faults::NONE,
            ..Default::default()
        };
        let requests = (cfg.clients * cfg.commands) as u64;
        let o = measured(cfg, seed);
        assert_eq!(o.views, 0, "seed {seed}: {o:?}");
        assert_eq!(o.nulls, 0, "seed {seed}: {o:?}");
        assert_eq!(o.slots, requests, "seed {seed}: {o:?}");
        assert!(
            o.delays.values().sum::<u64>() >= requests - 1,
            "seed {seed}: {o:?}"
        );
        assert_eq!(o.delays.keys().max(), Some(&4), "seed {seed}: {o:?}");
        at_four += o.delays[&4];
        counted += o.delays.values().sum::<u64>();
    }
    assert!(
        2 * at_four > counted,
        "most count 4: {at_four} of {counted}"
    );
}

#[test]
fn more_liars_than_f_are_refused() {
    let cfg = PbftSimConfig {
        liars: Some(2),
        ..Default::default()
    };
    let err = PbftSim::new(cfg, 0).err().expect("refused");
    assert!(err.contains("at most 1"), "{err}");
    let cfg = PbftSimConfig {
        replicas: 3,
        ..Default::default()
    };
    assert!(PbftSim::new(cfg, 0).is_err(), "3 replicas tolerate no liar");
}

#[test]
fn a_seed_replays_the_same_run() {
    for seed in [3, 17] {
        let cfg = PbftSimConfig {
            trace: true,
            ..Default::default()
        };
        let (a, ta, oa) = PbftSim::new(cfg.clone(), seed)
            .expect("setup")
            .run_measured();
        let (b, tb, ob) = PbftSim::new(cfg, seed).expect("setup").run_measured();
        assert_eq!(a.stats, b.stats, "seed {seed}");
        assert_eq!(oa, ob, "seed {seed}");
        assert_eq!(ta.len(), tb.len(), "seed {seed}");
        assert!(!ta.is_empty());
    }
}

/// Messages per request in calm runs, counted from the trace by kind: a request to every
/// replica (n), the primary's order (n - 1), every backup's prepare to every other replica
/// ((n - 1)^2), every replica's commit ((n - 1) n) and every replica's reply (n): 32 with
/// four replicas, 98 with seven. Status rounds and checkpoints are counted apart: they are
/// periodic, not per request.
#[test]
fn a_calm_request_costs_the_messages_the_three_phases_need() {
    for n in [4u64, 7] {
        let per = synod_sim::latency::pbft_messages(n as usize, 10).expect("calm runs");
        let expect = [
            ("Request", n),
            ("PrePrepare", n - 1),
            ("Prepare", (n - 1) * (n - 1)),
            ("Commit", (n - 1) * n),
            ("Reply", n),
        ];
        for (kind, want) in expect {
            assert_eq!(per.get(kind), Some(&(want as f64)), "{n} replicas: {per:?}");
        }
        assert!(!per.contains_key("Committed"), "needless catch-up: {per:?}");
        assert!(
            !per.contains_key("State"),
            "needless state transfer: {per:?}"
        );
    }
}

/// `--liars K` fixes how many replicas lie (each still draws its lies), and the replay command
/// keeps it.
#[test]
fn the_number_of_liars_can_be_fixed_and_replays_keep_it() {
    for liars in [0, 2] {
        let opts = SimOptions {
            protocol: Protocol::Pbft,
            nodes: 7,
            liars: Some(liars),
            ..Default::default()
        };
        let s = run_many(&opts, 0, 20, |_| {}).expect("valid options");
        assert!(
            s.first_failure.is_none(),
            "{liars} liars: {:?}",
            s.first_failure
        );
        let replay = opts.replay_command(3);
        assert!(replay.contains(&format!("--liars {liars}")), "{replay}");
        for seed in 0..10 {
            let cfg = PbftSimConfig {
                replicas: 7,
                liars: Some(liars),
                ..Default::default()
            };
            assert_eq!(measured(cfg, seed).liars.len(), liars, "seed {seed}");
        }
    }
}
