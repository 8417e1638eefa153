//! Linearizable reads without a log slot (the ReadIndex technique), on the leader.
//!
//! A read that arrives when the leader's log ends at `index` may be served from the leader's
//! state machine once two things hold:
//!
//! 1. **The leader was still leader after the read arrived.** A round of probes sent after the
//!    read arrived came back from a phase-2 quorum whose members had not promised a higher
//!    ballot. Any leader with a higher ballot needs a phase-1 quorum of promises, which meets
//!    that phase-2 quorum in some acceptor. That acceptor answered the probe before promising
//!    the higher ballot, so the newer leader finished phase 1 only after the read arrived: no
//!    write it acknowledged can precede the read.
//! 2. **Every slot below `index` is applied.** A write acknowledged before the read arrived was
//!    chosen at some slot. Whichever ballot chose it, phase 1 of this leader's ballot learned
//!    and re-proposed it, or this leader proposed it itself; either way its slot is below the
//!    log end. `index` is the log end, not the commit point, because the re-proposed slots may
//!    not be known chosen yet.
//!
//! Reads are batched: every read registered before a round starts shares that round. Up to
//! [`MAX_ROUNDS_IN_FLIGHT`] rounds are out at once, so a read that arrives while a round is
//! out need not wait for it to come back before its own round starts: it waits one round trip,
//! not one and a half on average. An acknowledgement of round `r` vouches for every round up
//! to `r` too (it was sent after they all started), so a member's highest acknowledged round
//! is all that is kept.

use super::messages::Slot;
use crate::ballot::NodeId;
use crate::quorum::{fewest_for_phase2, QuorumSystem};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The driver's name for one read request.
pub type ReadId = u64;

/// Confirmation rounds out at once, at most. Past this, reads wait for one to come back: a
/// bound on the probes a burst of reads sends, and a round per read would buy nothing while
/// the members are already busy answering.
pub const MAX_ROUNDS_IN_FLIGHT: u64 = 8;

#[derive(Clone, Debug)]
struct Pending {
    id: ReadId,
    index: Slot,
    round: u64,
    /// The follower that asked on its client's behalf, or `None` for our own client.
    origin: Option<NodeId>,
}

/// A read whose leadership round is confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Confirmed {
    /// The read id (the asking follower's, when `origin` is set).
    pub id: ReadId,
    /// Where the log ended when the read arrived: serve it once every slot below is applied.
    pub index: Slot,
    /// The follower that asked, if any.
    pub origin: Option<NodeId>,
}

/// The leader's reads in progress.
#[derive(Clone, Debug, Default)]
pub struct Reads {
    /// Rounds started so far, numbered from 1; rounds above `confirmed` are in flight.
    started: u64,
    /// Each member's highest acknowledged round (ourselves included).
    acked: BTreeMap<NodeId, u64>,
    /// Highest round a quorum confirmed.
    confirmed: u64,
    pending: VecDeque<Pending>,
}

impl Reads {
    /// Registers a read that arrived when the log ended at `index`, on behalf of `origin` (a
    /// follower) or our own client. It waits for the next round to start
    /// ([`Reads::next_round`]): only a round started after the read arrived can vouch for it.
    pub fn request(&mut self, id: ReadId, index: Slot, origin: Option<NodeId>) {
        let round = self.started + 1;
        debug_assert!(self
            .pending
            .back()
            .is_none_or(|p| p.round <= round && p.index <= index));
        self.pending.push_back(Pending {
            id,
            index,
            round,
            origin,
        });
    }

    /// Starts a round if reads wait for one and fewer than [`MAX_ROUNDS_IN_FLIGHT`] are out;
    /// returns the round to probe for.
    pub fn next_round(&mut self) -> Option<u64> {
        let waiting = self.pending.back().is_some_and(|p| p.round > self.started);
        let room = self.started - self.confirmed < MAX_ROUNDS_IN_FLIGHT;
        (waiting && room).then(|| {
            self.started += 1;
            self.started
        })
    }

