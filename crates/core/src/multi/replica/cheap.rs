//! The leader's side of Cheap Paxos (docs/protocol.md, "Cheap Paxos").
//!
//! An active auxiliary counts in quorums like any voter; what makes the cluster cheap is whom
//! the leader sends work to. Accepts, prepares, read probes and commit points go to the mains
//! (and learners) only. An auxiliary is added to a slot's retransmission once the slot is two
//! heartbeat rounds old without a quorum (so at least one whole interval has passed), to every
//! accept and retransmitted read probe while some main has been silent for two rounds, and to a
//! candidate's retransmitted prepares. None of this touches safety: a Paxos leader may send to
//! any superset of a quorum.
//!
//! To know which mains are up in an idle cluster, mains answer each heartbeat with their
//! commit point (`Progress`, as learners do). A main silent for `shrink_beats` is made a
//! learner through the log, with the auxiliaries made inactive if the remaining mains are no
//! longer a quorum with them voting; the change, and the slots up to where it takes effect, are
//! chosen with the auxiliaries' votes. A learner that has caught up is made a main again, with
//! the auxiliaries made active if the shape allows it. And an auxiliary that voted is told to
//! forget its votes below what every main has learned.

use super::{Fx, Replica, Role};
use crate::ballot::{Ballot, NodeId};
use crate::multi::membership::{
    ChangeId, ConfigChange, Configuration, MemberOp, Role as MemberRole,
};
use crate::multi::messages::{Message, Slot, Value};
use crate::multi::state_machine::StateMachine;
use crate::multi::Config;

/// The sequence number of the changes a leader makes on its own: no ticket waits for them.
pub(super) const CHEAP_SEQ: u64 = u64::MAX;

/// Heartbeat rounds without a word after which a main is suspected and auxiliaries help out.
const SUSPECT_BEATS: u64 = 2;

impl<S: StateMachine> Replica<S> {
    /// Heartbeat rounds since the leader last heard main `m` (all of them if never).
    fn silent_for(&self, m: NodeId) -> u64 {
        let Role::Leader(a) = &self.role else {
            return 0;
        };
        let heard = a.progress.get(&m).map_or(0, |(_, beat)| *beat);
        a.beats.saturating_sub(heard)
    }

    /// True while some main of `config` has been silent for two rounds: its auxiliaries get
    /// everything until the main answers again or the slots are governed without it.
    fn mains_missing(&self, config: &Configuration) -> bool {
        config.active_auxiliaries().next().is_some()
            && config
                .mains()
                .any(|m| m != self.cfg.id && self.silent_for(m) >= SUSPECT_BEATS)
    }

    /// The auxiliaries to add to an accept for `slot` proposed in heartbeat round `beat`
    /// (`None` for a first send).
    pub(super) fn aux_for_accept(&self, slot: Slot, beat: Option<u64>) -> Vec<NodeId> {
        let Role::Leader(a) = &self.role else {
            return Vec::new();
        };
        let stale = beat.is_some_and(|b| a.beats >= b + SUSPECT_BEATS);
        let config = self.learner.membership().at(slot);
        if !stale && !self.mains_missing(config) {
            return Vec::new();
        }
        config.active_auxiliaries().collect()
    }

    /// Sends auxiliaries `aux` an accept of `value`, a large batch as its digest
    /// ([`Value::for_auxiliary`]): an auxiliary never applies what it votes for. A digest
    /// leaves only after the sync that makes this step's records durable, so the leader's own
    /// vote holds the value before any auxiliary can vote for its hash: a leader that died
    /// mid-step must not leave a digest that no main can resolve.
    /// `cfg` is this replica's, passed apart so that a caller may hold its role borrowed.
    pub(super) fn send_to_auxiliaries(
        cfg: &Config,
        aux: &[NodeId],
        (ballot, slot, commit): (Ballot, Slot, Slot),
        value: &Value<S::Command>,
        fx: &mut Fx<S>,
    ) {
        if aux.is_empty() {
            return;
        }
        let value = value.for_auxiliary(cfg.aux_digest_min);
        let digest = value.is_digest();
        let msg = Message::Accept {
            ballot,
            slot,
            value,
            commit,
        };
        for &m in aux.iter().filter(|&&m| m != cfg.id) {
            match digest {
                true => fx.send_after_sync(m, msg.clone()),
                false => fx.send(m, msg.clone()),
            }
        }
    }

    /// The auxiliaries to add to a retransmitted read probe: those of the configuration at
    /// `commit` (one governs from there on while reads are served), while one of its mains is
    /// missing. With both mains up their acknowledgements are on the way: a read round in
    /// flight at each heartbeat under a steady read load must not wake the auxiliary.
    pub(super) fn aux_for_reads(&self, commit: Slot) -> Vec<NodeId> {
        let config = self.learner.membership().at(commit);
        match self.mains_missing(config) {
            true => config.active_auxiliaries().collect(),
            false => Vec::new(),
        }
    }

    /// The auxiliaries of the configurations over `from..to`: for a candidate's retransmitted
    /// prepares.
    pub(super) fn aux_over(&self, from: Slot, to: Slot) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = (self.learner.membership().over(from, to))
            .flat_map(|c| c.active_auxiliaries())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// True if `id` is an auxiliary in some configuration this replica keeps.
    pub(super) fn is_auxiliary(&self, id: NodeId) -> bool {
        (self.learner.membership().epochs())
            .any(|(_, c)| c.role(id).is_some_and(MemberRole::is_auxiliary))
    }

