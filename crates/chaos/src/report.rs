//! What a run found: the summary printed at the end and written to summary.json.

use crate::nemesis::FaultRecord;
use crate::recorder::Counts;
use crate::verify::{LostWrite, ReplicaHashes};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// The checker's conclusion, in a form that serializes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Judgement {
    /// Every key's history has a linearization.
    Linearizable,
    /// Some key's has none.
    NotLinearizable,
    /// The checker gave up (time, steps or memory).
    Unknown,
}

/// Everything a run did and found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Seed of the schedule and the clients.
    pub seed: u64,
    /// Cluster size.
    pub nodes: u64,
    /// Clients.
    pub clients: u64,
    /// Keys.
    pub keys: u64,
    /// `namespaces` or `loopback`, with the addresses used.
    pub network: String,
    /// Whether the servers ran with `--unsafe-local-reads`.
    pub unsafe_local_reads: bool,
    /// Seconds of faults asked for.
    pub fault_seconds: f64,
    /// Fault kinds asked for that this run could not inject, and why.
    pub skipped: Vec<String>,
    /// Operations by outcome (the clients' and the final reads).
    pub ops: Counts,
    /// Operations by outcome and type (`get`, `put`, `delete`, `cas`, `final-get`).
    pub ops_by_type: BTreeMap<String, Counts>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Every fault, in order.
    pub fault_log: Vec<FaultRecord>,
    /// Nodes that died without the nemesis killing them.
    pub unexpected_exits: Vec<String>,
    /// Each key's value read after healing (`None`: absent; missing: could not be read).
    pub final_values: BTreeMap<String, Option<String>>,
    /// Keys the final reads could not read at all.
    pub unread_keys: Vec<String>,
    /// Acknowledged writes the final values contradict.
    pub lost_writes: Vec<LostWrite>,
    /// Every member's HashKV at one revision after healing.
    pub replica_hashes: ReplicaHashes,
    /// The checker's verdict.
    pub verdict: Judgement,
    /// The verdict as the checker prints it (the window around an anomaly).
    pub verdict_text: String,
    /// Reads that returned a value provably overwritten before they began, counted by the
    /// fault in force when they were invoked (`none`: the cluster was whole).
    pub stale_reads: BTreeMap<String, u64>,
    /// When the operation no order could explain was invoked (history microseconds), and
    /// which fault was in force then (`None`: the cluster was whole).
    pub anomaly_at: Option<(u64, Option<String>)>,
    /// Seconds the checker took.
    pub check_seconds: f64,
    /// Seconds the whole run took.
    pub wall_seconds: f64,
    /// The command that reproduces the run (same seed, so the same faults at the same times;
    /// the interleaving of real processes still varies).
    pub command: String,
    /// The history (JSON lines).
    pub history: PathBuf,
    /// The anomaly drawn as a timeline, when there is one.
    pub anomaly_svg: Option<PathBuf>,
}

impl Report {
    /// Whether the run found something wrong: an anomaly, a lost write, a node that died
    /// by itself, a key that could not be read after healing, members whose histories differ,
    /// or a member that could not hash the common revision after healing.
    pub fn found_problem(&self) -> bool {
        self.verdict == Judgement::NotLinearizable
            || !self.lost_writes.is_empty()
            || !self.unexpected_exits.is_empty()
            || !self.unread_keys.is_empty()
            || self.replica_hashes.divergent()
            || !self.replica_hashes.silent().is_empty()
    }

    /// Anomalies found: a non-linearizable history counts one (the checker stops at the first
    /// key that has none), plus each lost write.
    pub fn anomalies(&self) -> usize {
        usize::from(self.verdict == Judgement::NotLinearizable) + self.lost_writes.len()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.ops;
        writeln!(
            f,
            "operations: {} ok, {} failed, {} indeterminate",
            c.ok, c.failed, c.indeterminate
        )?;
        for (t, c) in &self.ops_by_type {
            writeln!(
                f,
                "  {t:<10} {:>7} ok {:>6} failed {:>6} indeterminate",
                c.ok, c.failed, c.indeterminate
            )?;
        }
        let total: u64 = self.faults.values().sum();
        let kinds: Vec<String> = self
            .faults
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        writeln!(f, "faults: {total} ({})", kinds.join(", "))?;
        for s in &self.skipped {
            writeln!(f, "  not injected: {s}")?;
        }
        for x in &self.unexpected_exits {
            writeln!(f, "node died by itself: {x}")?;
        }
        let finals: Vec<String> = self
            .final_values
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("(absent)")))
            .collect();
        writeln!(f, "final reads after healing: {}", finals.join(" "))?;
        for k in &self.unread_keys {
            writeln!(f, "  could not read {k} after healing")?;
        }
        let hashes: Vec<String> = self
            .replica_hashes
            .hashes
            .iter()
            .map(|(n, h)| match h {
                Some((h, 0)) => format!("node{n}={h:08x}"),
                Some((h, c)) => format!("node{n}={h:08x} (compacted to {c})"),
                None => format!("node{n}=(no answer)"),
            })
            .collect();
        writeln!(
            f,
            "member hashes at revision {}: {}{}",
            self.replica_hashes.revision,
            hashes.join(" "),
            if self.replica_hashes.divergent() {
                "  DIVERGENT"
            } else {
                ""
            }
        )?;
        writeln!(f, "acknowledged writes lost: {}", self.lost_writes.len())?;
        for l in self.lost_writes.iter().take(10) {
            writeln!(
                f,
                "  {}: {} but found {}: {}",
                l.key,
                l.write,
                l.found.as_deref().unwrap_or("(absent)"),
                l.why
            )?;
        }
        writeln!(
            f,
            "checker ({:.1} s): {}",
            self.check_seconds,
            self.verdict_text.trim_end()
        )?;
        if let Some((at, fault)) = &self.anomaly_at {
            let during = fault
                .as_deref()
                .unwrap_or("no fault in force (the cluster was whole)");
            writeln!(
                f,
                "  the anomaly's operation started at {:.3} s: {during}",
                *at as f64 / 1e6
            )?;
        }
        if !self.stale_reads.is_empty() {
            let by: Vec<String> = self
                .stale_reads
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let total: u64 = self.stale_reads.values().sum();
            writeln!(
                f,
                "provably stale reads: {total} (by fault in force: {})",
                by.join(", ")
            )?;
        }
        writeln!(f, "anomalies: {}", self.anomalies())?;
        writeln!(f, "history: {}", self.history.display())?;
        if let Some(svg) = &self.anomaly_svg {
            writeln!(f, "anomaly drawn in {}", svg.display())?;
        }
        writeln!(f, "wall time: {:.0} s", self.wall_seconds)?;
        write!(f, "reproduce: {}", self.command)
    }
}
