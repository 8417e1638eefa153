//! The acceptor's rules. In view 0 of a slot it votes for the first client request proposed
//! there (the fast path). When the slot cannot decide (its votes split, or it stalled), the
//! acceptor enters the next view with a signed report of its latest vote; any `a - f`
//! statements about a view (reports entering it, or votes in the view before) form a
//! certificate, and if the certificate vouches for a value every correct acceptor votes for it
//! at once, with no leader (the seed's "correct acceptors notice the error and choose"). Only
//! when nothing is vouched for does the view's leader pick a value, and acceptors check its
//! certificate before they vote.

use super::messages::{
    value_digest, Choice, Evidence, FabEffects, Message, Report, Slot, Value, View, Vote, NOOP,
};
use super::replica::Replica;
use crate::auth::Signed;
use crate::pbft::{Request, Service};

/// Values kept per slot: enough for every client to have one there, bounded against a client
/// flooding a slot.
pub(super) const MAX_VALUES: usize = 64;

impl<S: Service> Replica<S> {
    /// A client's request proposed at `slot`, directly or inside a peer's vote: in view 0,
    /// the first one gets this acceptor's vote.
    pub(super) fn on_propose(
        &mut self,
        slot: Slot,
        request: Value<S::Op>,
        fx: &mut FabEffects<S::Op, S::Result>,
    ) {
        let Some(r) = request else { return };
        if !self.rules().client_request(&r) {
            return;
        }
        if slot <= self.executed {
            self.answer_late(slot, &r, fx);
            return;
        }
        if !self.in_window(slot) || self.decided.contains_key(&slot) {
            return;
        }
        let digest = value_digest(&Some(r.clone()));
        let st = self.slot(slot);
        if st.values.len() < MAX_VALUES {
            st.values.entry(digest).or_insert_with(|| Some(r.clone()));
        }
        if st.view == 0 && st.vote.is_none() {
            self.vote(slot, 0, Some(r), fx);
        }
    }

    /// Votes for `value` at `slot` in `view`, persisted before the vote leaves.
    pub(super) fn vote(
        &mut self,
        slot: Slot,
        view: View,
        value: Value<S::Op>,
        fx: &mut FabEffects<S::Op, S::Result>,
    ) {
        let me = self.cfg.id;
        let digest = value_digest(&value);
        let vote = Signed::new(self.signer.as_ref(), Vote { view, slot, digest });
        let st = self.slot(slot);
        assert!(
            st.view <= view && st.vote.as_ref().is_none_or(|(v, _)| *v < view),
            "one vote per view, never below the view we are in"
        );
        st.view = view;
        st.vote = Some((view, value.clone()));
        st.values.insert(digest, value.clone());
        st.votes.entry(view).or_default().insert(me, vote.clone());
        fx.persist(super::messages::Persist::Vote {
            slot,
            view,
            value: value.clone(),
        });
        fx.broadcast_after_sync(&self.others(), Message::Accepted(vote, value));
        self.check_learned(slot, view, fx);
    }

    /// Enters `view` at `slot`: no vote below it from now on; a report of our latest vote goes
    /// to every acceptor once it is durable.
    pub(super) fn enter(&mut self, slot: Slot, view: View, fx: &mut FabEffects<S::Op, S::Result>) {
        let me = self.cfg.id;
        let st = self.slot(slot);
        if view <= st.view {
            return;
        }
        st.view = view;
        st.rounds = 0;
        st.choice = None;
        let last = st.vote.as_ref().map(|(v, value)| (*v, value_digest(value)));
        let value = st.vote.as_ref().and_then(|(_, value)| value.clone());
        let report = Signed::new(self.signer.as_ref(), Report { view, slot, last });
        let st = self.slot(slot);
        st.reports
            .entry(view)
            .or_default()
            .insert(me, report.clone());
        fx.persist(super::messages::Persist::View { slot, view });
        fx.broadcast_after_sync(&self.others(), Message::Report(report, value));
        fx.output(super::messages::Output::Recovering { slot, view });
        self.try_recover(slot, fx);
    }

    /// A peer's report: kept as evidence; `f + 1` reports for later views than ours show a
    /// correct acceptor went there, and we follow.
    pub(super) fn on_report(
        &mut self,
        report: Signed<Report>,
        value: Value<S::Op>,
        fx: &mut FabEffects<S::Op, S::Result>,
    ) {
        let slot = report.body.slot;
        if report.from == self.cfg.id || !self.rules().report_ok(&report, &value) {
            return;
        }
        if slot <= self.executed {
            self.send_decided(report.from, slot, fx);
            return;
        }
        if !self.in_window(slot) || self.decided.contains_key(&slot) {
            return;
        }
        let digest = value_digest(&value);
        let st = self.slot(slot);
        if value.is_some() && st.values.len() < MAX_VALUES {
            st.values.entry(digest).or_insert(value);
        }
        st.reports
            .entry(report.body.view)
            .or_default()
            .entry(report.from)
            .or_insert(report);
        let own = st.view;
        let weak = self.cfg.quorum.weak();
        let mut ahead: Vec<View> = self
            .cfg
            .acceptors
            .iter()
            .filter_map(|a| {
                let st = self.slots.get(&slot)?;
                st.reports
                    .iter()
                    .rev()
                    .find(|(_, by)| by.contains_key(a))
                    .map(|(v, _)| *v)
            })
            .filter(|v| *v > own)
            .collect();
        if ahead.len() >= weak {
            ahead.sort_unstable_by(|a, b| b.cmp(a));
            self.enter(slot, ahead[weak - 1], fx);
        } else {
            self.try_recover(slot, fx);
        }
    }

