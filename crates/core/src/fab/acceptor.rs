//! The acceptor's rules. In view 0 of a slot it votes for the first client request proposed
//! there (the fast path). When the slot cannot decide (its votes split, or it stalled), the
//! acceptor enters the next view with a signed report of its latest vote; any `a - f`
//! statements about a view (reports entering it, or votes in the view before or later) form a
//! certificate. In view 1, if the certificate vouches for a value, every correct acceptor votes
//! for it at once, with no leader (the seed's "correct acceptors notice the error and choose").
//! Otherwise the view's leader picks the value, and acceptors check its certificate before they
//! vote.

use super::messages::{
    value_digest, Choice, Evidence, FabEffects, Message, Report, Slot, Value, View, Vote, NOOP,
};
use super::replica::Replica;
use crate::auth::Signed;
use crate::pbft::{Request, Service};

/// Requests kept per slot from clients' own proposals: enough for every client to have one
/// there, bounded against a client flooding a slot. (Values that counted votes and reports name
/// are always kept: recovery may need them.)
const MAX_VALUES: usize = 64;

/// Statements about views further above this acceptor's than this are ignored: correct
/// acceptors move up one view at a time, many rounds apart, so none is this far ahead, and a
/// liar cannot make us keep a record for every view it can sign.
pub(super) const MAX_VIEWS_AHEAD: View = 1_000;

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
        let st = self.slot(slot);
        if view <= st.view {
            return;
        }
        st.view = view;
        st.rounds = 0;
        st.choice = None;
        // Only statements about this view and the one before can still count.
        let keep = view.saturating_sub(1);
        st.votes
            .retain(|v, _| *v >= keep || st.vote.as_ref().is_some_and(|(own, _)| own == v));
        st.reports.retain(|v, _| *v >= keep);
        let value = st.vote.as_ref().and_then(|(_, value)| value.clone());
        // No report of ours for `view` exists yet: this signs and keeps one.
        let report = self.own_report(slot);
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
        if !self.near(slot, report.body.view) {
            return;
        }
        let digest = value_digest(&value);
        let st = self.slot(slot);
        if value.is_some() {
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

    /// The `a - f` statements about our view `w` at `slot` we hold, if we hold that many:
    /// acceptor by acceptor in order, its report entering `w`, else its latest vote in `w - 1`
    /// or later.
    pub(super) fn evidence(&self, slot: Slot) -> Option<Vec<Evidence>> {
        let st = self.slots.get(&slot)?;
        let view = st.view;
        let reports = st.reports.get(&view);
        let evidence: Vec<Evidence> = self
            .cfg
            .acceptors
            .iter()
            .filter_map(|a| {
                let report = reports
                    .and_then(|r| r.get(a))
                    .cloned()
                    .map(Evidence::Report);
                report.or_else(|| {
                    st.votes
                        .range(view.saturating_sub(1)..)
                        .rev()
                        .find_map(|(_, by)| by.get(a))
                        .cloned()
                        .map(Evidence::Vote)
                })
            })
            .take(self.cfg.quorum.reports())
            .collect();
        (view > 0 && evidence.len() == self.cfg.quorum.reports()).then_some(evidence)
    }

    /// In a recovery view we have not voted in: in view 1, vote for the value our evidence
    /// vouches for; as the view's leader, choose (the vouched value, else a free one).
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
        let vouched = rules.vouched(&evidence);
        let leader = rules.leader(slot, view) == self.cfg.id;
        // Every report and vote carries its value, so a value one names was heard (`None`:
        // it was dropped, and this acceptor waits for the leader's choice).
        let vouched_value = vouched.map(|d| match d {
            NOOP => Some(None),
            d => st.values.get(&d).cloned(),
        });
        match vouched_value {
            // View 1: each acceptor votes for what its own certificate vouches for, no leader
            // needed. Different certificates may vouch for different values when nothing was
            // decided (a liar can arrange it), so from view 2 on only the leader's choice is
            // voted for, and a correct leader ends the split.
            Some(Some(value)) if view == 1 => self.vote(slot, view, value, fx),
            Some(Some(value)) if leader => self.choose(slot, view, evidence, value, fx),
            None if leader => {
                let value = self.free_choice(slot);
                self.choose(slot, view, evidence, value, fx);
            }
            _ => {}
        }
    }

    /// As the leader of `view` at `slot`: votes for `value` and sends it, with the certificate
    /// that allows it, to every acceptor.
    fn choose(
        &mut self,
        slot: Slot,
        view: View,
        evidence: Vec<Evidence>,
        value: Value<S::Op>,
        fx: &mut FabEffects<S::Op, S::Result>,
    ) {
        let digest = value_digest(&value);
        let choice = Signed::new(self.signer.as_ref(), Choice { view, slot, digest });
        let msg = (choice, evidence, value.clone());
        self.slot(slot).choice = Some(msg.clone());
        self.vote(slot, view, value, fx);
        fx.broadcast_after_sync(&self.others(), Message::Choice(msg.0, msg.1, msg.2));
    }

    /// What a leader picks when nothing can have been decided: a client request heard of at
    /// the slot that has not executed yet (the smallest digest, for determinism), else a no-op.
    /// A liar may plant requests that already ran; choosing one would waste the slot.
    fn free_choice(&self, slot: Slot) -> Value<S::Op> {
        let fresh = |r: &Signed<Request<S::Op>>| {
            self.clients
                .get(&r.body.client)
                .is_none_or(|(stamp, _, _)| *stamp < r.body.stamp)
        };
        self.slots
            .get(&slot)?
            .values
            .iter()
            .filter(|(d, _)| **d != NOOP)
            .find_map(|(_, v)| v.as_ref().filter(|r| fresh(r)).cloned())
    }

    /// True for a statement about `view` at `slot` close enough above our own view to keep.
    pub(super) fn near(&self, slot: Slot, view: View) -> bool {
        view <= self.view_at(slot).saturating_add(MAX_VIEWS_AHEAD)
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
        if !self.near(slot, view) {
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
            st.choice = None;
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
        if !voted_here && st.view > 0 {
            let report = self.own_report(slot);
            let st = &self.slots[&slot];
            let value = st.vote.as_ref().and_then(|(_, v)| v.clone());
            fx.broadcast(&others, Message::Report(report, value));
        }
        let st = &self.slots[&slot];
        if let Some((c, e, v)) = &st.choice {
            fx.broadcast(&others, Message::Choice(c.clone(), e.clone(), v.clone()));
        }
    }

    /// Our report entering our view at `slot` (at least 1), signed again if a restart lost
    /// it: our latest vote is on disk, and it is older than the view, since we have not voted
    /// in the view.
    fn own_report(&mut self, slot: Slot) -> Signed<Report> {
        let me = self.cfg.id;
        let st = self.slot(slot);
        let view = st.view;
        if let Some(r) = st.reports.get(&view).and_then(|by| by.get(&me)) {
            return r.clone();
        }
        let last = st.vote.as_ref().map(|(v, value)| (*v, value_digest(value)));
        let report = Signed::new(self.signer.as_ref(), Report { view, slot, last });
        let st = self.slot(slot);
        st.reports
            .entry(view)
            .or_default()
            .insert(me, report.clone());
        report
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