    /// The latest round in flight that reads wait for, if any, and who has acknowledged it.
    pub fn in_flight(&self) -> Option<(u64, BTreeSet<NodeId>)> {
        (self.started > self.confirmed && !self.pending.is_empty()).then(|| {
            let acks = self.acked.iter().filter(|&(_, &r)| r >= self.started);
            (self.started, acks.map(|(&m, _)| m).collect())
        })
    }

    /// Thrifty probes (seed 002's second optimisation, for reads): of `candidates`, the fewest
    /// that make a phase-2 quorum with `me`, those that acknowledged the latest round first
    /// (ties in the order given, so the choice stays put while they all answer). `None` if all
    /// of them together do not make one.
    pub fn thrifty_targets(
        &self,
        me: NodeId,
        candidates: impl Iterator<Item = NodeId>,
        quorum: &dyn QuorumSystem,
    ) -> Option<Vec<NodeId>> {
        let mut ranked: Vec<(Reverse<u64>, NodeId)> = candidates
            .filter(|&m| m != me)
            .map(|m| (Reverse(self.acked.get(&m).copied().unwrap_or(0)), m))
            .collect();
        ranked.sort_by_key(|&(acked, _)| acked);
        let ranked = ranked.into_iter().map(|(_, m)| m);
        fewest_for_phase2(BTreeSet::from([me]), ranked, quorum)
    }

    /// `from` confirmed our leadership for `round` (and so for every earlier round).
    pub fn ack(&mut self, from: NodeId, round: u64, quorum: &dyn QuorumSystem) {
        if round > self.started || round <= self.confirmed {
            return;
        }
        let best = self.acked.entry(from).or_insert(0);
        *best = (*best).max(round);
        // The highest round that a quorum acknowledged, counting later acks as earlier ones.
        let mut rounds: Vec<u64> = self.acked.values().copied().collect();
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        rounds.dedup();
        for r in rounds.into_iter().take_while(|&r| r > self.confirmed) {
            let members: BTreeSet<NodeId> = self
                .acked
                .iter()
                .filter(|&(_, &a)| a >= r)
                .map(|(&m, _)| m)
                .collect();
            if quorum.is_phase2_quorum(&members) {
                self.confirmed = r;
                break;
            }
        }
        // Only a started round can be confirmed: its probes went out after its reads arrived.
        assert!(
            self.confirmed <= self.started,
            "confirmed a round never started"
        );
    }

    /// Treats every read as confirmed at once: the planted `UnconfirmedReads` bug.
    pub fn confirm_all(&mut self) {
        if let Some(p) = self.pending.back() {
            self.confirmed = self.confirmed.max(p.round);
            self.started = self.started.max(p.round);
        }
    }

    /// Whether the read at the front may be answered: its round is confirmed and, for our own,
    /// every slot below its index is applied.
    fn serves(&self, p: &Pending, applied: Slot) -> bool {
        p.round <= self.confirmed && (p.origin.is_some() || p.index <= applied)
    }

    /// How many reads [`Reads::ready`] would hand out now, without taking them.
    pub fn ready_count(&self, applied: Slot) -> usize {
        self.pending
            .iter()
            .take_while(|p| self.serves(p, applied))
            .count()
    }

    /// Reads whose round is confirmed: our own once every slot below their index is applied
    /// (`applied`), a follower's at once (it waits for its own apply point).
    pub fn ready(&mut self, applied: Slot, off_by_one: bool) -> Vec<Confirmed> {
        let applied = applied + u64::from(off_by_one);
        let mut out = Vec::new();
        while let Some(p) = self.pending.front() {
            if !self.serves(p, applied) {
                break;
            }
            out.push(Confirmed {
                id: p.id,
                index: p.index,
                origin: p.origin,
            });
            self.pending.pop_front();
        }
        out
    }

