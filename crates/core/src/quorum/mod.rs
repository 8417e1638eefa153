//! Quorum systems: which sets of nodes may complete phase 1 and phase 2.
//!
//! Paxos is safe as long as every phase-1 quorum intersects every phase-2 quorum (Flexible
//! Paxos); plain majorities are the special case Q1 = Q2 = ⌊N/2⌋ + 1. Quorums are judged on the
//! *set* of nodes that answered, not a count, so that later siblings (Cheap Paxos with auxiliary
//! acceptors, Fast Paxos's larger fast quorums, Byzantine 2f+1-of-3f+1 quorums, weighted
//! quorums) fit behind the same trait.

mod byzantine;
mod fast;
mod fast_byzantine;

pub use byzantine::{ByzantineQuorum, ByzantineQuorumError};
pub use fast::{FastQuorum, FastQuorumError};
pub use fast_byzantine::{FastByzantineQuorum, FastByzantineQuorumError};

use crate::ballot::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt::Debug;
use thiserror::Error;

/// Decides whether a set of responders forms a quorum for each phase.
pub trait QuorumSystem: Debug + Send + Sync {
    /// The nodes that vote (acceptors), in a stable order.
    fn members(&self) -> &[NodeId];
    /// True when `voters` (possibly including non-members, which count for nothing) contains a
    /// phase-1 (prepare/promise) quorum.
    fn is_phase1_quorum(&self, voters: &BTreeSet<NodeId>) -> bool;
    /// True when `voters` contains a phase-2 (accept/accepted) quorum.
    fn is_phase2_quorum(&self, voters: &BTreeSet<NodeId>) -> bool;
    /// True when `voters` contains a fast quorum: enough to choose a value in a fast round,
    /// where acceptors vote for whatever reaches them first. Systems without fast rounds have
    /// no fast quorums, so nothing is ever chosen fast with them.
    fn is_fast_quorum(&self, _voters: &BTreeSet<NodeId>) -> bool {
        false
    }
}

/// Seed 002's thrifty sends: of `ranked`, best first, the fewest that make a phase-2 quorum
/// together with `members` (those already counted, such as the sender itself), in the order
/// taken. `None` if all of them together do not make one.
pub fn fewest_for_phase2(
    mut members: BTreeSet<NodeId>,
    ranked: impl IntoIterator<Item = NodeId>,
    quorum: &dyn QuorumSystem,
) -> Option<Vec<NodeId>> {
    let mut taken = Vec::new();
    for m in ranked {
        if quorum.is_phase2_quorum(&members) {
            break;
        }
        members.insert(m);
        taken.push(m);
    }
    quorum.is_phase2_quorum(&members).then_some(taken)
}

/// Why a quorum configuration was rejected.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum QuorumError {
    /// No members at all.
    #[error("a quorum system needs at least one member")]
    NoMembers,
    /// The same node listed twice.
    #[error("member {0} is listed more than once")]
    DuplicateMember(NodeId),
    /// A quorum size of zero or larger than the membership.
    #[error("{phase} quorum size {size} is out of range 1..={n}")]
    SizeOutOfRange {
        /// "phase-1", "phase-2", "classic" or "fast".
        phase: &'static str,
        /// The size asked for.
        size: usize,
        /// The number of members.
        n: usize,
    },
    /// Q1 + Q2 <= N: a phase-1 quorum could miss every phase-2 quorum, so two values could be
    /// chosen.
    #[error(
        "flexible quorums must intersect: Q1 ({q1}) + Q2 ({q2}) must exceed N ({n}); \
         raise Q1 or Q2 to at least {need} in total"
    )]
    NoIntersection {
        /// Phase-1 quorum size.
        q1: usize,
        /// Phase-2 quorum size.
        q2: usize,
        /// Number of members.
        n: usize,
        /// The smallest Q1 + Q2 that is safe.
        need: usize,
    },
    /// Cheap Paxos: an auxiliary acceptor votes, but the main members alone are no quorum of
    /// one phase, so the auxiliary would be needed in steady state.
    #[error(
        "while an auxiliary acceptor votes, the {mains} main member(s) alone must be a quorum \
         of both phases (Q1 = {q1}, Q2 = {q2}); add a main or make the auxiliary inactive"
    )]
    MainsTooFew {
        /// Voting members that are not auxiliaries.
        mains: usize,
        /// Phase-1 quorum size.
        q1: usize,
        /// Phase-2 quorum size.
        q2: usize,
    },
}

/// How quorums are chosen, as written in a configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuorumSpec {
    /// ⌊N/2⌋ + 1 for both phases.
    #[default]
    Majority,
    /// Threshold quorums of different sizes per phase; requires Q1 + Q2 > N.
    Flexible {
        /// Phase-1 quorum size.
        q1: usize,
        /// Phase-2 quorum size.
        q2: usize,
    },
}

/// A threshold quorum system over a fixed membership: majority or flexible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quorum {
    members: Vec<NodeId>,
    q1: usize,
    q2: usize,
}

impl Quorum {
    /// A simple majority over `members`.
    pub fn majority(members: &[NodeId]) -> Result<Self, QuorumError> {
        let n = members.len();
        Self::flexible(members, n / 2 + 1, n / 2 + 1)
    }

