//! The world of the single-instance protocols (Basic, Fast and Generalized Paxos): processes
//! that each play one role and keep a disk, on the shared fault world.
//!
//! The harness owns what every such protocol's simulation needs and nothing protocol-specific:
//! booting a process from its disk, starting it a little later, timers (one deadline per kind,
//! dropped by a crash), crashes (some in the middle of a step, keeping only part of its
//! records and sending nothing), restarts, partitions and the end of faults, and the liveness
//! deadline. A protocol is a [`Cast`]: how to boot each process, how to hand it a message or a
//! timer, what a persisted record means for its disk and for ground truth, and what its
//! outputs must agree with.
//!
//! Every message carries the number of hops since a client's request when it descends from one,
//! so a protocol can count message delays from runs.

use crate::faults::Faults;
use crate::report::{RunReport, Violation};
use crate::trace::TraceEvent;
use crate::world::World;
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::hash::Hash;
use std::ops::Range;
use synod_core::{Effects, NodeId};

/// The effects of one step of a cast member.
pub type CastEffects<C> =
    Effects<<C as Cast>::Msg, <C as Cast>::Record, <C as Cast>::Out, <C as Cast>::Timer>;

/// A protocol's side of the single-instance world.
pub trait Cast {
    /// Messages.
    type Msg: Clone + Debug;
    /// Persisted records.
    type Record;
    /// Outputs.
    type Out;
    /// Timer kinds.
    type Timer: Copy + Eq + Hash + Debug;
    /// A process's durable state.
    type Disk: Default;
    /// A running process.
    type Proc;

    /// Every process, in a stable order.
    fn ids(&self) -> Vec<NodeId>;
    /// Boots `id` from what its disk holds.
    fn boot(&mut self, id: NodeId, disk: &Self::Disk) -> Self::Proc;
    /// When, after booting, `id` starts.
    fn start_delay(&self, id: NodeId) -> Range<u64>;
    /// Starts a booted process, and the hop count its first messages carry (`Some(1)` for a
    /// client's request).
    fn start(proc: &mut Self::Proc) -> (CastEffects<Self>, Option<u32>);
    /// Hands a process a message.
    fn deliver(proc: &mut Self::Proc, from: NodeId, msg: Self::Msg) -> CastEffects<Self>;
    /// Fires a process's timer.
    fn timer(proc: &mut Self::Proc, kind: Self::Timer) -> CastEffects<Self>;
    /// `record` of `id` became durable: update `disk`, and check it against ground truth.
    fn persisted(
        &mut self,
        id: NodeId,
        record: &Self::Record,
        disk: &mut Self::Disk,
        now: u64,
    ) -> Result<(), Violation>;
    /// `id` reported `out`, `hops` message delays after a client's request (when it descends
    /// from one): check it.
    fn output(
        &mut self,
        id: NodeId,
        proc: &Self::Proc,
        out: Self::Out,
        hops: Option<u32>,
        now: u64,
    ) -> Result<(), Violation>;
    /// True when `proc`'s handling of `msg` begins a new client request (a client that hears
    /// its command is done proposes the next): its messages then count hops from 1 again.
    fn starts_request(_proc: &Self::Proc, _msg: &Self::Msg) -> bool {
        false
    }
    /// What an output says was decided, for the trace (`None`: not a decision).
    fn decision(_out: &Self::Out) -> Option<String> {
        None
    }
    /// The log slot a decision is in (single-decree protocols have only slot 0).
    fn decision_slot(_out: &Self::Out) -> u64 {
        0
    }
    /// True when the fault world may crash `id` (clients whose history is checked may not: a
    /// client that forgot what it finished would do it again).
    fn may_crash(&self, _id: NodeId) -> bool {
        true
    }
    /// `id` booted again: forget what it claimed before.
    fn rebooted(&mut self, id: NodeId);
    /// True once everything the protocol promises after faults stop has happened.
    fn finished(&self) -> bool;
    /// What is still missing, for the liveness violation.
    fn missing(&self) -> String;
    /// The process partitions single out as "the leader" (isolated, or one-way).
    fn leader(&self) -> Option<NodeId> {
        None
    }
}

