//! The learner's rules: a slot is decided when a fast quorum, `ceil((a + 3f + 1) / 2)` of the
//! acceptors, voted for one value in one view. Fewer would not do: the recovery rule finds a
//! decided value only because at least `fast - 2f` of any `a - f` statements name it. Decided
//! slots execute in order; each client request executes once, and its client hears the result
//! (or, if its slot went to another value, that it lost it). A replica that missed votes gets
//! each decided slot from a peer with its proof.

use super::messages::{
    value_digest, Decided, FabEffects, Lost, Message, Output, Reply, Slot, Status, Value, View,
    Vote,
};
use super::replica::Replica;
use crate::auth::Signed;
use crate::ballot::NodeId;
use crate::pbft::Service;

/// Decided slots sent to a peer in one answer.
const CATCH_UP_BATCH: u64 = 16;

impl<S: Service> Replica<S> {
    /// A peer's vote: counted toward deciding its slot. A vote in view 0 carries a client's
    /// request, which counts as that request proposed here too; a vote that shows the view can
    /// no longer decide starts the recovery at once.
    pub(super) fn on_accepted(
        &mut self,
        vote: Signed<Vote>,
        value: Value<S::Op>,
        fx: &mut FabEffects<S::Op, S::Result>,
    ) {
        let (slot, view) = (vote.body.slot, vote.body.view);
        if vote.from == self.cfg.id || !self.rules().vote_ok(&vote, &value) {
            return;
        }
        if slot <= self.executed {
            // A straggler's vote in the view that decided, for the value decided, needs no
            // answer; a vote of another view or value shows a peer still working on a slot
            // that is over.
            let proof = self
                .decided
                .get(&slot)
                .and_then(|d| d.votes.first())
                .map(|v| v.body);
            if proof.is_some_and(|p| p.view != view || p.digest != vote.body.digest) {
                self.send_decided(vote.from, slot, fx);
            }
            return;
        }
        if !self.in_window(slot) || self.decided.contains_key(&slot) || !self.near(slot, view) {
            return;
        }
        let digest = vote.body.digest;
        let st = self.slot(slot);
        st.votes
            .entry(view)
            .or_default()
            .entry(vote.from)
            .or_insert(vote);
        // A value a counted vote names is always kept: recovery may need it.
        st.values.entry(digest).or_insert(value.clone());
        if view == 0 {
            self.on_propose(slot, value, fx);
        }
        self.check_learned(slot, view, fx);
        if self.decided.contains_key(&slot) {
            return;
        }
        let own = self.slots.get(&slot).map_or(0, |s| s.view);
        if view == own && self.hopeless(slot, view) {
            self.enter(slot, view.saturating_add(1), fx);
        } else if view.saturating_add(1) >= own {
            // A vote in the view before ours, or a later one, is evidence for ours.
            self.try_recover(slot, fx);
        }
    }

    /// True when no value can reach a fast quorum in `view` at `slot`: even if every acceptor
    /// not heard from voted for the leading value, it would fall short.
    fn hopeless(&self, slot: Slot, view: View) -> bool {
        let Some(votes) = self.slots.get(&slot).and_then(|s| s.votes.get(&view)) else {
            return false;
        };
        let mut counts = std::collections::BTreeMap::new();
        for v in votes.values() {
            *counts.entry(v.body.digest).or_insert(0usize) += 1;
        }
        let best = counts.values().max().copied().unwrap_or(0);
        let unheard = self.cfg.acceptors.len() - votes.len();
        best + unheard < self.cfg.quorum.fast()
    }

    /// Decides `slot` if enough acceptors voted for one value in `view`.
    pub(super) fn check_learned(
        &mut self,
        slot: Slot,
        view: View,
        fx: &mut FabEffects<S::Op, S::Result>,
    ) {
        let need = self.rules().to_learn();
        let Some(st) = self.slots.get(&slot) else {
            return;
        };
        let Some(votes) = st.votes.get(&view) else {
            return;
        };
        let mut by_digest: std::collections::BTreeMap<_, Vec<Signed<Vote>>> = Default::default();
        for v in votes.values() {
            by_digest.entry(v.body.digest).or_default().push(v.clone());
        }
        let Some((digest, votes)) = by_digest.into_iter().find(|(_, v)| v.len() >= need) else {
            return;
        };
        let Some(value) = st.values.get(&digest).cloned() else {
            return;
        };
        self.learn(slot, Decided { votes, value }, fx);
    }

