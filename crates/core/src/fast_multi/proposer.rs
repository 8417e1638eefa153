//! A Fast Multi-Paxos proposer with many commands in flight (a server proposing for its own
//! clients): each command goes to every acceptor, again every retry period until it is applied,
//! and is given up after a number of periods.

use super::messages::{FmEffects, Message, Output, Timer};
use crate::ballot::NodeId;
use crate::fast::Value;
use std::collections::BTreeMap;

/// A proposer.
#[derive(Clone, Debug)]
pub struct Proposer<V> {
    acceptors: Vec<NodeId>,
    retry_ticks: u64,
    give_up: u32,
    /// Commands in flight, with the retry periods they have waited.
    pending: BTreeMap<V, u32>,
    armed: bool,
}

impl<V: Value> Proposer<V> {
    /// A proposer to `acceptors` that proposes a command again every `retry_ticks` and gives it
    /// up after `give_up` periods.
    pub fn new(acceptors: Vec<NodeId>, retry_ticks: u64, give_up: u32) -> Self {
        Proposer {
            acceptors,
            retry_ticks: retry_ticks.max(1),
            give_up: give_up.max(1),
            pending: BTreeMap::new(),
            armed: false,
        }
    }

    /// Commands in flight.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Proposes `value`.
    pub fn propose(&mut self, value: V) -> FmEffects<V> {
        let mut fx = FmEffects::new();
        if self.pending.insert(value.clone(), 0).is_none() {
            fx.broadcast(&self.acceptors, Message::Propose { value });
        }
        if !self.armed {
            self.armed = true;
            fx.arm(Timer::Retry, self.retry_ticks);
        }
        fx
    }

    /// `value` was applied: it needs no more proposing. True if it was in flight here.
    pub fn applied(&mut self, value: &V) -> bool {
        self.pending.remove(value).is_some()
    }

    /// Proposes again what waited a whole period, and gives up what waited too many.
    pub fn on_timer(&mut self, kind: Timer) -> FmEffects<V> {
        let mut fx = FmEffects::new();
        if kind != Timer::Retry {
            return fx;
        }
        let give_up = self.give_up;
        let mut gone = Vec::new();
        for (value, waited) in self.pending.iter_mut() {
            *waited += 1;
            if *waited >= give_up {
                gone.push(value.clone());
            } else {
                let value = value.clone();
                fx.broadcast(&self.acceptors, Message::Propose { value });
            }
        }
        for value in gone {
            self.pending.remove(&value);
            fx.output(Output::GaveUp { value });
        }
        self.armed = !self.pending.is_empty();
        if self.armed {
            fx.arm(Timer::Retry, self.retry_ticks);
        }
        fx
    }
}
