//! A PBFT replica: the normal case (pre-prepare, prepare, commit, execute) and the dispatch of
//! every message. View changes are in `view_change.rs`; checkpoints, status and state
//! transfer in `checkpoint.rs`.

use super::durable::Durable;
use super::messages::{
    Checkpoint, Commit, Committed, Message, Output, PbftEffects, Persist, PrePrepare, Prepare,
    Prepared, Reply, Request, Seq, Timer, View, ViewChange,
};
use super::rules::Rules;
use super::service::Service;
use crate::auth::{digest_of, Digest, Signed, Signer, Verifier};
use crate::ballot::NodeId;
use crate::bugs::PlantedBug;
use crate::effects::Outgoing;
use crate::quorum::ByzantineQuorum;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The view-change timeout doubles per view in a row that fails to start, up to `2^this` times
/// the base: enough to outwait a slow network, bounded so that a cluster that went through a
/// storm of view changes is not left waiting minutes for its next one.
const MAX_BACKOFF: u32 = 3;

/// How a replica is set up. Times are in ticks.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    /// This replica.
    pub id: NodeId,
    /// Every replica, in view order: view `v`'s primary is `replicas[v % n]`.
    pub replicas: Vec<NodeId>,
    /// Certificate sizes.
    pub quorum: ByzantineQuorum,
    /// A checkpoint every this many slots.
    pub checkpoint_interval: u64,
    /// Slots that may be ordered above the stable checkpoint (at least twice the interval, so
    /// ordering goes on while a checkpoint becomes stable).
    pub window: u64,
    /// How long a replica waits for a request it holds to execute before it moves to the next
    /// view; doubled for each view in a row that does not start.
    pub view_change_ticks: u64,
    /// How often a replica tells its peers how far it is.
    pub status_ticks: u64,
    /// A bug planted on purpose (simulator only).
    pub bug: Option<PlantedBug>,
}

/// Per slot: the current view's order and votes, and the latest certificates.
#[derive(Clone, Debug)]
pub(super) struct Slot<V> {
    /// The view `pre_prepare`, `prepares` and `commits` belong to.
    pub view: View,
    pub pre_prepare: Option<Signed<PrePrepare>>,
    pub request: Option<Signed<Request<V>>>,
    pub prepares: BTreeMap<NodeId, Signed<Prepare>>,
    pub commits: BTreeMap<NodeId, Signed<Commit>>,
    /// The latest prepared certificate, of any view.
    pub prepared: Option<Prepared<V>>,
    /// Set once the slot is known committed.
    pub committed: Option<Committed<V>>,
    /// Status rounds that found the slot still pending: the first only marks it, so what a
    /// round resends has waited a whole round, not just sent.
    pub rounds_pending: u32,
}

impl<V> Slot<V> {
    fn new(view: View) -> Self {
        Slot {
            view,
            pre_prepare: None,
            request: None,
            prepares: BTreeMap::new(),
            commits: BTreeMap::new(),
            prepared: None,
            committed: None,
            rounds_pending: 0,
        }
    }
}

/// A client's last executed request and its result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ClientRecord<R> {
    pub stamp: u64,
    pub result: R,
}

/// Why [`Replica::recover`] refused its durable state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoverError {
    /// The stable checkpoint's state does not decode as this service's state.
    #[error("the stable checkpoint at slot {seq} does not decode as this service's state")]
    BadCheckpoint {
        /// The checkpoint's slot.
        seq: Seq,
    },
}

