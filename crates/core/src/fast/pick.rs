//! The value-picking rule, shared by phase 1, coordinated and uncoordinated recovery.
//!
//! Given the latest votes of a classic quorum Q (each acceptor's vote below the new round), let
//! k be the highest round among them and V the values voted in k.
//!
//! - No votes at all: nothing can have been chosen below the new round; the choice is free.
//! - k classic: only its coordinator's one value can be in V, and it may have been chosen.
//! - k fast: a value v may have been chosen in k only if some fast quorum R voted v there, so
//!   every member of R ∩ Q reported v in k. R may hold every acceptor outside Q, so v is
//!   "possibly chosen" when (votes for v in Q) + (acceptors outside Q) ≥ Qf. The fast quorum
//!   condition (Qc + 2·Qf > 2N) makes at most one v possibly chosen, and that v must be picked.
//!   If none is, no value was chosen in k (nor, by induction, below it) and the choice is free.
//!
//! One step leans on how fast rounds are opened. When k is fast and its one voted value v cannot
//! have been chosen, the rule answers `Free` (suggesting v) where Lamport's picks v. That is safe
//! because a fast round is only ever opened by `Any`, which a coordinator sends only when its own
//! rule left the choice free, or is an uncoordinated recovery step after a collision that ruled
//! out every value: either way nothing was chosen below k. A fast round opened with a fixed value
//! would break that and must not be added without changing this rule.

use super::messages::{Value, Vote};
use crate::ballot::NodeId;
use crate::bugs::PlantedBug;
use crate::quorum::{FastQuorum, QuorumSystem};
use std::collections::{BTreeMap, BTreeSet};

/// What the rule allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pick<V> {
    /// This value, and no other, may be proposed.
    Constrained(V),
    /// Any value may be proposed; the most voted one in round k is suggested, if any.
    Free(Option<V>),
}

/// Applies the rule to `reports`: each acceptor of a classic quorum with its latest vote.
pub fn pick<V: Value>(
    quorum: &FastQuorum,
    reports: &BTreeMap<NodeId, Option<Vote<V>>>,
    bug: Option<PlantedBug>,
) -> Pick<V> {
    // Only members' votes count, for k as for everything else.
    let votes: Vec<&Vote<V>> = reports
        .iter()
        .filter(|(id, _)| quorum.members().contains(id))
        .filter_map(|(_, v)| v.as_ref())
        .collect();
    let Some(k) = votes.iter().map(|v| v.round).max() else {
        return Pick::Free(None);
    };
    let in_k: Vec<&Vote<V>> = votes.into_iter().filter(|v| v.round == k).collect();
    let Some(first) = in_k.first() else {
        return Pick::Free(None);
    };
    if !first.fast {
        return Pick::Constrained(first.value.clone());
    }
    let mut counts: BTreeMap<&V, usize> = BTreeMap::new();
    for v in &in_k {
        *counts.entry(&v.value).or_default() += 1;
    }
    let heard: BTreeSet<NodeId> = reports.keys().copied().collect();
    let outside = quorum.members().len() - quorum.count(&heard);
    let possible: Vec<&V> = counts
        .iter()
        .filter(|(_, &c)| c + outside >= quorum.fast())
        .map(|(v, _)| *v)
        .collect();
    if let Some(&v) = possible.first() {
        if bug == Some(PlantedBug::RecoveryPicksUnsafe) {
            if let Some(other) = counts.keys().find(|o| **o != v) {
                return Pick::Constrained((*other).clone());
            }
        }
        return Pick::Constrained(v.clone());
    }
    let most = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(v, _)| (*v).clone());
    Pick::Free(most)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast::messages::Round;

    fn vote(number: u64, fast: bool, value: &str) -> Option<Vote<String>> {
        Some(Vote {
            round: Round::new(number, 1),
            fast,
            value: value.into(),
        })
    }

    fn reports(r: &[(NodeId, Option<Vote<String>>)]) -> BTreeMap<NodeId, Option<Vote<String>>> {
        r.iter().cloned().collect()
    }

    fn q(n: u64) -> FastQuorum {
        FastQuorum::majority(&(1..=n).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn no_votes_is_free() {
        let r = reports(&[(1, None), (2, None), (3, None)]);
        assert_eq!(pick(&q(5), &r, None), Pick::Free(None));
    }

    #[test]
    fn classic_round_constrains_to_its_value() {
        let r = reports(&[
            (1, vote(1, false, "a")),
            (2, vote(2, false, "b")),
            (3, None),
        ]);
        assert_eq!(pick(&q(5), &r, None), Pick::Constrained("b".into()));
    }

    #[test]
    fn fast_round_value_that_may_have_been_chosen_is_picked() {
        // N = 5, Qf = 4: Q = {1,2,3} saw a, a, b; a plus the two outside can make 4.
        let r = reports(&[
            (1, vote(1, true, "a")),
            (2, vote(1, true, "a")),
            (3, vote(1, true, "b")),
        ]);
        assert_eq!(pick(&q(5), &r, None), Pick::Constrained("a".into()));
        // b plus the two outside make only 3: not possibly chosen.
        let r = reports(&[
            (1, vote(1, true, "b")),
            (2, vote(1, true, "a")),
            (3, vote(1, true, "a")),
        ]);
        assert_eq!(pick(&q(5), &r, None), Pick::Constrained("a".into()));
    }

    #[test]
    fn fast_round_with_no_possible_value_is_free_and_suggests_the_most_voted() {
        // N = 5, Q = all five: a, a, b, b, c; nobody reaches 4.
        let r = reports(&[
            (1, vote(1, true, "a")),
            (2, vote(1, true, "b")),
            (3, vote(1, true, "a")),
            (4, vote(1, true, "b")),
            (5, vote(1, true, "c")),
        ]);
        assert_eq!(pick(&q(5), &r, None), Pick::Free(Some("a".into())));
    }

    #[test]
    fn older_fast_votes_do_not_count_in_round_k() {
        // k = 2 (fast) with one vote for b; the round-1 votes for a are below k.
        let r = reports(&[
            (1, vote(1, true, "a")),
            (2, vote(1, true, "a")),
            (3, vote(2, true, "b")),
        ]);
        // b: 1 + 2 outside = 3 < 4: free.
        assert_eq!(pick(&q(5), &r, None), Pick::Free(Some("b".into())));
    }

    #[test]
    fn a_non_member_cannot_hide_the_members_votes() {
        // A report from outside the membership with a higher round must not make k a round
        // no member voted in.
        let mut r = reports(&[(1, vote(1, false, "a")), (2, None), (3, None)]);
        r.insert(99, vote(7, true, "z"));
        assert_eq!(pick(&q(5), &r, None), Pick::Constrained("a".into()));
    }

    #[test]
    fn planted_bug_picks_another_value() {
        let r = reports(&[
            (1, vote(1, true, "a")),
            (2, vote(1, true, "a")),
            (3, vote(1, true, "b")),
        ]);
        assert_eq!(
            pick(&q(5), &r, Some(PlantedBug::RecoveryPicksUnsafe)),
            Pick::Constrained("b".into())
        );
    }
}
