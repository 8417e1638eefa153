//! Checkpoints, garbage collection, and filling a lagging replica's gaps.
//!
//! Every `checkpoint_interval` slots a replica signs its state's digest; a quorum of matching
//! digests makes the checkpoint stable, and the log at and below it goes. A replica tells its
//! peers how far it is ([`Status`]) every few ticks; a peer answers one that is behind with the
//! new-view message of a later view, the state at its stable checkpoint, or certificates of the
//! slots it committed since: each of these proves itself, so a lying peer can only withhold.

use super::messages::{
    Checkpoint, Committed, Message, Output, PbftEffects, Persist, Seq, Status, Timer,
};
use super::replica::{ClientRecord, Replica};
use super::service::Service;
use crate::auth::{digest_of, Signed};
use crate::ballot::NodeId;
use crate::effects::Outgoing;
use std::collections::BTreeMap;

/// Checkpoint messages kept per signer above the stable one.
const CHECKPOINTS_KEPT: usize = 4;

impl<S: Service> Replica<S> {
    /// The state a checkpoint covers: the service and the client table.
    pub(super) fn state_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(&(self.service.encode(), &self.clients))
            .expect("encoding into memory does not fail")
    }

    pub(super) fn take_checkpoint(&mut self, fx: &mut PbftEffects<S::Op, S::Result>) {
        let bytes = self.state_bytes();
        let seq = self.executed;
        let state = digest_of(&bytes);
        self.own_states.insert(seq, (state, bytes));
        let c = Signed::new(self.signer.as_ref(), Checkpoint { seq, state });
        self.keep_checkpoint(c.clone());
        self.broadcast(fx, Message::Checkpoint(c), false);
        self.check_stable(seq, fx);
    }

    fn keep_checkpoint(&mut self, c: Signed<Checkpoint>) {
        let mine = self.checkpoints.entry(c.from).or_default();
        mine.insert(c.body.seq, c);
        while mine.len() > CHECKPOINTS_KEPT {
            mine.pop_first();
        }
    }

    pub(super) fn on_checkpoint(
        &mut self,
        c: Signed<Checkpoint>,
        fx: &mut PbftEffects<S::Op, S::Result>,
    ) {
        if c.from == self.cfg.id || c.body.seq <= self.stable || !self.rules().by_replica(&c) {
            return;
        }
        let seq = c.body.seq;
        self.keep_checkpoint(c);
        self.check_stable(seq, fx);
    }

    /// Our checkpoint at `seq` becomes stable once a quorum signed the same digest.
    fn check_stable(&mut self, seq: Seq, fx: &mut PbftEffects<S::Op, S::Result>) {
        let Some((state, _)) = self.own_states.get(&seq) else {
            return;
        };
        let want = Checkpoint { seq, state: *state };
        let proof: Vec<Signed<Checkpoint>> = self
            .checkpoints
            .values()
            .filter_map(|m| m.get(&seq))
            .filter(|c| c.body == want)
            .take(self.cfg.quorum.quorum())
            .cloned()
            .collect();
        if proof.len() >= self.cfg.quorum.quorum() {
            self.make_stable(seq, proof, fx);
        }
    }

    /// Takes a stable checkpoint proven elsewhere (a new view's), if our own state there
    /// matches it.
    pub(super) fn adopt_checkpoint(
        &mut self,
        seq: Seq,
        proof: Vec<Signed<Checkpoint>>,
        fx: &mut PbftEffects<S::Op, S::Result>,
    ) {
        let matches = self
            .own_states
            .get(&seq)
            .zip(proof.first())
            .is_some_and(|((d, _), c)| c.body.state == *d);
        if seq > self.stable && matches {
            self.make_stable(seq, proof, fx);
        }
    }

    fn make_stable(
        &mut self,
        seq: Seq,
        proof: Vec<Signed<Checkpoint>>,
        fx: &mut PbftEffects<S::Op, S::Result>,
    ) {
        let Some((_, state)) = self.own_states.get(&seq).cloned() else {
            return;
        };
        fx.persist(Persist::Stable {
            proof: proof.clone(),
            state: state.clone(),
        });
        self.set_stable(seq, proof, state);
        self.order_pending(fx);
    }

    /// Moves the stable checkpoint to `seq` and collects the log at and below it.
    fn set_stable(&mut self, seq: Seq, proof: Vec<Signed<Checkpoint>>, state: Vec<u8>) {
        self.stable = seq;
        self.stable_proof = proof;
        self.stable_state = state;
        self.slots = self.slots.split_off(&(seq + 1));
        self.own_states = self.own_states.split_off(&(seq + 1));
        for m in self.checkpoints.values_mut() {
            *m = m.split_off(&(seq + 1));
        }
        self.next_seq = self.next_seq.max(seq);
    }

    /// Replaces the state with one proven at `seq` (above what we executed). False when the
    /// bytes do not decode.
    pub(super) fn install_state(
        &mut self,
        seq: Seq,
        proof: Vec<Signed<Checkpoint>>,
        bytes: Vec<u8>,
    ) -> bool {
        type Table<R> = BTreeMap<NodeId, ClientRecord<R>>;
        let Ok((service, clients)) = postcard::from_bytes::<(Vec<u8>, Table<S::Result>)>(&bytes)
        else {
            return false;
        };
        let Some(service) = S::decode(&service) else {
            return false;
        };
        self.service = service;
        self.clients = clients;
        self.executed = seq;
        let clients = &self.clients;
        self.pending
            .retain(|c, r| clients.get(c).is_none_or(|d| d.stamp < r.body.stamp));
        self.set_stable(seq, proof, bytes);
        true
    }

    pub(super) fn on_state(
        &mut self,
        proof: Vec<Signed<Checkpoint>>,
        state: Vec<u8>,
        fx: &mut PbftEffects<S::Op, S::Result>,
    ) {
        let Some(c) = self.rules().checkpoint_ok(&proof) else {
            return;
        };
        if c.seq <= self.executed || digest_of(&state) != c.state {
            return;
        }
        if !self.install_state(c.seq, proof.clone(), state.clone()) {
            return;
        }
        fx.persist(Persist::Stable { proof, state });
        fx.output(Output::Installed { seq: c.seq });
        self.execute(fx);
        self.order_pending(fx);
    }

    pub(super) fn on_committed(
        &mut self,
        certs: Vec<Committed<S::Op>>,
        fx: &mut PbftEffects<S::Op, S::Result>,
    ) {
        for c in certs {
            let Some((_, seq, _)) = self.rules().committed_ok(&c) else {
                continue;
            };
            if seq <= self.executed || !self.in_window(seq) {
                continue;
            }
            let slot = self.slot(seq);
            if slot.committed.is_none() {
                slot.committed = Some(c);
            }
        }
        self.execute(fx);
    }

    /// Tells peers how far we are, and sends again what may have been lost: our view change
    /// while we wait for a view, else our part in every slot not yet executed, and our latest
    /// checkpoint.
    pub(super) fn on_status_timer(&mut self, fx: &mut PbftEffects<S::Op, S::Result>) {
        fx.arm(Timer::Status, self.cfg.status_ticks);
        self.status_round += 1;
        self.executed_at_rounds = [self.executed_at_rounds[1], self.executed];
        let status = Status {
            view: self.view,
            changing: self.changing,
            executed: self.executed,
            stable: self.stable,
        };
        let status = Signed::new(self.signer.as_ref(), status);
        self.broadcast(fx, Message::Status(status), false);
        let me = self.cfg.id;
        if self.changing {
            if let Some(vc) = self.changes.get(&(self.view, me)) {
                self.broadcast(fx, Message::ViewChange(vc.clone()), true);
            }
        } else {
            let primary = self.is_primary();
            let mut again = Vec::new();
            for (_, slot) in self.slots.range_mut(self.executed + 1..) {
                slot.rounds_pending += 1;
                if slot.view != self.view || slot.rounds_pending < 2 {
                    continue;
                }
                if let (true, Some(pp)) = (primary, &slot.pre_prepare) {
                    again.push(Message::PrePrepare(pp.clone(), slot.request.clone()));
                }
                if let Some(p) = slot.prepares.get(&me) {
                    again.push(Message::Prepare(p.clone()));
                }
                if let Some(c) = slot.commits.get(&me) {
                    again.push(Message::Commit(c.clone()));
                }
            }
            for m in again {
                self.broadcast(fx, m, true);
            }
        }
        if let Some(c) = self
            .checkpoints
            .get(&me)
            .and_then(|m| m.last_key_value())
            .map(|(_, c)| c.clone())
        {
            self.broadcast(fx, Message::Checkpoint(c), false);
        }
    }

    /// A peer's status: send what it lacks that we can prove. Everything leaves after the sync
    /// of what this replica recorded so far: a relay of our own view change or new view, or a
    /// certificate holding our commit, must not outrun the records behind it (a restart before
    /// the sync would leave a replica that said what its disk does not hold).
    pub(super) fn on_status(&mut self, s: Signed<Status>, fx: &mut PbftEffects<S::Op, S::Result>) {
        let peer = s.from;
        if peer == self.cfg.id
            || self.answered.get(&peer) == Some(&self.status_round)
            || !self.rules().by_replica(&s)
        {
            return;
        }
        self.answered.insert(peer, self.status_round);
        let theirs = s.body;
        let behind_view = theirs.view < self.view || (theirs.view == self.view && theirs.changing);
        if !self.changing && behind_view {
            if let Some(nv) = &self.new_view {
                let msg = Message::NewView(nv.clone());
                fx.send_after_sync.push(Outgoing { to: peer, msg });
            }
        }
        if theirs.changing {
            // Our view change for the view it waits in, even if we moved on since: without it,
            // that view's primary may lack a quorum for good.
            if let Some(vc) = self.changes.get(&(theirs.view, self.cfg.id)) {
                let msg = Message::ViewChange(vc.clone());
                fx.send_after_sync.push(Outgoing { to: peer, msg });
            }
        }
        // Slots we executed a whole status round ago: a peer whose status is still behind them
        // missed them, rather than sent its status just before it caught up.
        let settled = self.executed_at_rounds[0].min(self.executed);
        let stable_settled = self.stable <= settled;
        if stable_settled && theirs.executed < self.stable {
            let msg = Message::State {
                proof: self.stable_proof.clone(),
                state: self.stable_state.clone(),
            };
            fx.send_after_sync.push(Outgoing { to: peer, msg });
        } else if stable_settled && theirs.stable < self.stable {
            // It executed this far but missed the checkpoint messages (we no longer send ours
            // once stable): the proof's, one by one, make it stable there too.
            for c in &self.stable_proof {
                let msg = Message::Checkpoint(c.clone());
                fx.send_after_sync.push(Outgoing { to: peer, msg });
            }
        }
        if theirs.executed >= self.stable && theirs.executed < settled {
            let certs: Vec<Committed<S::Op>> = self
                .slots
                .range(theirs.executed + 1..=settled)
                .filter_map(|(_, s)| s.committed.clone())
                .collect();
            if !certs.is_empty() {
                fx.send_after_sync.push(Outgoing {
                    to: peer,
                    msg: Message::Committed(certs),
                });
            }
        }
    }
}