/// A PBFT replica: the normal case, view changes, checkpoints and catch-up, as one state
/// machine driven by messages and timers.
pub struct Replica<S: Service> {
    pub(super) cfg: ReplicaConfig,
    pub(super) signer: Arc<dyn Signer>,
    pub(super) verifier: Arc<dyn Verifier>,
    pub(super) view: View,
    /// True from sending a view change until the view's new-view message is taken.
    pub(super) changing: bool,
    pub(super) slots: BTreeMap<Seq, Slot<S::Op>>,
    pub(super) stable: Seq,
    pub(super) stable_proof: Vec<Signed<Checkpoint>>,
    pub(super) stable_state: Vec<u8>,
    /// Checkpoint messages above the stable one, per signer, latest few.
    pub(super) checkpoints: BTreeMap<NodeId, BTreeMap<Seq, Signed<Checkpoint>>>,
    /// Its own states at checkpoints above the stable one.
    pub(super) own_states: BTreeMap<Seq, (Digest, Vec<u8>)>,
    pub(super) executed: Seq,
    pub(super) service: S,
    pub(super) clients: BTreeMap<NodeId, ClientRecord<S::Result>>,
    /// Each client's latest request not yet executed.
    pub(super) pending: BTreeMap<NodeId, Signed<Request<S::Op>>>,
    /// Requests ordered in this view (the primary orders each once).
    pub(super) ordered: BTreeSet<(NodeId, u64)>,
    /// The last slot the primary ordered in this view.
    pub(super) next_seq: Seq,
    /// View changes by view and sender: from the view before ours up, a few views per sender.
    pub(super) changes: BTreeMap<(View, NodeId), Signed<ViewChange<S::Op>>>,
    /// The new-view message that started our view, to hand to replicas behind.
    pub(super) new_view: Option<Signed<super::messages::NewView<S::Op>>>,
    /// Whether the view-change timer is armed.
    pub(super) timer_armed: bool,
    /// Views in a row that did not start.
    pub(super) backoff: u32,
    /// What we had executed at our last two status rounds, older first. A peer's status can
    /// be a round old when it arrives; certificates go only for slots executed a whole round
    /// before, which a peer still behind on them did miss.
    pub(super) executed_at_rounds: [Seq; 2],
    /// No order is taken at or below this slot: a started view's low-water mark above our
    /// stable checkpoint, until a state at or above it is installed.
    pub(super) floor: Seq,
    /// Status rounds this replica has started.
    pub(super) status_round: u64,
    /// Per peer, the status round in which we last answered its status: once per round at
    /// most, or a liar sending statuses without pause would have us copy our whole state (or
    /// our certificates) to it for each one.
    pub(super) answered: BTreeMap<NodeId, u64>,
}

impl<S: Service> Replica<S> {
    /// A replica from its durable state (default for a fresh one) and the service's initial
    /// state. Fails if the stable checkpoint's state in `durable` does not decode: the records
    /// are not this replica's own, or the disk damaged them.
    pub fn recover(
        cfg: ReplicaConfig,
        signer: Arc<dyn Signer>,
        verifier: Arc<dyn Verifier>,
        durable: Durable<S::Op>,
        initial: S,
    ) -> Result<Self, RecoverError> {
        let mut r = Replica {
            cfg,
            signer,
            verifier,
            view: durable.view,
            changing: durable.changing,
            slots: BTreeMap::new(),
            stable: 0,
            stable_proof: Vec::new(),
            stable_state: Vec::new(),
            checkpoints: BTreeMap::new(),
            own_states: BTreeMap::new(),
            executed: 0,
            service: initial,
            clients: BTreeMap::new(),
            pending: BTreeMap::new(),
            ordered: BTreeSet::new(),
            next_seq: 0,
            changes: BTreeMap::new(),
            new_view: None,
            timer_armed: false,
            backoff: 0,
            executed_at_rounds: [0; 2],
            floor: durable.floor,
            status_round: 0,
            answered: BTreeMap::new(),
        };
        r.stable_state = r.state_bytes();
        if let Some((proof, state)) = durable.stable {
            let seq = proof.first().map_or(0, |c| c.body.seq);
            if !r.install_state(seq, proof, state) {
                return Err(RecoverError::BadCheckpoint { seq });
            }
        }
        for (seq, (pp, request)) in durable.accepted.into_iter().filter(|(s, _)| *s > r.stable) {
            let slot = r
                .slots
                .entry(seq)
                .or_insert_with(|| Slot::new(pp.body.view));
            if pp.body.view == r.view {
                slot.view = r.view;
                slot.pre_prepare = Some(pp);
                slot.request = request;
                r.next_seq = r.next_seq.max(seq);
            }
        }
        for (seq, p) in durable.prepared.into_iter().filter(|(s, _)| *s > r.stable) {
            r.slots
                .entry(seq)
                .or_insert_with(|| Slot::new(r.view))
                .prepared = Some(p);
        }
        r.next_seq = r.next_seq.max(r.floor);
        r.restore_own_votes();
        Ok(r)
    }

