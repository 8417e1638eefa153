//! Fast Byzantine quorums (Martin and Alvisi's FaB Paxos): `a` acceptors, at most `f` of them
//! lying, and a value chosen in two message delays (proposal, then acceptors' votes) as long as
//! at most `t <= f` acceptors are faulty.
//!
//! Three rules fix the sizes:
//!
//! - **Fast availability.** A fast quorum must be found with `t` acceptors silent:
//!   `fast <= a - t`.
//! - **Recovery availability.** A new leader can wait for `a - f` acceptors' reports of what
//!   they accepted, never more (the liars may stay silent).
//! - **Recovery is unambiguous.** If a value `v` was chosen, `fast` acceptors voted for it, at
//!   least `fast - f` of them correct, and at most `f` of those may be missing from the `a - f`
//!   reports: at least `fast - 2f` reports name `v`, truthfully. Any other value can be named by
//!   at most the remaining `(a - f) - (fast - 2f)` reports (liars included). For the leader to
//!   tell `v` apart, `fast - 2f` must exceed that: `2 fast > a + 3f`, so
//!   `fast = ceil((a + 3f + 1) / 2)`.
//!
//! Together: `a >= 3f + 2t + 1`; with `t = f`, `a = 5f + 1` and `fast = 4f + 1`. The leader
//! takes a value named by at least [`FastByzantineQuorum::vouched`] (`fast - 2f`) reports as
//! possibly chosen, and is free otherwise. A classic Byzantine quorum of the same acceptors
//! ([`super::ByzantineQuorum`]) serves the slow path.

use thiserror::Error;

/// Why a fast Byzantine quorum system cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FastByzantineQuorumError {
    /// Fewer than `3f + 2t + 1` acceptors.
    #[error(
        "a fast path that survives {t} faults while tolerating {f} liars needs at least {need} acceptors (3f+2t+1), not {a}"
    )]
    TooFew {
        /// Acceptors.
        a: usize,
        /// Liars tolerated.
        f: usize,
        /// Faults the fast path survives.
        t: usize,
        /// `3f + 2t + 1`.
        need: usize,
    },
    /// `t` above `f`.
    #[error("the fast path cannot survive more faults ({t}) than are tolerated at all ({f})")]
    TAboveF {
        /// Liars tolerated.
        f: usize,
        /// Faults the fast path survives.
        t: usize,
    },
}

/// The quorum sizes of `a` acceptors tolerating `f` liars, fast with up to `t` faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FastByzantineQuorum {
    a: usize,
    f: usize,
    t: usize,
    fast: usize,
}

impl FastByzantineQuorum {
    /// `a` acceptors with `t = f` as large as they allow: `f = (a - 1) / 5`.
    pub fn new(a: usize) -> Result<Self, FastByzantineQuorumError> {
        let f = a.saturating_sub(1) / 5;
        Self::tolerating(a, f, f)
    }

    /// `a` acceptors tolerating `f` liars, fast with up to `t`; refused unless
    /// `a >= 3f + 2t + 1` and `t <= f`.
    pub fn tolerating(a: usize, f: usize, t: usize) -> Result<Self, FastByzantineQuorumError> {
        if t > f {
            return Err(FastByzantineQuorumError::TAboveF { f, t });
        }
        let need = 3 * f + 2 * t + 1;
        if a < need {
            return Err(FastByzantineQuorumError::TooFew { a, f, t, need });
        }
        let fast = (a + 3 * f + 1).div_ceil(2);
        debug_assert!(fast <= a - t, "fast quorums exist with t acceptors silent");
        Ok(FastByzantineQuorum { a, f, t, fast })
    }

    /// Acceptors.
    pub fn acceptors(&self) -> usize {
        self.a
    }

    /// Liars tolerated.
    pub fn f(&self) -> usize {
        self.f
    }

    /// Faults with which the fast path still completes.
    pub fn t(&self) -> usize {
        self.t
    }

    /// Matching votes that choose a value in two message delays: `ceil((a + 3f + 1) / 2)`.
    pub fn fast(&self) -> usize {
        self.fast
    }

    /// Reports a recovering leader waits for: `a - f`.
    pub fn reports(&self) -> usize {
        self.a - self.f
    }

    /// Reports naming a value that make it possibly chosen: `fast - 2f`. At most one value
    /// reaches it among any `a - f` reports.
    pub fn vouched(&self) -> usize {
        self.fast - 2 * self.f
    }

    /// Matching statements that hold at least one correct acceptor's: `f + 1`.
    pub fn weak(&self) -> usize {
        self.f + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_f_plus_one_acceptors_choose_fast_on_four_f_plus_one_votes() {
        for f in 1..=5 {
            let q = FastByzantineQuorum::new(5 * f + 1).expect("5f+1");
            assert_eq!((q.f(), q.t(), q.fast()), (f, f, 4 * f + 1));
            assert_eq!(q.vouched(), 2 * f + 1);
            assert_eq!(q.reports(), 4 * f + 1);
        }
        assert_eq!(
            FastByzantineQuorum::tolerating(5, 1, 1),
            Err(FastByzantineQuorumError::TooFew {
                a: 5,
                f: 1,
                t: 1,
                need: 6
            })
        );
        // Giving up the fast path under faults (t = 0) needs only 3f + 1, like PBFT.
        let q = FastByzantineQuorum::tolerating(4, 1, 0).expect("3f+1");
        assert_eq!(q.fast(), 4);
        assert!(FastByzantineQuorum::tolerating(11, 1, 2).is_err());
    }

    /// Every system up to 40 acceptors, checked against the worst cases the liars and the
    /// network can arrange, rather than against the formulas above.
    #[test]
    fn every_size_is_available_and_its_recovery_unambiguous_and_one_less_would_not_be() {
        for a in 1..=40 {
            for f in 0..=a / 3 {
                for t in 0..=f {
                    let Ok(q) = FastByzantineQuorum::tolerating(a, f, t) else {
                        // No fast size works: availability and unambiguity exclude each other.
                        assert!(
                            !(1..=a).any(|fast| works(a, f, t, fast)),
                            "a={a} f={f} t={t}"
                        );
                        continue;
                    };
                    assert!(works(a, f, t, q.fast()), "a={a} f={f} t={t}: {q:?}");
                    assert!(!unambiguous(a, f, q.fast() - 1), "a={a} f={f}: not minimal");
                    assert_eq!(least_true_reports(f, q.fast()), q.vouched());
                }
            }
        }
    }

    /// The fewest reports naming a chosen value truthfully, over every count of liars among
    /// its `fast` voters and every choice of which `f` acceptors do not report.
    fn least_true_reports(f: usize, fast: usize) -> usize {
        let mut least = usize::MAX;
        for liars_among_voters in 0..=f.min(fast) {
            let correct_voters = fast - liars_among_voters;
            for missing in 0..=f {
                // The missing reporters are correct voters, as many as there are.
                let lost = missing.min(correct_voters);
                least = least.min(correct_voters - lost);
            }
        }
        least
    }

    fn unambiguous(a: usize, f: usize, fast: usize) -> bool {
        if fast > a {
            return false;
        }
        let truthful = least_true_reports(f, fast);
        // Every other report, liars' included, may name one other value.
        let other = (a - f) - truthful;
        truthful > other
    }

    fn works(a: usize, f: usize, t: usize, fast: usize) -> bool {
        fast <= a - t && unambiguous(a, f, fast)
    }
}
