//! Generalized Paxos in the simulator: learned histories stay compatible, only grow, and hold
//! only what quorums chose, under every fault and for several cluster sizes.

use synod_sim::{run_many, Faults, Protocol, SimOptions};

#[test]
fn generalized_paxos_holds_under_every_fault() {
    let seeds = if std::env::var_os("SYNOD_SIM_QUICK").is_some() {
        25
    } else {
        200
    };
    for nodes in [1, 3, 4, 5] {
        for faults in ["all", "crash", "partition", "loss,dup,reorder"] {
            let o = SimOptions {
                protocol: Protocol::Generalized,
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
            // 3 clients with 4 commands each, every one learned.
            assert_eq!(s.stats.decisions, 12 * seeds, "{nodes} acceptors, {faults}");
        }
    }
}
