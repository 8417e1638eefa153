//! A Fast Multi-Paxos proposer (the seed's client): sends each command to every acceptor, one
//! at a time, until a server says where it landed.

use super::messages::{FmEffects, Message, Output, Timer};
use crate::ballot::NodeId;
use crate::fast::Value;
use std::collections::VecDeque;

/// A client with a fixed list of commands.
#[derive(Clone, Debug)]
pub struct Client<V> {
    servers: Vec<NodeId>,
    retry_ticks: u64,
    todo: VecDeque<V>,
    current: Option<V>,
}

impl<V: Value> Client<V> {
    /// A client that proposes `commands` in order to `servers`, again every `retry_ticks`.
    pub fn new(servers: Vec<NodeId>, commands: Vec<V>, retry_ticks: u64) -> Self {
        Client {
            servers,
            retry_ticks,
            todo: commands.into(),
            current: None,
        }
    }

    /// The command in flight, if any.
    pub fn current(&self) -> Option<&V> {
        self.current.as_ref()
    }

    /// True once every command is done.
    pub fn finished(&self) -> bool {
        self.current.is_none() && self.todo.is_empty()
    }

    /// Proposes the first command.
    pub fn start(&mut self) -> FmEffects<V> {
        self.next()
    }

    /// Handles a server's answer.
    pub fn on_message(&mut self, msg: Message<V>) -> FmEffects<V> {
        match msg {
            Message::Done { value, index } if self.current.as_ref() == Some(&value) => {
                self.current = None;
                let mut fx = self.next();
                fx.output(Output::Done { value, index });
                fx
            }
            _ => FmEffects::new(),
        }
    }

    /// Proposes the current command again.
    pub fn on_timer(&mut self, kind: Timer) -> FmEffects<V> {
        let mut fx = FmEffects::new();
        if let (Timer::Retry, Some(value)) = (kind, self.current.clone()) {
            fx.broadcast(&self.servers, Message::Propose { value });
            fx.arm(Timer::Retry, self.retry_ticks);
        }
        fx
    }

    fn next(&mut self) -> FmEffects<V> {
        let mut fx = FmEffects::new();
        if let Some(value) = self.todo.pop_front() {
            self.current = Some(value.clone());
            fx.broadcast(&self.servers, Message::Propose { value });
            fx.arm(Timer::Retry, self.retry_ticks);
        }
        fx
    }
}
