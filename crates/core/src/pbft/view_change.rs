//! View changes: a replica that waited too long for a request to execute (or for a new view
//! to start) moves to the next view and reports its stable checkpoint and its prepared
//! certificates; the next view's primary gathers a quorum of those reports and re-issues, in
//! its new-view message, the orders that may have committed; every backup recomputes them
//! from the reports before it takes them.

use super::messages::Output;
use super::messages::Timer;
use super::messages::{Message, NewView, PbftEffects, Persist, PrePrepare, View, ViewChange};
use super::replica::Replica;
use super::rules::Order;
use super::service::Service;
use crate::auth::Signed;
use crate::ballot::NodeId;
use std::collections::{BTreeMap, BTreeSet};

/// View changes kept per sender: its latest few views.
const VIEWS_KEPT: usize = 3;

impl<S: Service> Replica<S> {
    /// The view-change timer. In the normal case: a request waited too long, move on. While
    /// changing: a view that a quorum has reached (or passed) did not start in time, move on;
    /// without that quorum, keep waiting (PBFT's rule: a replica that ran ahead alone could
    /// otherwise keep running ahead, and the views of the correct replicas never meet).
    ///
    /// Replicas that passed the view count: one that crashed may have lost the view changes
    /// for it that others no longer send, having moved on, and with a silent liar the rest could
    /// then wait for that quorum for ever (seed 3126: two correct replicas at view 1, the third
    /// at view 2, too few for either to move).
    pub(super) fn on_view_timer(&mut self, fx: &mut PbftEffects<S::Op, S::Result>) {
        self.timer_armed = false;
        if self.changing && self.changes_from(self.view) < self.cfg.quorum.quorum() {
            self.timer_armed = true;
            fx.arm(Timer::ViewChange, self.cfg.view_change_ticks);
            return;
        }
        if self.changing || !self.pending.is_empty() {
            self.start_view_change(self.view.saturating_add(1), fx);
        }
    }

    /// How many replicas sent a view change for `view` or a later one.
    fn changes_from(&self, view: View) -> usize {
        let senders: BTreeSet<NodeId> = self
            .changes
            .range((view, 0)..)
            .map(|(&(_, who), _)| who)
            .collect();
        senders.len()
    }

    /// Moves to `view`: persists it, reports this replica's certificates, and waits for the
    /// view to start (twice as long as the last wait, if that view did not start either).
    pub(super) fn start_view_change(&mut self, view: View, fx: &mut PbftEffects<S::Op, S::Result>) {
        self.view = view;
        self.changing = true;
        self.backoff = self.backoff.saturating_add(1);
        fx.persist(Persist::View {
            view,
            changing: true,
        });
        let vc = self.own_view_change();
        self.keep_change(vc.clone());
        self.broadcast(fx, Message::ViewChange(vc), true);
        self.arm_view_timer(fx);
        self.try_new_view(fx);
    }

    /// This replica's view change for its view: its stable checkpoint and its prepared
    /// certificates above it, all from durable state, so that after a restart it says the same.
    fn own_view_change(&self) -> Signed<ViewChange<S::Op>> {
        let stable = self.stable;
        let prepared = self
            .slots
            .range(stable + 1..=stable + self.cfg.window)
            .filter_map(|(_, s)| s.prepared.clone())
            .collect();
        let body = ViewChange {
            view: self.view,
            stable,
            proof: self.stable_proof.clone(),
            prepared,
        };
        Signed::new(self.signer.as_ref(), body)
    }

    /// After a restart in the middle of a view change: take up our view change again (the
    /// status timer sends it).
    pub(super) fn resume_view_change(&mut self) {
        let vc = self.own_view_change();
        self.keep_change(vc);
    }

    /// Keeps `vc`, dropping views below the one before ours and a sender's oldest beyond a few.
    fn keep_change(&mut self, vc: Signed<ViewChange<S::Op>>) {
        let floor = self.view.saturating_sub(1);
        self.changes.retain(|(v, _), _| *v >= floor);
        let from = vc.from;
        self.changes.insert((vc.body.view, from), vc);
        let mine: Vec<(View, NodeId)> = self
            .changes
            .keys()
            .filter(|(_, who)| *who == from)
            .copied()
            .collect();
        for key in mine.iter().take(mine.len().saturating_sub(VIEWS_KEPT)) {
            self.changes.remove(key);
        }
    }

    pub(super) fn on_view_change(
        &mut self,
        vc: Signed<ViewChange<S::Op>>,
        fx: &mut PbftEffects<S::Op, S::Result>,
    ) {
        let view = vc.body.view;
        if view < self.view || vc.from == self.cfg.id {
            return;
        }
        if self.changes.contains_key(&(view, vc.from)) || !self.rules().view_change_ok(&vc, view) {
            return;
        }
        self.keep_change(vc);
        // f + 1 replicas beyond our view include a correct one: follow, to the least of their
        // views, rather than wait out our own timer.
        let mut beyond: BTreeMap<NodeId, View> = BTreeMap::new();
        for &(v, who) in self.changes.keys() {
            if who != self.cfg.id && v > self.view {
                let least = beyond.entry(who).or_insert(v);
                *least = (*least).min(v);
            }
        }
        if beyond.len() >= self.cfg.quorum.weak() {
            let least = beyond
                .values()
                .copied()
                .min()
                .unwrap_or(self.view.saturating_add(1));
            self.start_view_change(least, fx);
            return;
        }
        if self.changing {
            if self.changes_from(self.view) == self.cfg.quorum.quorum() {
                // The quorum is in: from now on, the view has a timeout to start.
                self.arm_view_timer(fx);
            }
            if view == self.view {
                self.try_new_view(fx);
            }
        }
    }

