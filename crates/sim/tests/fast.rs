//! Fast Paxos in the simulator: safe and live under every fault for every cluster size, and the
//! seed's message-delay claims counted from runs.

use synod_sim::latency::compare;
use synod_sim::{run_many, Faults, Protocol, SimOptions};

#[test]
fn fast_paxos_holds_under_every_fault_for_one_to_seven_acceptors() {
    let seeds = if std::env::var_os("SYNOD_SIM_QUICK").is_some() {
        125
    } else {
        1000
    };
    for nodes in 1..=7 {
        for faults in ["all", "crash", "partition", "loss,dup,reorder"] {
            let o = SimOptions {
                protocol: Protocol::Fast,
                nodes,
                faults: faults.parse::<Faults>().expect("faults"),
                ..Default::default()
            };
            let s = run_many(&o, 0, seeds, |_| {}).expect("runs");
            if let Some(r) = &s.first_failure {
                panic!(
                    "{nodes} acceptors, faults {faults}: {}\nreplay: {}",
                    r.violation.as_ref().expect("violation"),
                    o.replay_command(r.seed)
                );
            }
            assert_eq!(s.stats.decisions, seeds, "every seed decides");
        }
    }
}

/// The seed's claims: 2 message delays from proposal to learning on the fast path, 4 after a
/// collision with coordinated recovery, 3 with uncoordinated recovery (more when the recovery
/// step collides again, since acceptors pick on their own); Generalized Paxos learns commuting
/// commands in 2 and pays two round trips more, 6, for a conflict; Basic Paxos, phase 1
/// included, takes 4.
#[test]
fn message_delays_match_the_seed() {
    let rows = compare(400).expect("runs");
    let multi: Vec<_> = rows.iter().filter(|r| r.protocol == "multi").collect();
    assert_eq!(multi.len(), 1);
    assert_eq!(
        multi[0]
            .fast
            .iter()
            .map(|(d, n)| (*d, *n))
            .collect::<Vec<_>>(),
        vec![(3, 2)],
        "both requests of the steady-leader chart: 3 delays"
    );
    assert_eq!(
        rows.iter().filter(|r| r.protocol == "generalized").count(),
        2
    );
    for r in rows.iter().filter(|r| r.protocol == "generalized") {
        assert_eq!(r.failing, 0, "{r:?}");
        assert_eq!(r.fast.keys().copied().collect::<Vec<_>>(), vec![2], "{r:?}");
        if r.clients == 1 {
            assert_eq!(
                r.recovered, 0,
                "one client's commands never conflict: {r:?}"
            );
        } else {
            assert_eq!(
                r.recovering.keys().copied().collect::<Vec<_>>(),
                vec![2, 6],
                "{r:?}"
            );
        }
    }
    // PBFT: request, pre-prepare, prepare, commit; some count fewer (the hop count follows the
    // message that completed a step, not the slowest it needed: 1 of 2,400 counted 2, 421
    // counted 3), and nothing needs a view change without faults.
    let pbft: Vec<_> = rows.iter().filter(|r| r.protocol == "pbft").collect();
    assert_eq!(pbft.len(), 2);
    for r in pbft {
        assert_eq!((r.failing, r.recovered), (0, 0), "{r:?}");
        assert_eq!(r.fast.keys().max(), Some(&4), "{r:?}");
        let total: u64 = r.fast.values().sum();
        assert!(2 * r.fast[&4] > total, "most count 4: {r:?}");
    }
    for r in rows.iter().filter(|r| r.protocol == "fast") {
        assert_eq!(r.failing, 0, "{r:?}");
        assert_eq!(r.fast.keys().copied().collect::<Vec<_>>(), vec![2], "{r:?}");
        if r.clients == 1 {
            assert_eq!(r.collided, 0, "one client cannot collide: {r:?}");
            continue;
        }
        assert!(r.recovered > 0, "racing clients must collide: {r:?}");
        let least = *r.recovering.keys().next().expect("recoveries");
        match r.rule {
            "coordinated" => {
                assert_eq!(
                    r.recovering.keys().copied().collect::<Vec<_>>(),
                    vec![4],
                    "{r:?}"
                )
            }
            _ => {
                assert_eq!(least, 3, "{r:?}");
                let at_three = r.recovering[&3];
                assert!(2 * at_three > r.recovered, "most recover in 3: {r:?}");
            }
        }
    }
}