    /// After a restart: our prepare for every order we took in this view, and our commit for
    /// every slot we prepared in it, as we sent them before (both rest on durable records), so
    /// that the status timer sends them again and slots that were in flight still commit.
    fn restore_own_votes(&mut self) {
        let (me, view, primary) = (self.cfg.id, self.view, self.is_primary());
        for (&seq, slot) in self.slots.iter_mut().filter(|(_, s)| s.view == view) {
            if let (false, Some(pp)) = (primary, &slot.pre_prepare) {
                let body = Prepare {
                    view,
                    seq,
                    digest: pp.body.digest,
                };
                slot.prepares
                    .insert(me, Signed::new(self.signer.as_ref(), body));
            }
            if let Some(p) = slot
                .prepared
                .as_ref()
                .filter(|p| p.pre_prepare.body.view == view)
            {
                let body = Commit {
                    view,
                    seq,
                    digest: p.pre_prepare.body.digest,
                };
                slot.commits
                    .insert(me, Signed::new(self.signer.as_ref(), body));
            }
        }
    }

    /// This replica's id.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// Its view, and whether it waits for the view to start.
    pub fn view(&self) -> (View, bool) {
        (self.view, self.changing)
    }

    /// The last slot executed.
    pub fn executed(&self) -> Seq {
        self.executed
    }

    /// The last stable checkpoint's slot.
    pub fn stable(&self) -> Seq {
        self.stable
    }

    /// The service's state.
    pub fn service(&self) -> &S {
        &self.service
    }

