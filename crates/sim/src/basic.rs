//! The single-decree world: separate proposers, acceptors and learners under faults, with
//! ground truth computed from every vote persisted.

use crate::faults::Faults;
use crate::net::NetConfig;
use crate::report::{RunReport, Violation};
use crate::trace::TraceEvent;
use crate::world::World;
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use synod_core::basic::{
    Acceptor, AcceptorState, BasicEffects, Learner, Message, Output, Persist, Proposer,
    ProposerConfig, Timer,
};
use synod_core::quorum::{Quorum, QuorumSpec};
use synod_core::{Ballot, NodeId, PlantedBug, QuorumSystem};

/// How a single-decree simulation is set up. Times are in ticks.
#[derive(Clone, Debug)]
pub struct BasicSimConfig {
    /// Proposers, each with a value of its own to get chosen.
    pub proposers: usize,
    /// Acceptors.
    pub acceptors: usize,
    /// Learners.
    pub learners: usize,
    /// Faults injected until `fault_until`.
    pub faults: Faults,
    /// The network model.
    pub net: NetConfig,
    /// Faults stop at this time.
    pub fault_until: u64,
    /// Once faults stop, every proposer and learner must know the decision within this long.
    pub liveness_bound: u64,
    /// Probability that a crash strikes in the middle of a step.
    pub crash_mid_step: f64,
    /// Quorum sizes over the acceptors.
    pub quorum: QuorumSpec,
    /// A bug planted on purpose.
    pub bug: Option<PlantedBug>,
    /// Record a trace.
    pub trace: bool,
}

impl Default for BasicSimConfig {
    fn default() -> Self {
        BasicSimConfig {
            proposers: 3,
            acceptors: 5,
            learners: 2,
            faults: Faults::ALL,
            net: NetConfig::default(),
            fault_until: 800,
            liveness_bound: 2_000,
            crash_mid_step: 0.3,
            quorum: QuorumSpec::Majority,
            bug: None,
            trace: false,
        }
    }
}

/// Ids: proposers from 1, acceptors from 101, learners from 201.
const ACCEPTOR_BASE: NodeId = 100;
const LEARNER_BASE: NodeId = 200;

/// Proposers and learners must end up knowing the decision; acceptors need not.
fn must_learn(id: NodeId) -> bool {
    !(ACCEPTOR_BASE..=LEARNER_BASE).contains(&id)
}

enum Role {
    Proposer(Proposer<String>),
    Acceptor(Acceptor<String>),
    Learner(Learner<String>),
}

#[derive(Default)]
struct Disk {
    round: u64,
    acceptor: AcceptorState<String>,
}

struct Node {
    role: Option<Role>,
    disk: Disk,
    epoch: u64,
    timers: HashMap<Timer, u64>,
    dying: bool,
}

enum Event {
    Deliver {
        from: NodeId,
        to: NodeId,
        msg: Message<String>,
    },
    Timer {
        node: NodeId,
        kind: Timer,
        epoch: u64,
    },
    Propose {
        node: NodeId,
    },
    Crash,
    Restart {
        node: NodeId,
    },
    Partition,
    Heal,
    FaultsEnd,
}

/// One simulated single-decree run.
pub struct BasicSim {
    cfg: BasicSimConfig,
    seed: u64,
    world: World<Event>,
    ids: Vec<NodeId>,
    nodes: BTreeMap<NodeId, Node>,
    quorum: Arc<Quorum>,
    votes: HashMap<Ballot, (String, BTreeSet<NodeId>)>,
    chosen: Option<String>,
    knows: BTreeMap<NodeId, String>,
}

impl BasicSim {
    /// Sets up a run.
    pub fn new(cfg: BasicSimConfig, seed: u64) -> Result<Self, String> {
        let acceptors: Vec<NodeId> = (1..=cfg.acceptors as NodeId)
            .map(|i| ACCEPTOR_BASE + i)
            .collect();
        let quorum =
            Arc::new(Quorum::from_spec(cfg.quorum, &acceptors).map_err(|e| e.to_string())?);
        let mut ids: Vec<NodeId> = (1..=cfg.proposers as NodeId).collect();
        ids.extend(&acceptors);
        ids.extend((1..=cfg.learners as NodeId).map(|i| LEARNER_BASE + i));
        let mut sim = BasicSim {
            world: World::new(seed, cfg.net.clone(), cfg.faults, cfg.trace),
            seed,
            nodes: BTreeMap::new(),
            quorum,
            votes: HashMap::new(),
            chosen: None,
            knows: BTreeMap::new(),
            ids,
            cfg,
        };
        for id in sim.ids.clone() {
            sim.nodes.insert(
                id,
                Node {
                    role: None,
                    disk: Disk::default(),
                    epoch: 0,
                    timers: HashMap::new(),
                    dying: false,
                },
            );
            sim.boot(id).map_err(|v| v.to_string())?;
        }
        if sim.world.faults.crash {
            let at = sim.world.rng.gen_range(5..100);
            sim.world.queue.push(at, Event::Crash);
        }
        if sim.world.faults.partition {
            let at = sim.world.rng.gen_range(5..100);
            sim.world.queue.push(at, Event::Partition);
        }
        sim.world.queue.push(sim.cfg.fault_until, Event::FaultsEnd);
        Ok(sim)
    }

