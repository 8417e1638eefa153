//! Joining a running cluster. A node added by a membership change starts with an empty disk
//! and knows neither the cluster's first membership nor the changes since, so it cannot tell
//! who governs any slot. It asks the peers it was given for a snapshot ([`Message::JoinRequest`])
//! and does nothing else until one arrives: the snapshot carries the membership as of its slot,
//! and catch-up brings the rest (the change that added it among them).
//!
//! Until then it persists nothing, so a joiner that crashes before it joined starts over, and
//! one that joined recovers from its snapshot like any other replica.

use super::{Fx, Replica};
use crate::ballot::NodeId;
use crate::multi::messages::{Message, Output, Persist, Snapshot, Timer};
use crate::multi::state_machine::StateMachine;

impl<S: StateMachine> Replica<S> {
    /// True while this replica waits for a peer's snapshot to join the cluster
    /// ([`super::Config::join`]).
    pub fn joining(&self) -> bool {
        self.joining
    }

    /// Asks one of the peers given, drawn at random, for a snapshot: a peer with none stored
    /// builds one on the spot, which for a large state is work not to multiply.
    pub(super) fn ask_to_join(&mut self, fx: &mut Fx<S>) {
        let peers: Vec<NodeId> = (self.cfg.members.iter().copied())
            .filter(|&p| p != self.cfg.id)
            .collect();
        if peers.is_empty() {
            return;
        }
        let to = peers[self.rng.range(0, peers.len() as u64) as usize];
        fx.send(to, Message::JoinRequest);
    }

    /// While joining, only a snapshot counts; the election timer paces the requests.
    pub(super) fn joining_on_timer(&mut self, timer: Timer, fx: &mut Fx<S>) {
        if timer == Timer::Election {
            // Asking again while a snapshot is arriving would make a peer start another.
            self.age_incoming(fx);
            if self.incoming.is_none() {
                self.ask_to_join(fx);
            }
            self.arm_election(fx);
        }
    }

    /// While joining: a snapshot from a peer asked makes this replica a member like any
    /// other; everything else waits (a leader retransmits, and catch-up fills the gap).
    pub(super) fn joining_on_message(&mut self, from: NodeId, msg: Message<S::Command>) -> Fx<S> {
        let mut fx = Fx::<S>::new();
        let asked = from != self.cfg.id && self.cfg.members.contains(&from);
        if !asked {
            return fx;
        }
        let snapshot = match msg {
            Message::InstallSnapshot { snapshot } => Some(snapshot),
            m @ Message::SnapshotChunk { .. } => super::stream::Piece::of(m)
                .and_then(|piece| self.on_snapshot_chunk(from, piece, &mut fx)),
            _ => None,
        };
        if let Some(snapshot) = snapshot {
            self.join_from(snapshot, &mut fx);
        }
        fx
    }

    /// Adopts a peer's snapshot, membership included, as this replica's starting point. A
    /// snapshot without a membership (written before changes existed) cannot say who governs
    /// its slots and is ignored, as is one that does not decode.
    fn join_from(&mut self, snapshot: Snapshot, fx: &mut Fx<S>) {
        // Only an empty disk joins, and a joiner applies nothing: any snapshot is ahead of it.
        debug_assert_eq!(self.learner.applied(), 0, "a joiner applied nothing");
        if snapshot.membership.is_none() || self.learner.install(&snapshot, fx).is_err() {
            return;
        }
        self.acceptor.drop_below(snapshot.slot);
        fx.persist(Persist::Snapshot(snapshot.clone()));
        self.superseded_below(snapshot.slot);
        self.snapshot = Some(snapshot);
        self.joining = false;
        self.epoch_seen = self.learner.membership().latest().epoch();
        if self.retired() {
            // Added, then taken out again before this node came up.
            fx.output(Output::Retired);
        }
        // The election timer ran while it was joining: a voter's first timeout after joining
        // must not find it quiet and depose a leader it never had a chance to hear.
        self.heard = true;
        self.arm_election(fx);
        self.learner.catch_up(self.acceptor.log(), fx);
    }

    /// True once since a joiner asked for a snapshot that this replica, with
    /// [`super::Config::build_for_joiners`] off, left to its driver to take
    /// ([`Replica::begin_snapshot`]); clears the request.
    pub fn take_snapshot_wanted(&mut self) -> bool {
        std::mem::take(&mut self.snapshot_wanted)
    }

    /// A joiner asks for a state to start from: our latest snapshot if we have one (catch-up
    /// covers the slots after it), or else one of our applied state, built now and kept
    /// (`lent`) for the pieces still to be asked for and for the next joiner: the log is
    /// compacted only below a stored snapshot, so it still holds every slot after it. Only a
    /// node we know as a member gets past the message filter to ask.
    pub(super) fn on_join_request(&mut self, to: NodeId, fx: &mut Fx<S>) {
        if self.joining {
            return;
        }
        if self.newest_snapshot().is_none() {
            // Encoding a large state here would stall the caller's loop. With nothing applied
            // (and so nothing compacted) the state is empty and costs nothing.
            if !self.cfg.build_for_joiners && self.learner.applied() > 0 {
                self.snapshot_wanted = true;
                return;
            }
            self.lent = Some(self.learner.snapshot());
        }
        if let Some(snapshot) = self.newest_snapshot() {
            self.send_snapshot(to, snapshot, fx);
        }
    }
}
