//! `synod sim --compare commit`: the three commit protocols over the same seeds and fault
//! classes, so that the story of the seeds (2PC blocks, 3PC splits, Paxos Commit does
//! neither) reads off one table.

use super::{CommitSim, CommitSimConfig, CommitTally};
use crate::faults::Faults;
use crate::net::NetConfig;
use serde::Serialize;
use synod_core::commit::{paxos_commit, three_pc, two_pc, CommitNode};

/// One protocol under one fault class, summed over the seeds.
#[derive(Clone, Debug, Serialize)]
pub struct CompareRow {
    /// The protocol.
    pub protocol: &'static str,
    /// The fault class.
    pub faults: String,
    /// Seeds run.
    pub seeds: u64,
    /// Transactions begun.
    pub begun: u64,
    /// Transactions decided alike by every live participant.
    pub decided: u64,
    /// Transactions left blocked at a live participant.
    pub blocked: u64,
    /// Transactions committed by one participant and aborted by another.
    pub split: u64,
    /// Commits without every yes vote.
    pub invalid: u64,
    /// Transactions nobody heard of in time (no vote, no outcome).
    pub unheard: u64,
    /// Seeds with any violation.
    pub failing_seeds: u64,
}

/// One protocol's cost without faults.
#[derive(Clone, Debug, Serialize)]
pub struct DelayRow {
    /// The protocol.
    pub protocol: &'static str,
    /// Message delays from the coordinator's first message to the last participant's
    /// decision (every message takes exactly one tick).
    pub delays: u64,
    /// Messages per transaction, acknowledgements included.
    pub messages: f64,
}

fn sweep<N: CommitNode>(
    faults: Faults,
    seeds: u64,
    participants: usize,
) -> Result<CompareRow, String> {
    let mut row = CompareRow {
        protocol: N::NAME,
        faults: faults.to_string(),
        seeds,
        begun: 0,
        decided: 0,
        blocked: 0,
        split: 0,
        invalid: 0,
        unheard: 0,
        failing_seeds: 0,
    };
    for seed in 0..seeds {
        let cfg = CommitSimConfig {
            faults,
            participants,
            ..Default::default()
        };
        let (report, _, t) = CommitSim::<N>::new(cfg, seed)?.run();
        row.begun += t.begun;
        row.decided += t.decided;
        row.blocked += t.blocked;
        row.split += t.split;
        row.invalid += t.invalid;
        row.unheard += t.unheard;
        row.failing_seeds += report.violation.is_some() as u64;
    }
    Ok(row)
}

fn cost<N: CommitNode>(participants: usize) -> Result<DelayRow, String> {
    let cfg = CommitSimConfig {
        faults: Faults::NONE,
        participants,
        refuse: 0.0,
        txs: 5,
        net: NetConfig {
            delay: (1, 1),
            ..NetConfig::default()
        },
        ..Default::default()
    };
    let (_, _, t): (_, _, CommitTally) = CommitSim::<N>::new(cfg, 0)?.run();
    if t.latencies.len() as u64 != t.begun || t.begun == 0 {
        return Err(format!(
            "{}: only {} of {} transactions were decided without faults",
            N::NAME,
            t.latencies.len(),
            t.begun
        ));
    }
    Ok(DelayRow {
        protocol: N::NAME,
        delays: *t.latencies.iter().max().expect("nonempty"),
        messages: t.messages as f64 / t.begun as f64,
    })
}

/// Runs every protocol over `seeds` seeds for each fault class, and measures each one's cost
/// without faults.
pub fn compare(
    seeds: u64,
    participants: usize,
) -> Result<(Vec<CompareRow>, Vec<DelayRow>), String> {
    let classes = [
        "none",
        "crash",
        "pause",
        "partition",
        "loss,dup,reorder",
        "all",
    ];
    let mut rows = Vec::new();
    for class in classes {
        let f: Faults = class.parse()?;
        rows.push(sweep::<two_pc::Node>(f, seeds, participants)?);
        rows.push(sweep::<three_pc::Node>(f, seeds, participants)?);
        rows.push(sweep::<paxos_commit::Node>(f, seeds, participants)?);
    }
    let costs = vec![
        cost::<two_pc::Node>(participants)?,
        cost::<three_pc::Node>(participants)?,
        cost::<paxos_commit::Node>(participants)?,
    ];
    Ok((rows, costs))
}
