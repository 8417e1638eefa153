//! The fault world every simulated protocol runs in: virtual time, one seeded RNG, an event
//! queue, the network with its faults and partitions, a trace and counts. A protocol's
//! simulation owns a `World` of its own event type and adds its nodes, clients and checkers.

use crate::faults::Faults;
use crate::net::{transmit, NetConfig, Partition};
use crate::queue::EventQueue;
use crate::report::Stats;
use crate::trace::{Trace, TraceEvent};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use synod_core::NodeId;

/// Time, randomness, the network and the record of a run.
pub struct World<E> {
    /// The one source of randomness: a run is a pure function of its seed.
    pub rng: ChaCha8Rng,
    /// Virtual time, in ticks.
    pub now: u64,
    /// What happens next.
    pub queue: EventQueue<E>,
    /// Delays and fault rates.
    pub net: NetConfig,
    /// Faults on right now (all off once faults stop).
    pub faults: Faults,
    /// Who cannot hear whom.
    pub partition: Partition,
    /// Events, when tracing.
    pub trace: Trace,
    /// Counts.
    pub stats: Stats,
}

impl<E> World<E> {
    /// A world at time 0.
    pub fn new(seed: u64, net: NetConfig, faults: Faults, trace: bool) -> Self {
        World {
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: 0,
            queue: EventQueue::default(),
            net,
            faults,
            partition: Partition::none(),
            trace: Trace::new(trace),
            stats: Stats::default(),
        }
    }

    /// Schedules `event` after `delay` ticks.
    pub fn after(&mut self, delay: u64, event: E) {
        self.queue.push(self.now + delay, event);
    }

    /// Sends `msg` from `from` to `to` through the faulty network; `wrap` builds the delivery
    /// event. `describe` names the message in the trace (called only when tracing). Returns
    /// whether it was sent on (it may still arrive twice, late, or to a dead node).
    pub fn send<M: Clone>(
        &mut self,
        from: NodeId,
        to: NodeId,
        msg: M,
        describe: impl FnOnce(&M) -> String,
        wrap: impl Fn(M) -> E,
    ) -> bool {
        self.stats.sent += 1;
        let summary = self.trace.on().then(|| describe(&msg));
        let dropped = transmit(
            &mut self.rng,
            &self.net,
            self.faults,
            &self.partition,
            &mut self.queue,
            self.now,
            from,
            to,
            msg,
            wrap,
        );
        if dropped.is_some() {
            self.stats.dropped += 1;
        }
        let t = self.now;
        self.trace.record(|| match dropped {
            Some(reason) => TraceEvent::Drop {
                t,
                from,
                to,
                msg: summary.unwrap_or_default(),
                reason: reason.into(),
            },
            None => TraceEvent::Send {
                t,
                from,
                to,
                msg: summary.unwrap_or_default(),
            },
        });
        dropped.is_none()
    }

    /// Sends over a stream connection (a client's gRPC call): lost or late like any message,
    /// but never delivered twice, since a stream does not duplicate what it carries.
    pub fn send_stream<M: Clone>(
        &mut self,
        from: NodeId,
        to: NodeId,
        msg: M,
        describe: impl FnOnce(&M) -> String,
        wrap: impl Fn(M) -> E,
    ) -> bool {
        let faults = self.faults;
        self.faults.dup = false;
        let sent = self.send(from, to, msg, describe, wrap);
        self.faults = faults;
        sent
    }

    /// Splits the network one of four ways: a random minority, the leader alone, the leader
    /// unable to send (one-way), or two sides joined by one bridge node that hears both.
    pub fn partition_randomly(&mut self, ids: &[NodeId], leader: Option<NodeId>) {
        let n = ids.len();
        let mut shuffled = ids.to_vec();
        shuffled.shuffle(&mut self.rng);
        self.partition = match self.rng.gen_range(0..4) {
            0 => {
                let k = self.rng.gen_range(1..=n.div_ceil(2).max(1));
                let side: BTreeSet<_> = shuffled[..k].iter().copied().collect();
                Partition::split(ids, &side, format!("split {side:?} | rest"))
            }
            1 => {
                let l = leader.unwrap_or(shuffled[0]);
                let side: BTreeSet<_> = [l].into_iter().collect();
                Partition::split(ids, &side, format!("isolate leader {l}"))
            }
            2 => {
                let l = leader.unwrap_or(shuffled[0]);
                Partition::one_way(l, ids, format!("one-way: {l} cannot send"))
            }
            _ => {
                let bridge = shuffled[0];
                let half = (n - 1) / 2;
                let a: BTreeSet<_> = shuffled[1..1 + half].iter().copied().collect();
                Partition::split(ids, &a, format!("bridge {bridge} between {a:?} and rest"))
                    .without_node(bridge)
            }
        };
        self.stats.partitions += 1;
        let (t, label) = (self.now, self.partition.label.clone());
        self.trace.record(|| TraceEvent::Partition { t, label });
    }

    /// Heals the network, if it was split.
    pub fn heal(&mut self) {
        if !self.partition.is_whole() {
            self.partition = Partition::none();
            let t = self.now;
            self.trace.record(|| TraceEvent::Heal { t });
        }
    }
}
