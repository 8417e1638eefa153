//! A Fast Multi-Paxos server: an acceptor, a learner and a leader in one process, applying the
//! log's commands in order and answering their proposers.
//!
//! As in [`crate::fast::Server`], a message between the roles that reveals nothing durable is
//! handled inside the step, while one a role may send only once its records are durable (a
//! promise, a vote, a `Prepare` after its round number) leaves the step addressed to the server
//! itself among the messages held for the sync, and the driver hands it back afterwards.

use super::acceptor::{Acceptor, AcceptorConfig, AcceptorState};
use super::leader::{Leader, LeaderConfig};
use super::learner::Learner;
use super::messages::{Entry, FmEffects, Message, Output, Persist, Slot, Timer};
use crate::ballot::NodeId;
use crate::fast::{Round, Value};
use std::collections::{BTreeMap, VecDeque};

/// A Fast Multi-Paxos server.
#[derive(Clone, Debug)]
pub struct Server<V> {
    id: NodeId,
    acceptor: Acceptor<V>,
    learner: Learner<V>,
    leader: Leader<V>,
    /// Each distinct command applied, with its index.
    applied: BTreeMap<V, u64>,
    /// The next slot to apply.
    next_apply: Slot,
    /// Who proposed a command not yet applied here, to be told when it is.
    proposers: BTreeMap<V, NodeId>,
    /// Whether it tells proposers (off where every server answers its own clients).
    answers: bool,
}

impl<V: Value> Server<V> {
    /// A server from its acceptor's persisted state and its leader's persisted round number.
    /// `acceptor.learners` should name every server.
    pub fn recover(
        acceptor: AcceptorConfig,
        state: AcceptorState<V>,
        leader: LeaderConfig,
        number: u64,
        query_ticks: u64,
    ) -> Self {
        let id = acceptor.id;
        let peers = acceptor.learners.clone();
        let learner = Learner::new(id, acceptor.quorum.clone(), peers, query_ticks);
        Server {
            id,
            acceptor: Acceptor::recover(acceptor, state),
            learner,
            leader: Leader::recover(leader, number),
            applied: BTreeMap::new(),
            next_apply: 0,
            proposers: BTreeMap::new(),
            answers: true,
        }
    }

    /// A server that never sends `Done`: its driver answers its own clients from
    /// [`Output::Applied`], and proposals from peers need no answer.
    pub fn quiet(mut self) -> Self {
        self.answers = false;
        self
    }

    /// This server's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Its acceptor's promise and votes.
    pub fn acceptor_state(&self) -> &AcceptorState<V> {
        self.acceptor.state()
    }

    /// The round it leads, if it does.
    pub fn leading(&self) -> Option<Round> {
        self.leader.leading()
    }

    /// How many distinct commands it applied.
    pub fn applied(&self) -> u64 {
        self.applied.len() as u64
    }

    /// Every slot below this one is known chosen here.
    pub fn learned_through(&self) -> Slot {
        self.learner.prefix()
    }

    /// Every slot below this one is applied.
    pub fn applied_through(&self) -> Slot {
        self.next_apply
    }

    /// Starts the learner's queries and the election timer.
    pub fn start(&mut self) -> FmEffects<V> {
        let mut fx = self.learner.start();
        fx.extend(self.leader.start());
        self.run(Vec::new(), fx)
    }

    /// Handles a message from the network.
    pub fn on_message(&mut self, from: NodeId, msg: Message<V>) -> FmEffects<V> {
        self.run(vec![(from, msg)], FmEffects::new())
    }

    /// Handles a timer of any of its roles.
    pub fn on_timer(&mut self, kind: Timer) -> FmEffects<V> {
        let fx = match kind {
            Timer::Query => self.learner.on_timer(kind),
            Timer::Election | Timer::Heartbeat => self.leader.on_timer(kind, &self.learner),
            Timer::Retry => FmEffects::new(),
        };
        self.run(Vec::new(), fx)
    }

    /// Delivers `first`, and every message the roles address to this server that may be
    /// handled at once, until none is left; returns what leaves the step.
    fn run(&mut self, first: Vec<(NodeId, Message<V>)>, initial: FmEffects<V>) -> FmEffects<V> {
        let mut out = FmEffects::new();
        let mut inbox: VecDeque<(NodeId, Message<V>)> = first.into();
        self.route(initial, &mut inbox, &mut out);
        while let Some((from, msg)) = inbox.pop_front() {
            let step = self.dispatch(from, msg);
            self.route(step, &mut inbox, &mut out);
        }
        out
    }