    /// A main's or learner's answer to a heartbeat in a Cheap Paxos cluster.
    pub(super) fn reports_progress(&self) -> bool {
        let latest = self.learner.membership().latest();
        match latest.role(self.cfg.id) {
            Some(MemberRole::Learner) => true,
            Some(MemberRole::Voter) => latest.has_auxiliaries(),
            _ => false,
        }
    }

    /// Notes that auxiliary `from` voted in `slot`: it holds a vote to forget later.
    pub(super) fn note_aux_vote(&mut self, from: NodeId, slot: Slot) {
        if !self.is_auxiliary(from) {
            return;
        }
        if let Role::Leader(a) = &mut self.role {
            let held = a.aux_held.entry(from).or_insert(0);
            *held = (*held).max(slot + 1);
        }
    }

    /// Once per heartbeat round: tells auxiliaries what they may forget, and shrinks or grows
    /// the configuration.
    pub(super) fn cheap_beat(&mut self, fx: &mut Fx<S>) {
        if !self.learner.membership().latest().has_auxiliaries() {
            return;
        }
        self.tell_aux_to_forget(fx);
        self.reshape(fx);
    }

    /// What every main of the latest configuration has learned, as far as the leader knows.
    fn learned_by_all_mains(&self) -> Option<Slot> {
        let Role::Leader(a) = &self.role else {
            return None;
        };
        let latest = self.learner.membership().latest();
        latest
            .mains()
            .map(|m| match m == self.cfg.id {
                true => Some(self.learner.commit()),
                false => a.progress.get(&m).map(|(c, _)| *c),
            })
            .try_fold(Slot::MAX, |low, c| c.map(|c| low.min(c)))
    }

    fn tell_aux_to_forget(&mut self, fx: &mut Fx<S>) {
        let Some(upto) = self.learned_by_all_mains() else {
            return;
        };
        let Role::Leader(a) = &mut self.role else {
            return;
        };
        let ballot = a.ballot;
        // Told once it may forget every vote it cast in this ballot (a lost message leaves a
        // few votes behind until it next votes: a handful of slots, never its whole history).
        a.aux_held.retain(|&aux, held| {
            if upto > 0 {
                fx.send(
                    aux,
                    Message::Heartbeat {
                        ballot,
                        commit: upto,
                    },
                );
            }
            upto < *held
        });
    }

    /// Proposes taking a silent main out of the quorum, or putting a caught-up learner back,
    /// when no other change is queued or in flight.
    fn reshape(&mut self, fx: &mut Fx<S>) {
        let Role::Leader(a) = &self.role else {
            return;
        };
        if a.handover.is_some() || a.change_at.is_some() || !a.changes.is_empty() {
            return;
        }
        let shrink_beats = self.shrink_beats();
        let latest = self.learner.membership().latest();
        let auxes: Vec<NodeId> = latest
            .iter()
            .filter(|(_, r, _)| r.is_auxiliary())
            .map(|(id, _, _)| id)
            .collect();
        let set = |id, role| MemberOp::SetRole { id, role };
        let aux_ops = |active: bool| -> Vec<MemberOp> {
            (auxes.iter())
                .filter(|&&x| latest.role(x) != Some(MemberRole::Auxiliary { active }))
                .map(|&x| set(x, MemberRole::Auxiliary { active }))
                .collect()
        };
        let silent = latest
            .mains()
            .find(|&m| m != self.cfg.id && self.silent_for(m) >= shrink_beats);
        let commit = self.learner.commit();
        let ready = self.cfg.catch_up_batch as u64;
        let caught_up = latest
            .iter()
            .filter(|(_, r, _)| *r == MemberRole::Learner)
            .map(|(id, _, _)| id)
            .find(|l| {
                a.progress.get(l).is_some_and(|(c, beat)| {
                    a.beats.saturating_sub(*beat) < SUSPECT_BEATS
                        && commit.saturating_sub(*c) <= ready
                })
            });
        // Keep the auxiliaries voting if the shape allows it (more failures survived), else
        // make them inactive (shrinking) or leave them as they are (growing).
        let (first, fallback) = match (silent, caught_up) {
            (Some(m), _) => {
                let demote = vec![set(m, MemberRole::Learner)];
                let with = [demote.clone(), aux_ops(true)].concat();
                (with, [demote, aux_ops(false)].concat())
            }
            (None, Some(l)) => {
                let promote = vec![set(l, MemberRole::Voter)];
                ([promote.clone(), aux_ops(true)].concat(), promote)
            }
            (None, None) => return,
        };
        let m = self.learner.membership();
        let expect_epoch = m.latest().epoch();
        let id = ChangeId {
            origin: self.cfg.id,
            seq: CHEAP_SEQ,
        };
        let fits = |ops: &Vec<MemberOp>| {
            let change = ConfigChange {
                id,
                expect_epoch,
                ops: ops.clone(),
            };
            m.check(&change).is_ok()
        };
        let Some(ops) = [first, fallback].into_iter().find(fits) else {
            return;
        };
        if let Role::Leader(a) = &mut self.role {
            a.changes.push_back((id, ops));
        }
        self.propose_next_change(fx);
    }

    /// Heartbeat rounds of silence after which a main is taken out of the quorum: three of the
    /// longest election timeouts, so that a main that restarts is not shrunk away.
    fn shrink_beats(&self) -> u64 {
        let beat = self.cfg.heartbeat_ticks.max(1);
        (3 * self.cfg.election_ticks.1)
            .div_ceil(beat)
            .max(SUSPECT_BEATS + 2)
    }
}