    fn value_of(id: NodeId) -> String {
        format!("v{id}")
    }

    fn boot(&mut self, id: NodeId) -> Result<(), Violation> {
        let node = self.nodes.get_mut(&id).expect("node");
        let (role, fx) = if id < ACCEPTOR_BASE {
            let cfg = ProposerConfig {
                id,
                quorum: self.quorum.clone(),
                retry_ticks: (30, 90),
                seed: self.seed.wrapping_mul(131).wrapping_add(id),
                bug: self.cfg.bug,
            };
            let p = Proposer::recover(cfg, node.disk.round);
            let at = self.world.now + self.world.rng.gen_range(0..50);
            self.world.queue.push(at, Event::Propose { node: id });
            (Role::Proposer(p), BasicEffects::new())
        } else if id < LEARNER_BASE {
            let learners = (1..=self.cfg.learners as NodeId)
                .map(|i| LEARNER_BASE + i)
                .collect();
            let mut a = Acceptor::recover(id, learners, node.disk.acceptor.clone());
            a.plant(self.cfg.bug);
            (Role::Acceptor(a), BasicEffects::new())
        } else {
            let mut l = Learner::new(id, self.quorum.clone(), 60);
            let fx = l.start();
            (Role::Learner(l), fx)
        };
        self.nodes.get_mut(&id).expect("node").role = Some(role);
        self.knows.remove(&id);
        self.apply_effects(id, fx)
    }

    /// Runs to completion (or to the first violation).
    pub fn run(mut self) -> (RunReport, Vec<TraceEvent>) {
        let violation = self.run_inner().err();
        let mut stats = std::mem::take(&mut self.world.stats);
        stats.decisions = self.chosen.is_some() as u64;
        stats.end_time = self.world.now;
        let report = RunReport {
            seed: self.seed,
            stats,
            violation,
        };
        (report, self.world.trace.take())
    }

    fn everyone_knows(&self) -> bool {
        self.ids
            .iter()
            .filter(|&&id| must_learn(id))
            .all(|id| self.knows.contains_key(id))
    }

    fn run_inner(&mut self) -> Result<(), Violation> {
        let deadline = self.cfg.fault_until + self.cfg.liveness_bound;
        while let Some((at, ev)) = self.world.queue.pop() {
            self.world.now = at;
            self.world.stats.steps += 1;
            self.step(ev)?;
            if self.world.now >= self.cfg.fault_until && self.everyone_knows() {
                return Ok(());
            }
            if self.world.now > deadline {
                break;
            }
        }
        let missing: Vec<NodeId> = self
            .ids
            .iter()
            .copied()
            .filter(|&id| must_learn(id) && !self.knows.contains_key(&id))
            .collect();
        Err(Violation {
            check: "liveness",
            at: self.world.now,
            detail: format!(
                "faults stopped at t={} but {missing:?} did not learn the decision within {} ticks",
                self.cfg.fault_until, self.cfg.liveness_bound
            ),
        })
    }

