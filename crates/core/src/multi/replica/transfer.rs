//! Leadership transfer (etcd's MoveLeader).
//!
//! Paxos needs no permission to lead: any replica may stand with a higher ballot, and phase 1
//! keeps whatever was chosen. A transfer only makes the change quick and free of lost work. The
//! leader stops starting new slots (client commands wait in its queue), lets the slots in flight
//! be chosen, then tells the successor the commit point in a [`Message::StandNow`]. The
//! successor learns every slot below it (asking the leader for what it lacks) and stands at
//! once, instead of after an election timeout. Its prepare deposes the old leader, which
//! forwards the commands it held to the successor, so no client sees its write fail.
//!
//! A successor that never stands (crashed, cut off, or already promised to someone else)
//! must not keep the cluster from taking writes: about two election timeouts after the transfer
//! began, the old leader gives up and proposes what it held. A successor that was asked but
//! could not catch up within one to two of its own election timeouts gives up too, so it does
//! not depose a leader that has long since resumed.

use super::{Fx, Replica, Role};
use crate::ballot::{Ballot, NodeId};
use crate::multi::leader::Handover;
use crate::multi::messages::{Message, Slot};
use crate::multi::state_machine::StateMachine;
use thiserror::Error;

/// Why a leadership transfer cannot start.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TransferError {
    /// Only the leader can hand its leadership over.
    #[error("this node does not lead (leader: {leader:?})")]
    NotLeader {
        /// Who this node believes leads, if anyone.
        leader: Option<NodeId>,
    },
    /// The successor named is not a member.
    #[error("node {0} is not a member")]
    NotAMember(NodeId),
}

impl<S: StateMachine> Replica<S> {
    /// As leader, hands leadership to `target`: see the module documentation. Naming
    /// ourselves changes nothing. Naming the same successor again changes nothing either, and
    /// naming another one keeps the time already spent: however often an operator retries,
    /// writes are held for about two election timeouts at most.
    pub fn transfer_leadership(&mut self, target: NodeId) -> Result<Fx<S>, TransferError> {
        let Role::Leader(active) = &mut self.role else {
            return Err(TransferError::NotLeader {
                leader: self.leader_hint,
            });
        };
        if !self.learner.membership().latest().is_main(target) {
            return Err(TransferError::NotAMember(target));
        }
        let mut fx = Fx::<S>::new();
        if target == self.cfg.id {
            return Ok(fx);
        }
        match &mut active.handover {
            Some(h) => {
                h.target = target;
                self.hand_over(&mut fx);
            }
            None => self.begin_handover(target, &mut fx),
        }
        Ok(fx)
    }

    /// Starts handing leadership to `target` (a voter, not this replica).
    pub(super) fn begin_handover(&mut self, target: NodeId, fx: &mut Fx<S>) {
        let Role::Leader(active) = &mut self.role else {
            return;
        };
        active.handover = Some(Handover {
            target,
            aged: false,
        });
        // The timeout counts from now, not from whenever the timer was last armed.
        self.arm_election(fx);
        self.hand_over(fx);
    }

    /// The successor of a transfer in progress, if this replica leads and is handing over.
    pub fn handing_over(&self) -> Option<NodeId> {
        match &self.role {
            Role::Leader(a) => a.handover.map(|h| h.target),
            _ => None,
        }
    }

    /// A leader handing over: once no slot of its ballot is in flight (every slot it proposed
    /// is chosen, so its commit point covers them all), asks the successor to stand. Sent again
    /// on every heartbeat while the transfer lasts, as messages get lost.
    pub(super) fn hand_over(&mut self, fx: &mut Fx<S>) {
        let Role::Leader(active) = &self.role else {
            return;
        };
        let Some(h) = active.handover else {
            return;
        };
        if active.in_flight().is_empty() {
            let (ballot, commit) = (active.ballot, self.learner.commit());
            fx.send(h.target, Message::StandNow { ballot, commit });
        }
    }

    /// On the leader's election timer: the first firing during a transfer marks it old, the
    /// second abandons it and proposes what waited, or, for a leader that no longer votes,
    /// steps down and leaves the voters to elect one of their own.
    pub(super) fn age_handover(&mut self, fx: &mut Fx<S>) {
        let votes = self.may_stand();
        let Role::Leader(active) = &mut self.role else {
            return;
        };
        match &mut active.handover {
            Some(h) if h.aged => {
                active.handover = None;
                if votes {
                    self.propose_queued(fx);
                } else {
                    self.step_down(fx);
                }
            }
            Some(h) => h.aged = true,
            None => {}
        }
    }

    /// A leader deposed while handing over gives the commands it held to its successor (most
    /// likely the one that deposed it) rather than leaving them to the clients' retries.
    pub(super) fn pass_queue_on(&mut self, fx: &mut Fx<S>) {
        let Role::Leader(active) = &mut self.role else {
            return;
        };
        let Some(h) = active.handover else {
            return;
        };
        let commands = active.take_queue();
        if !commands.is_empty() {
            fx.send(h.target, Message::Forward { commands });
        }
    }

    /// The successor's side. Only the leader of the ballot this replica promises may ask, so
    /// a late or forged request from an old leader cannot start an election nobody wanted.
    /// Promising another node's ballot means following: a replica that stands or leads has
    /// promised its own.
    pub(super) fn on_stand_now(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        commit: Slot,
        fx: &mut Fx<S>,
    ) {
        if ballot.node != from || ballot != self.acceptor.promised() {
            return;
        }
        // The leader asks again on every heartbeat: that must not restart the request's age.
        if self.stand_at.map(|(b, c, _)| (b, c)) != Some((ballot, commit)) {
            self.stand_at = Some((ballot, commit, false));
        }
        self.stand_if_caught_up(fx);
        if self.stand_at.is_some() {
            let from_slot = self.learner.commit();
            fx.send(from, Message::CatchUpRequest { from: from_slot });
        }
    }

    /// On the successor's election timer: the first firing after a request to stand marks it
    /// old, the second drops it (the leader has given up by then, or will soon).
    pub(super) fn age_stand_request(&mut self) {
        match &mut self.stand_at {
            Some((_, _, true)) => self.stand_at = None,
            Some((_, _, aged)) => *aged = true,
            None => {}
        }
    }

    /// Stands for election once a transfer's commit point is learned, unless this replica
    /// promised another ballot meanwhile (the transfer is moot then).
    pub(super) fn stand_if_caught_up(&mut self, fx: &mut Fx<S>) {
        let Some((ballot, commit, _)) = self.stand_at else {
            return;
        };
        if ballot != self.acceptor.promised() {
            self.stand_at = None;
            return;
        }
        debug_assert!(
            matches!(self.role, Role::Follower),
            "we promised another's ballot"
        );
        if self.learner.commit() < commit {
            return;
        }
        self.stand_at = None;
        // What we learned meanwhile may have made us a learner or taken us out.
        if !self.may_stand() {
            return;
        }
        self.stand_for_election(fx);
        // A full timeout to win before this candidacy starts over.
        self.arm_election(fx);
    }
}