    /// Every read still waiting (when leadership ends, they all fail), with its origin.
    pub fn drain(&mut self) -> Vec<(ReadId, Option<NodeId>)> {
        self.pending.drain(..).map(|p| (p.id, p.origin)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::Quorum;

    fn ids(c: Vec<Confirmed>) -> Vec<ReadId> {
        c.into_iter().map(|c| c.id).collect()
    }

    #[test]
    fn reads_wait_for_a_quorum_round_started_after_them_and_for_the_apply_point() {
        let q = Quorum::majority(&[1, 2, 3]).expect("valid");
        let mut r = Reads::default();
        assert_eq!(r.next_round(), None, "no read waits");
        r.request(10, 5, None);
        assert!(r.ready(100, false).is_empty(), "no round has started yet");
        assert_eq!(r.next_round(), Some(1));
        assert_eq!(r.next_round(), None, "read 10 has its round");
        // A read arriving while round 1 is out gets a round of its own.
        r.request(11, 6, None);
        assert_eq!(r.next_round(), Some(2));
        r.ack(1, 1, &q);
        assert!(r.ready(100, false).is_empty(), "one ack is no quorum");
        r.ack(2, 1, &q);
        assert!(r.ready(4, false).is_empty(), "slot 4 is not applied yet");
        assert_eq!(ids(r.ready(5, false)), vec![10]);
        assert!(r.ready(100, false).is_empty(), "read 11 waits for round 2");
        assert_eq!(r.in_flight(), Some((2, BTreeSet::new())));
        r.ack(1, 2, &q);
        assert_eq!(r.in_flight(), Some((2, BTreeSet::from([1]))));
        r.ack(3, 2, &q);
        assert_eq!(ids(r.ready(6, false)), vec![11]);
        assert_eq!(r.in_flight(), None);
        r.request(12, 7, None);
        assert_eq!(r.next_round(), Some(3));
        assert_eq!(r.drain(), vec![(12, None)]);
        assert_eq!(r.in_flight(), None, "nothing waits for round 3 any more");
    }

    /// A confirmed round is not in flight, even while its reads wait for the apply point: the
    /// heartbeat would otherwise probe again for a round already settled.
    #[test]
    fn a_confirmed_round_is_not_in_flight_while_its_reads_wait_to_apply() {
        let q = Quorum::majority(&[1, 2, 3]).expect("valid");
        let mut r = Reads::default();
        r.request(10, 5, None);
        assert_eq!(r.next_round(), Some(1));
        r.ack(1, 1, &q);
        r.ack(2, 1, &q);
        assert!(r.ready(4, false).is_empty(), "slot 5 is not applied yet");
        assert_eq!(r.in_flight(), None);
        assert_eq!(ids(r.ready(5, false)), vec![10]);
    }

    /// `ready_count` (the simulator's stall check) counts what `ready` would take, no more:
    /// a follower's read needs only its round, ours also the apply point, in order.
    #[test]
    fn ready_count_counts_what_ready_would_hand_out() {
        let q = Quorum::majority(&[1, 2, 3]).expect("valid");
        let mut r = Reads::default();
        r.request(10, 5, None);
        r.request(11, 5, Some(2));
        assert_eq!(r.next_round(), Some(1));
        assert_eq!(r.ready_count(100), 0, "the round is not confirmed");
        r.ack(1, 1, &q);
        r.ack(2, 1, &q);
        assert_eq!(
            r.ready_count(4),
            0,
            "our read at 5 is first and not applied"
        );
        assert_eq!(r.ready_count(5), 2);
        assert_eq!(r.ready_count(5), 2, "counting takes nothing");
        assert_eq!(ids(r.ready(5, false)), vec![10, 11]);
        assert_eq!(r.ready_count(100), 0);
        r.request(12, 9, Some(3));
        assert_eq!(r.next_round(), Some(2));
        r.ack(1, 2, &q);
        r.ack(3, 2, &q);
        assert_eq!(
            r.ready_count(0),
            1,
            "a follower's read waits at the follower"
        );
    }

    #[test]
    fn a_later_rounds_ack_vouches_for_earlier_rounds() {
        let q = Quorum::majority(&[1, 2, 3]).expect("valid");
        let mut r = Reads::default();
        for (id, round) in [(1, 1), (2, 2), (3, 3)] {
            r.request(id, 0, None);
            assert_eq!(r.next_round(), Some(round));
        }
        // Member 1 (us) acked round 3, member 2 only round 2 (its ack of round 3 is lost or
        // late): a quorum vouches for rounds 1 and 2, not 3.
        r.ack(1, 3, &q);
        r.ack(2, 2, &q);
        assert_eq!(ids(r.ready(0, false)), vec![1, 2]);
        // An ack of a confirmed round, or of one never started, changes nothing.
        r.ack(3, 1, &q);
        r.ack(3, 9, &q);
        assert!(r.ready(0, false).is_empty());
        r.ack(3, 3, &q);
        assert_eq!(ids(r.ready(0, false)), vec![3]);
    }

    #[test]
    fn rounds_in_flight_are_bounded_and_later_reads_share_the_next() {
        let q = Quorum::majority(&[1, 2, 3]).expect("valid");
        let mut r = Reads::default();
        for id in 0..MAX_ROUNDS_IN_FLIGHT {
            r.request(id, 0, None);
            assert_eq!(r.next_round(), Some(id + 1));
        }
        r.request(100, 0, None);
        r.request(101, 0, None);
        assert_eq!(r.next_round(), None, "no room for another round");
        r.ack(1, 1, &q);
        r.ack(2, 1, &q);
        assert_eq!(ids(r.ready(0, false)), vec![0]);
        let next = MAX_ROUNDS_IN_FLIGHT + 1;
        assert_eq!(
            r.next_round(),
            Some(next),
            "one round for both waiting reads"
        );
        assert_eq!(r.next_round(), None);
        r.ack(1, next, &q);
        r.ack(3, next, &q);
        let all: Vec<ReadId> = (1..MAX_ROUNDS_IN_FLIGHT).chain([100, 101]).collect();
        assert_eq!(ids(r.ready(0, false)), all);
    }

    #[test]
    fn thrifty_targets_are_the_fewest_that_make_a_quorum_latest_answer_first() {
        let q = Quorum::majority(&[1, 2, 3, 4, 5]).expect("valid");
        let mut r = Reads::default();
        assert_eq!(
            r.thrifty_targets(1, 1..=5, &q),
            Some(vec![2, 3]),
            "as given at first"
        );
        assert_eq!(
            r.thrifty_targets(1, [5, 4, 1, 3].into_iter(), &q),
            Some(vec![5, 4])
        );
        for round in 1..=2 {
            r.request(round, 0, None);
            assert_eq!(r.next_round(), Some(round));
        }
        r.ack(4, 2, &q);
        r.ack(5, 1, &q);
        assert_eq!(r.thrifty_targets(1, 1..=5, &q), Some(vec![4, 5]));
        assert_eq!(
            r.thrifty_targets(1, [1, 2, 5].into_iter(), &q),
            Some(vec![5, 2])
        );
        assert_eq!(
            r.thrifty_targets(1, [1, 3].into_iter(), &q),
            None,
            "no quorum"
        );
    }

    #[test]
    fn a_followers_read_is_released_on_confirmation_without_waiting_for_our_apply_point() {
        let q = Quorum::majority(&[1, 2, 3]).expect("valid");
        let mut r = Reads::default();
        r.request(7, 9, Some(2));
        assert_eq!(r.next_round(), Some(1));
        r.ack(1, 1, &q);
        r.ack(3, 1, &q);
        assert_eq!(
            r.ready(0, false),
            vec![Confirmed {
                id: 7,
                index: 9,
                origin: Some(2)
            }]
        );
    }
}
