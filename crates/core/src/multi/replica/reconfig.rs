//! The leader's side of membership changes (docs/design/reconfiguration.md, step 2).
//!
//! A slot is proposed in a ballot only once a phase-1 quorum of *its* configuration promised
//! that ballot and the votes they reported for it were taken into account. The leader tracks
//! this as `bound`: every slot below it is prepared, nothing at or above it is proposed. Its
//! promises bind their acceptors for the whole log suffix, so when the log enters a new
//! configuration the same promises serve, if they hold a phase-1 quorum of it. If they do not,
//! the leader prepares again with a higher ballot, this time asking the new configuration's
//! voters too: a rare event (once per change that brings in new voters), and it reuses the
//! election path as it is.
//!
//! Changes are proposed one at a time: the next only once the previous is applied, each
//! expecting the epoch it was proposed in. Once a change is applied, the leader fills the slots
//! up to where it takes effect with no-ops when no command does, so an idle cluster reaches it.
//!
//! Linearizable reads are registered and served only while one configuration governs every slot
//! from the commit point to the last slot whose configuration is known, and all of them are
//! prepared: then the read-index argument of a fixed membership holds as it is. Reads that
//! arrive (or wait) while a boundary is in reach are parked until it has passed.

use super::{Fx, Replica, Role};
use crate::ballot::{Ballot, NodeId};
use crate::bugs::PlantedBug;
use crate::multi::leader::Active;
use crate::multi::leader::Obligation;

use crate::multi::membership::{
    ChangeId, ConfigChange, Configuration, MemberOp, RejectReason, Role as MemberRole,
};
use crate::multi::messages::{Message, Output, Slot, Value};
use crate::multi::state_machine::StateMachine;
use std::sync::Arc;

impl<S: StateMachine> Replica<S> {
    /// Asks for a membership change. As leader, the change is queued and proposed once those
    /// asked before it are applied; a follower that knows the leader passes it on. Its outcome
    /// comes as [`Output::Reconfigured`], naming `seq` with this replica as origin, once
    /// applied. With no leader known (or a leader handing over), it fails at once with
    /// [`Output::ChangeFailed`]; a change passed on to a leader that cannot take it is
    /// dropped, and the caller times out.
    pub fn propose_change(&mut self, seq: u64, ops: Vec<MemberOp>) -> Fx<S> {
        let mut fx = Fx::<S>::new();
        let id = ChangeId {
            origin: self.cfg.id,
            seq,
        };
        let leader = self.leader_hint.filter(|&l| l != self.cfg.id);
        let retired = self.retired() || self.joining;
        match (&mut self.role, leader) {
            (Role::Leader(active), _) if active.handover.is_none() => {
                active.changes.push_back((id, ops));
                self.propose_queued(&mut fx);
                self.follow_membership(&mut fx);
            }
            (Role::Follower, Some(l)) if !retired => fx.send(l, Message::ForwardChange { id, ops }),
            _ => fx.output(Output::ChangeFailed { id, leader }),
        }
        fx
    }

    /// A follower's change, passed on: proposed as if asked here, if this replica leads.
    pub(super) fn on_forward_change(
        &mut self,
        from: NodeId,
        id: ChangeId,
        ops: Vec<MemberOp>,
        fx: &mut Fx<S>,
    ) {
        // Only the node a change names as its origin is answered: a peer cannot speak for
        // another.
        if id.origin != from {
            return;
        }
        if let Role::Leader(active) = &mut self.role {
            if active.handover.is_none() {
                active.changes.push_back((id, ops));
                self.propose_queued(fx);
            }
        }
    }

    /// Only a voter of the latest configuration stands for election: a learner, or a member
    /// a change is taking out, waits to be told who leads.
    pub(super) fn may_stand(&self) -> bool {
        let m = self.learner.membership();
        if self.cfg.bug == Some(PlantedBug::RemovedNodeStands) {
            return m.at(self.learner.applied()).is_main(self.cfg.id);
        }
        m.latest().is_main(self.cfg.id)
    }

    /// True once this replica has applied a change that took it out of the cluster. Not being
    /// in the latest configuration is not enough: a node that joined from a snapshot older
    /// than the change that added it is not a member yet, and will be.
    pub fn retired(&self) -> bool {
        !self.joining && self.learner.membership().was_removed(self.cfg.id)
    }

    /// Reacts to a new latest configuration, however it arrived (a change applied, a snapshot
    /// installed): a candidate that no longer votes gives up, and a leader that no longer
    /// votes hands its leadership to a voter, as etcd's leader does when it is removed. A
    /// leader voted out keeps leading safely (a proposer need not vote), but once its peers
    /// forget it they drop its messages, and its clients would wait on a leader nobody hears.
    pub(super) fn follow_membership(&mut self, fx: &mut Fx<S>) {
        let epoch = self.learner.membership().latest().epoch();
        if std::mem::replace(&mut self.epoch_seen, epoch) == epoch || self.may_stand() {
            return;
        }
        if self.retired() {
            fx.output(Output::Retired);
        }
        match &self.role {
            Role::Candidate(_) => self.step_down(fx),
            Role::Leader(a) if a.handover.is_none() => match self.successor() {
                Some(target) => self.begin_handover(target, fx),
                None => self.step_down(fx),
            },
            _ => {}
        }
    }

