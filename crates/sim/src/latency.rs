//! `synod sim --compare latency`: message delays from a client's proposal to the first learner
//! learning, counted hop by hop in fault-free runs of Basic, Fast, Fast Multi- and Generalized
//! Paxos and PBFT; and PBFT's messages per request, by kind.

use crate::basic::{BasicSim, BasicSimConfig};
use crate::fab::{FabSim, FabSimConfig};
use crate::fast::{FastSim, FastSimConfig};
use crate::fast_multi::{FastMultiSim, FastMultiSimConfig};
use crate::faults::Faults;
use crate::generalized::{GenSim, GenSimConfig};
use crate::pbft::{PbftSim, PbftSimConfig};
use crate::report::RunReport;
use crate::trace::TraceEvent;
use serde::Serialize;
use std::collections::BTreeMap;
use synod_core::fast::Recovery;

/// One row: a recovery rule and a number of racing clients.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyRow {
    /// "basic", "multi", "fast", "fast-multi", "generalized", "pbft" or "fast-byzantine".
    pub protocol: &'static str,
    /// "coordinated" or "uncoordinated".
    pub rule: &'static str,
    /// Servers with collapsed roles (acceptor and learner in one process).
    pub collapsed: bool,
    /// Clients proposing at about the same time.
    pub clients: usize,
    /// Seeds run.
    pub seeds: u64,
    /// Seeds in which a fast round collided (acceptors voted for different values).
    pub collided: u64,
    /// Seeds in which a collision left no value a fast quorum, so a recovery round ran.
    pub recovered: u64,
    /// Message delays to learning, over seeds without a recovery: delays → seeds (Fast
    /// Paxos) or commands (Generalized Paxos).
    pub fast: BTreeMap<u32, u64>,
    /// The same over seeds with a recovery.
    pub recovering: BTreeMap<u32, u64>,
    /// Seeds with a violation (there should be none).
    pub failing: u64,
}

impl LatencyRow {
    fn new(
        protocol: &'static str,
        rule: &'static str,
        collapsed: bool,
        clients: usize,
        seeds: u64,
    ) -> Self {
        LatencyRow {
            protocol,
            rule,
            collapsed,
            clients,
            seeds,
            collided: 0,
            recovered: 0,
            fast: BTreeMap::new(),
            recovering: BTreeMap::new(),
            failing: 0,
        }
    }
}

/// Runs `seeds` fault-free seeds per row: 1 client (no collision possible) and 3 racing
/// clients, under each recovery rule, and with collapsed roles under uncoordinated recovery.
pub fn compare(seeds: u64) -> Result<Vec<LatencyRow>, String> {
    let mut rows = Vec::new();
    for proposers in [1, 3] {
        rows.push(basic(seeds, proposers)?);
    }
    rows.push(multi_steady());
    for (recovery, name, collapsed) in [
        (Recovery::Coordinated, "coordinated", false),
        (Recovery::Uncoordinated, "uncoordinated", false),
        (Recovery::Uncoordinated, "uncoordinated", true),
    ] {
        for clients in [1, 3] {
            let mut row = LatencyRow::new("fast", name, collapsed, clients, seeds);
            for seed in 0..seeds {
                let cfg = FastSimConfig {
                    coordinators: 1,
                    clients,
                    recovery: Some(recovery),
                    collapsed: Some(collapsed),
                    faults: Faults::NONE,
                    ..Default::default()
                };
                let (report, _, outcome) = FastSim::new(cfg, seed)?.run_measured();
                row.failing += report.violation.is_some() as u64;
                row.collided += (outcome.collisions > 0) as u64;
                let bucket = if outcome.recoveries > 0 {
                    row.recovered += 1;
                    &mut row.recovering
                } else {
                    &mut row.fast
                };
                if let Some(d) = outcome.delays {
                    *bucket.entry(d).or_default() += 1;
                }
            }
            rows.push(row);
        }
    }
    for recovery in [Recovery::Coordinated, Recovery::Uncoordinated] {
        for clients in [1, 3] {
            rows.push(fast_multi(seeds, clients, recovery)?);
        }
    }
    for clients in [1, 3] {
        rows.push(generalized(seeds, clients)?);
    }
    for clients in [1, 3] {
        rows.push(pbft(seeds, clients)?);
    }
    for clients in [1, 3] {
        rows.push(fab(seeds, clients)?);
    }
    Ok(rows)
}

