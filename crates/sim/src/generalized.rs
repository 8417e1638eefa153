//! The Generalized Paxos world: leaders, acceptors, learners and clients issuing reads and
//! writes of two registers at once, under faults. Ground truth is computed from every history
//! persisted, with the true commutativity relation even when the nodes were given a wrong one.

use crate::faults::Faults;
use crate::net::NetConfig;
use crate::report::{RunReport, Violation};
use crate::trace::TraceEvent;
use crate::world::World;
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use synod_core::generalized::{
    chosen_in_round, Acceptor, AcceptorConfig, AcceptorState, CStruct, Client, Command, GenEffects,
    Leader, LeaderConfig, Learner, Message, Op, Output, Persist, ReadsCommuteWithWrites, Registers,
    Relation, Round, Timer,
};
use synod_core::quorum::FastQuorum;
use synod_core::{NodeId, PlantedBug, QuorumSystem};

/// How a Generalized Paxos simulation is set up. Times are in ticks.
#[derive(Clone, Debug)]
pub struct GenSimConfig {
    /// Leaders.
    pub leaders: usize,
    /// Acceptors.
    pub acceptors: usize,
    /// Learners.
    pub learners: usize,
    /// Clients.
    pub clients: usize,
    /// Commands per client.
    pub ops: usize,
    /// Faults injected until `fault_until`.
    pub faults: Faults,
    /// The network model.
    pub net: NetConfig,
    /// Faults stop at this time.
    pub fault_until: u64,
    /// Once faults stop, every command must be learned everywhere within this long.
    pub liveness_bound: u64,
    /// Probability that a crash strikes in the middle of a step.
    pub crash_mid_step: f64,
    /// A bug planted on purpose.
    pub bug: Option<PlantedBug>,
    /// Record a trace.
    pub trace: bool,
}

impl Default for GenSimConfig {
    fn default() -> Self {
        GenSimConfig {
            leaders: 2,
            acceptors: 3,
            learners: 2,
            clients: 3,
            ops: 4,
            faults: Faults::ALL,
            net: NetConfig::default(),
            fault_until: 800,
            liveness_bound: 4_000,
            crash_mid_step: 0.3,
            bug: None,
            trace: false,
        }
    }
}

const ACCEPTOR_BASE: NodeId = 100;
const LEARNER_BASE: NodeId = 200;
const CLIENT_BASE: NodeId = 300;

enum Role {
    Leader(Leader),
    Acceptor(Acceptor),
    Learner(Learner),
    Client(Client),
}

