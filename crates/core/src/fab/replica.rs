//! A Fast Byzantine replica: one acceptor and one learner in a process, as the seed's charts
//! draw them side by side. This file holds its state, its start from disk, the dispatch of
//! messages and its round timer; the acceptor's rules are in `acceptor.rs`, the learner's in
//! `learner.rs`.

use super::durable::Durable;
use super::messages::{
    value_digest, Choice, Decided, Evidence, FabEffects, Message, Report, Slot, Status, Timer,
    Value, View, Vote,
};
use super::rules::Rules;
use crate::auth::{Digest, Signed, Signer, Verifier};
use crate::ballot::NodeId;
use crate::bugs::PlantedBug;
use crate::pbft::Service;
use crate::quorum::FastByzantineQuorum;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A recovery waits this many rounds more for each view the slot already went through, up to
/// `2^this` times the base, so that acceptors whose timers drifted apart meet in one view.
const MAX_BACKOFF: u32 = 3;

/// How a replica is set up. Times are in ticks.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    /// This replica.
    pub id: NodeId,
    /// Every acceptor, in leader order.
    pub acceptors: Vec<NodeId>,
    /// Quorum sizes.
    pub quorum: FastByzantineQuorum,
    /// Slots above the last executed one that it votes in.
    pub window: u64,
    /// How often it tells peers how far it is and resends what may be lost.
    pub round_ticks: u64,
    /// Rounds a slot may stall before this replica moves it to the next view.
    pub recovery_rounds: u32,
    /// A bug planted on purpose (simulator only).
    pub bug: Option<PlantedBug>,
}

/// One slot, until executed.
#[derive(Clone, Debug)]
pub(super) struct SlotState<V> {
    /// The view this acceptor is in.
    pub view: View,
    /// Its latest vote: view and value.
    pub vote: Option<(View, Value<V>)>,
    /// Values heard of here, by digest.
    pub values: BTreeMap<Digest, Value<V>>,
    /// Votes heard, per view, one per acceptor (its first).
    pub votes: BTreeMap<View, BTreeMap<NodeId, Signed<Vote>>>,
    /// Reports heard, per view entered, one per acceptor.
    pub reports: BTreeMap<View, BTreeMap<NodeId, Signed<Report>>>,
    /// Our choice as the leader of the current view, to send again.
    pub choice: Option<(Signed<Choice>, Vec<Evidence>, Value<V>)>,
    /// Rounds this slot went without being decided, since its view last changed.
    pub rounds: u32,
}

impl<V> SlotState<V> {
    pub(super) fn new(view: View) -> Self {
        SlotState {
            view,
            vote: None,
            values: BTreeMap::new(),
            votes: BTreeMap::new(),
            reports: BTreeMap::new(),
            choice: None,
            rounds: 0,
        }
    }
}

/// A Fast Byzantine acceptor and learner.
pub struct Replica<S: Service> {
    pub(super) cfg: ReplicaConfig,
    pub(super) signer: Arc<dyn Signer>,
    pub(super) verifier: Arc<dyn Verifier>,
    pub(super) slots: BTreeMap<Slot, SlotState<S::Op>>,
    /// Proofs of decided slots, kept to answer peers that missed them.
    pub(super) decided: BTreeMap<Slot, Decided<S::Op>>,
    /// The round each slot was decided in here: catch-up goes only for slots decided a whole
    /// round ago, which a peer still lacking them really missed.
    pub(super) decided_round: BTreeMap<Slot, u64>,
    pub(super) round: u64,
    pub(super) executed: Slot,
    pub(super) service: S,
    /// Per client: the last stamp executed, where, and its result.
    pub(super) clients: BTreeMap<NodeId, (u64, Slot, S::Result)>,
}

impl<S: Service> Replica<S> {
    /// A replica from its durable state (default for a fresh one) and the service's initial
    /// state. What it executed is not on disk: it learns the decided slots again from peers,
    /// whose proofs it checks.
    pub fn recover(
        cfg: ReplicaConfig,
        signer: Arc<dyn Signer>,
        verifier: Arc<dyn Verifier>,
        durable: Durable<S::Op>,
        initial: S,
    ) -> Self {
        let mut r = Replica {
            cfg,
            signer,
            verifier,
            slots: BTreeMap::new(),
            decided: BTreeMap::new(),
            decided_round: BTreeMap::new(),
            round: 0,
            executed: 0,
            service: initial,
            clients: BTreeMap::new(),
        };
        for (slot, disk) in durable.slots {
            let mut s = SlotState::new(disk.view);
            if let Some((view, value)) = disk.vote {
                // Our own vote, signed again as we sent it, so that rounds resend it.
                let digest = value_digest(&value);
                let body = Vote { view, slot, digest };
                let vote = Signed::new(r.signer.as_ref(), body);
                s.votes.entry(view).or_default().insert(r.cfg.id, vote);
                s.values.insert(digest, value.clone());
                s.vote = Some((view, value));
            }
            r.slots.insert(slot, s);
        }
        r
    }