    /// A member that may not stand and hears no leader asks every other member for the slots
    /// after its commit point (only those ahead of it answer; asking one at random left a
    /// simulated cluster short of its quiet period too often). The leader may be one it cannot hear: a member added
    /// after the slots it has applied is a stranger whose messages it drops, until some older
    /// member tells it of the change.
    pub(super) fn ask_around(&mut self, fx: &mut Fx<S>) {
        // A member taken out is answered all the same (so it learns it is out), but it has no
        // business following the log for ever.
        if self.retired() || self.receiving() {
            return;
        }
        let latest = self.learner.membership().latest();
        let from = self.learner.commit();
        for to in latest.receivers().filter(|&m| m != self.cfg.id) {
            fx.send(to, Message::CatchUpRequest { from });
        }
    }

    /// The voter of the latest configuration a leader that no longer votes hands over to: one
    /// that acknowledged the newest slot in flight (so it is up and near the head of the
    /// log), if any did.
    fn successor(&self) -> Option<NodeId> {
        let Role::Leader(a) = &self.role else {
            return None;
        };
        let newest = a.in_flight().values().next_back().map(|f| &f.acks);
        let acked = |v: &NodeId| newest.is_some_and(|acks| acks.contains(v));
        let latest = self.learner.membership().latest();
        let others = latest.mains().filter(|&v| v != self.cfg.id);
        others.max_by_key(acked)
    }

    /// Moves `bound` up to the last slot whose configuration is known, proposing the
    /// obligations the promises carry for each newly covered slot; prepares again if a
    /// configuration on the way is not covered by the promises.
    pub(super) fn advance_bound(&mut self, fx: &mut Fx<S>) {
        loop {
            let Role::Leader(active) = &mut self.role else {
                return;
            };
            let m = self.learner.membership();
            let limit = self.learner.applied() + m.alpha();
            let bound = active.bound;
            if bound >= limit {
                return;
            }
            let end = m.next_start_after(bound).map_or(limit, |s| s.min(limit));
            let skip_check = self.cfg.bug == Some(PlantedBug::Phase1IgnoresNewConfig);
            if !skip_check && !active.promises.is_quorum_of(m.at(bound).quorum()) {
                // The slots from `bound` on belong to voters too few of whom promised: prepare
                // again, asking them as well.
                self.stand_for_election(fx);
                return;
            }
            let ignore = self.cfg.bug == Some(PlantedBug::IgnorePromiseValues);
            let obligations = active.promises.obligations(bound..end, ignore);
            active.bound = end;
            // The slots this leader has not used yet below the old bound would be skipped
            // when the obligations move its next slot past them, and a slot never proposed
            // holds the commit point back forever: fill them with no-ops. (Found by CI's
            // `--quorum 1,5` sweep, seed 260: a late promise reported votes above the bound.)
            let mut skipped = 0..0;
            if let Some((&last, _)) = obligations.last_key_value() {
                if self.cfg.bug != Some(PlantedBug::SkippedSlotsLeftEmpty) {
                    skipped = active.next_slot..bound;
                }
                active.next_slot = active.next_slot.max(last + 1);
            }
            // Slots below the commit point are decided; no second round.
            let settled = self.learner.commit();
            for slot in skipped.filter(|&s| s >= settled) {
                self.propose(slot, Value::Noop, fx);
            }
            for (slot, ob) in obligations.into_iter().filter(|(s, _)| *s >= settled) {
                match ob {
                    Obligation::Learn(v) => self.learn(slot, &v, fx),
                    Obligation::Propose(_) if self.acceptor.chosen(slot).is_some() => {}
                    Obligation::Propose(v) => self.propose(slot, v, fx),
                }
            }
            // Values just learned move the apply point, and with it `limit`: the next window
            // opens in this same loop. Left to a later catch-up, an idle leader kept them
            // learned and unapplied, its commit point (and every follower waiting for it)
            // stuck until the next write. (Found by a 3-node sweep, seed 9306652: promises
            // reported 41 chosen slots, alpha 10.)
            if self.cfg.bug != Some(PlantedBug::LearnedLeftUnapplied) {
                self.learner.catch_up(self.acceptor.log(), fx);
            }
        }
    }

