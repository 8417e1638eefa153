//! Fast Multi-Paxos in the simulator: safe and live under every fault for every cluster size;
//! the fast path taken when proposals do not race, and collisions recovered when they do.

use std::collections::BTreeMap;
use synod_core::fast::Recovery;
use synod_sim::fast_multi::{FastMultiOutcome, FastMultiSim, FastMultiSimConfig};
use synod_sim::{run_many, Faults, Protocol, SimOptions};

fn quick() -> bool {
    std::env::var_os("SYNOD_SIM_QUICK").is_some()
}

#[test]
fn fast_multi_paxos_holds_under_every_fault_for_one_to_seven_servers() {
    let seeds = if quick() { 60 } else { 400 };
    for nodes in 1..=7 {
        for faults in ["all", "crash", "partition", "loss,dup,reorder"] {
            let o = SimOptions {
                protocol: Protocol::FastMulti,
                nodes,
                faults: faults.parse::<Faults>().expect("faults"),
                ..Default::default()
            };
            let s = run_many(&o, 0, seeds, |_| {}).expect("runs");
            if let Some(r) = &s.first_failure {
                panic!(
                    "{nodes} servers, faults {faults}: {}\nreplay: {}",
                    r.violation.as_ref().expect("violation"),
                    o.replay_command(r.seed)
                );
            }
            let commands = FastMultiSimConfig::default();
            let per_seed = (commands.clients * commands.commands) as u64;
            assert_eq!(s.stats.ops, seeds * per_seed, "every command finishes");
        }
    }
}

fn calm(clients: usize, seed: u64) -> FastMultiOutcome {
    let cfg = FastMultiSimConfig {
        clients,
        faults: Faults::NONE,
        ..Default::default()
    };
    let (report, _, outcome) = FastMultiSim::new(cfg, seed).expect("setup").run_measured();
    assert!(report.violation.is_none(), "seed {seed}: {report:?}");
    outcome
}

/// One client never races itself: without faults every command is chosen in the fast round,
/// in the slot after the last, and nothing collides.
#[test]
fn a_lone_client_takes_the_fast_path_for_every_command() {
    for seed in 0..50 {
        let o = calm(1, seed);
        let commands = FastMultiSimConfig::default().commands as u64;
        assert_eq!(o.slots, commands, "seed {seed}: {o:?}");
        assert_eq!(o.fast_slots, commands, "seed {seed}: {o:?}");
        assert_eq!(o.collisions, 0, "seed {seed}: {o:?}");
        assert_eq!(o.rounds, 1, "one election, no recovery; seed {seed}: {o:?}");
    }
}

/// Racing clients make acceptors order proposals differently: collisions happen, the leader
/// (or, under uncoordinated recovery, the acceptors) recovers them, and every command still
/// lands once.
#[test]
fn racing_clients_collide_and_the_leader_recovers() {
    let mut collisions = 0;
    let mut fast = 0;
    for seed in 0..50 {
        let o = calm(3, seed);
        eprintln!("seed {seed}: {o:?}");
        collisions += o.collisions;
        fast += o.fast_slots;
    }
    assert!(collisions > 0, "racing proposals never collided");
    assert!(fast > 0, "no slot took the fast path");
}

#[test]
fn a_run_is_a_function_of_its_seed() {
    let run = |seed| {
        let cfg = FastMultiSimConfig::default();
        let (report, _, outcome) = FastMultiSim::new(cfg, seed).expect("setup").run_measured();
        (format!("{report:?}"), outcome)
    };
    for seed in [3, 17] {
        assert_eq!(run(seed), run(seed));
    }
}

/// Delays per command over 50 calm seeds of 1 and 3 clients: (fast path, recovered).
fn delays(recovery: Recovery) -> (BTreeMap<u32, u64>, BTreeMap<u32, u64>) {
    let (mut fast, mut recovered) = (BTreeMap::new(), BTreeMap::new());
    for seed in 0..50 {
        for clients in [1, 3] {
            let cfg = FastMultiSimConfig {
                clients,
                recovery: Some(recovery),
                faults: Faults::NONE,
                ..Default::default()
            };
            let (report, _, o) = FastMultiSim::new(cfg, seed).expect("setup").run_measured();
            assert!(report.violation.is_none(), "seed {seed}: {report:?}");
            for (d, n) in o.fast_delays {
                *fast.entry(d).or_insert(0) += n;
            }
            for (d, n) in o.recovered_delays {
                *recovered.entry(d).or_insert(0) += n;
            }
        }
    }
    eprintln!("{recovery:?}: fast {fast:?} recovered {recovered:?}");
    (fast, recovered)
}

fn most(m: &BTreeMap<u32, u64>) -> u32 {
    m.iter()
        .max_by_key(|(_, n)| **n)
        .map(|(d, _)| *d)
        .expect("some commands")
}

/// The seed's claims, counted from runs: 2 message delays from a proposal to a server learning
/// it on the fast path (Multi-Paxos takes 3: client to leader, Accept, Accepted). A command
/// caught in a collision pays for the recovery: under coordinated recovery a new round (6 in
/// most cases, whether the new round then chooses it classically or in its fast region), under
/// uncoordinated recovery the slot's next step (3 in most cases).
#[test]
fn the_fast_path_takes_two_message_delays_and_recoveries_six_or_three() {
    for recovery in [Recovery::Coordinated, Recovery::Uncoordinated] {
        let (fast, recovered) = delays(recovery);
        let total: u64 = fast.values().sum();
        assert!(
            fast[&2] * 10 > total * 9,
            "the fast path is the rule: {fast:?}"
        );
        assert!(
            !recovered.is_empty(),
            "{recovery:?}: no collision recovered"
        );
        match recovery {
            Recovery::Coordinated => {
                assert!(fast.keys().all(|&d| d == 2 || d >= 6), "{fast:?}");
                assert!(
                    recovered.keys().all(|&d| d >= 5),
                    "a new round first: {recovered:?}"
                );
                assert_eq!(most(&recovered), 6);
            }
            Recovery::Uncoordinated => assert_eq!(most(&recovered), 3, "{recovered:?}"),
        }
    }
}
