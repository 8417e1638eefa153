//! Byzantine quorums: `n` replicas of which at most `f` may lie.
//!
//! Two rules fix the sizes, and both are checked here rather than assumed:
//!
//! - **Intersection.** Any two quorums must share at least `f + 1` replicas, so that they share
//!   at least one correct replica, whose word cannot be bent two ways: `2q - n >= f + 1`, that is
//!   `q >= (n + f + 1) / 2`, rounded up.
//! - **Availability.** A quorum must be found among the correct replicas alone, since the
//!   liars may stay silent: `q <= n - f`.
//!
//! Both hold exactly when `n >= 3f + 1`; with `n = 3f + 1` the quorum is `2f + 1`. A *weak
//! certificate* of `f + 1` matching statements holds at least one correct replica's; a client
//! takes a result on that many matching replies. A classic majority (`f + 1` of `2f + 1`) is
//! neither, which is why this type is separate from [`super::Quorum`].

use thiserror::Error;

/// Why a Byzantine quorum system cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ByzantineQuorumError {
    /// Fewer than `3f + 1` replicas for the `f` asked to tolerate.
    #[error("tolerating {f} Byzantine replicas needs at least {need} replicas (3f+1), not {n}")]
    TooFew {
        /// Replicas.
        n: usize,
        /// Faults asked for.
        f: usize,
        /// `3f + 1`.
        need: usize,
    },
}

/// The quorum sizes of `n` replicas tolerating `f` Byzantine ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByzantineQuorum {
    n: usize,
    f: usize,
    quorum: usize,
}

impl ByzantineQuorum {
    /// The largest `f` that `n` replicas tolerate, `(n - 1) / 3`.
    pub fn new(n: usize) -> Result<Self, ByzantineQuorumError> {
        Self::tolerating(n, n.saturating_sub(1) / 3)
    }

    /// `n` replicas tolerating `f`; refused unless `n >= 3f + 1`.
    pub fn tolerating(n: usize, f: usize) -> Result<Self, ByzantineQuorumError> {
        let need = 3 * f + 1;
        if n < need {
            return Err(ByzantineQuorumError::TooFew { n, f, need });
        }
        let quorum = (n + f + 1).div_ceil(2);
        debug_assert!(quorum <= n - f, "available among the correct replicas");
        Ok(ByzantineQuorum { n, f, quorum })
    }

    /// A copy whose quorum is one too small (`2f` for `n = 3f + 1`): a planted bug.
    pub fn planted_too_small(self) -> Self {
        ByzantineQuorum {
            quorum: self.quorum.saturating_sub(1).max(1),
            ..self
        }
    }

    /// Replicas.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Byzantine replicas tolerated.
    pub fn f(&self) -> usize {
        self.f
    }

    /// Matching statements that make a certificate (`2f + 1` when `n = 3f + 1`).
    pub fn quorum(&self) -> usize {
        self.quorum
    }

    /// Matching statements that hold at least one correct replica's: `f + 1`.
    pub fn weak(&self) -> usize {
        self.f + 1
    }

    /// The fewest replicas any two quorums share.
    pub fn overlap(&self) -> usize {
        (2 * self.quorum).saturating_sub(self.n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The least overlap of two `q`-subsets of `n`, found by building them: the first `q`
    /// replicas and the last `q`.
    fn least_overlap(n: usize, q: usize) -> usize {
        let a: Vec<usize> = (0..q).collect();
        let b: Vec<usize> = (n - q..n).collect();
        a.iter().filter(|x| b.contains(x)).count()
    }

    #[test]
    fn four_replicas_tolerate_one_with_quorums_of_three() {
        let q = ByzantineQuorum::new(4).unwrap();
        assert_eq!((q.f(), q.quorum(), q.weak()), (1, 3, 2));
        let q = ByzantineQuorum::new(7).unwrap();
        assert_eq!((q.f(), q.quorum(), q.weak()), (2, 5, 3));
        assert_eq!(
            ByzantineQuorum::tolerating(6, 2),
            Err(ByzantineQuorumError::TooFew {
                n: 6,
                f: 2,
                need: 7
            })
        );
    }

    #[test]
    fn the_planted_quorum_lets_two_quorums_share_only_a_liar() {
        for f in 1..5 {
            let q = ByzantineQuorum::tolerating(3 * f + 1, f)
                .unwrap()
                .planted_too_small();
            assert_eq!(q.quorum(), 2 * f);
            assert!(least_overlap(q.n(), q.quorum()) <= f);
        }
    }

    proptest! {
        #[test]
        fn quorums_share_a_correct_replica_and_exist_without_the_liars(n in 1usize..40, f in 0usize..13) {
            match ByzantineQuorum::tolerating(n, f) {
                Ok(q) => {
                    prop_assert!(least_overlap(n, q.quorum()) > f);
                    prop_assert_eq!(least_overlap(n, q.quorum()), q.overlap());
                    prop_assert!(q.quorum() <= n - f);
                    // Minimal: one smaller and two quorums could share only liars.
                    prop_assert!(q.quorum() == 1 || least_overlap(n, q.quorum() - 1) <= f);
                }
                Err(_) => {
                    // No size works: either two quorums could share only liars, or the
                    // correct replicas alone could not make one.
                    let works = (1..=n).any(|s| least_overlap(n, s) > f && s <= n - f);
                    prop_assert!(!works);
                }
            }
        }
    }
}
