//! A Generalized Paxos client: it proposes its commands one at a time, to the acceptors and the
//! leaders, and again until a learner says the command is learned.

use super::messages::{GenEffects, Message, Output, Timer};
use super::relation::{Command, Op};
use crate::ballot::NodeId;

/// A client with a list of operations to run in order.
#[derive(Clone, Debug)]
pub struct Client {
    id: NodeId,
    ops: Vec<Op>,
    next: usize,
    targets: Vec<NodeId>,
    retry_ticks: u64,
}

impl Client {
    /// A client running `ops`, proposing each to `targets`.
    pub fn new(id: NodeId, ops: Vec<Op>, targets: Vec<NodeId>, retry_ticks: u64) -> Self {
        Client {
            id,
            ops,
            next: 0,
            targets,
            retry_ticks,
        }
    }

    /// The command it waits for, if any.
    pub fn current(&self) -> Option<Command> {
        self.ops.get(self.next).map(|op| Command {
            client: self.id,
            seq: self.next as u64,
            op: op.clone(),
        })
    }

    /// True once every command is learned.
    pub fn finished(&self) -> bool {
        self.next >= self.ops.len()
    }

    /// Proposes the current command.
    pub fn start(&mut self) -> GenEffects {
        let mut fx = GenEffects::new();
        if let Some(cmd) = self.current() {
            fx.broadcast(&self.targets, Message::Propose { cmd });
            fx.arm(Timer::Retry, self.retry_ticks);
        }
        fx
    }

    /// Takes a learner's word that a command is learned.
    pub fn on_message(&mut self, _from: NodeId, msg: Message) -> GenEffects {
        if let Message::Done { cmd } = msg {
            if Some(&cmd) == self.current().as_ref() {
                self.next += 1;
                let mut fx = self.start();
                fx.output(Output::Done(cmd));
                return fx;
            }
        }
        GenEffects::new()
    }

    /// Proposes again.
    pub fn on_timer(&mut self, kind: Timer) -> GenEffects {
        if kind == Timer::Retry {
            return self.start();
        }
        GenEffects::new()
    }
}
