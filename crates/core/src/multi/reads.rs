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
//! Reads are batched: every read that arrives while a probe round is in flight shares the next
//! round, so there is at most one round in flight.

use super::messages::Slot;
use crate::ballot::NodeId;
use crate::quorum::QuorumSystem;
use std::collections::{BTreeSet, VecDeque};

/// The driver's name for one read request.
pub type ReadId = u64;

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
    /// Rounds started so far; the latest is in flight if `acks` is `Some`.
    started: u64,
    acks: Option<BTreeSet<NodeId>>,
    /// Highest round a quorum confirmed.
    confirmed: u64,
    pending: VecDeque<Pending>,
}

impl Reads {
    /// Registers a read that arrived when the log ended at `index`, on behalf of `origin` (a
    /// follower) or our own client. Returns the round to probe for if a new round must start
    /// now.
    pub fn request(&mut self, id: ReadId, index: Slot, origin: Option<NodeId>) -> Option<u64> {
        let (round, start) = if self.acks.is_some() {
            (self.started + 1, false)
        } else {
            (self.started + 1, true)
        };
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
        start.then(|| self.start_round())
    }

    fn start_round(&mut self) -> u64 {
        self.started += 1;
        self.acks = Some(BTreeSet::new());
        self.started
    }

    /// The round in flight, if any.
    pub fn in_flight(&self) -> Option<(u64, &BTreeSet<NodeId>)> {
        self.acks.as_ref().map(|a| (self.started, a))
    }

    /// `from` confirmed our leadership for `round`. Returns the next round to probe for, when
    /// reads are already waiting for it.
    pub fn ack(&mut self, from: NodeId, round: u64, quorum: &dyn QuorumSystem) -> Option<u64> {
        let acks = self.acks.as_mut().filter(|_| round == self.started)?;
        acks.insert(from);
        if !quorum.is_phase2_quorum(acks) {
            return None;
        }
        self.confirmed = round;
        self.acks = None;
        let waiting = self.pending.back().is_some_and(|p| p.round > round);
        waiting.then(|| self.start_round())
    }

    /// Treats every read as confirmed at once: the planted `UnconfirmedReads` bug.
    pub fn confirm_all(&mut self) {
        if let Some(p) = self.pending.back() {
            self.confirmed = self.confirmed.max(p.round);
            self.started = self.started.max(p.round);
            self.acks = None;
        }
    }

    /// Reads whose round is confirmed: our own once every slot below their index is applied
    /// (`applied`), a follower's at once (it waits for its own apply point).
    pub fn ready(&mut self, applied: Slot) -> Vec<Confirmed> {
        let mut out = Vec::new();
        while let Some(p) = self.pending.front() {
            if p.round > self.confirmed || (p.origin.is_none() && p.index > applied) {
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
        self.acks = None;
        self.pending.drain(..).map(|p| (p.id, p.origin)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::Quorum;

    #[test]
    fn reads_wait_for_a_quorum_round_after_them_and_for_the_apply_point() {
        let q = Quorum::majority(&[1, 2, 3]).expect("valid");
        let mut r = Reads::default();
        assert_eq!(r.request(10, 5, None), Some(1));
        // A read arriving during round 1 must wait for round 2.
        assert_eq!(r.request(11, 6, None), None);
        assert_eq!(r.ack(1, 1, &q), None);
        assert!(r.ready(100).is_empty(), "one ack is no quorum");
        assert_eq!(r.ack(2, 1, &q), Some(2), "round 2 starts for read 11");
        assert!(r.ready(4).is_empty(), "slot 4 is not applied yet");
        let ids = |c: Vec<Confirmed>| c.into_iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(ids(r.ready(5)), vec![10]);
        assert!(r.ready(100).is_empty(), "read 11 waits for round 2");
        assert_eq!(r.ack(3, 1, &q), None, "a stale round's ack is ignored");
        r.ack(1, 2, &q);
        r.ack(3, 2, &q);
        assert_eq!(ids(r.ready(6)), vec![11]);
        assert_eq!(r.request(12, 7, None), Some(3));
        assert_eq!(r.drain(), vec![(12, None)]);
        assert_eq!(r.in_flight(), None);
    }

    #[test]
    fn a_followers_read_is_released_on_confirmation_without_waiting_for_our_apply_point() {
        let q = Quorum::majority(&[1, 2, 3]).expect("valid");
        let mut r = Reads::default();
        assert_eq!(r.request(7, 9, Some(2)), Some(1));
        r.ack(1, 1, &q);
        r.ack(3, 1, &q);
        assert_eq!(
            r.ready(0),
            vec![Confirmed {
                id: 7,
                index: 9,
                origin: Some(2)
            }]
        );
    }
}
