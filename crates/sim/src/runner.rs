//! Runs many seeds of either protocol and sums up what they found.

use crate::basic::{BasicSim, BasicSimConfig};
use crate::commit::{CommitSim, CommitSimConfig};
use crate::fab::{FabSim, FabSimConfig};
use crate::fast::{FastSim, FastSimConfig};
use crate::fast_multi::{FastMultiSim, FastMultiSimConfig};
use crate::faults::Faults;
use crate::generalized::{GenSim, GenSimConfig};
use crate::history::check_history;
use crate::multi::{MultiSim, MultiSimConfig};
use crate::pbft::{PbftSim, PbftSimConfig};
use crate::report::{RunReport, Stats, Violation};
use crate::trace::TraceEvent;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;
use synod_core::commit::{paxos_commit, three_pc, two_pc, CommitNode};
use synod_core::quorum::QuorumSpec;
use synod_core::PlantedBug;

/// Which protocol to simulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Protocol {
    /// Single-decree Paxos with separate roles.
    Basic,
    /// Single-decree Fast Paxos: clients send straight to the acceptors.
    Fast,
    /// Fast Multi-Paxos: a log whose commands go straight to the acceptors.
    FastMulti,
    /// Generalized Paxos: one growing command history; commuting commands need no order.
    Generalized,
    /// Multi-Paxos replicas with key-value clients.
    Multi,
    /// Two-phase commit.
    TwoPc,
    /// Three-phase commit.
    ThreePc,
    /// Paxos Commit.
    PaxosCommit,
    /// Byzantine Multi-Paxos in the PBFT form: 3f+1 replicas, up to f of them lying.
    Pbft,
    /// Fast Byzantine Multi-Paxos: 5f+1 acceptors, up to f of them lying, clients proposing
    /// straight to them.
    FastByzantine,
}

impl Protocol {
    /// True for the atomic-commit protocols.
    pub fn is_commit(&self) -> bool {
        matches!(
            self,
            Protocol::TwoPc | Protocol::ThreePc | Protocol::PaxosCommit
        )
    }

    /// The node count when none is given: replicas, acceptors, or participants.
    pub fn default_nodes(&self) -> usize {
        if self.is_commit() || *self == Protocol::Generalized {
            3
        } else if *self == Protocol::Pbft {
            4
        } else if *self == Protocol::FastByzantine {
            6
        } else {
            5
        }
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "basic" => Ok(Protocol::Basic),
            "fast" => Ok(Protocol::Fast),
            "fast-multi" => Ok(Protocol::FastMulti),
            "generalized" => Ok(Protocol::Generalized),
            "multi" => Ok(Protocol::Multi),
            "2pc" => Ok(Protocol::TwoPc),
            "3pc" => Ok(Protocol::ThreePc),
            "paxos-commit" => Ok(Protocol::PaxosCommit),
            "pbft" => Ok(Protocol::Pbft),
            "fast-byzantine" => Ok(Protocol::FastByzantine),
            other => Err(format!(
                "unknown protocol '{other}'; expected basic, fast, fast-multi, generalized, multi, 2pc, 3pc, paxos-commit, pbft or fast-byzantine"
            )),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Basic => "basic",
            Protocol::Fast => "fast",
            Protocol::FastMulti => "fast-multi",
            Protocol::Generalized => "generalized",
            Protocol::Multi => "multi",
            Protocol::TwoPc => "2pc",
            Protocol::ThreePc => "3pc",
            Protocol::PaxosCommit => "paxos-commit",
            Protocol::Pbft => "pbft",
            Protocol::FastByzantine => "fast-byzantine",
        })
    }
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// The protocol.
    pub protocol: Protocol,
    /// Replicas (multi), acceptors (basic) or participants (commit protocols).
    pub nodes: usize,
    /// Faults to inject.
    pub faults: Faults,
    /// A bug to plant.
    pub bug: Option<PlantedBug>,
    /// Clients (multi only).
    pub clients: usize,
    /// Operations per client (multi only).
    pub ops: usize,
    /// Check client histories for linearizability (multi only).
    pub linearizability: bool,
    /// Quorum sizes (multi only).
    pub quorum: QuorumSpec,
    /// Each seed draws its own fault mix (multi only).
    pub swarm: bool,
    /// Cheap Paxos: auxiliary acceptors besides the `nodes` mains (multi only).
    pub auxiliaries: usize,
    /// Lying replicas (pbft and fast-byzantine only); `None` lets each seed draw up to f.
    pub liars: Option<usize>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            protocol: Protocol::Multi,
            nodes: 5,
            faults: Faults::ALL,
            bug: None,
            clients: 4,
            ops: 25,
            linearizability: true,
            quorum: QuorumSpec::Majority,
            swarm: true,
            auxiliaries: 0,
            liars: None,
        }
    }
}

impl SimOptions {
    /// The command line that replays `seed` with these options.
    pub fn replay_command(&self, seed: u64) -> String {
        let size = match self.auxiliaries {
            0 => format!("--nodes {}", self.nodes),
            a => format!("--cheap {}+{a}", self.nodes),
        };
        let mut cmd = format!(
            "synod sim --protocol {} {size} --faults {} --seed {seed}",
            self.protocol, self.faults
        );
        if self.protocol == Protocol::Multi {
            cmd += &format!(" --clients {} --ops {}", self.clients, self.ops);
            if let QuorumSpec::Flexible { q1, q2 } = self.quorum {
                cmd += &format!(" --quorum {q1},{q2}");
            }
            if !self.swarm {
                cmd += " --no-swarm";
            }
        }
        if let (Protocol::Pbft | Protocol::FastByzantine, Some(k)) = (self.protocol, self.liars) {
            cmd += &format!(" --liars {k}");
        }
        if let Some(b) = self.bug {
            cmd += &format!(" --bug {b}");
        }
        cmd + " --trace trace.jsonl"
    }

