//! A leader's notices to followers, told at once or held back for a tick
//! ([`super::super::notices`], `Config::notice_ticks`).

use super::{Fx, Replica, Role};
use crate::ballot::NodeId;
use crate::bugs::PlantedBug;
use crate::multi::leader::InFlight;
use crate::multi::messages::{Message, Slot, Timer};
use crate::multi::notices::Held;
use crate::multi::state_machine::StateMachine;

impl<S: StateMachine> Replica<S> {
    /// Thrifty accepts: the voters left out of slot `f`'s accept learn its value now that it
    /// is chosen (those sent it by a retransmission that voted know it already), at once or
    /// at the next notice round. Returns those told at once.
    pub(super) fn tell_left_out(
        &mut self,
        slot: Slot,
        f: InFlight<S::Command>,
        fx: &mut Fx<S>,
    ) -> Vec<NodeId> {
        let left_out = f.left_out.into_iter().filter(|m| !f.acks.contains(m));
        // The planted bug told them when it proposed.
        if self.cfg.bug == Some(PlantedBug::ChosenPushedEarly) {
            return left_out.collect();
        }
        let mut told = Vec::new();
        let lazy = self.cfg.notice_ticks > 0;
        for m in left_out {
            let value = f.value.clone();
            match &mut self.role {
                Role::Leader(a) if lazy && !a.notices.eager(m, a.beats) => {
                    if a.notices.hold(m, slot, value) {
                        fx.arm(Timer::Notices, self.cfg.notice_ticks);
                    }
                }
                _ => {
                    fx.send(m, Message::Chosen { slot, value });
                    told.push(m);
                }
            }
        }
        told
    }

    /// The commit point moved and no accept carries it: tell the members at once, or hold it
    /// for those that nobody waits on. `told` just learned it from the value itself.
    pub(super) fn commit_moved(&mut self, told: &[NodeId], fx: &mut Fx<S>) {
        let lazy = self.cfg.notice_ticks > 0;
        let Role::Leader(a) = &mut self.role else {
            return;
        };
        if !lazy {
            self.announce_commit(told, fx);
            return;
        }
        if a.notices.hold_commit() {
            fx.arm(Timer::Notices, self.cfg.notice_ticks);
        }
        // Those that someone waits on are told now.
        self.announce_commit_to(|a, m| !told.contains(&m) && a.notices.eager(m, a.beats), fx);
    }

    /// Sends everything held back: each member's values in one message, then the commit point
    /// to every member, if it is held. At the notice timer and before a heartbeat. True if it
    /// announced the commit point.
    pub(super) fn send_notices(&mut self, fx: &mut Fx<S>) -> bool {
        let Role::Leader(a) = &mut self.role else {
            return false;
        };
        let (pushes, commit) = a.notices.take();
        for (m, entries) in pushes {
            self.send_values(m, entries, fx);
        }
        if commit {
            self.announce_commit(&[], fx);
        }
        commit
    }

    /// A leader stepping down sends the values it held: they are chosen, whoever leads next.
    pub(super) fn send_held_values(&mut self, fx: &mut Fx<S>) {
        let Role::Leader(a) = &mut self.role else {
            return;
        };
        for (m, entries) in a.notices.take_values() {
            self.send_values(m, entries, fx);
        }
    }

    /// Chosen values to `member`, in catch-up messages of at most `catch_up_batch` slots, as a
    /// catch-up answer is cut.
    fn send_values(&self, member: NodeId, mut entries: Held<S::Command>, fx: &mut Fx<S>) {
        let n = self.cfg.catch_up_batch.max(1);
        while entries.len() > n {
            let rest = entries.split_off(n);
            fx.send(member, Message::CatchUp { entries });
            entries = rest;
        }
        if !entries.is_empty() {
            fx.send(member, Message::CatchUp { entries });
        }
    }

    /// Sends `member` what is held back for it, before an answer it waits for: a read index
    /// must find the member knowing every value chosen up to it.
    pub(super) fn send_notices_to(&mut self, member: NodeId, fx: &mut Fx<S>) {
        let Role::Leader(a) = &mut self.role else {
            return;
        };
        let (entries, commit) = a.notices.take_for(member);
        let ballot = a.ballot;
        self.send_values(member, entries, fx);
        if commit {
            let commit = self.learner.commit();
            fx.send(member, Message::Heartbeat { ballot, commit });
        }
    }

    /// `member` has someone waiting on it (it forwarded commands or asked for a read index):
    /// tell it at once for a while, starting with what is held for it, which whatever it waits
    /// for may come after.
    pub(super) fn note_busy(&mut self, member: NodeId, fx: &mut Fx<S>) {
        if let Role::Leader(a) = &mut self.role {
            a.notices.busy(member, a.beats);
            self.send_notices_to(member, fx);
        }
    }
}
