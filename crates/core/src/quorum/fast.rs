//! Fast quorums: the quorum calculus of Fast Paxos.
//!
//! A fast round lets any acceptor vote for whatever value reaches it first, so two fast quorums
//! may vote for different values in one round. The coordinator of a later round must still be
//! able to tell which value, if any, might have been chosen. Lamport's two conditions make that
//! possible (Fast Paxos, section 3.1):
//!
//! 1. **Classic**: any two classic quorums intersect (2·Qc > N).
//! 2. **Fast**: any classic quorum and any two fast quorums share a member (Qc + 2·Qf > 2N).
//!
//! Condition 2 is what makes at most one value "possibly chosen" from the view of a classic
//! quorum: if two values each looked possibly chosen, the two fast quorums behind them and the
//! classic quorum that saw them would have no member in common. For threshold quorums the
//! smallest intersection of sets of sizes a, b, c drawn from N members is a + b + c − 2N, which
//! is why the conditions are the arithmetic above; the tests check them by brute force too.
//!
//! A fast quorum is never smaller than a classic one here (a smaller one would gain nothing and
//! would need its own intersection argument with classic quorums).

use super::{QuorumError, QuorumSystem};
use crate::ballot::NodeId;
use std::collections::BTreeSet;

/// Why a fast quorum configuration was refused, naming the broken condition.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FastQuorumError {
    /// The membership or a size is malformed (shared with classic quorums).
    #[error(transparent)]
    Base(#[from] QuorumError),
    /// 2·Qc ≤ N: two classic quorums could be disjoint.
    #[error("classic quorums must intersect: 2 x Qc ({qc}) must exceed N ({n}); use Qc >= {need}")]
    ClassicDisjoint {
        /// Classic quorum size.
        qc: usize,
        /// Members.
        n: usize,
        /// The smallest safe Qc.
        need: usize,
    },
    /// Qc + 2·Qf ≤ 2N: a classic quorum could miss the overlap of two fast quorums, so it could
    /// not tell which of two values might have been chosen.
    #[error(
        "a classic quorum and any two fast quorums must intersect: Qc ({qc}) + 2 x Qf ({qf}) \
         must exceed 2N ({}); use Qf >= {need}", 2 * n
    )]
    FastDisjoint {
        /// Classic quorum size.
        qc: usize,
        /// Fast quorum size.
        qf: usize,
        /// Members.
        n: usize,
        /// The smallest safe Qf for this Qc.
        need: usize,
    },
    /// Qf < Qc.
    #[error("a fast quorum ({qf}) may not be smaller than a classic quorum ({qc})")]
    FastBelowClassic {
        /// Classic quorum size.
        qc: usize,
        /// Fast quorum size.
        qf: usize,
    },
}

/// Threshold quorums with a classic size for phase 1, classic rounds' phase 2 and recovery, and
/// a larger fast size for fast rounds' phase 2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FastQuorum {
    members: Vec<NodeId>,
    classic: usize,
    fast: usize,
}

impl FastQuorum {
    /// Majority classic quorums with the smallest fast quorum the fast condition allows:
    /// Qf = ⌊(2N − Qc) / 2⌋ + 1. For N = 5 that is 4, not the ⌊3N/4⌋ = 3 some code uses, which
    /// breaks condition 2 (3 + 2·3 = 9 ≤ 10).
    pub fn majority(members: &[NodeId]) -> Result<Self, FastQuorumError> {
        let n = members.len();
        let qc = n / 2 + 1;
        Self::new(members, qc, Self::smallest_fast(n, qc))
    }

    /// The smallest fast quorum size that satisfies Qc + 2·Qf > 2N (and Qf ≥ Qc).
    pub fn smallest_fast(n: usize, qc: usize) -> usize {
        ((2 * n).saturating_sub(qc) / 2 + 1).max(qc)
    }

    /// Quorums of the given sizes; refuses any pair that breaks a condition, naming it.
    pub fn new(members: &[NodeId], classic: usize, fast: usize) -> Result<Self, FastQuorumError> {
        let n = members.len();
        if n == 0 {
            return Err(QuorumError::NoMembers.into());
        }
        let mut seen = BTreeSet::new();
        for &m in members {
            if !seen.insert(m) {
                return Err(QuorumError::DuplicateMember(m).into());
            }
        }
        for (phase, size) in [("classic", classic), ("fast", fast)] {
            if size == 0 || size > n {
                return Err(QuorumError::SizeOutOfRange { phase, size, n }.into());
            }
        }
        if 2 * classic <= n {
            return Err(FastQuorumError::ClassicDisjoint {
                qc: classic,
                n,
                need: n / 2 + 1,
            });
        }
        if fast < classic {
            return Err(FastQuorumError::FastBelowClassic {
                qc: classic,
                qf: fast,
            });
        }
        if classic + 2 * fast <= 2 * n {
            return Err(FastQuorumError::FastDisjoint {
                qc: classic,
                qf: fast,
                n,
                need: Self::smallest_fast(n, classic),
            });
        }
        Ok(FastQuorum {
            members: members.to_vec(),
            classic,
            fast,
        })
    }