#[derive(Default)]
struct Disk {
    number: u64,
    acceptor: AcceptorState,
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
        msg: Message,
    },
    Timer {
        node: NodeId,
        kind: Timer,
        epoch: u64,
    },
    Start {
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

/// One simulated Generalized Paxos run.
pub struct GenSim {
    cfg: GenSimConfig,
    seed: u64,
    world: World<Event>,
    ids: Vec<NodeId>,
    nodes: BTreeMap<NodeId, Node>,
    quorum: Arc<FastQuorum>,
    /// The relation the nodes use (wrong when the relation bug is planted).
    relation: Arc<dyn Relation>,
    /// Each client's operations.
    ops: BTreeMap<NodeId, Vec<Op>>,
    /// Ground truth: every acceptor's latest persisted history, by round.
    votes: BTreeMap<Round, BTreeMap<NodeId, CStruct>>,
    /// The lub of everything any quorum chose.
    chosen: CStruct,
    /// What each learner learned last.
    learned: BTreeMap<NodeId, CStruct>,
    /// Clients that finished.
    finished: BTreeMap<NodeId, bool>,
}

impl GenSim {
    /// Sets up a run.
    pub fn new(cfg: GenSimConfig, seed: u64) -> Result<Self, String> {
        let acceptors: Vec<NodeId> = (1..=cfg.acceptors as NodeId)
            .map(|i| ACCEPTOR_BASE + i)
            .collect();
        let quorum = Arc::new(FastQuorum::majority(&acceptors).map_err(|e| e.to_string())?);
        let relation: Arc<dyn Relation> = match cfg.bug {
            Some(PlantedBug::ConflictsCommute) => Arc::new(ReadsCommuteWithWrites),
            _ => Arc::new(Registers),
        };
        let mut ids: Vec<NodeId> = (1..=cfg.leaders as NodeId).collect();
        ids.extend(&acceptors);
        ids.extend((1..=cfg.learners as NodeId).map(|i| LEARNER_BASE + i));
        let clients: Vec<NodeId> = (1..=cfg.clients as NodeId)
            .map(|i| CLIENT_BASE + i)
            .collect();
        ids.extend(&clients);
        let mut world = World::new(seed, cfg.net.clone(), cfg.faults, cfg.trace);
        let pool = [Op::read("A"), Op::write("A"), Op::read("B"), Op::write("B")];
        let ops = clients
            .iter()
            .map(|&c| {
                let list = (0..cfg.ops)
                    .map(|_| pool.choose(&mut world.rng).expect("non-empty").clone())
                    .collect();
                (c, list)
            })
            .collect();
        let mut sim = GenSim {
            world,
            seed,
            nodes: BTreeMap::new(),
            quorum,
            relation,
            ops,
            votes: BTreeMap::new(),
            chosen: CStruct::new(),
            learned: BTreeMap::new(),
            finished: BTreeMap::new(),
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
        sim.world.queue.push(sim.cfg.fault_until, Event::FaultsEnd);
        Ok(sim)
    }

    fn learners(&self) -> Vec<NodeId> {
        (1..=self.cfg.learners as NodeId)
            .map(|i| LEARNER_BASE + i)
            .collect()
    }

    fn leaders(&self) -> Vec<NodeId> {
        (1..=self.cfg.leaders as NodeId).collect()
    }

    fn boot(&mut self, id: NodeId) {
        let learners = self.learners();
        let leaders = self.leaders();
        let rel = self.relation.clone();
        let quorum = self.quorum.clone();
        let node = self.nodes.get_mut(&id).expect("node");
        let role = if id < ACCEPTOR_BASE {
            let cfg = LeaderConfig {
                id,
                quorum,
                relation: rel,
                retry_ticks: (80, 200),
                seed: self.seed.wrapping_mul(131).wrapping_add(id),
            };
            Role::Leader(Leader::recover(cfg, node.disk.number))
        } else if id < LEARNER_BASE {
            let cfg = AcceptorConfig {
                id,
                quorum,
                learners,
                relation: rel,
            };
            Role::Acceptor(Acceptor::recover(cfg, node.disk.acceptor.clone()))
        } else if id < CLIENT_BASE {
            let mut peers = learners;
            peers.extend(&leaders);
            Role::Learner(Learner::new(id, quorum, rel, peers, 80))
        } else {
            // Learners hear proposals too: a restarted client starts from its first command,
            // and a learner that has it answers at once.
            let mut targets = leaders;
            targets.extend(quorum.members());
            targets.extend(learners);
            Role::Client(Client::new(id, self.ops[&id].clone(), targets, 150))
        };
        node.role = Some(role);
        self.learned.remove(&id);
        let delay = if id >= CLIENT_BASE { 20..60 } else { 0..10 };
        let at = self.world.now + self.world.rng.gen_range(delay);
        self.world.queue.push(at, Event::Start { node: id });
    }

    /// Runs to completion (or to the first violation).
    pub fn run(mut self) -> (RunReport, Vec<TraceEvent>) {
        let violation = self.run_inner().err();
        let mut stats = std::mem::take(&mut self.world.stats);
        stats.decisions = self.chosen.len() as u64;
        stats.ops = (self.finished.len() * self.cfg.ops) as u64;
        stats.end_time = self.world.now;
        let report = RunReport {
            seed: self.seed,
            stats,
            violation,
        };
        (report, self.world.trace.take())
    }

    fn all_commands(&self) -> Vec<Command> {
        self.ops
            .iter()
            .flat_map(|(&client, ops)| {
                ops.iter().enumerate().map(move |(i, op)| Command {
                    client,
                    seq: i as u64,
                    op: op.clone(),
                })
            })
            .collect()
    }

    fn done(&self) -> bool {
        let all = self.all_commands();
        self.learners().iter().all(|l| {
            self.learned
                .get(l)
                .is_some_and(|h| all.iter().all(|c| h.contains(c)))
        }) && self.finished.len() == self.cfg.clients
    }

    fn run_inner(&mut self) -> Result<(), Violation> {
        let deadline = self.cfg.fault_until + self.cfg.liveness_bound;
        while let Some((at, ev)) = self.world.queue.pop() {
            self.world.now = at;
            self.world.stats.steps += 1;
            self.step(ev)?;
            if self.world.now >= self.cfg.fault_until && self.done() {
                return Ok(());
            }
            if self.world.now > deadline {
                break;
            }
        }
        let missing: Vec<String> = self
            .learners()
            .iter()
            .map(|l| {
                let have = self.learned.get(l).map_or(0, |h| h.len());
                format!("{l} learned {have}")
            })
            .collect();
        Err(Violation {
            check: "liveness",
            at: self.world.now,
            detail: format!(
                "faults stopped at t={} but within {} ticks not every command of {} was learned \
                 everywhere ({}; clients finished: {})",
                self.cfg.fault_until,
                self.cfg.liveness_bound,
                self.all_commands().len(),
                missing.join(", "),
                self.finished.len()
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
                    Role::Leader(p) => p.on_message(from, msg),
                    Role::Acceptor(p) => p.on_message(from, msg),
                    Role::Learner(p) => p.on_message(from, msg),
                    Role::Client(p) => p.on_message(from, msg),
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
                    Some(Role::Leader(p)) => p.on_timer(kind),
                    Some(Role::Learner(p)) => p.on_timer(kind),
                    Some(Role::Client(p)) => p.on_timer(kind),
                    _ => return Ok(()),
                };
                self.apply_effects(node, fx)?;
            }
            Event::Start { node } => {
                let fx = match self.nodes.get_mut(&node).and_then(|n| n.role.as_mut()) {
                    Some(Role::Leader(p)) => p.start(),
                    Some(Role::Learner(p)) => p.start(),
                    Some(Role::Client(p)) => p.start(),
                    _ => return Ok(()),
                };
                self.apply_effects(node, fx)?;
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
                    self.boot(node);
                }
            }
            Event::Partition => {
                if self.world.faults.partition && self.world.now < self.cfg.fault_until {
                    let ids = self.ids.clone();
                    self.world.partition_randomly(&ids, Some(1));
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
                        self.boot(id);
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

    fn apply_effects(&mut self, id: NodeId, fx: GenEffects) -> Result<(), Violation> {
        let dying = std::mem::take(&mut self.nodes.get_mut(&id).expect("node").dying);
        let keep = if dying {
            self.world.rng.gen_range(0..=fx.persist.len())
        } else {
            fx.persist.len()
        };
        for record in &fx.persist[..keep] {
            if let Persist::Voted(round, h) = record {
                self.vote(id, *round, h)?;
            }
            let disk = &mut self.nodes.get_mut(&id).expect("node").disk;
            match record {
                Persist::Number(n) => disk.number = disk.number.max(*n),
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
            let ev = Event::Timer {
                node: id,
                kind: t.kind,
                epoch,
            };
            self.world.queue.push(at, ev);
        }
        for out in fx.output {
            match out {
                Output::Learned(h) => self.confirm(id, h)?,
                Output::Done(_) => {
                    let finished = matches!(
                        self.nodes[&id].role,
                        Some(Role::Client(ref c)) if c.finished()
                    );
                    if finished {
                        self.finished.insert(id, true);
                    }
                }
            }
        }
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

    /// Ground truth: acceptor `node` persisted history `h` in `round`. What the round's
    /// quorums chose must be compatible with everything chosen before, under the true relation.
    fn vote(&mut self, node: NodeId, round: Round, h: &CStruct) -> Result<(), Violation> {
        let by = self.votes.entry(round).or_default();
        by.insert(node, h.clone());
        let Some(chosen) = chosen_in_round(&self.quorum, by, &Registers) else {
            return Ok(());
        };
        for c in chosen.commands() {
            let proposed = self
                .ops
                .get(&c.client)
                .and_then(|ops| ops.get(c.seq as usize))
                .is_some_and(|op| *op == c.op);
            if !proposed {
                return Err(Violation {
                    check: "validity",
                    at: self.world.now,
                    detail: format!("{c:?} was chosen but no client proposed it"),
                });
            }
        }
        match self.chosen.lub(&chosen, &Registers) {
            Some(l) => {
                self.chosen = l;
                Ok(())
            }
            None => Err(Violation {
                check: "agreement",
                at: self.world.now,
                detail: format!(
                    "round {round} chose {chosen}, incompatible with what was chosen before: {}",
                    self.chosen
                ),
            }),
        }
    }

    /// A node's learned history grew to `h`: it must extend what it learned before, be
    /// compatible with every other learner's, and hold only what was chosen.
    fn confirm(&mut self, node: NodeId, h: CStruct) -> Result<(), Violation> {
        let rel = &Registers;
        let fail = |detail: String| Violation {
            check: "agreement",
            at: self.world.now,
            detail,
        };
        if let Some(old) = self.learned.get(&node) {
            if !old.is_prefix_of(&h, rel) {
                return Err(fail(format!(
                    "node {node} learned {old}, then {h}, not an extension"
                )));
            }
        }
        if !h.is_prefix_of(&self.chosen, rel) {
            return Err(fail(format!(
                "node {node} learned {h}, but ground truth has chosen only {}",
                self.chosen
            )));
        }
        for (other, o) in &self.learned {
            if !h.compatible(o, rel) {
                return Err(fail(format!(
                    "node {node} learned {h}, node {other} learned {o}"
                )));
            }
        }
        self.world.trace.record(|| TraceEvent::Chosen {
            t: self.world.now,
            node,
            slot: 0,
            value: h.to_string(),
        });
        self.learned.insert(node, h);
        Ok(())
    }
}