    /// Runs one seed, with or without a trace. A panic inside the protocol, the node layer or
    /// the simulator is reported as a violation of that seed, not a crash of the runner.
    pub fn run_one(&self, seed: u64, trace: bool) -> Result<(RunReport, Vec<TraceEvent>), String> {
        crate::trace::take_salvaged();
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.run_unguarded(seed, trace)
        }));
        match run {
            Ok(r) => r,
            Err(payload) => {
                let what = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic without a message".into());
                let events = crate::trace::take_salvaged().unwrap_or_default();
                let report = RunReport {
                    seed,
                    stats: Stats::default(),
                    violation: Some(Violation {
                        check: "panic",
                        // Unknown: the run's clock unwound with it (the trace shows when).
                        at: 0,
                        detail: what,
                    }),
                };
                Ok((report, events))
            }
        }
    }

    fn run_unguarded(
        &self,
        seed: u64,
        trace: bool,
    ) -> Result<(RunReport, Vec<TraceEvent>), String> {
        match self.protocol {
            Protocol::Basic => {
                let cfg = BasicSimConfig {
                    acceptors: self.nodes,
                    faults: self.faults,
                    bug: self.bug,
                    trace,
                    ..Default::default()
                };
                Ok(BasicSim::new(cfg, seed)?.run())
            }
            Protocol::Fast => {
                let cfg = FastSimConfig {
                    acceptors: self.nodes,
                    faults: self.faults,
                    bug: self.bug,
                    trace,
                    ..Default::default()
                };
                Ok(FastSim::new(cfg, seed)?.run())
            }
            Protocol::FastMulti => {
                let cfg = FastMultiSimConfig {
                    servers: self.nodes,
                    faults: self.faults,
                    bug: self.bug,
                    trace,
                    ..Default::default()
                };
                Ok(FastMultiSim::new(cfg, seed)?.run())
            }
            Protocol::Generalized => {
                let cfg = GenSimConfig {
                    acceptors: self.nodes,
                    faults: self.faults,
                    bug: self.bug,
                    trace,
                    ..Default::default()
                };
                Ok(GenSim::new(cfg, seed)?.run())
            }
            Protocol::TwoPc => Ok(self.run_commit::<two_pc::Node>(seed, trace)?),
            Protocol::ThreePc => Ok(self.run_commit::<three_pc::Node>(seed, trace)?),
            Protocol::PaxosCommit => Ok(self.run_commit::<paxos_commit::Node>(seed, trace)?),
            Protocol::Pbft => {
                let cfg = PbftSimConfig {
                    replicas: self.nodes,
                    liars: self.liars,
                    faults: self.faults,
                    bug: self.bug,
                    trace,
                    ..Default::default()
                };
                Ok(PbftSim::new(cfg, seed)?.run())
            }
            Protocol::FastByzantine => {
                let cfg = FabSimConfig {
                    acceptors: self.nodes,
                    liars: self.liars,
                    faults: self.faults,
                    bug: self.bug,
                    trace,
                    ..Default::default()
                };
                Ok(FabSim::new(cfg, seed)?.run())
            }
            Protocol::Multi => {
                let cfg = MultiSimConfig {
                    nodes: self.nodes,
                    clients: self.clients,
                    ops_per_client: self.ops,
                    faults: self.faults,
                    bug: self.bug,
                    trace,
                    quorum: self.quorum,
                    swarm: self.swarm,
                    auxiliaries: self.auxiliaries,
                    ..Default::default()
                };
                let (mut report, events, history) = MultiSim::new(cfg, seed)?.run();
                if report.violation.is_none() && self.linearizability {
                    if let Err(detail) = check_history(&history) {
                        report.violation = Some(Violation {
                            check: "linearizability",
                            at: report.stats.end_time,
                            detail,
                        });
                    }
                }
                Ok((report, events))
            }
        }
    }
}

impl SimOptions {
    fn run_commit<N: CommitNode>(
        &self,
        seed: u64,
        trace: bool,
    ) -> Result<(RunReport, Vec<TraceEvent>), String> {
        let cfg = CommitSimConfig {
            participants: self.nodes,
            faults: self.faults,
            bug: self.bug,
            trace,
            ..Default::default()
        };
        let (report, events, _) = CommitSim::<N>::new(cfg, seed)?.run();
        Ok((report, events))
    }
}

/// The sum of many seeds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// Counts summed over all seeds.
    pub stats: Stats,
    /// Seeds that broke a property.
    pub failing: u64,
    /// The first failing run.
    pub first_failure: Option<RunReport>,
}

impl Summary {
    /// Adds one run.
    pub fn add(&mut self, r: &RunReport) {
        self.seeds += 1;
        self.stats.add(&r.stats);
        if r.violation.is_some() {
            self.failing += 1;
            if self.first_failure.is_none() {
                self.first_failure = Some(r.clone());
            }
        }
    }
}

/// Runs `count` seeds starting at `first`, calling `progress` after each.
pub fn run_many(
    opts: &SimOptions,
    first: u64,
    count: u64,
    mut progress: impl FnMut(&RunReport),
) -> Result<Summary, String> {
    let mut summary = Summary::default();
    for seed in first..first + count {
        let (report, _) = opts.run_one(seed, false)?;
        progress(&report);
        summary.add(&report);
    }
    Ok(summary)
}