    /// The `a - f` statements about our view at `slot` we hold, if we hold that many: reports
    /// entering it, else votes in the view before, acceptor by acceptor in order.
    pub(super) fn evidence(&self, slot: Slot) -> Option<Vec<Evidence>> {
        let st = self.slots.get(&slot)?;
        let view = st.view;
        let reports = st.reports.get(&view);
        let votes = view.checked_sub(1).and_then(|v| st.votes.get(&v));
        let evidence: Vec<Evidence> = self
            .cfg
            .acceptors
            .iter()
            .filter_map(|a| {
                let report = reports
                    .and_then(|r| r.get(a))
                    .cloned()
                    .map(Evidence::Report);
                report.or_else(|| votes.and_then(|v| v.get(a)).cloned().map(Evidence::Vote))
            })
            .take(self.cfg.quorum.reports())
            .collect();
        (evidence.len() == self.cfg.quorum.reports()).then_some(evidence)
    }

    /// In a recovery view we have not voted in: vote for the value our evidence vouches for,
    /// or, as the view's leader with nothing vouched for, choose one.
    pub(super) fn try_recover(&mut self, slot: Slot, fx: &mut FabEffects<S::Op, S::Result>) {
        let Some(st) = self.slots.get(&slot) else {
            return;
        };
        let view = st.view;
        let voted = st.vote.as_ref().is_some_and(|(v, _)| *v == view);
        if view == 0 || voted || self.decided.contains_key(&slot) {
            return;
        }
        let Some(evidence) = self.evidence(slot) else {
            return;
        };
        let rules = self.rules();
        match rules.vouched(&evidence) {
            Some(digest) => {
                // Every report and vote carries its value, so one that names it was heard.
                if let Some(value) = st.values.get(&digest).cloned() {
                    self.vote(slot, view, value, fx);
                }
            }
            None if rules.leader(slot, view) == self.cfg.id => {
                let value = self.free_choice(slot);
                let digest = value_digest(&value);
                let choice = Signed::new(self.signer.as_ref(), Choice { view, slot, digest });
                let msg = (choice, evidence, value.clone());
                self.slot(slot).choice = Some(msg.clone());
                self.vote(slot, view, value, fx);
                fx.broadcast_after_sync(&self.others(), Message::Choice(msg.0, msg.1, msg.2));
            }
            None => {}
        }
    }

    /// What a leader picks when nothing can have been decided: a client request heard of at
    /// the slot (the smallest digest, so a restarted leader picks the same), else a no-op.
    fn free_choice(&self, slot: Slot) -> Value<S::Op> {
        self.slots
            .get(&slot)
            .and_then(|st| st.values.iter().find(|(d, v)| **d != NOOP && v.is_some()))
            .and_then(|(_, v)| v.clone())
    }

    /// A leader's choice: voted for if its certificate checks out and we have not voted in
    /// its view or gone past it.
    pub(super) fn on_choice(
        &mut self,
        choice: Signed<Choice>,
        evidence: Vec<Evidence>,
        value: Value<S::Op>,
        fx: &mut FabEffects<S::Op, S::Result>,
    ) {
        let (slot, view) = (choice.body.slot, choice.body.view);
        if choice.from == self.cfg.id
            || !self.in_window(slot)
            || self.decided.contains_key(&slot)
            || !self.rules().choice_ok(&choice, &evidence, &value)
        {
            return;
        }
        let st = self.slot(slot);
        let voted = st.vote.as_ref().is_some_and(|(v, _)| *v >= view);
        if st.view > view || voted {
            return;
        }
        if st.view < view {
            // The vote's record moves the view on disk too.
            st.rounds = 0;
        }
        self.vote(slot, view, value, fx);
    }

    /// Resends what this acceptor said at `slot` in its current view (a vote, a report, a
    /// leader's choice): one of them may have been lost.
    pub(super) fn resend(&mut self, slot: Slot, fx: &mut FabEffects<S::Op, S::Result>) {
        let me = self.cfg.id;
        let others = self.others();
        let Some(st) = self.slots.get(&slot) else {
            return;
        };
        if let Some((view, value)) = &st.vote {
            if let Some(v) = st.votes.get(view).and_then(|by| by.get(&me)) {
                fx.broadcast(&others, Message::Accepted(v.clone(), value.clone()));
            }
        }
        let voted_here = st.vote.as_ref().is_some_and(|(v, _)| *v == st.view);
        if let (false, Some(r)) = (
            voted_here,
            st.reports.get(&st.view).and_then(|by| by.get(&me)),
        ) {
            let value = st.vote.as_ref().and_then(|(_, v)| v.clone());
            fx.broadcast(&others, Message::Report(r.clone(), value));
        }
        if let Some((c, e, v)) = &st.choice {
            fx.broadcast(&others, Message::Choice(c.clone(), e.clone(), v.clone()));
        }
    }

    /// Answers a client whose request arrived for a slot already executed: its reply again if
    /// the request executed, else that it lost the slot.
    fn answer_late(
        &mut self,
        slot: Slot,
        r: &Signed<Request<S::Op>>,
        fx: &mut FabEffects<S::Op, S::Result>,
    ) {
        let b = &r.body;
        match self.clients.get(&b.client) {
            Some((stamp, _, _)) if *stamp > b.stamp => {}
            Some((stamp, at, result)) if *stamp == b.stamp => {
                let (at, result) = (*at, result.clone());
                self.reply(b.client, b.stamp, at, result, fx);
            }
            _ => self.lost(b.client, b.stamp, slot, fx),
        }
    }
}