    fn step(&mut self, ev: Event) -> Result<(), Violation> {
        match ev {
            Event::Deliver { from, to, msg } => {
                let Some(role) = self.nodes.get_mut(&to).and_then(|n| n.role.as_mut()) else {
                    self.world.stats.dropped += 1;
                    return Ok(());
                };
                self.world.stats.delivered += 1;
                let fx = match role {
                    Role::Proposer(p) => p.on_message(from, msg),
                    Role::Acceptor(a) => a.on_message(from, msg),
                    Role::Learner(l) => l.on_message(from, msg),
                };
                self.apply_effects(to, fx)?;
            }
            Event::Timer { node, kind, epoch } => {
                let n = self.nodes.get_mut(&node).expect("node");
                if n.epoch != epoch || n.timers.get(&kind) != Some(&self.world.now) {
                    return Ok(());
                }
                n.timers.remove(&kind);
                let fx = match n.role.as_mut() {
                    Some(Role::Proposer(p)) => p.on_timer(kind),
                    Some(Role::Learner(l)) => l.on_timer(kind),
                    _ => return Ok(()),
                };
                self.apply_effects(node, fx)?;
            }
            Event::Propose { node } => {
                let value = Self::value_of(node);
                if let Some(Role::Proposer(p)) =
                    self.nodes.get_mut(&node).and_then(|n| n.role.as_mut())
                {
                    let fx = p.propose(value);
                    self.apply_effects(node, fx)?;
                }
            }
            Event::Crash => {
                if self.world.faults.crash && self.world.now < self.cfg.fault_until {
                    let live: Vec<NodeId> = self
                        .ids
                        .iter()
                        .copied()
                        .filter(|id| self.nodes[id].role.is_some())
                        .collect();
                    if let Some(&v) = live.choose(&mut self.world.rng) {
                        if self.world.rng.gen_bool(self.cfg.crash_mid_step) {
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
                if self.nodes[&node].role.is_none() {
                    self.world.trace.record(|| TraceEvent::Restart {
                        t: self.world.now,
                        node,
                    });
                    self.boot(node)?;
                }
            }
            Event::Partition => {
                if self.world.faults.partition && self.world.now < self.cfg.fault_until {
                    let ids = self.ids.clone();
                    self.world.partition_randomly(&ids, None);
                    let at = self.world.rng.gen_range(20..200);
                    self.world.after(at, Event::Heal);
                }
            }
            Event::Heal => {
                self.world.heal();
                if self.world.faults.partition && self.world.now < self.cfg.fault_until {
                    let at = self.world.rng.gen_range(10..100);
                    self.world.after(at, Event::Partition);
                }
            }
            Event::FaultsEnd => {
                self.world.faults = Faults::NONE;
                self.world.heal();
                for id in self.ids.clone() {
                    self.nodes.get_mut(&id).expect("node").dying = false;
                    if self.nodes[&id].role.is_none() {
                        self.world.trace.record(|| TraceEvent::Restart {
                            t: self.world.now,
                            node: id,
                        });
                        self.boot(id)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn crash(&mut self, id: NodeId, mid_step: bool) {
        let node = self.nodes.get_mut(&id).expect("node");
        node.role = None;
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

    fn apply_effects(&mut self, id: NodeId, fx: BasicEffects<String>) -> Result<(), Violation> {
        let dying = std::mem::take(&mut self.nodes.get_mut(&id).expect("node").dying);
        let keep = if dying {
            self.world.rng.gen_range(0..=fx.persist.len())
        } else {
            fx.persist.len()
        };
        for record in &fx.persist[..keep] {
            if let Persist::Accepted(b, v) = record {
                self.vote(id, *b, v)?;
            }
            let disk = &mut self.nodes.get_mut(&id).expect("node").disk;
            match record {
                Persist::Round(r) => disk.round = disk.round.max(*r),
                other => disk.acceptor.apply(other),
            }
        }
        if dying {
            self.crash(id, true);
            return Ok(());
        }
        for t in fx.timers {
            let node = self.nodes.get_mut(&id).expect("node");
            let at = self.world.now + t.after;
            node.timers.insert(t.kind, at);
            let epoch = node.epoch;
            self.world.queue.push(
                at,
                Event::Timer {
                    node: id,
                    kind: t.kind,
                    epoch,
                },
            );
        }
        for Output::Chosen(v) in fx.output {
            self.confirm(id, &v)?;
        }
        // This world syncs every step's records before anything else of the step happens, so
        // messages held for the sync leave with the rest.
        for o in fx.send.into_iter().chain(fx.send_after_sync) {
            let to = o.to;
            self.world.send(
                id,
                to,
                o.msg,
                |m| format!("{m:?}"),
                |msg| Event::Deliver { from: id, to, msg },
            );
        }
        Ok(())
    }

    /// Ground truth: acceptor `node` persisted a vote for `value` in `ballot`.
    fn vote(&mut self, node: NodeId, ballot: Ballot, value: &str) -> Result<(), Violation> {
        let (v, voters) = self
            .votes
            .entry(ballot)
            .or_insert_with(|| (value.to_string(), BTreeSet::new()));
        voters.insert(node);
        if !self.quorum.is_phase2_quorum(voters) {
            return Ok(());
        }
        let v = v.clone();
        if !(1..=self.cfg.proposers as NodeId).any(|p| Self::value_of(p) == v) {
            return Err(Violation {
                check: "validity",
                at: self.world.now,
                detail: format!("{v} was chosen but no proposer proposed it"),
            });
        }
        match &self.chosen {
            Some(c) if *c != v => Err(Violation {
                check: "agreement",
                at: self.world.now,
                detail: format!(
                    "{c} was chosen, then {v} by a quorum {voters:?} in ballot {ballot}"
                ),
            }),
            _ => {
                self.chosen = Some(v);
                Ok(())
            }
        }
    }

    /// A proposer or learner says `value` is chosen: it must be what ground truth says.
    fn confirm(&mut self, node: NodeId, value: &str) -> Result<(), Violation> {
        self.world.trace.record(|| TraceEvent::Chosen {
            t: self.world.now,
            node,
            slot: 0,
            value: value.to_string(),
        });
        if self.chosen.as_deref() != Some(value) {
            return Err(Violation {
                check: "agreement",
                at: self.world.now,
                detail: format!(
                    "node {node} learned {value}, but ground truth says {:?}",
                    self.chosen
                ),
            });
        }
        self.knows.insert(node, value.to_string());
        Ok(())
    }
}