    /// Flexible quorums; refuses any pair of sizes whose quorums might not intersect.
    pub fn flexible(members: &[NodeId], q1: usize, q2: usize) -> Result<Self, QuorumError> {
        let n = members.len();
        if n == 0 {
            return Err(QuorumError::NoMembers);
        }
        let mut seen = BTreeSet::new();
        for &m in members {
            if !seen.insert(m) {
                return Err(QuorumError::DuplicateMember(m));
            }
        }
        for (phase, size) in [("phase-1", q1), ("phase-2", q2)] {
            if size == 0 || size > n {
                return Err(QuorumError::SizeOutOfRange { phase, size, n });
            }
        }
        if q1 + q2 <= n {
            return Err(QuorumError::NoIntersection {
                q1,
                q2,
                n,
                need: n + 1,
            });
        }
        Ok(Quorum {
            members: members.to_vec(),
            q1,
            q2,
        })
    }

    /// Builds the quorum system a [`QuorumSpec`] describes.
    pub fn from_spec(spec: QuorumSpec, members: &[NodeId]) -> Result<Self, QuorumError> {
        match spec {
            QuorumSpec::Majority => Self::majority(members),
            QuorumSpec::Flexible { q1, q2 } => Self::flexible(members, q1, q2),
        }
    }

    /// Phase-1 quorum size.
    pub fn q1(&self) -> usize {
        self.q1
    }

    /// Phase-2 quorum size.
    pub fn q2(&self) -> usize {
        self.q2
    }

    fn count(&self, voters: &BTreeSet<NodeId>) -> usize {
        self.members.iter().filter(|m| voters.contains(m)).count()
    }
}

impl QuorumSystem for Quorum {
    fn members(&self) -> &[NodeId] {
        &self.members
    }

    fn is_phase1_quorum(&self, voters: &BTreeSet<NodeId>) -> bool {
        self.count(voters) >= self.q1
    }

    fn is_phase2_quorum(&self, voters: &BTreeSet<NodeId>) -> bool {
        self.count(voters) >= self.q2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn majority_table() {
        // (members, voters, is quorum)
        let cases: &[(&[NodeId], &[NodeId], bool)] = &[
            (&[1], &[1], true),
            (&[1], &[], false),
            (&[1, 2, 3], &[1, 2], true),
            (&[1, 2, 3], &[3], false),
            (&[1, 2, 3, 4], &[1, 2], false),
            (&[1, 2, 3, 4], &[1, 2, 4], true),
            (&[1, 2, 3, 4, 5], &[2, 4, 5], true),
            (&[1, 2, 3, 4, 5], &[2, 4, 9, 10], false),
        ];
        for (members, voters, want) in cases {
            let q = Quorum::majority(members).unwrap();
            assert_eq!(
                q.is_phase1_quorum(&set(voters)),
                *want,
                "{members:?} {voters:?}"
            );
            assert_eq!(
                q.is_phase2_quorum(&set(voters)),
                *want,
                "{members:?} {voters:?}"
            );
        }
    }

    #[test]
    fn flexible_quorums_differ_by_phase() {
        let q = Quorum::flexible(&[1, 2, 3, 4, 5], 4, 2).unwrap();
        assert_eq!((q.q1(), q.q2()), (4, 2));
        let m = Quorum::majority(&[1, 2, 3, 4, 5, 6]).unwrap();
        assert_eq!((m.q1(), m.q2()), (4, 4));
        assert!(q.is_phase2_quorum(&set(&[1, 5])));
        assert!(!q.is_phase1_quorum(&set(&[1, 5])));
        assert!(q.is_phase1_quorum(&set(&[1, 2, 3, 5])));
    }

    #[test]
    fn flexible_refuses_non_intersecting_sizes() {
        let err = Quorum::flexible(&[1, 2, 3, 4], 2, 2).unwrap_err();
        assert_eq!(
            err,
            QuorumError::NoIntersection {
                q1: 2,
                q2: 2,
                n: 4,
                need: 5
            }
        );
        assert!(err.to_string().contains("must exceed N"));
    }

    #[test]
    fn bad_memberships_are_refused() {
        assert_eq!(Quorum::majority(&[]).unwrap_err(), QuorumError::NoMembers);
        assert_eq!(
            Quorum::majority(&[1, 2, 1]).unwrap_err(),
            QuorumError::DuplicateMember(1)
        );
        assert!(matches!(
            Quorum::flexible(&[1, 2, 3], 0, 3),
            Err(QuorumError::SizeOutOfRange { size: 0, .. })
        ));
        assert!(matches!(
            Quorum::flexible(&[1, 2, 3], 2, 4),
            Err(QuorumError::SizeOutOfRange { size: 4, .. })
        ));
    }

    #[test]
    fn every_valid_flexible_pair_intersects() {
        // Exhaustive over small clusters: any Q1-set and any Q2-set share a member.
        for n in 1..=5usize {
            let members: Vec<NodeId> = (1..=n as NodeId).collect();
            for q1 in 1..=n {
                for q2 in 1..=n {
                    let Ok(q) = Quorum::flexible(&members, q1, q2) else {
                        assert!(q1 + q2 <= n);
                        continue;
                    };
                    for a in 0u32..(1 << n) {
                        for b in 0u32..(1 << n) {
                            let sa: BTreeSet<_> = members
                                .iter()
                                .copied()
                                .filter(|m| a & (1 << (m - 1)) != 0)
                                .collect();
                            let sb: BTreeSet<_> = members
                                .iter()
                                .copied()
                                .filter(|m| b & (1 << (m - 1)) != 0)
                                .collect();
                            if q.is_phase1_quorum(&sa) && q.is_phase2_quorum(&sb) {
                                assert!(sa.intersection(&sb).next().is_some());
                            }
                        }
                    }
                }
            }
        }
    }
}