/// The agreement check of a single-decree protocol: `node` says `value` is chosen, and ground
/// truth (computed from every persisted vote) must have chosen exactly that.
pub fn learned_what_was_chosen(
    node: NodeId,
    value: &str,
    chosen: Option<&str>,
    now: u64,
) -> Result<(), Violation> {
    if chosen == Some(value) {
        return Ok(());
    }
    Err(Violation {
        check: "agreement",
        at: now,
        detail: format!("node {node} learned {value}, but ground truth says {chosen:?}"),
    })
}

/// The harness's timing.
#[derive(Clone, Debug)]
pub struct Timing {
    /// Faults stop at this time.
    pub fault_until: u64,
    /// Once faults stop, the protocol must finish within this long.
    pub liveness_bound: u64,
    /// Probability that a crash strikes in the middle of a step.
    pub crash_mid_step: f64,
}

struct Node<C: Cast> {
    proc: Option<C::Proc>,
    disk: C::Disk,
    epoch: u64,
    timers: HashMap<C::Timer, u64>,
    dying: bool,
}

/// What happens next.
pub enum Event<M, T> {
    /// A message arrives.
    Deliver {
        /// Sender.
        from: NodeId,
        /// Receiver.
        to: NodeId,
        /// The message.
        msg: M,
        /// Hops since a client's request, if it descends from one.
        hops: Option<u32>,
    },
    /// A timer fires (if still armed for this boot).
    Timer {
        /// The process.
        node: NodeId,
        /// Which timer.
        kind: T,
        /// The boot it was armed in.
        epoch: u64,
    },
    /// A process starts.
    Start {
        /// The process.
        node: NodeId,
    },
    /// Some live process crashes.
    Crash,
    /// A crashed process comes back.
    Restart {
        /// The process.
        node: NodeId,
    },
    /// The network splits.
    Partition,
    /// The network heals.
    Heal,
    /// Faults stop; every process comes back.
    FaultsEnd,
}

/// One run of a cast on the fault world.
pub struct CastSim<C: Cast> {
    /// The protocol's side.
    pub cast: C,
    /// The shared fault world.
    pub world: World<Event<C::Msg, C::Timer>>,
    timing: Timing,
    seed: u64,
    nodes: BTreeMap<NodeId, Node<C>>,
}

impl<C: Cast> CastSim<C> {
    /// Boots every process and schedules the first faults.
    pub fn new(cast: C, world: World<Event<C::Msg, C::Timer>>, timing: Timing, seed: u64) -> Self {
        let mut sim = CastSim {
            cast,
            world,
            timing,
            seed,
            nodes: BTreeMap::new(),
        };
        for id in sim.cast.ids() {
            sim.nodes.insert(
                id,
                Node {
                    proc: None,
                    disk: C::Disk::default(),
                    epoch: 0,
                    timers: HashMap::new(),
                    dying: false,
                },
            );
            sim.boot(id);
        }
        if sim.world.faults.crash {
            let at = sim.world.rng.gen_range(5..100);
            sim.world.queue.push(at, Event::Crash);
        }
        if sim.world.faults.partition {
            let at = sim.world.rng.gen_range(5..100);
            sim.world.queue.push(at, Event::Partition);
        }
        sim.world
            .queue
            .push(sim.timing.fault_until, Event::FaultsEnd);
        sim
    }

    fn boot(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("node");
        node.proc = Some(self.cast.boot(id, &node.disk));
        self.cast.rebooted(id);
        let delay = self.cast.start_delay(id);
        let at = self.world.now + self.world.rng.gen_range(delay);
        self.world.queue.push(at, Event::Start { node: id });
    }