    /// This replica's id.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// The last slot executed.
    pub fn executed(&self) -> Slot {
        self.executed
    }

    /// The service's state.
    pub fn service(&self) -> &S {
        &self.service
    }

    /// The view this replica is in at `slot` (0 for one it has no state for).
    pub fn view_at(&self, slot: Slot) -> View {
        self.slots.get(&slot).map_or(0, |s| s.view)
    }

    pub(super) fn rules(&self) -> Rules<'_> {
        Rules {
            verifier: self.verifier.as_ref(),
            acceptors: &self.cfg.acceptors,
            quorum: self.cfg.quorum,
            bug: self.cfg.bug,
        }
    }

    /// Every acceptor but this one.
    pub(super) fn others(&self) -> Vec<NodeId> {
        let me = self.cfg.id;
        self.cfg
            .acceptors
            .iter()
            .copied()
            .filter(|&a| a != me)
            .collect()
    }

    /// True for a slot this replica votes in: above what it executed, within its window.
    pub(super) fn in_window(&self, slot: Slot) -> bool {
        slot > self.executed && slot <= self.executed + self.cfg.window
    }

    pub(super) fn slot(&mut self, slot: Slot) -> &mut SlotState<S::Op> {
        self.slots.entry(slot).or_insert_with(|| SlotState::new(0))
    }

    /// Arms the first round.
    pub fn start(&mut self) -> FabEffects<S::Op, S::Result> {
        let mut fx = FabEffects::new();
        fx.arm(Timer::Round, self.cfg.round_ticks);
        fx
    }

    /// Handles a message from a peer or a client.
    pub fn on_message(&mut self, msg: Message<S::Op, S::Result>) -> FabEffects<S::Op, S::Result> {
        let mut fx = FabEffects::new();
        match msg {
            Message::Propose { slot, request } => self.on_propose(slot, Some(request), &mut fx),
            Message::Accepted(vote, value) => self.on_accepted(vote, value, &mut fx),
            Message::Report(report, value) => self.on_report(report, value, &mut fx),
            Message::Choice(choice, evidence, value) => {
                self.on_choice(choice, evidence, value, &mut fx)
            }
            Message::Status(status) => self.on_status(status, &mut fx),
            Message::Decided(proofs) => {
                for d in proofs {
                    self.on_decided(d, &mut fx);
                }
            }
            Message::Reply(_) | Message::Lost(_) => {}
        }
        self.check_invariants();
        fx
    }

    /// A round: status to peers, resends of what may have been lost, and recovery of the
    /// slots that stalled.
    pub fn on_timer(&mut self, kind: Timer) -> FabEffects<S::Op, S::Result> {
        let mut fx = FabEffects::new();
        if kind != Timer::Round {
            return fx;
        }
        self.round += 1;
        let status = Signed::new(
            self.signer.as_ref(),
            Status {
                executed: self.executed,
            },
        );
        fx.broadcast(&self.others(), Message::Status(status));
        let stalled: Vec<Slot> = self
            .slots
            .iter()
            .filter(|(s, st)| self.in_window(**s) && !self.decided.contains_key(s) && st.active())
            .map(|(s, _)| *s)
            .collect();
        for slot in stalled {
            let base = self.cfg.recovery_rounds.max(2);
            let st = self.slot(slot);
            st.rounds += 1;
            let (rounds, view) = (st.rounds, st.view);
            let patience = base << (view.min(MAX_BACKOFF as u64) as u32);
            // A recovery view is left on a timer only once `a - f` acceptors are known to be in
            // it: an acceptor that climbed views alone (cut off) waits for the others there,
            // resending its report, instead of drifting further away.
            let may_leave = view == 0 || self.evidence(slot).is_some();
            if rounds >= patience && may_leave {
                self.enter(slot, view.saturating_add(1), &mut fx);
            } else if rounds >= 2 {
                self.resend(slot, &mut fx);
                // A report signed again after a restart may complete our own certificate.
                self.try_recover(slot, &mut fx);
            }
        }
        fx.arm(Timer::Round, self.cfg.round_ticks);
        self.check_invariants();
        fx
    }

    /// Asserts what must hold of this replica's own state after every step.
    fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let me = self.cfg.id;
        for (slot, st) in &self.slots {
            if let Some((view, value)) = &st.vote {
                assert!(*view <= st.view, "slot {slot}: voted above its view");
                let own = st.votes.get(view).and_then(|v| v.get(&me));
                let digest = value_digest(value);
                assert!(
                    own.is_some_and(|v| v.body.digest == digest),
                    "slot {slot}: our vote in view {view} is the one we keep"
                );
            }
        }
        assert!(
            self.executed == 0 || self.decided.contains_key(&self.executed),
            "the last slot executed is decided"
        );
    }
}

impl<V> SlotState<V> {
    /// True for a slot something happened at: a vote, a value, or a report.
    fn active(&self) -> bool {
        self.vote.is_some() || !self.values.is_empty() || !self.reports.is_empty()
    }
}