    /// As the new view's primary with a quorum of its view changes: start it.
    fn try_new_view(&mut self, fx: &mut PbftEffects<S::Op, S::Result>) {
        if !self.changing || !self.is_primary() {
            return;
        }
        let view = self.view;
        let changes: Vec<Signed<ViewChange<S::Op>>> = self
            .changes
            .range((view, 0)..=(view, NodeId::MAX))
            .map(|(_, c)| c)
            .take(self.cfg.quorum.quorum())
            .cloned()
            .collect();
        if changes.len() < self.cfg.quorum.quorum() {
            return;
        }
        let (low, orders) = self.rules().new_view_orders(&changes);
        let signer = self.signer.clone();
        let pre_prepares = orders
            .iter()
            .map(|(seq, digest, _)| {
                let body = PrePrepare {
                    view,
                    seq: *seq,
                    digest: *digest,
                };
                Signed::new(signer.as_ref(), body)
            })
            .collect();
        let body = NewView {
            view,
            changes,
            pre_prepares,
        };
        let nv = Signed::new(signer.as_ref(), body);
        self.broadcast(fx, Message::NewView(nv.clone()), true);
        self.install_view(nv, low, orders, fx);
    }

    pub(super) fn on_new_view(
        &mut self,
        nv: Signed<NewView<S::Op>>,
        fx: &mut PbftEffects<S::Op, S::Result>,
    ) {
        let view = nv.body.view;
        if view < self.view || (view == self.view && !self.changing) {
            return;
        }
        let Some((low, orders)) = self.check_new_view(&nv) else {
            return;
        };
        self.install_view(nv, low, orders, fx);
    }

    /// The slots a new-view message orders, if it is the view's primary's, rests on a quorum of
    /// valid view changes, and re-issues exactly what they require.
    fn check_new_view(&self, nv: &Signed<NewView<S::Op>>) -> Option<(u64, Vec<Order<S::Op>>)> {
        let rules = self.rules();
        let view = nv.body.view;
        if nv.from != rules.primary(view) || !rules.authentic(nv) {
            return None;
        }
        let mut signers = BTreeSet::new();
        for c in &nv.body.changes {
            if !signers.insert(c.from) || !rules.view_change_ok(c, view) {
                return None;
            }
        }
        if signers.len() < self.cfg.quorum.quorum() {
            return None;
        }
        let (low, orders) = rules.new_view_orders(&nv.body.changes);
        let same = orders.len() == nv.body.pre_prepares.len()
            && orders
                .iter()
                .zip(&nv.body.pre_prepares)
                .all(|((seq, d, _), pp)| {
                    pp.from == nv.from
                        && pp.body
                            == PrePrepare {
                                view,
                                seq: *seq,
                                digest: *d,
                            }
                        && rules.authentic(pp)
                });
        same.then_some((low, orders))
    }

    /// Enters a started view: takes the re-issued orders (above this replica's stable
    /// checkpoint), and the primary orders what is still pending.
    fn install_view(
        &mut self,
        nv: Signed<NewView<S::Op>>,
        low: u64,
        orders: Vec<Order<S::Op>>,
        fx: &mut PbftEffects<S::Op, S::Result>,
    ) {
        let view = nv.body.view;
        self.view = view;
        self.changing = false;
        fx.persist(Persist::View {
            view,
            changing: false,
        });
        self.changes.retain(|(v, _), _| v.saturating_add(1) >= view);
        self.ordered.clear();
        self.next_seq = low.max(self.stable);
        if let Some(vc) = nv.body.changes.iter().find(|c| c.body.stable == low) {
            self.adopt_checkpoint(low, vc.body.proof.clone(), fx);
        }
        if low > self.stable && low > self.floor {
            // The slots up to `low` are decided, and this view re-issues none of them: without
            // that state we must not take fresh orders there (a lying primary would offer
            // some), but wait for the state, which peers send once our status shows us behind.
            self.floor = low;
            fx.persist(Persist::Floor { seq: low });
        }
        for ((seq, _, request), pp) in orders.into_iter().zip(nv.body.pre_prepares.clone()) {
            self.next_seq = self.next_seq.max(seq);
            if seq <= self.stable {
                continue;
            }
            if let Some(r) = &request {
                self.ordered.insert((r.body.client, r.body.stamp));
            }
            self.take_order(pp, request, fx);
        }
        self.new_view = Some(nv);
        fx.output(Output::ViewStarted { view });
        if !self.pending.is_empty() {
            self.arm_view_timer(fx);
        }
        self.order_pending(fx);
        self.execute(fx);
    }
}
