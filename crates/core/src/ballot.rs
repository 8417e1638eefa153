//! Ballots: the proposal numbers of Paxos.
//!
//! A ballot is a `(round, node)` pair ordered by round first and node second, so two proposers
//! can never pick the same ballot and any two ballots compare. Round 0 is reserved for "no ballot
//! yet" ([`Ballot::ZERO`]); every real ballot has a round of at least 1.
//!
//! Never reusing a ballot across restarts is the caller's duty through the protocols' persisted
//! state: each role persists the highest ballot it used or promised before it sends anything that
//! carries it, and after a restart picks a round strictly above it ([`Ballot::next_after`]).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifies a process (replica, proposer, acceptor, learner) in a cluster.
pub type NodeId = u64;

/// A totally ordered proposal number: `(round, node)`, compared lexicographically.
///
/// Decoding refuses a round above [`Ballot::MAX_ROUND`]: ballots come from peers, and one at
/// the top of the range would leave no ballot above it for the next candidate to take (and
/// [`Ballot::next_after`] nothing to add to). No cluster gets there by elections.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "RawBallot")]
pub struct Ballot {
    /// The round; higher rounds win.
    pub round: u64,
    /// The node that owns the ballot; breaks ties between equal rounds.
    pub node: NodeId,
}

/// A ballot as encoded, before its round is checked.
#[derive(Deserialize)]
struct RawBallot {
    round: u64,
    node: NodeId,
}

impl TryFrom<RawBallot> for Ballot {
    type Error = String;

    fn try_from(raw: RawBallot) -> Result<Self, String> {
        if raw.round > Ballot::MAX_ROUND {
            return Err(format!("ballot round {} is out of range", raw.round));
        }
        Ok(Ballot::new(raw.round, raw.node))
    }
}

impl Ballot {
    /// "No ballot": below every real ballot.
    pub const ZERO: Ballot = Ballot { round: 0, node: 0 };

    /// The highest round a decoded ballot may have: half the range, so that
    /// [`Ballot::next_after`] always has a round to go to (at a thousand elections a second, a
    /// cluster would need some 290 million years to get here).
    pub const MAX_ROUND: u64 = u64::MAX / 2;

    /// Builds a ballot.
    pub const fn new(round: u64, node: NodeId) -> Self {
        Ballot { round, node }
    }

    /// The smallest ballot owned by `node` that is strictly above `seen`.
    pub fn next_after(seen: Ballot, node: NodeId) -> Ballot {
        let candidate = Ballot::new(seen.round, node);
        let ballot = if candidate > seen && seen.round > 0 {
            candidate
        } else {
            Ballot::new(seen.round + 1, node)
        };
        debug_assert!(ballot > seen);
        ballot
    }

    /// True for [`Ballot::ZERO`].
    pub fn is_zero(&self) -> bool {
        self.round == 0
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.round, self.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_round_past_the_limit_does_not_decode() {
        let top = Ballot::new(Ballot::MAX_ROUND, 3);
        let bytes = postcard::to_stdvec(&top).unwrap();
        assert_eq!(postcard::from_bytes::<Ballot>(&bytes).unwrap(), top);
        assert!(Ballot::next_after(top, 2) > top);
        let past = postcard::to_stdvec(&(Ballot::MAX_ROUND + 1, 3u64)).unwrap();
        assert!(postcard::from_bytes::<Ballot>(&past).is_err());
        let last = postcard::to_stdvec(&(u64::MAX, 3u64)).unwrap();
        assert!(postcard::from_bytes::<Ballot>(&last).is_err());
    }

    #[test]
    fn round_dominates_node() {
        assert!(Ballot::new(2, 1) > Ballot::new(1, 9));
        assert!(Ballot::new(1, 2) > Ballot::new(1, 1));
        assert!(Ballot::ZERO < Ballot::new(1, 0));
    }

    #[test]
    fn next_after_reuses_round_only_when_node_is_higher() {
        assert_eq!(Ballot::next_after(Ballot::new(3, 1), 2), Ballot::new(3, 2));
        assert_eq!(Ballot::next_after(Ballot::new(3, 2), 2), Ballot::new(4, 2));
        assert_eq!(Ballot::next_after(Ballot::new(3, 5), 2), Ballot::new(4, 2));
        assert_eq!(Ballot::next_after(Ballot::ZERO, 1), Ballot::new(1, 1));
    }

    proptest! {
        #[test]
        fn next_after_is_strictly_greater_and_owned(r in 0u64..1000, n in 0u64..10, me in 1u64..10) {
            let seen = Ballot::new(r, n);
            let b = Ballot::next_after(seen, me);
            prop_assert!(b > seen);
            prop_assert_eq!(b.node, me);
            prop_assert!(b.round >= 1);
        }
    }
}