    /// Runs to completion or to the first violation; the report's counts are the world's.
    pub fn run(&mut self) -> (RunReport, Vec<TraceEvent>) {
        let violation = self.run_inner().err();
        let mut stats = std::mem::take(&mut self.world.stats);
        stats.end_time = self.world.now;
        let report = RunReport {
            seed: self.seed,
            stats,
            violation,
        };
        (report, self.world.trace.take())
    }

    fn run_inner(&mut self) -> Result<(), Violation> {
        let deadline = self.timing.fault_until + self.timing.liveness_bound;
        while let Some((at, ev)) = self.world.queue.pop() {
            self.world.now = at;
            self.world.stats.steps += 1;
            self.step(ev)?;
            if self.world.now >= self.timing.fault_until && self.cast.finished() {
                return Ok(());
            }
            if self.world.now > deadline {
                break;
            }
        }
        Err(Violation {
            check: "liveness",
            at: self.world.now,
            detail: format!(
                "faults stopped at t={} but within {} ticks {}",
                self.timing.fault_until,
                self.timing.liveness_bound,
                self.cast.missing()
            ),
        })
    }

    fn step(&mut self, ev: Event<C::Msg, C::Timer>) -> Result<(), Violation> {
        match ev {
            Event::Deliver {
                from,
                to,
                msg,
                hops,
            } => {
                let Some(proc) = self.nodes.get_mut(&to).and_then(|n| n.proc.as_mut()) else {
                    self.world.stats.dropped += 1;
                    return Ok(());
                };
                self.world.stats.delivered += 1;
                let hops = if C::starts_request(proc, &msg) {
                    Some(1)
                } else {
                    hops.map(|h| h + 1)
                };
                let fx = C::deliver(proc, from, msg);
                self.apply(to, fx, hops)?;
            }
            Event::Timer { node, kind, epoch } => {
                let n = self.nodes.get_mut(&node).expect("node");
                if n.epoch != epoch || n.timers.get(&kind) != Some(&self.world.now) {
                    return Ok(());
                }
                n.timers.remove(&kind);
                let Some(proc) = n.proc.as_mut() else {
                    return Ok(());
                };
                let fx = C::timer(proc, kind);
                self.apply(node, fx, None)?;
            }
            Event::Start { node } => {
                let Some(proc) = self.nodes.get_mut(&node).and_then(|n| n.proc.as_mut()) else {
                    return Ok(());
                };
                let (fx, hops) = C::start(proc);
                self.apply(node, fx, hops)?;
            }
            Event::Crash => {
                if self.world.faults.crash && self.world.now < self.timing.fault_until {
                    let live: Vec<NodeId> = self
                        .nodes
                        .iter()
                        .filter(|(&id, n)| n.proc.is_some() && self.cast.may_crash(id))
                        .map(|(&id, _)| id)
                        .collect();
                    if let Some(&v) = live.choose(&mut self.world.rng) {
                        if self.world.rng.gen_bool(self.timing.crash_mid_step) {
                            self.nodes.get_mut(&v).expect("node").dying = true;
                        } else {
                            self.crash(v, false);
                        }
                    }
                    let at = self.world.now + self.world.rng.gen_range(20..150);
                    self.world.queue.push(at, Event::Crash);
                }
            }
            Event::Restart { node } => {
                if self.nodes[&node].proc.is_none() {
                    self.world.trace.record(|| TraceEvent::Restart {
                        t: self.world.now,
                        node,
                    });
                    self.boot(node);
                }
            }
            Event::Partition => {
                if self.world.faults.partition && self.world.now < self.timing.fault_until {
                    let ids = self.cast.ids();
                    let leader = self.cast.leader();
                    self.world.partition_randomly(&ids, leader);
                    let at = self.world.rng.gen_range(20..200);
                    self.world.after(at, Event::Heal);
                }
            }
            Event::Heal => {
                self.world.heal();
                if self.world.faults.partition && self.world.now < self.timing.fault_until {
                    let at = self.world.rng.gen_range(10..100);
                    self.world.after(at, Event::Partition);
                }
            }
            Event::FaultsEnd => {
                self.world.faults = Faults::NONE;
                self.world.heal();
                for id in self.cast.ids() {
                    self.nodes.get_mut(&id).expect("node").dying = false;
                    if self.nodes[&id].proc.is_none() {
                        self.world.trace.record(|| TraceEvent::Restart {
                            t: self.world.now,
                            node: id,
                        });
                        self.boot(id);
                    }
                }
            }
        }
        Ok(())
    }