    pub(super) fn rules(&self) -> Rules<'_> {
        Rules {
            verifier: self.verifier.as_ref(),
            replicas: &self.cfg.replicas,
            quorum: self.cfg.quorum,
            window: self.cfg.window,
            bug: self.cfg.bug,
        }
    }

    pub(super) fn primary(&self, view: View) -> NodeId {
        self.rules().primary(view)
    }

    pub(super) fn is_primary(&self) -> bool {
        self.primary(self.view) == self.cfg.id
    }

    pub(super) fn others(&self) -> impl Iterator<Item = NodeId> + '_ {
        let me = self.cfg.id;
        self.cfg.replicas.iter().copied().filter(move |&r| r != me)
    }

    pub(super) fn broadcast(
        &self,
        fx: &mut PbftEffects<S::Op, S::Result>,
        msg: Message<S::Op, S::Result>,
        after_sync: bool,
    ) {
        let list = if after_sync {
            &mut fx.send_after_sync
        } else {
            &mut fx.send
        };
        for to in self.others() {
            list.push(Outgoing {
                to,
                msg: msg.clone(),
            });
        }
    }

    /// Starts the status timer, and the view-change timer if it restarted mid-change.
    pub fn start(&mut self) -> PbftEffects<S::Op, S::Result> {
        let mut fx = PbftEffects::new();
        fx.arm(Timer::Status, self.cfg.status_ticks);
        if self.changing {
            self.resume_view_change();
            self.arm_view_timer(&mut fx);
        }
        fx
    }

    /// Handles a message. The transport's sender is not trusted: signed messages name their
    /// author, and the rest prove themselves.
    pub fn on_message(&mut self, msg: Message<S::Op, S::Result>) -> PbftEffects<S::Op, S::Result> {
        let mut fx = PbftEffects::new();
        match msg {
            Message::Request(r) => self.on_request(r, &mut fx),
            Message::PrePrepare(pp, r) => self.on_pre_prepare(pp, r, &mut fx),
            Message::Prepare(p) => self.on_prepare(p, &mut fx),
            Message::Commit(c) => self.on_commit(c, &mut fx),
            Message::Checkpoint(c) => self.on_checkpoint(c, &mut fx),
            Message::ViewChange(vc) => self.on_view_change(vc, &mut fx),
            Message::NewView(nv) => self.on_new_view(nv, &mut fx),
            Message::Status(s) => self.on_status(s, &mut fx),
            Message::Committed(cs) => self.on_committed(cs, &mut fx),
            Message::State { proof, state } => self.on_state(proof, state, &mut fx),
            Message::Reply(_) => {}
        }
        self.check_invariants();
        fx
    }

    /// Handles a timer.
    pub fn on_timer(&mut self, kind: Timer) -> PbftEffects<S::Op, S::Result> {
        let mut fx = PbftEffects::new();
        match kind {
            Timer::ViewChange => self.on_view_timer(&mut fx),
            Timer::Status => self.on_status_timer(&mut fx),
            Timer::Retry => {}
        }
        self.check_invariants();
        fx
    }

    fn check_invariants(&self) {
        // A correct replica takes one order per slot and view, and votes only for it: every
        // vote of its own in a slot names the order's digest and view. (Debug builds only: it
        // walks the window; the simulator's runs check it after every step.)
        #[cfg(debug_assertions)]
        for (seq, slot) in &self.slots {
            let Some(pp) = &slot.pre_prepare else {
                continue;
            };
            assert_eq!(
                pp.body.view, slot.view,
                "slot {seq}: an order of another view"
            );
            let me = self.cfg.id;
            let own = [
                slot.prepares.get(&me).map(|p| (p.body.view, p.body.digest)),
                slot.commits.get(&me).map(|c| (c.body.view, c.body.digest)),
            ];
            for (view, digest) in own.into_iter().flatten() {
                assert!(
                    view == slot.view && digest == pp.body.digest,
                    "replica {me}, slot {seq}: our own vote {view}/{digest:?} differs from the order we took, {:?}",
                    pp.body
                );
            }
        }
        assert!(
            self.stable <= self.executed,
            "executed below the stable checkpoint"
        );
        assert!(
            self.slots.keys().next().is_none_or(|&s| s > self.stable),
            "slots at or below the stable checkpoint were collected"
        );
    }

    fn on_request(&mut self, r: Signed<Request<S::Op>>, fx: &mut PbftEffects<S::Op, S::Result>) {
        let digest = digest_of(&r.body);
        if !self.rules().request_matches(&digest, &Some(r.clone())) {
            return;
        }
        let client = r.body.client;
        if let Some(done) = self.clients.get(&client) {
            if r.body.stamp == done.stamp {
                let reply = self.reply(client, done.stamp, done.result.clone());
                fx.send_after_sync.push(Outgoing {
                    to: client,
                    msg: reply,
                });
            }
            if r.body.stamp <= done.stamp {
                return;
            }
        }
        if self
            .pending
            .get(&client)
            .is_some_and(|p| p.body.stamp >= r.body.stamp)
        {
            return;
        }
        self.pending.insert(client, r);
        if !self.changing && !self.timer_armed {
            self.arm_view_timer(fx);
        }
        self.order_pending(fx);
    }

    pub(super) fn reply(
        &self,
        client: NodeId,
        stamp: u64,
        result: S::Result,
    ) -> Message<S::Op, S::Result> {
        let body = Reply {
            view: self.view,
            client,
            stamp,
            result,
        };
        Message::Reply(Signed::new(self.signer.as_ref(), body))
    }

    /// The primary orders every pending request it has not ordered in this view, while the
    /// window above the stable checkpoint has room.
    pub(super) fn order_pending(&mut self, fx: &mut PbftEffects<S::Op, S::Result>) {
        if !self.is_primary() || self.changing {
            return;
        }
        let waiting: Vec<Signed<Request<S::Op>>> = self
            .pending
            .values()
            .filter(|r| !self.ordered.contains(&(r.body.client, r.body.stamp)))
            .cloned()
            .collect();
        for r in waiting {
            if self.next_seq >= self.stable + self.cfg.window {
                return;
            }
            self.next_seq = self.next_seq.max(self.executed) + 1;
            self.ordered.insert((r.body.client, r.body.stamp));
            let body = PrePrepare {
                view: self.view,
                seq: self.next_seq,
                digest: digest_of(&r.body),
            };
            let pp = Signed::new(self.signer.as_ref(), body);
            self.take_order(pp.clone(), Some(r.clone()), fx);
            self.broadcast(fx, Message::PrePrepare(pp, Some(r)), true);
        }
    }

    /// The slot `seq` for the current view: votes of older views are dropped (its certificates
    /// stay).
    pub(super) fn slot(&mut self, seq: Seq) -> &mut Slot<S::Op> {
        let view = self.view;
        let slot = self.slots.entry(seq).or_insert_with(|| Slot::new(view));
        if slot.view < view {
            *slot = Slot {
                prepared: slot.prepared.take(),
                committed: slot.committed.take(),
                ..Slot::new(view)
            };
        }
        slot
    }

    /// True when `seq` may be ordered now: above the stable checkpoint, within the window.
    pub(super) fn in_window(&self, seq: Seq) -> bool {
        seq > self.stable && seq <= self.stable + self.cfg.window
    }

    /// True when an order (and votes on it) at `seq` may be taken: in the window and above the
    /// floor. Committed certificates below the floor are still taken: they prove themselves.
    pub(super) fn may_order(&self, seq: Seq) -> bool {
        seq > self.floor && self.in_window(seq)
    }

    /// Takes an order this replica checked (or made): persists it, and as a backup agrees to it.
    pub(super) fn take_order(
        &mut self,
        pp: Signed<PrePrepare>,
        request: Option<Signed<Request<S::Op>>>,
        fx: &mut PbftEffects<S::Op, S::Result>,
    ) {
        let PrePrepare { view, seq, digest } = pp.body;
        let primary = self.is_primary();
        let me = self.cfg.id;
        let signer = self.signer.clone();
        let slot = self.slot(seq);
        slot.pre_prepare = Some(pp.clone());
        slot.request = request.clone();
        fx.persist.push(Persist::Accepted(pp, request));
        if !primary {
            let prepare = Signed::new(signer.as_ref(), Prepare { view, seq, digest });
            slot.prepares.insert(me, prepare.clone());
            self.broadcast(fx, Message::Prepare(prepare), true);
        }
        self.check_prepared(seq, fx);
    }

    fn on_pre_prepare(
        &mut self,
        pp: Signed<PrePrepare>,
        request: Option<Signed<Request<S::Op>>>,
        fx: &mut PbftEffects<S::Op, S::Result>,
    ) {
        let PrePrepare { view, seq, digest } = pp.body;
        if view != self.view || self.changing || self.is_primary() || !self.may_order(seq) {
            return;
        }
        let rules = self.rules();
        if pp.from != rules.primary(view)
            || !rules.authentic(&pp)
            || !rules.request_matches(&digest, &request)
        {
            return;
        }
        if self.slot(seq).pre_prepare.is_some() {
            // The first order in a view stands; a second, different one is the primary's lie,
            // and the view-change timer will move past it.
            return;
        }
        if let Some(r) = &request {
            self.ordered.insert((r.body.client, r.body.stamp));
        }
        self.take_order(pp, request, fx);
    }

    fn on_prepare(&mut self, p: Signed<Prepare>, fx: &mut PbftEffects<S::Op, S::Result>) {
        let b = p.body;
        if b.view != self.view || self.changing || !self.may_order(b.seq) {
            return;
        }
        // Our own votes we know; one coming back (a replay) is not news, and would sit beside
        // ours unchecked.
        if p.from == self.cfg.id || p.from == self.primary(b.view) || !self.rules().by_replica(&p) {
            return;
        }
        self.slot(b.seq).prepares.entry(p.from).or_insert(p);
        self.check_prepared(b.seq, fx);
    }

    fn on_commit(&mut self, c: Signed<Commit>, fx: &mut PbftEffects<S::Op, S::Result>) {
        let b = c.body;
        if b.view != self.view || self.changing || !self.may_order(b.seq) {
            return;
        }
        if c.from == self.cfg.id || !self.rules().by_replica(&c) {
            return;
        }
        self.slot(b.seq).commits.entry(c.from).or_insert(c);
        self.check_committed(b.seq);
        self.execute(fx);
    }

    /// Once the order and `quorum - 1` matching prepares are in: persist the certificate, then
    /// commit.
    fn check_prepared(&mut self, seq: Seq, fx: &mut PbftEffects<S::Op, S::Result>) {
        let need = self.cfg.quorum.quorum() - 1;
        let (view, me, signer) = (self.view, self.cfg.id, self.signer.clone());
        let slot = self.slot(seq);
        let Some(pp) = slot.pre_prepare.clone() else {
            return;
        };
        if slot.commits.contains_key(&me) {
            return;
        }
        let digest = pp.body.digest;
        let prepares: Vec<Signed<Prepare>> = slot
            .prepares
            .values()
            .filter(|p| p.body.digest == digest)
            .cloned()
            .collect();
        if prepares.len() < need {
            return;
        }
        let cert = Prepared {
            pre_prepare: pp,
            request: slot.request.clone(),
            prepares,
        };
        slot.prepared = Some(cert.clone());
        let commit = Signed::new(signer.as_ref(), Commit { view, seq, digest });
        slot.commits.insert(me, commit.clone());
        fx.persist.push(Persist::Prepared(cert));
        self.broadcast(fx, Message::Commit(commit), true);
        self.check_committed(seq);
        self.execute(fx);
    }

    /// Committed here: prepared in this view and a quorum's matching commits.
    fn check_committed(&mut self, seq: Seq) {
        let quorum = self.cfg.quorum.quorum();
        let view = self.view;
        let slot = self.slot(seq);
        if slot.committed.is_some() {
            return;
        }
        let Some(p) = &slot.prepared else { return };
        if p.pre_prepare.body.view != view {
            return;
        }
        let digest = p.pre_prepare.body.digest;
        let commits: Vec<Signed<Commit>> = slot
            .commits
            .values()
            .filter(|c| c.body.digest == digest)
            .cloned()
            .collect();
        if commits.len() >= quorum {
            slot.committed = Some(Committed {
                request: p.request.clone(),
                commits,
            });
        }
    }

    /// Executes every committed slot in order, answering clients, and checkpoints.
    pub(super) fn execute(&mut self, fx: &mut PbftEffects<S::Op, S::Result>) {
        let before = self.executed;
        while let Some(request) = self
            .slots
            .get(&(self.executed + 1))
            .and_then(|s| s.committed.as_ref().map(|c| c.request.clone()))
        {
            self.executed += 1;
            let seq = self.executed;
            let request = request.map(|r| {
                let result = self.run(&r.body);
                if let Some(res) = &result {
                    // With the step's records, so that the execution it reports is never
                    // unsaid by a crash in the middle of the step (the simulator's checkers
                    // see a step's outputs only if it completes).
                    let reply = self.reply(r.body.client, r.body.stamp, res.clone());
                    fx.send_after_sync.push(Outgoing {
                        to: r.body.client,
                        msg: reply,
                    });
                }
                (r.body, result)
            });
            fx.output.push(Output::Executed { seq, request });
            if seq.is_multiple_of(self.cfg.checkpoint_interval) {
                self.take_checkpoint(fx);
            }
        }
        if self.executed > before {
            self.backoff = 0;
            if !self.changing {
                if self.pending.is_empty() {
                    // Nothing waits: the armed deadline is stale (it goes off harmlessly with
                    // nothing pending), and the next request must arm a fresh one.
                    self.timer_armed = false;
                } else {
                    self.arm_view_timer(fx);
                }
            }
            self.order_pending(fx);
        }
    }

    /// Runs a request unless its client already had it run: its result, or `None` for a
    /// repeat.
    fn run(&mut self, r: &Request<S::Op>) -> Option<S::Result> {
        if self
            .clients
            .get(&r.client)
            .is_some_and(|c| c.stamp >= r.stamp)
        {
            return None;
        }
        let result = self.service.execute(r.client, &r.op);
        self.clients.insert(
            r.client,
            ClientRecord {
                stamp: r.stamp,
                result: result.clone(),
            },
        );
        if self
            .pending
            .get(&r.client)
            .is_some_and(|p| p.body.stamp <= r.stamp)
        {
            self.pending.remove(&r.client);
        }
        Some(result)
    }

    /// Arms the view-change timer: the base timeout, doubled per view in a row that failed.
    pub(super) fn arm_view_timer(&mut self, fx: &mut PbftEffects<S::Op, S::Result>) {
        self.timer_armed = true;
        let ticks = self.cfg.view_change_ticks << self.backoff.min(MAX_BACKOFF);
        fx.arm(Timer::ViewChange, ticks);
    }
}
