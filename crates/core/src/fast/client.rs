//! A Fast Paxos client: it sends its proposal straight to the acceptors (and to the
//! coordinators, for classic rounds) and sends it again until a learner tells it the decision.

use super::messages::{FastEffects, Message, Output, Timer, Value};
use crate::ballot::NodeId;

/// A client with one value to propose.
#[derive(Clone, Debug)]
pub struct Client<V> {
    id: NodeId,
    value: V,
    /// Acceptors, coordinators and learners: everyone who should hear the proposal.
    targets: Vec<NodeId>,
    retry_ticks: u64,
    decided: Option<V>,
}

impl<V: Value> Client<V> {
    /// A client proposing `value` to `targets`, again every `retry_ticks` until answered.
    pub fn new(id: NodeId, value: V, targets: Vec<NodeId>, retry_ticks: u64) -> Self {
        Client {
            id,
            value,
            targets,
            retry_ticks,
            decided: None,
        }
    }

    /// This client's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The decision it was told.
    pub fn decided(&self) -> Option<&V> {
        self.decided.as_ref()
    }

    /// Sends the proposal.
    pub fn start(&mut self) -> FastEffects<V> {
        let mut fx = FastEffects::new();
        let value = self.value.clone();
        fx.broadcast(&self.targets, Message::Propose { value });
        fx.arm(Timer::Retry, self.retry_ticks);
        fx
    }

    /// Takes the decision from a learner.
    pub fn on_message(&mut self, _from: NodeId, msg: Message<V>) -> FastEffects<V> {
        let mut fx = FastEffects::new();
        if let Message::Chosen { value } = msg {
            if self.decided.is_none() {
                self.decided = Some(value.clone());
                fx.output(Output::Chosen(value));
            }
        }
        fx
    }

    /// Proposes again if still undecided.
    pub fn on_timer(&mut self, kind: Timer) -> FastEffects<V> {
        if kind == Timer::Retry && self.decided.is_none() {
            return self.start();
        }
        FastEffects::new()
    }
}