/// PBFT (4 replicas, no liars, 6 requests per client): delays from a client's request to the
/// first replica executing it; "recovered" counts seeds in which a view change ran.
fn pbft(seeds: u64, clients: usize) -> Result<LatencyRow, String> {
    let row = LatencyRow::new("pbft", "view change", true, clients, seeds);
    byzantine_row(row, seeds, |seed| {
        let cfg = PbftSimConfig {
            liars: Some(0),
            clients,
            faults: Faults::NONE,
            ..Default::default()
        };
        let (report, _, o) = PbftSim::new(cfg, seed)?.run_measured();
        Ok((report, o.views > 0, o.delays))
    })
}

/// PBFT's messages per request by kind, from the traces of `seeds` fault-free runs of
/// `replicas` replicas without liars and one client. Status rounds and checkpoints are in the
/// map too, though they are periodic rather than per request.
pub fn pbft_messages(replicas: usize, seeds: u64) -> Result<BTreeMap<String, f64>, String> {
    let cfg = PbftSimConfig {
        replicas,
        liars: Some(0),
        clients: 1,
        faults: Faults::NONE,
        trace: true,
        ..Default::default()
    };
    let per_seed = cfg.commands as u64;
    messages_by_kind(seeds, per_seed, |seed| {
        let (report, trace, _) = PbftSim::new(cfg.clone(), seed)?.run_measured();
        Ok((report, trace))
    })
}

/// Fast Byzantine Paxos (6 acceptors, no liars, 6 requests per client): delays from a
/// client's request to the first acceptor executing it; "recovered" counts seeds in which a
/// slot went through a recovery view (colliding clients).
fn fab(seeds: u64, clients: usize) -> Result<LatencyRow, String> {
    let row = LatencyRow::new("fast-byzantine", "recovery", true, clients, seeds);
    byzantine_row(row, seeds, |seed| {
        let cfg = FabSimConfig {
            liars: Some(0),
            clients,
            faults: Faults::NONE,
            ..Default::default()
        };
        let (report, _, o) = FabSim::new(cfg, seed)?.run_measured();
        Ok((report, o.recoveries > 0, o.delays))
    })
}

/// Fast Byzantine Paxos's messages per request by kind, from the traces of `seeds` fault-free
/// runs of `acceptors` acceptors without liars and one client (status rounds included, though
/// they are periodic).
pub fn fab_messages(acceptors: usize, seeds: u64) -> Result<BTreeMap<String, f64>, String> {
    let cfg = FabSimConfig {
        acceptors,
        liars: Some(0),
        clients: 1,
        faults: Faults::NONE,
        trace: true,
        ..Default::default()
    };
    let per_seed = cfg.commands as u64;
    messages_by_kind(seeds, per_seed, |seed| {
        let (report, trace, _) = FabSim::new(cfg.clone(), seed)?.run_measured();
        Ok((report, trace))
    })
}

/// Fills `row` from `seeds` runs of a Byzantine simulator: each gives its report, whether it
/// recovered (a view change or recovery view ran), and its delays → requests.
fn byzantine_row(
    mut row: LatencyRow,
    seeds: u64,
    run: impl Fn(u64) -> Result<(RunReport, bool, BTreeMap<u32, u64>), String>,
) -> Result<LatencyRow, String> {
    for seed in 0..seeds {
        let (report, recovered, delays) = run(seed)?;
        row.failing += report.violation.is_some() as u64;
        let bucket = if recovered {
            row.recovered += 1;
            &mut row.recovering
        } else {
            &mut row.fast
        };
        for (d, n) in delays {
            *bucket.entry(d).or_default() += n;
        }
    }
    Ok(row)
}

/// Messages per request by kind over `seeds` traced runs of `per_seed` requests each; a
/// violation in any run is an error.
fn messages_by_kind(
    seeds: u64,
    per_seed: u64,
    run: impl Fn(u64) -> Result<(RunReport, Vec<TraceEvent>), String>,
) -> Result<BTreeMap<String, f64>, String> {
    let mut sent = BTreeMap::<String, u64>::new();
    for seed in 0..seeds {
        let (report, trace) = run(seed)?;
        if let Some(v) = report.violation {
            return Err(format!("seed {seed}: {v}"));
        }
        count_kinds(&trace, &mut sent);
    }
    Ok(per_request(sent, seeds * per_seed))
}

/// Counts the messages a trace sent, by kind (the first word of each).
fn count_kinds(trace: &[TraceEvent], sent: &mut BTreeMap<String, u64>) {
    for e in trace {
        if let TraceEvent::Send { msg, .. } = e {
            let kind = msg.split(['(', ' ', '{']).next().unwrap_or("");
            *sent.entry(kind.to_string()).or_default() += 1;
        }
    }
}