    /// Proposes the next queued membership change, if the previous one is applied and there is
    /// room in the window.
    pub(super) fn propose_next_change(&mut self, fx: &mut Fx<S>) {
        let applied = self.learner.applied();
        // A loop, not recursion: any number of queued changes may be refused in a row.
        loop {
            let Role::Leader(active) = &mut self.role else {
                return;
            };
            if active.change_at.is_some_and(|s| s < applied) {
                active.change_at = None;
            }
            if active.change_at.is_some()
                || active.changes.is_empty()
                || !active.has_room(self.cfg.window, active.bound)
            {
                return;
            }
            let (id, ops) = active.changes.pop_front().expect("checked");
            let latest = self.learner.membership().latest();
            let commit = self.learner.commit();
            let ready = self.cfg.catch_up_batch as u64;
            if let Some((learner, behind)) = unready_learner(active, latest, commit, ready, &ops) {
                if id.origin == self.cfg.id {
                    let reason = RejectReason::LearnerNotReady {
                        id: learner,
                        behind,
                    };
                    fx.output(Output::ChangeRefused { id, reason });
                } else {
                    let refusal = Message::PromotionRefused {
                        id,
                        learner,
                        behind,
                    };
                    fx.send(id.origin, refusal);
                }
                continue;
            }
            let change = ConfigChange {
                id,
                expect_epoch: self.learner.membership().latest().epoch(),
                ops,
            };
            let slot = active.next_slot;
            active.next_slot += 1;
            active.change_at = Some(slot);
            self.propose(slot, Value::Reconfig(Arc::new(change)), fx);
            if !matches!(self.role, Role::Leader(_)) {
                // Our own acceptor refused it, and leadership ended: the change was never sent.
                fx.output(Output::ChangeFailed { id, leader: None });
            }
            return;
        }
    }

    /// A learner's answer to a heartbeat of this leader's ballot: how far it has learned.
    pub(super) fn on_progress(&mut self, from: NodeId, ballot: Ballot, commit: Slot) {
        if let Role::Leader(a) = &mut self.role {
            if a.ballot == ballot {
                a.progress.insert(from, (commit, a.beats));
            }
        }
    }

    /// Once a change is applied and nothing else fills the log, proposes no-ops up to the
    /// slot where it takes effect: otherwise an idle cluster would never get there.
    pub(super) fn fill_to_next_epoch(&mut self, fx: &mut Fx<S>) {
        loop {
            let Role::Leader(active) = &mut self.role else {
                return;
            };
            let start = self
                .learner
                .membership()
                .epochs()
                .last()
                .map_or(0, |(s, _)| s);
            let limit = active.bound.min(start);
            if !active.queued().is_empty() || !active.has_room(self.cfg.window, limit) {
                return;
            }
            let slot = active.next_slot;
            active.next_slot += 1;
            self.propose(slot, Value::Noop, fx);
        }
    }

    /// True while reads can be served as with a fixed membership: one configuration governs
    /// every slot from the commit point to the last one whose configuration is known, and the
    /// leader has prepared all of them.
    pub(super) fn quiet(&self) -> bool {
        let Role::Leader(a) = &self.role else {
            return false;
        };
        let m = self.learner.membership();
        let limit = self.learner.applied() + m.alpha();
        a.bound >= limit && m.over(self.learner.commit(), limit).nth(1).is_none()
    }

    /// Parks the reads waiting at a leader that is not [`Replica::quiet`], and registers
    /// those parked once it is: a read registered later is still linearizable, with a later
    /// index.
    pub(super) fn settle_reads(&mut self, fx: &mut Fx<S>) {
        // The apply point may have moved on without a proposal (a catch-up, a learned value).
        self.advance_bound(fx);
        let quiet = self.quiet();
        let epoch = self.learner.membership().latest().epoch();
        let Role::Leader(active) = &mut self.role else {
            return;
        };
        if !quiet || active.read_epoch != epoch {
            let waiting = active.reads.drain();
            active.parked_reads.extend(waiting);
            active.read_epoch = epoch;
            if !quiet {
                return;
            }
        }
        if active.parked_reads.is_empty() || self.cfg.bug == Some(PlantedBug::ParkedReadsLeft) {
            return;
        }
        for (id, origin) in std::mem::take(&mut active.parked_reads) {
            self.register_read(id, origin);
        }
        self.start_read_round(fx);
    }
}

/// The promotion gate: the first learner `ops` would make a voter that the leader has not
/// heard, within its last two heartbeat intervals, to be within `ready` slots of the commit
/// point, with how far behind it was last heard to be (all of `commit` if not lately). A
/// learner not heard from lately is refused however short the log: it may be down. A voter
/// that must first catch up is one voter fewer to spare, so etcd refuses such a promotion;
/// so does Synod.
fn unready_learner<C>(
    active: &Active<C>,
    latest: &Configuration,
    commit: Slot,
    ready: u64,
    ops: &[MemberOp],
) -> Option<(NodeId, u64)> {
    ops.iter().find_map(|op| {
        let MemberOp::SetRole {
            id,
            role: MemberRole::Voter,
        } = op
        else {
            return None;
        };
        if latest.role(*id) != Some(MemberRole::Learner) {
            return None;
        }
        let heard = active
            .progress
            .get(id)
            .filter(|(_, beat)| active.beats.saturating_sub(*beat) <= 2);
        match heard {
            Some((c, _)) => {
                let behind = commit.saturating_sub(*c);
                (behind > ready).then_some((*id, behind))
            }
            None => Some((*id, commit)),
        }
    })
}
