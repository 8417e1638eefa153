//! `synod flow`: message-flow charts drawn from real runs of the protocol code.
//!
//! Each scenario is a script: it starts real proposers, acceptors, learners or replicas, and
//! decides which queued messages are delivered, lost, or cut off by a failure, in what order.
//! Every message drawn was produced by the protocol code; the chart shows what it did.

mod basic;
mod chart;
mod commit;
mod fab;
mod fast;
mod fast_multi;
mod generalized;
mod multi;
mod pbft;

pub use chart::{Chart, Column, Row};
use std::collections::BTreeMap;

/// Who learned what, at the end of a scenario.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Process name (P1, A2, L1, S3) to the value it knows is chosen.
    pub learned: BTreeMap<String, String>,
}

impl Outcome {
    /// The set of distinct values learned (more than one would break agreement).
    pub fn values(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.learned.values().map(String::as_str).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// A scenario that can be drawn.
pub struct Scenario {
    /// Its name on the command line.
    pub name: &'static str,
    /// A one-line description.
    pub title: &'static str,
    run: fn() -> Drawn,
}

/// A drawn scenario: the chart and the outcome to check.
pub struct Drawn {
    /// The chart.
    pub chart: Chart,
    /// Who learned what.
    pub outcome: Outcome,
    /// Free-form facts the scenario establishes (for its test and the caption).
    pub facts: Vec<String>,
}

impl Scenario {
    /// Runs the scenario's script.
    pub fn run(&self) -> Drawn {
        (self.run)()
    }
}

fn basic_drawn(s: basic::Script) -> Drawn {
    let outcome = s.outcome();
    let facts = (1..=5)
        .filter_map(|i| Some(format!("A{i} holds {}", s.vote_of(basic::a(i))?)))
        .collect();
    Drawn {
        chart: s.chart,
        outcome,
        facts,
    }
}

fn multi_drawn(s: multi::Script, slot: u64) -> Drawn {
    let outcome = s.outcome(slot);
    let mut facts: Vec<String> = s
        .responses()
        .iter()
        .map(|(seq, r)| format!("client got #{seq}: {r:?}"))
        .collect();
    for (id, r) in s.replicas() {
        facts.push(format!(
            "S{id}: applied {} slots, x={:?}",
            r.applied_index(),
            r.state_machine().get("x").map(|v| v.to_string())
        ));
    }
    Drawn {
        chart: s.chart,
        outcome,
        facts,
    }
}

/// Every scenario, in the order `synod flow --list` shows them.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "basic",
        title: "Basic Paxos without failures",
        run: || basic_drawn(basic::no_failures()),
    },
    Scenario {
        name: "acceptor-fails",
        title: "Basic Paxos when an acceptor fails: a quorum remains",
        run: || basic_drawn(basic::acceptor_fails()),
    },
    Scenario {
        name: "learner-fails",
        title: "Basic Paxos when a redundant learner fails",
        run: || basic_drawn(basic::learner_fails()),
    },
    Scenario {
        name: "proposer-fails",
        title: "Basic Paxos when the proposer fails mid-broadcast and a new one takes over",
        run: || basic_drawn(basic::proposer_fails()),
    },
    Scenario {
        name: "duelling",
        title: "Basic Paxos with duelling proposers",
        run: || basic_drawn(basic::duelling()),
    },
    Scenario {
        name: "two-values",
        title: "Basic Paxos where an acceptor accepts two different values",
        run: || basic_drawn(basic::two_values()),
    },
    Scenario {
        name: "multi-identifier-majority",
        title: "Basic Paxos where a majority across different ballots is insufficient",
        run: || basic_drawn(basic::multi_identifier_majority()),
    },
    Scenario {
        name: "cannot-change",
        title: "Basic Paxos where a new proposer cannot change an existing consensus",
        run: || basic_drawn(basic::cannot_change()),
    },
    Scenario {
        name: "multi-first",
        title: "Multi-Paxos, first request: phase 1 once, then phase 2",
        run: || multi_drawn(multi::first_request(), 0),
    },
    Scenario {
        name: "multi-steady",
        title: "Multi-Paxos with a steady leader: phase 1 skipped",
        run: || multi_drawn(multi::steady_state(), 1),
    },
    Scenario {
        name: "multi-thrifty",
        title: "Multi-Paxos thrifty accepts: a quorum votes, the others hear the chosen value",
        run: || multi_drawn(multi::thrifty_writes(), 2),
    },
    Scenario {
        name: "multi-notices",
        title: "Multi-Paxos notices held a tick: values and commit points nobody waits for, together",
        run: || multi_drawn(multi::held_notices(), 2),
    },
    Scenario {
        name: "collapsed-roles",
        title: "Multi-Paxos with collapsed roles: the leader fails, another server takes over",
        run: || multi_drawn(multi::collapsed_roles(), 0),
    },
    Scenario {
        name: "move-leader",
        title: "Multi-Paxos leadership transfer: writes held, successor stands at once, none lost",
        run: || multi_drawn(multi::move_leader(), 1),
    },
    Scenario {
        name: "reconfigure",
        title: "Multi-Paxos reconfiguration: a learner joins from a snapshot, is promoted, a member leaves",
        run: || multi_drawn(multi::reconfigure(), 1),
    },
    Scenario {
        name: "read-index",
        title: "Multi-Paxos linearizable reads (ReadIndex): thrifty probes, a follower fails, the other is asked",
        run: || multi_drawn(multi::read_index(), 0),
    },
    Scenario {
        name: "cheap-multi",
        title: "Cheap Multi-Paxos: a main fails, the auxiliary votes, the cluster shrinks to quorum 2",
        run: || multi_drawn(multi::cheap_multi(), 2),
    },
    Scenario {
        name: "fast",
        title: "Fast Paxos without a collision: client to acceptors to learners, 2 delays",
        run: fast::non_conflicting,
    },
    Scenario {
        name: "fast-coordinated",
        title: "Fast Paxos, conflicting proposals, coordinated recovery",
        run: fast::coordinated_recovery,
    },
    Scenario {
        name: "fast-uncoordinated",
        title: "Fast Paxos, conflicting proposals, uncoordinated recovery",
        run: fast::uncoordinated_recovery,
    },
    Scenario {
        name: "fast-collapsed",
        title: "Fast Paxos with uncoordinated recovery and collapsed roles",
        run: fast::collapsed,
    },
    Scenario {
        name: "fast-multi",
        title: "Fast Multi-Paxos: a command on the fast path, then a collision recovered in a new round",
        run: fast_multi::collision,
    },
    Scenario {
        name: "generalized",
        title: "Generalized Paxos: commuting commands learned in any order, conflicts resolved",
        run: generalized::example,
    },
    Scenario {
        name: "pbft",
        title: "Byzantine Multi-Paxos (PBFT), steady state: order, prepare (Verify), commit, f+1 replies",
        run: pbft::steady,
    },
    Scenario {
        name: "pbft-view-change",
        title: "PBFT: a lying primary orders two requests at one slot and is voted out; the prepared one survives",
        run: pbft::view_change,
    },
    Scenario {
        name: "fast-byzantine",
        title: "Fast Byzantine Multi-Paxos, steady state: the client's Accept! to the acceptors, one Accepted broadcast",
        run: fab::steady,
    },
    Scenario {
        name: "fast-byzantine-failure",
        title: "Fast Byzantine Multi-Paxos with one faulty acceptor: a split slot, and the correct acceptors choose again",
        run: fab::failure,
    },
    Scenario {
        name: "2pc",
        title: "Why Paxos, 1: two-phase commit without failures",
        run: commit::two_pc_success,
    },
    Scenario {
        name: "2pc-blocked",
        title: "Why Paxos, 2: two-phase commit blocks when the coordinator dies after the votes",
        run: commit::two_pc_blocked,
    },
    Scenario {
        name: "3pc",
        title: "Why Paxos, 3: three-phase commit without failures",
        run: commit::three_pc_success,
    },
    Scenario {
        name: "3pc-split",
        title: "Why Paxos, 4: three-phase commit decides both ways under a partition",
        run: commit::three_pc_split,
    },
    Scenario {
        name: "paxos-commit",
        title: "Why Paxos, 5: Paxos Commit survives the coordinator's failure",
        run: commit::paxos_commit_survives,
    },
];

/// Finds a scenario by name.
pub fn scenario(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}