fn per_request(sent: BTreeMap<String, u64>, requests: u64) -> BTreeMap<String, f64> {
    sent.into_iter()
        .map(|(kind, n)| (kind, n as f64 / requests.max(1) as f64))
        .collect()
}

/// Basic Paxos (5 acceptors, 2 learners, `proposers` proposing at once): delays from a
/// proposer's first Prepare, phase 1 included; "recovered" counts seeds in which the decision
/// came through a retry (duelling proposers), whose delays are not counted.
fn basic(seeds: u64, proposers: usize) -> Result<LatencyRow, String> {
    let mut row = LatencyRow::new("basic", "-", false, proposers, seeds);
    for seed in 0..seeds {
        let cfg = BasicSimConfig {
            proposers,
            faults: Faults::NONE,
            ..Default::default()
        };
        let (report, _, delays) = BasicSim::new(cfg, seed)?.run_measured();
        row.failing += report.violation.is_some() as u64;
        match delays {
            Some(d) => *row.fast.entry(d).or_default() += 1,
            None => row.recovered += 1,
        }
    }
    Ok(row)
}

/// Multi-Paxos with a steady leader, counted on the scripted run of real replicas that
/// `synod flow multi-steady` draws: for each client request, the messages on its path until
/// the leader holds a quorum of `Accepted` (heartbeats in between are not on the path).
fn multi_steady() -> LatencyRow {
    let mut row = LatencyRow::new("multi", "steady leader", true, 1, 1);
    let drawn = crate::flow::scenario("multi-steady")
        .map(|s| s.run())
        .expect("the multi-steady scenario exists");
    let mut on_path: Option<u32> = None;
    for label in drawn.chart.labels() {
        if label.starts_with("Request") {
            on_path = Some(1);
        } else if label.starts_with("Heartbeat") {
            continue;
        } else if let Some(n) = on_path.as_mut() {
            *n += 1;
            if label.starts_with("Accepted") {
                *row.fast.entry(*n).or_default() += 1;
                on_path = None;
            }
        }
    }
    row
}

/// Fast Multi-Paxos (5 servers, clients proposing 4 commands each): delays per command, split
/// by whether its slot was chosen on the fast path or by a recovery; "recovered" counts seeds
/// in which the leader ran a new round after its first (coordinated) or acceptors chose a slot
/// in a recovery step (uncoordinated).
fn fast_multi(seeds: u64, clients: usize, recovery: Recovery) -> Result<LatencyRow, String> {
    let rule = match recovery {
        Recovery::Coordinated => "coordinated",
        Recovery::Uncoordinated => "uncoordinated",
    };
    let mut row = LatencyRow::new("fast-multi", rule, true, clients, seeds);
    for seed in 0..seeds {
        let cfg = FastMultiSimConfig {
            clients,
            recovery: Some(recovery),
            faults: Faults::NONE,
            ..Default::default()
        };
        let (report, _, outcome) = FastMultiSim::new(cfg, seed)?.run_measured();
        row.failing += report.violation.is_some() as u64;
        row.collided += (outcome.collisions > 0) as u64;
        row.recovered += (outcome.rounds > 1 || outcome.step_slots > 0) as u64;
        for (d, n) in outcome.fast_delays {
            *row.fast.entry(d).or_default() += n;
        }
        for (d, n) in outcome.recovered_delays {
            *row.recovering.entry(d).or_default() += n;
        }
    }
    Ok(row)
}

/// Generalized Paxos (3 acceptors, 1 leader, clients issuing 4 random reads and writes of two
/// registers each): delays per command, split by whether the seed needed a recovery.
fn generalized(seeds: u64, clients: usize) -> Result<LatencyRow, String> {
    let mut row = LatencyRow::new("generalized", "coordinated", false, clients, seeds);
    for seed in 0..seeds {
        let cfg = GenSimConfig {
            leaders: 1,
            clients,
            faults: Faults::NONE,
            ..Default::default()
        };
        let (report, _, outcome) = GenSim::new(cfg, seed)?.run_measured();
        row.failing += report.violation.is_some() as u64;
        let recovered = outcome.recoveries > 0;
        row.collided += recovered as u64;
        row.recovered += recovered as u64;
        let bucket = if recovered {
            &mut row.recovering
        } else {
            &mut row.fast
        };
        for (d, n) in outcome.delays {
            *bucket.entry(d).or_default() += n;
        }
    }
    Ok(row)
}