    /// A copy whose fast quorum is one member too small, without any check. Only for the
    /// planted bug that proves the simulator notices.
    pub fn planted_too_small(&self) -> Self {
        FastQuorum {
            fast: self.fast.saturating_sub(1).max(1),
            ..self.clone()
        }
    }

    /// Classic quorum size.
    pub fn classic(&self) -> usize {
        self.classic
    }

    /// Fast quorum size.
    pub fn fast(&self) -> usize {
        self.fast
    }

    /// How many of `voters` are members.
    pub fn count(&self, voters: &BTreeSet<NodeId>) -> usize {
        self.members.iter().filter(|m| voters.contains(m)).count()
    }

    /// True when `voters` contain a quorum of the kind a round uses.
    pub fn is_quorum(&self, voters: &BTreeSet<NodeId>, fast: bool) -> bool {
        self.count(voters) >= if fast { self.fast } else { self.classic }
    }
}

impl QuorumSystem for FastQuorum {
    fn members(&self) -> &[NodeId] {
        &self.members
    }

    fn is_phase1_quorum(&self, voters: &BTreeSet<NodeId>) -> bool {
        self.count(voters) >= self.classic
    }

    fn is_phase2_quorum(&self, voters: &BTreeSet<NodeId>) -> bool {
        self.count(voters) >= self.classic
    }

