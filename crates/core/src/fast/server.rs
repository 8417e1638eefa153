//! Collapsed roles: a server that is an acceptor and a learner, and optionally a coordinator.
//!
//! Messages between the roles of one server that reveal nothing durable (an `Any`, an `Accept`)
//! are handled inside the step. A message a role may only send once its records are durable (a
//! promise, a vote) is not: it leaves the step addressed to the server itself, among the
//! messages held for the sync, and the driver hands it back once the sync is done. Otherwise a
//! coordinator could open a round on the strength of its own acceptor's promise, or a learner
//! count its own acceptor's vote, and a crash before the sync would take them back.

use super::acceptor::{Acceptor, AcceptorConfig, AcceptorState};
use super::coordinator::{Coordinator, CoordinatorConfig};
use super::learner::Learner;
use super::messages::{FastEffects, Message, Persist, Timer, Value};
use crate::ballot::NodeId;
use std::collections::VecDeque;

/// A Fast Paxos server with collapsed roles.
#[derive(Clone, Debug)]
pub struct Server<V> {
    id: NodeId,
    acceptor: Acceptor<V>,
    learner: Learner<V>,
    coordinator: Option<Coordinator<V>>,
}

impl<V: Value> Server<V> {
    /// A server from its acceptor's persisted state; `coordinator` (with the round number it
    /// persisted) makes it a coordinator too. `acceptor.learners` should name every server, so
    /// that each learns from the others' votes.
    pub fn recover(
        acceptor: AcceptorConfig,
        state: AcceptorState<V>,
        clients: Vec<NodeId>,
        query_ticks: u64,
        coordinator: Option<(CoordinatorConfig, u64)>,
    ) -> Self {
        let id = acceptor.id;
        let learner = Learner::new(id, acceptor.quorum.clone(), clients, query_ticks);
        Server {
            id,
            acceptor: Acceptor::recover(acceptor, state),
            learner,
            coordinator: coordinator.map(|(cfg, number)| Coordinator::recover(cfg, number)),
        }
    }

    /// This server's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// What its learner learned.
    pub fn learned(&self) -> Option<&V> {
        self.learner.learned()
    }

    /// Its acceptor's promise and vote.
    pub fn acceptor_state(&self) -> &AcceptorState<V> {
        self.acceptor.state()
    }

    /// Starts the learner's queries and, on a coordinator, its first round.
    pub fn start(&mut self) -> FastEffects<V> {
        let mut fx = self.learner.start();
        if let Some(c) = self.coordinator.as_mut() {
            fx.extend(c.start());
        }
        self.run(Vec::new(), fx)
    }

    /// Handles a message from the network.
    pub fn on_message(&mut self, from: NodeId, msg: Message<V>) -> FastEffects<V> {
        self.run(vec![(from, msg)], FastEffects::new())
    }

    /// Handles a timer of any of its roles.
    pub fn on_timer(&mut self, kind: Timer) -> FastEffects<V> {
        let mut fx = self.learner.on_timer(kind);
        if let Some(c) = self.coordinator.as_mut() {
            fx.extend(c.on_timer(kind));
        }
        self.run(Vec::new(), fx)
    }

    /// Delivers `first`, and every message the roles address to this server that may be
    /// handled at once, until none is left; returns what leaves the step.
    fn run(&mut self, first: Vec<(NodeId, Message<V>)>, initial: FastEffects<V>) -> FastEffects<V> {
        let mut out = FastEffects::new();
        let mut inbox: VecDeque<(NodeId, Message<V>)> = first.into();
        self.route(initial, &mut inbox, &mut out);
        while let Some((from, msg)) = inbox.pop_front() {
            let step = self.dispatch(from, msg);
            self.route(step, &mut inbox, &mut out);
        }
        out
    }

    /// Hands one message to each role that takes it.
    fn dispatch(&mut self, from: NodeId, msg: Message<V>) -> FastEffects<V> {
        let mut step = FastEffects::new();
        let for_acceptor = match msg {
            Message::Accepted { .. } => from != self.id,
            Message::Prepare { .. }
            | Message::Any { .. }
            | Message::Accept { .. }
            | Message::Propose { .. }
            | Message::Query => true,
            _ => false,
        };
        if for_acceptor {
            let mut fx = self.acceptor.on_message(from, msg.clone());
            // The acceptor tells its peers of a vote, never itself: the server's own learner and
            // coordinator hear it once it is durable.
            for record in fx.persist.clone() {
                if let Persist::Voted(vote) = record {
                    fx.send_after_sync(self.id, Message::Accepted { vote });
                }
            }
            step.extend(fx);
        }
        if let Message::Accepted { .. }
        | Message::Propose { .. }
        | Message::Query
        | Message::Chosen { .. } = msg
        {
            step.extend(self.learner.on_message(from, msg.clone()));
        }
        if let Some(c) = self.coordinator.as_mut() {
            if let Message::Promise { .. }
            | Message::Nack { .. }
            | Message::Accepted { .. }
            | Message::Propose { .. } = msg
            {
                // The learner reports the decision; the coordinator's own copy would repeat it.
                let mut fx = c.on_message(from, msg);
                fx.output.clear();
                step.extend(fx);
            }
        }
        step
    }

    /// Queues the messages `fx` addresses to this server that may be handled at once, and adds
    /// everything else (messages to itself held for the sync included) to `out`.
    fn route(
        &mut self,
        mut fx: FastEffects<V>,
        inbox: &mut VecDeque<(NodeId, Message<V>)>,
        out: &mut FastEffects<V>,
    ) {
        inbox.extend(fx.take_sends_to(self.id).into_iter().map(|m| (self.id, m)));
        out.extend(fx);
    }
}
