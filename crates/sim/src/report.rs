//! What one simulated run produced: counts, and the first safety or liveness violation.

use serde::Serialize;
use std::fmt;

/// A property the run broke.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Which checker fired: agreement, validity, applied-order, durability, liveness,
    /// linearizability, convergence.
    pub check: &'static str,
    /// Virtual time at which it was detected.
    pub at: u64,
    /// What exactly went wrong.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} violated at t={}: {}",
            self.check, self.at, self.detail
        )
    }
}

/// Counts from one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Events processed (each is one step, followed by every checker).
    pub steps: u64,
    /// Messages handed to the network.
    pub sent: u64,
    /// Messages delivered to a live node.
    pub delivered: u64,
    /// Messages dropped (loss, partition, dead receiver).
    pub dropped: u64,
    /// Slots (or single decrees) decided.
    pub decisions: u64,
    /// Client operations completed.
    pub ops: u64,
    /// Crashes injected.
    pub crashes: u64,
    /// Partitions injected.
    pub partitions: u64,
    /// Pauses injected.
    pub pauses: u64,
    /// Leadership transfers the operator asked a leader for.
    pub transfers: u64,
    /// Transfers whose successor led within three election timeouts.
    pub handovers: u64,
    /// Checkpoints the operator forced.
    pub checkpoints: u64,
    /// Snapshots whose state a node took from the checkpoint it just saved in place of its own
    /// copy, as the server does with the checkpoint file.
    pub rebased: u64,
    /// Membership changes the operator asked a leader for.
    pub reconfigurations: u64,
    /// Membership changes applied (configurations after the first, as ground truth saw them).
    pub epochs: u64,
    /// Members the applied changes took out for good.
    pub removed: u64,
    /// Nodes the operator started to join the running cluster.
    pub added: u64,
    /// Of those, the ones that joined (installed a member's snapshot) by the end.
    pub joined: u64,
    /// Messages that reached a crashed node, were held, and reached its next life.
    pub redelivered: u64,
    /// Waiting client commands a node handed its replica again at once because it sends
    /// commands elsewhere now (a new leader, or a former one that will not answer).
    pub rerouted: u64,
    /// Cheap Paxos: messages delivered to auxiliary acceptors.
    pub aux_messages: u64,
    /// Cheap Paxos: votes the auxiliaries still held at the end.
    pub aux_votes_left: u64,
    /// Cheap Paxos: accepts that reached an auxiliary with a digest in place of the value.
    pub aux_digests: u64,
    /// Virtual time at the end.
    pub end_time: u64,
}

impl Stats {
    /// Adds another run's counts (end times are summed too).
    pub fn add(&mut self, o: &Stats) {
        self.steps += o.steps;
        self.sent += o.sent;
        self.delivered += o.delivered;
        self.dropped += o.dropped;
        self.decisions += o.decisions;
        self.ops += o.ops;
        self.crashes += o.crashes;
        self.partitions += o.partitions;
        self.pauses += o.pauses;
        self.redelivered += o.redelivered;
        self.rerouted += o.rerouted;
        self.transfers += o.transfers;
        self.handovers += o.handovers;
        self.checkpoints += o.checkpoints;
        self.rebased += o.rebased;
        self.reconfigurations += o.reconfigurations;
        self.epochs += o.epochs;
        self.removed += o.removed;
        self.added += o.added;
        self.joined += o.joined;
        self.aux_messages += o.aux_messages;
        self.aux_votes_left += o.aux_votes_left;
        self.aux_digests += o.aux_digests;
        self.end_time += o.end_time;
    }
}

/// The outcome of one seed.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// Counts.
    pub stats: Stats,
    /// The first violation, if any.
    pub violation: Option<Violation>,
}