    fn dispatch(&mut self, from: NodeId, msg: Message<V>) -> FmEffects<V> {
        let mut step = FmEffects::new();
        match &msg {
            Message::Propose { value } => {
                // Applied already: no slot for it again; its proposer hears where it is.
                if let Some(&index) = self.applied.get(value) {
                    if self.answers {
                        let value = value.clone();
                        step.send(from, Message::Done { value, index });
                    }
                    return step;
                }
                if self.answers {
                    self.proposers.insert(value.clone(), from);
                }
                // Proposed again after its slot here went to another command: a new slot.
                let lost = self
                    .acceptor
                    .slot_of(value)
                    .and_then(|s| self.learner.chosen(s));
                if lost.is_some_and(|e| *e != Entry::Command(value.clone())) {
                    self.acceptor.release(value);
                }
            }
            Message::Prepare { round, .. } | Message::Accept { round, .. } => {
                self.heard(from, *round, &mut step);
            }
            Message::Any { round, commit, .. } => {
                self.heard(from, *round, &mut step);
                self.learner.note_commit(*commit);
                // A leader that missed decisions would never learn of them otherwise: nobody
                // but it announces a commit point.
                if from != self.id && *commit < self.learner.prefix() {
                    step.extend(self.learner.tell(from, *commit));
                }
            }
            _ => {}
        }
        match msg {
            Message::Propose { .. }
            | Message::Prepare { .. }
            | Message::Any { .. }
            | Message::Accept { .. } => step.extend(self.acceptor_step(from, msg)),
            Message::Promise { .. } | Message::Nack { .. } => {
                step.extend(self.leader.on_message(from, msg, &self.learner));
            }
            Message::Accepted { .. } | Message::Chosen { .. } | Message::Query { .. } => {
                // A peer's vote also goes to the acceptor, for uncoordinated recovery.
                if from != self.id && matches!(msg, Message::Accepted { .. }) {
                    step.extend(self.acceptor_step(from, msg.clone()));
                }
                let (fx, collided) = self.learner.on_message(from, msg);
                let learned = fx.output.iter().any(|o| matches!(o, Output::Chosen { .. }));
                step.extend(fx);
                if let Some((_, round)) = collided {
                    step.extend(self.leader.on_collision(round, &self.learner));
                }
                if learned {
                    self.apply(&mut step);
                }
            }
            Message::Done { .. } => {}
        }
        step
    }

    /// Hands `msg` to the acceptor. It tells its peers of a vote, never itself: the server's
    /// own learner hears it once it is durable, as a message held for the sync.
    fn acceptor_step(&mut self, from: NodeId, msg: Message<V>) -> FmEffects<V> {
        let mut fx = self.acceptor.on_message(from, msg);
        for record in fx.persist.clone() {
            if let Persist::Voted { slot, vote } = record {
                fx.send_after_sync(self.id, Message::Accepted { slot, vote });
            }
        }
        fx
    }

    /// Another node's round reached this node: a sign of a live leader, unless the acceptor
    /// refuses it.
    fn heard(&mut self, from: NodeId, round: Round, fx: &mut FmEffects<V>) {
        if from != self.id && round >= self.acceptor.state().promised {
            fx.extend(self.leader.heard(round));
        }
    }

    /// Applies the newly contiguous chosen slots: each command once, at its first slot.
    fn apply(&mut self, fx: &mut FmEffects<V>) {
        while let Some(entry) = self.learner.chosen(self.next_apply) {
            if let Entry::Command(value) = entry {
                if !self.applied.contains_key(value) {
                    let index = self.applied.len() as u64;
                    let value = value.clone();
                    self.applied.insert(value.clone(), index);
                    fx.output(Output::Applied {
                        index,
                        value: value.clone(),
                    });
                    if let Some(to) = self.proposers.remove(&value) {
                        fx.send(to, Message::Done { value, index });
                    }
                }
            }
            self.next_apply += 1;
        }
    }

    /// Queues the messages `fx` addresses to this server that may be handled at once, and adds
    /// everything else (messages to itself held for the sync included) to `out`.
    fn route(
        &mut self,
        mut fx: FmEffects<V>,
        inbox: &mut VecDeque<(NodeId, Message<V>)>,
        out: &mut FmEffects<V>,
    ) {
        inbox.extend(fx.take_sends_to(self.id).into_iter().map(|m| (self.id, m)));
        out.extend(fx);
    }
}