    fn learn(&mut self, slot: Slot, d: Decided<S::Op>, fx: &mut FabEffects<S::Op, S::Result>) {
        if self.decided.contains_key(&slot) {
            return;
        }
        self.decided.insert(slot, d);
        self.decided_round.insert(slot, self.round);
        self.execute(fx);
    }

    /// Executes every decided slot in order.
    fn execute(&mut self, fx: &mut FabEffects<S::Op, S::Result>) {
        while let Some(d) = self.decided.get(&(self.executed + 1)) {
            let slot = self.executed + 1;
            let value = d.value.clone();
            self.executed = slot;
            let losers: Vec<Signed<crate::pbft::Request<S::Op>>> = self
                .slots
                .remove(&slot)
                .map(|st| st.values.into_values().flatten().collect())
                .unwrap_or_default();
            let request = value.map(|r| {
                let b = r.body;
                let fresh = self
                    .clients
                    .get(&b.client)
                    .is_none_or(|(s, _, _)| *s < b.stamp);
                let result = fresh.then(|| {
                    let result = self.service.execute(b.client, &b.op);
                    self.clients
                        .insert(b.client, (b.stamp, slot, result.clone()));
                    self.reply(b.client, b.stamp, slot, result.clone(), fx);
                    result
                });
                (b, result)
            });
            for r in losers {
                let b = &r.body;
                let executed = self
                    .clients
                    .get(&b.client)
                    .is_some_and(|(s, _, _)| *s >= b.stamp);
                if !executed {
                    self.lost(b.client, b.stamp, slot, fx);
                }
            }
            fx.output(Output::Executed { slot, request });
        }
    }

    /// Tells a client its request executed at `slot` with `result`. Like every answer to a
    /// client, it leaves after the step's records and outputs: a crash in the middle of the
    /// step must not let out a reply for an execution nobody saw happen.
    pub(super) fn reply(
        &mut self,
        client: NodeId,
        stamp: u64,
        slot: Slot,
        result: S::Result,
        fx: &mut FabEffects<S::Op, S::Result>,
    ) {
        let body = Reply {
            client,
            stamp,
            slot,
            result,
        };
        fx.send_after_sync(
            client,
            Message::Reply(Signed::new(self.signer.as_ref(), body)),
        );
    }

    /// Tells a client its request lost `slot`.
    pub(super) fn lost(
        &mut self,
        client: NodeId,
        stamp: u64,
        slot: Slot,
        fx: &mut FabEffects<S::Op, S::Result>,
    ) {
        let body = Lost {
            client,
            stamp,
            slot,
            next: self.executed + 1,
        };
        fx.send_after_sync(
            client,
            Message::Lost(Signed::new(self.signer.as_ref(), body)),
        );
    }

    /// A peer's status: the decided slots it lacks, if we decided them a round ago or more.
    pub(super) fn on_status(
        &mut self,
        status: Signed<Status>,
        fx: &mut FabEffects<S::Op, S::Result>,
    ) {
        if status.from == self.cfg.id || !self.rules().by_acceptor(&status) {
            return;
        }
        let from = status.body.executed.saturating_add(1);
        let to = self
            .executed
            .min(status.body.executed.saturating_add(CATCH_UP_BATCH));
        let proofs: Vec<Decided<S::Op>> = (from..=to)
            .take_while(|s| self.decided_round.get(s).is_some_and(|r| *r < self.round))
            .filter_map(|s| self.decided.get(&s).cloned())
            .collect();
        if !proofs.is_empty() {
            fx.send(status.from, Message::Decided(proofs));
        }
    }

    /// Sends `to` the proof that `slot` is decided.
    pub(super) fn send_decided(
        &mut self,
        to: NodeId,
        slot: Slot,
        fx: &mut FabEffects<S::Op, S::Result>,
    ) {
        if let Some(d) = self.decided.get(&slot) {
            fx.send(to, Message::Decided(vec![d.clone()]));
        }
    }

    /// A peer's proof that a slot is decided: checked vote by vote, then learned.
    pub(super) fn on_decided(&mut self, d: Decided<S::Op>, fx: &mut FabEffects<S::Op, S::Result>) {
        let slot = d.slot();
        if !self.in_window(slot) || self.decided.contains_key(&slot) || !self.rules().decided_ok(&d)
        {
            return;
        }
        debug_assert_eq!(value_digest(&d.value), d.votes[0].body.digest);
        self.learn(slot, d, fx);
    }
}