    fn is_fast_quorum(&self, voters: &BTreeSet<NodeId>) -> bool {
        self.count(voters) >= self.fast
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn members(n: usize) -> Vec<NodeId> {
        (1..=n as NodeId).collect()
    }

    fn subsets(n: usize, size: usize) -> Vec<BTreeSet<NodeId>> {
        (0u32..(1 << n))
            .filter(|m| m.count_ones() as usize == size)
            .map(|m| {
                (0..n)
                    .filter(|i| m & (1 << i) != 0)
                    .map(|i| i as NodeId + 1)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn default_fast_quorums_by_size() {
        // (N, Qc, Qf): the derived table, N = 5 in particular.
        let want = [
            (1, 1, 1),
            (2, 2, 2),
            (3, 2, 3),
            (4, 3, 3),
            (5, 3, 4),
            (6, 4, 5),
            (7, 4, 6),
            (8, 5, 6),
            (9, 5, 7),
        ];
        for (n, qc, qf) in want {
            let q = FastQuorum::majority(&members(n)).unwrap();
            assert_eq!((q.classic(), q.fast()), (qc, qf), "N = {n}");
        }
    }

    #[test]
    fn phases_use_classic_quorums_and_fast_rounds_fast_ones() {
        // N = 5: Qc = 3, Qf = 4.
        let q = FastQuorum::majority(&members(5)).unwrap();
        let (two, three, four): (BTreeSet<NodeId>, BTreeSet<NodeId>, BTreeSet<NodeId>) =
            ([1, 2].into(), [1, 2, 3].into(), [1, 2, 3, 4].into());
        for (set, classic, fast) in [
            (&two, false, false),
            (&three, true, false),
            (&four, true, true),
        ] {
            assert_eq!(q.is_phase1_quorum(set), classic, "{set:?}");
            assert_eq!(q.is_phase2_quorum(set), classic, "{set:?}");
            assert_eq!(q.is_quorum(set, false), classic, "{set:?}");
            assert_eq!(q.is_fast_quorum(set), fast, "{set:?}");
            assert_eq!(q.is_quorum(set, true), fast, "{set:?}");
        }
        // Non-members count for nothing.
        let strangers: BTreeSet<NodeId> = [7, 8, 9, 10].into();
        assert!(!q.is_fast_quorum(&strangers) && !q.is_phase2_quorum(&strangers));
        // Systems without fast rounds have no fast quorums.
        let classic = crate::quorum::Quorum::majority(&members(5)).unwrap();
        assert!(!classic.is_fast_quorum(&four));
    }

    #[test]
    fn three_quarters_is_unsafe_for_five() {
        let err = FastQuorum::new(&members(5), 3, 3).unwrap_err();
        assert_eq!(
            err,
            FastQuorumError::FastDisjoint {
                qc: 3,
                qf: 3,
                n: 5,
                need: 4
            }
        );
        assert!(err.to_string().contains("two fast quorums must intersect"));
        // The counterexample: a classic quorum that misses the overlap of two fast quorums.
        let (c, f1, f2): (BTreeSet<NodeId>, BTreeSet<NodeId>, BTreeSet<NodeId>) =
            ([1, 2, 3].into(), [3, 4, 5].into(), [1, 2, 4].into());
        assert!(c.iter().all(|m| !(f1.contains(m) && f2.contains(m))));
    }

    #[test]
    fn conditions_are_named() {
        assert!(matches!(
            FastQuorum::new(&members(4), 2, 4),
            Err(FastQuorumError::ClassicDisjoint { need: 3, .. })
        ));
        assert!(matches!(
            FastQuorum::new(&members(5), 4, 3),
            Err(FastQuorumError::FastBelowClassic { .. })
        ));
        assert!(matches!(
            FastQuorum::new(&[], 1, 1),
            Err(FastQuorumError::Base(QuorumError::NoMembers))
        ));
        assert!(matches!(
            FastQuorum::new(&[1, 1], 2, 2),
            Err(FastQuorumError::Base(QuorumError::DuplicateMember(1)))
        ));
        assert!(matches!(
            FastQuorum::new(&members(3), 2, 4),
            Err(FastQuorumError::Base(QuorumError::SizeOutOfRange {
                size: 4,
                ..
            }))
        ));
    }

    #[test]
    fn lamports_equal_sizes_are_accepted() {
        // Qc = Qf = ceil((2N+1)/3), the other classic choice.
        for n in 1..=15usize {
            let q = (2 * n + 1).div_ceil(3);
            assert!(FastQuorum::new(&members(n), q, q).is_ok(), "N = {n}");
        }
    }

    /// Exhaustive for N ≤ 6: every accepted configuration satisfies both conditions on actual
    /// sets, and every refused one (with valid sizes and Qf ≥ Qc) has a counterexample.
    #[test]
    fn conditions_hold_on_sets_exhaustively() {
        for n in 1..=6usize {
            let m = members(n);
            for qc in 1..=n {
                for qf in qc..=n {
                    let classic = subsets(n, qc);
                    let fast = subsets(n, qf);
                    let classic_ok = classic
                        .iter()
                        .all(|a| classic.iter().all(|b| a.intersection(b).next().is_some()));
                    let fast_ok = classic.iter().all(|c| {
                        fast.iter().all(|f1| {
                            fast.iter()
                                .all(|f2| c.iter().any(|x| f1.contains(x) && f2.contains(x)))
                        })
                    });
                    let accepted = FastQuorum::new(&m, qc, qf).is_ok();
                    assert_eq!(accepted, classic_ok && fast_ok, "N={n} Qc={qc} Qf={qf}");
                }
            }
        }
    }

    proptest! {
        /// For N up to 15 and any sizes: an accepted configuration never yields a classic quorum
        /// and two fast quorums without a common member; a refused one (sizes in range,
        /// Qf ≥ Qc) always does, or two disjoint classic quorums.
        #[test]
        fn accepted_iff_no_counterexample(
            n in 1usize..=15, qc_raw in 0usize..15, qf_raw in 0usize..15, seed in any::<u64>()
        ) {
            let qc = qc_raw % n + 1;
            let qf = qc + qf_raw % (n - qc + 1);
            let m = members(n);
            // Sets placed to overlap as little as possible, then rotated by the seed.
            let rot = (seed as usize) % n;
            let pick = |start: usize, size: usize| -> BTreeSet<NodeId> {
                (0..size).map(|i| m[(start + i + rot) % n]).collect()
            };
            let c = pick(0, qc);
            let f1 = pick(qc, qf);
            let f2 = pick(qc + qf, qf);
            let c2 = pick(qc, qc);
            let triple = c.iter().any(|x| f1.contains(x) && f2.contains(x));
            let pair = c.intersection(&c2).next().is_some();
            match FastQuorum::new(&m, qc, qf) {
                Ok(q) => {
                    prop_assert!(triple && pair);
                    prop_assert!(q.is_phase1_quorum(&c) && q.is_fast_quorum(&f1));
                }
                Err(_) => prop_assert!(!triple || !pair),
            }
        }
    }
}