    fn crash(&mut self, id: NodeId, mid_step: bool) {
        let node = self.nodes.get_mut(&id).expect("node");
        node.proc = None;
        node.epoch += 1;
        node.timers.clear();
        node.dying = false;
        self.world.stats.crashes += 1;
        self.world.trace.record(|| TraceEvent::Crash {
            t: self.world.now,
            node: id,
            mid_step,
        });
        let at = self.world.now + self.world.rng.gen_range(10..150);
        self.world.queue.push(at, Event::Restart { node: id });
    }

    /// Carries out one step's effects: records first, then timers, outputs, and messages. A
    /// process dying in the middle of the step keeps only a prefix of its records, and of its
    /// messages only those free to leave before the sync go out. Otherwise every record of the
    /// step is durable before anything else of it happens here, so messages held for the sync
    /// leave with the rest.
    fn apply(
        &mut self,
        id: NodeId,
        fx: CastEffects<C>,
        hops: Option<u32>,
    ) -> Result<(), Violation> {
        let dying = std::mem::take(&mut self.nodes.get_mut(&id).expect("node").dying);
        let keep = if dying {
            self.world.rng.gen_range(0..=fx.persist.len())
        } else {
            fx.persist.len()
        };
        let now = self.world.now;
        for record in &fx.persist[..keep] {
            let node = self.nodes.get_mut(&id).expect("node");
            self.cast.persisted(id, record, &mut node.disk, now)?;
        }
        if dying {
            // Messages free to leave at once may be out before the sync that the crash cut
            // short; those held for it never leave.
            for o in fx.send {
                if o.to != id {
                    self.transmit(id, o.to, o.msg, hops);
                }
            }
            self.crash(id, true);
            return Ok(());
        }
        for t in fx.timers {
            let node = self.nodes.get_mut(&id).expect("node");
            let at = now + t.after;
            node.timers.insert(t.kind, at);
            let epoch = node.epoch;
            let ev = Event::Timer {
                node: id,
                kind: t.kind,
                epoch,
            };
            self.world.queue.push(at, ev);
        }
        for out in fx.output {
            if let Some(value) = C::decision(&out) {
                let (node, slot) = (id, C::decision_slot(&out));
                self.world.trace.record(|| TraceEvent::Chosen {
                    t: now,
                    node,
                    slot,
                    value,
                });
            }
            let proc = self.nodes[&id].proc.as_ref().expect("a live process");
            self.cast
                .output(id, proc, out, hops.map(|h| h.saturating_sub(1)), now)?;
        }
        for o in fx.send.into_iter().chain(fx.send_after_sync) {
            if o.to == id {
                // A process handing itself what waited for its sync: no network involved.
                let ev = Event::Deliver {
                    from: id,
                    to: id,
                    msg: o.msg,
                    hops,
                };
                self.world.queue.push(now, ev);
                continue;
            }
            self.transmit(id, o.to, o.msg, hops);
        }
        Ok(())
    }

    fn transmit(&mut self, from: NodeId, to: NodeId, msg: C::Msg, hops: Option<u32>) {
        self.world.send(
            from,
            to,
            msg,
            |m| format!("{m:?}"),
            |msg| Event::Deliver {
                from,
                to,
                msg,
                hops,
            },
        );
    }
}
