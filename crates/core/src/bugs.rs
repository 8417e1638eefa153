//! Bugs that can be planted on purpose, so tests can prove the simulator's checkers have teeth.
//!
//! A checker that never fires proves nothing. Each variant breaks one rule Paxos depends on; the
//! simulator's planted-bug tests assert that it is caught within a stated number of seeds. No
//! production driver sets these: the server has no flag for them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One deliberate protocol bug.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PlantedBug {
    /// An acceptor accepts proposals whose ballot is below its promise.
    AcceptBelowPromise,
    /// A proposer ignores the values reported in promises and proposes its own.
    IgnorePromiseValues,
    /// A replica applies a slot's value as soon as it accepts it, before it is chosen.
    ApplyBeforeChosen,
    /// A leader serves reads without confirming with a quorum that it still leads.
    UnconfirmedReads,
    /// A leader counts its own vote the moment it casts it, before the vote is durable, while
    /// its accepts leave ahead of its sync: a value can look chosen with fewer durable votes
    /// than a quorum.
    OwnVoteBeforeSync,
    /// The node layer starts its read ids from zero at every boot, so an index reply meant for
    /// an earlier boot's read can answer a later read.
    ReadIdsReusedAcrossBoots,
    /// The node layer sends promises and votes to peers before their records are durable.
    SendBeforeSync,
}

impl PlantedBug {
    /// All bugs, for listings and exhaustive tests.
    pub const ALL: [PlantedBug; 7] = [
        PlantedBug::AcceptBelowPromise,
        PlantedBug::IgnorePromiseValues,
        PlantedBug::ApplyBeforeChosen,
        PlantedBug::UnconfirmedReads,
        PlantedBug::OwnVoteBeforeSync,
        PlantedBug::ReadIdsReusedAcrossBoots,
        PlantedBug::SendBeforeSync,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PlantedBug::AcceptBelowPromise => "accept-below-promise",
            PlantedBug::IgnorePromiseValues => "ignore-promise-values",
            PlantedBug::ApplyBeforeChosen => "apply-before-chosen",
            PlantedBug::UnconfirmedReads => "unconfirmed-reads",
            PlantedBug::OwnVoteBeforeSync => "own-vote-before-sync",
            PlantedBug::ReadIdsReusedAcrossBoots => "read-ids-reused-across-boots",
            PlantedBug::SendBeforeSync => "send-before-sync",
        }
    }
}

impl fmt::Display for PlantedBug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PlantedBug {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PlantedBug::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = PlantedBug::ALL.iter().map(|b| b.name()).collect();
                format!("unknown bug '{s}'; expected one of: {}", names.join(", "))
            })
    }
}
