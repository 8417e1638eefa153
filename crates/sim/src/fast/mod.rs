//! The Fast Paxos world: coordinators, acceptors, learners and clients proposing at once, under
//! faults, with ground truth computed from every vote persisted.
//!
//! Every message carries the number of hops since a client's proposal (when it descends from
//! one), so a run reports how many message delays separated the first proposal from the first
//! learner learning: the figure the seed's charts claim (2 on the fast path, 3 with
//! uncoordinated recovery, 4 with coordinated recovery).

pub mod latency;

use crate::faults::Faults;
use crate::net::NetConfig;
use crate::report::{RunReport, Violation};
use crate::trace::TraceEvent;
use crate::world::World;
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use synod_core::fast::{
    Acceptor, AcceptorConfig, AcceptorState, Client, Coordinator, CoordinatorConfig, FastEffects,
    Learner, Message, Output, Persist, Recovery, Round, Server, Timer,
};
use synod_core::quorum::FastQuorum;
use synod_core::{NodeId, PlantedBug, QuorumSystem};

/// How a Fast Paxos simulation is set up. Times are in ticks.
#[derive(Clone, Debug)]
pub struct FastSimConfig {
    /// Coordinators (several may compete; rounds keep them apart).
    pub coordinators: usize,
    /// Acceptors.
    pub acceptors: usize,
    /// Learners.
    pub learners: usize,
    /// Clients, each proposing a value of its own at about the same time.
    pub clients: usize,
    /// The recovery rule every coordinator announces; `None` lets each coordinator draw one.
    pub recovery: Option<Recovery>,
    /// Collapsed roles: acceptors are servers that also learn, the first `coordinators` of
    /// them coordinate too, and there are no separate learners or coordinators. `None` lets
    /// each seed draw.
    pub collapsed: Option<bool>,
    /// Faults injected until `fault_until`.
    pub faults: Faults,
    /// The network model.
    pub net: NetConfig,
    /// Faults stop at this time.
    pub fault_until: u64,
    /// Once faults stop, everyone must know the decision within this long.
    pub liveness_bound: u64,
    /// Probability that a crash strikes in the middle of a step.
    pub crash_mid_step: f64,
    /// A bug planted on purpose.
    pub bug: Option<PlantedBug>,
    /// Record a trace.
    pub trace: bool,
}

impl Default for FastSimConfig {
    fn default() -> Self {
        FastSimConfig {
            coordinators: 2,
            acceptors: 5,
            learners: 2,
            clients: 3,
            recovery: None,
            collapsed: None,
            faults: Faults::ALL,
            net: NetConfig::default(),
            fault_until: 800,
            liveness_bound: 3_000,
            crash_mid_step: 0.3,
            bug: None,
            trace: false,
        }
    }
}

/// Ids: coordinators from 1, acceptors from 101, learners from 201, clients from 301.
const ACCEPTOR_BASE: NodeId = 100;
const LEARNER_BASE: NodeId = 200;
const CLIENT_BASE: NodeId = 300;

fn is_acceptor(id: NodeId) -> bool {
    (ACCEPTOR_BASE + 1..=LEARNER_BASE).contains(&id)
}

enum Role {
    Coordinator(Coordinator<String>),
    Acceptor(Acceptor<String>),
    Learner(Learner<String>),
    Client(Client<String>),
    Server(Box<Server<String>>),
}

#[derive(Default)]
struct Disk {
    number: u64,
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
        hops: Option<u32>,
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

/// What a run measured besides its report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FastOutcome {
    /// Message delays from a client's proposal to the first learner learning, when the
    /// decision descends from a proposal.
    pub delays: Option<u32>,
    /// Fast rounds in which acceptors voted for different values.
    pub collisions: u64,
    /// Recovery rounds (a step after a collision) someone voted in.
    pub recoveries: u64,
    /// The decision.
    pub chosen: Option<String>,
}

/// One simulated Fast Paxos run.
pub struct FastSim {
    cfg: FastSimConfig,
    seed: u64,
    world: World<Event>,
    ids: Vec<NodeId>,
    nodes: BTreeMap<NodeId, Node>,
    /// The true quorum sizes; nodes get a wrong copy when a quorum bug is planted.
    truth: Arc<FastQuorum>,
    quorum: Arc<FastQuorum>,
    recovery: BTreeMap<NodeId, Recovery>,
    collapsed: bool,
    /// Ground truth: every persisted vote, by round.
    votes: HashMap<Round, (bool, BTreeMap<String, BTreeSet<NodeId>>)>,
    chosen: Option<String>,
    knows: BTreeMap<NodeId, String>,
    outcome: FastOutcome,
}

impl FastSim {
    /// Sets up a run.
    pub fn new(cfg: FastSimConfig, seed: u64) -> Result<Self, String> {
        let acceptors: Vec<NodeId> = (1..=cfg.acceptors as NodeId)
            .map(|i| ACCEPTOR_BASE + i)
            .collect();
        let truth = Arc::new(FastQuorum::majority(&acceptors).map_err(|e| e.to_string())?);
        let quorum = match cfg.bug {
            Some(PlantedBug::FastQuorumTooSmall) => Arc::new(truth.planted_too_small()),
            _ => truth.clone(),
        };
        let mut world = World::new(seed, cfg.net.clone(), cfg.faults, cfg.trace);
        let collapsed = cfg.collapsed.unwrap_or_else(|| world.rng.gen_bool(0.5));
        let coordinators: Vec<NodeId> = if collapsed {
            acceptors.iter().copied().take(cfg.coordinators).collect()
        } else {
            (1..=cfg.coordinators as NodeId).collect()
        };
        let mut ids: Vec<NodeId> = Vec::new();
        if !collapsed {
            ids.extend(&coordinators);
        }
        ids.extend(&acceptors);
        if !collapsed {
            ids.extend((1..=cfg.learners as NodeId).map(|i| LEARNER_BASE + i));
        }
        ids.extend((1..=cfg.clients as NodeId).map(|i| CLIENT_BASE + i));
        let recovery = coordinators
            .iter()
            .map(|&c| {
                let drawn = if world.rng.gen_bool(0.5) {
                    Recovery::Coordinated
                } else {
                    Recovery::Uncoordinated
                };
                (c, cfg.recovery.unwrap_or(drawn))
            })
            .collect();
        let mut sim = FastSim {
            world,
            seed,
            nodes: BTreeMap::new(),
            truth,
            quorum,
            recovery,
            collapsed,
            votes: HashMap::new(),
            chosen: None,
            knows: BTreeMap::new(),
            outcome: FastOutcome::default(),
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

    /// The value client `id` proposes.
    pub fn value_of(id: NodeId) -> String {
        format!("v{}", id - CLIENT_BASE)
    }

    fn learners(&self) -> Vec<NodeId> {
        if self.collapsed {
            return self.quorum.members().to_vec();
        }
        (1..=self.cfg.learners as NodeId)
            .map(|i| LEARNER_BASE + i)
            .collect()
    }

    fn coordinator_config(&self, id: NodeId) -> CoordinatorConfig {
        CoordinatorConfig {
            id,
            quorum: self.quorum.clone(),
            recovery: self.recovery[&id],
            retry_ticks: (60, 180),
            seed: self.seed.wrapping_mul(131).wrapping_add(id),
            bug: self.cfg.bug,
        }
    }

    fn clients(&self) -> Vec<NodeId> {
        (1..=self.cfg.clients as NodeId)
            .map(|i| CLIENT_BASE + i)
            .collect()
    }

    fn boot(&mut self, id: NodeId) -> Result<(), Violation> {
        let (learners, clients) = (self.learners(), self.clients());
        let coordinator = self
            .recovery
            .contains_key(&id)
            .then(|| self.coordinator_config(id));
        let node = self.nodes.get_mut(&id).expect("node");
        let role = if id < ACCEPTOR_BASE {
            let cfg = coordinator.expect("a coordinator's id");
            Role::Coordinator(Coordinator::recover(cfg, node.disk.number))
        } else if id < LEARNER_BASE {
            let cfg = AcceptorConfig {
                id,
                quorum: self.quorum.clone(),
                learners: learners.clone(),
                bug: self.cfg.bug,
            };
            let state = node.disk.acceptor.clone();
            if self.collapsed {
                let coordinator = coordinator.map(|c| (c, node.disk.number));
                Role::Server(Box::new(Server::recover(
                    cfg,
                    state,
                    clients,
                    80,
                    coordinator,
                )))
            } else {
                Role::Acceptor(Acceptor::recover(cfg, state))
            }
        } else if id < CLIENT_BASE {
            let mut peers = learners;
            peers.extend(self.recovery.keys());
            Role::Learner(Learner::new(id, self.quorum.clone(), clients, 80).ask_also(peers))
        } else {
            let mut targets: Vec<NodeId> = self.recovery.keys().copied().collect();
            targets.extend(self.quorum.members());
            targets.extend(learners);
            targets.sort();
            targets.dedup();
            Role::Client(Client::new(id, Self::value_of(id), targets, 150))
        };
        self.nodes.get_mut(&id).expect("node").role = Some(role);
        self.knows.remove(&id);
        // Coordinators start at once; clients a little later, at about the same time as each
        // other, so their proposals race.
        let at = if id >= CLIENT_BASE {
            self.world.now + self.world.rng.gen_range(20..60)
        } else {
            self.world.now + self.world.rng.gen_range(0..10)
        };
        self.world.queue.push(at, Event::Start { node: id });
        Ok(())
    }

    /// Runs to completion (or to the first violation).
    pub fn run(self) -> (RunReport, Vec<TraceEvent>) {
        let (report, trace, _) = self.run_measured();
        (report, trace)
    }

    /// Runs, and also returns what the run measured.
    pub fn run_measured(mut self) -> (RunReport, Vec<TraceEvent>, FastOutcome) {
        let violation = self.run_inner().err();
        let mut stats = std::mem::take(&mut self.world.stats);
        stats.decisions = self.chosen.is_some() as u64;
        stats.end_time = self.world.now;
        let report = RunReport {
            seed: self.seed,
            stats,
            violation,
        };
        self.outcome.chosen = self.chosen.clone();
        (report, self.world.trace.take(), self.outcome)
    }

    fn must_learn(&self, id: NodeId) -> bool {
        self.collapsed || !is_acceptor(id)
    }

    fn everyone_knows(&self) -> bool {
        self.ids
            .iter()
            .filter(|&&id| self.must_learn(id))
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
            .filter(|&id| self.must_learn(id) && !self.knows.contains_key(&id))
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
            Event::Deliver {
                from,
                to,
                msg,
                hops,
            } => {
                let Some(role) = self.nodes.get_mut(&to).and_then(|n| n.role.as_mut()) else {
                    self.world.stats.dropped += 1;
                    return Ok(());
                };
                self.world.stats.delivered += 1;
                let fx = match role {
                    Role::Coordinator(c) => c.on_message(from, msg),
                    Role::Acceptor(a) => a.on_message(from, msg),
                    Role::Learner(l) => l.on_message(from, msg),
                    Role::Client(c) => c.on_message(from, msg),
                    Role::Server(s) => s.on_message(from, msg),
                };
                self.apply_effects(to, fx, hops.map(|h| h + 1))?;
            }
            Event::Timer { node, kind, epoch } => {
                let n = self.nodes.get_mut(&node).expect("node");
                if n.epoch != epoch || n.timers.get(&kind) != Some(&self.world.now) {
                    return Ok(());
                }
                n.timers.remove(&kind);
                let fx = match n.role.as_mut() {
                    Some(Role::Coordinator(c)) => c.on_timer(kind),
                    Some(Role::Learner(l)) => l.on_timer(kind),
                    Some(Role::Client(c)) => c.on_timer(kind),
                    Some(Role::Server(s)) => s.on_timer(kind),
                    _ => return Ok(()),
                };
                self.apply_effects(node, fx, None)?;
            }
            Event::Start { node } => {
                let (fx, hops) = match self.nodes.get_mut(&node).and_then(|n| n.role.as_mut()) {
                    Some(Role::Coordinator(c)) => (c.start(), None),
                    Some(Role::Learner(l)) => (l.start(), None),
                    Some(Role::Client(c)) => (c.start(), Some(1)),
                    Some(Role::Server(s)) => (s.start(), None),
                    _ => return Ok(()),
                };
                self.apply_effects(node, fx, hops)?;
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
                    let leader = self.recovery.keys().next().copied();
                    self.world.partition_randomly(&ids, leader);
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

    fn apply_effects(
        &mut self,
        id: NodeId,
        fx: FastEffects<String>,
        hops: Option<u32>,
    ) -> Result<(), Violation> {
        let dying = std::mem::take(&mut self.nodes.get_mut(&id).expect("node").dying);
        let keep = if dying {
            self.world.rng.gen_range(0..=fx.persist.len())
        } else {
            fx.persist.len()
        };
        for record in &fx.persist[..keep] {
            if let Persist::Voted(v) = record {
                self.vote(id, v.round, v.fast, &v.value)?;
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
            self.confirm(id, &v, hops.map(|h| h - 1))?;
        }
        // Every record of the step is durable before anything else of it happens here, so
        // messages held for the sync leave with the rest.
        for o in fx.send.into_iter().chain(fx.send_after_sync) {
            let to = o.to;
            if to == id {
                // A server handing itself what waited for its sync: no network involved.
                let msg = o.msg;
                let ev = Event::Deliver {
                    from: id,
                    to,
                    msg,
                    hops,
                };
                self.world.queue.push(self.world.now, ev);
                continue;
            }
            self.world.send(
                id,
                to,
                o.msg,
                |m| format!("{m:?}"),
                |msg| Event::Deliver {
                    from: id,
                    to,
                    msg,
                    hops,
                },
            );
        }
        Ok(())
    }

    /// Ground truth: acceptor `node` persisted a vote for `value` in `round`.
    fn vote(
        &mut self,
        node: NodeId,
        round: Round,
        fast: bool,
        value: &str,
    ) -> Result<(), Violation> {
        let (kind, by_value) = self
            .votes
            .entry(round)
            .or_insert_with(|| (fast, BTreeMap::new()));
        if *kind != fast {
            return Err(Violation {
                check: "round-kind",
                at: self.world.now,
                detail: format!("round {round} was voted in both as fast and as classic"),
            });
        }
        if by_value.len() == 1 && !by_value.contains_key(value) && !fast {
            return Err(Violation {
                check: "classic-round",
                at: self.world.now,
                detail: format!("two values voted in classic round {round}"),
            });
        }
        if !by_value.contains_key(value) && by_value.len() == 1 {
            self.outcome.collisions += 1;
        }
        if by_value.is_empty() && round.step > 0 {
            self.outcome.recoveries += 1;
        }
        let voters = by_value.entry(value.to_string()).or_default();
        voters.insert(node);
        let chosen_now = self.truth.is_quorum(voters, fast);
        if !chosen_now {
            return Ok(());
        }
        let voters = voters.clone();
        if !self.clients().iter().any(|&c| Self::value_of(c) == value) {
            return Err(Violation {
                check: "validity",
                at: self.world.now,
                detail: format!("{value} was chosen but no client proposed it"),
            });
        }
        match &self.chosen {
            Some(c) if c != value => Err(Violation {
                check: "agreement",
                at: self.world.now,
                detail: format!("{c} was chosen, then {value} by {voters:?} in round {round}"),
            }),
            _ => {
                self.chosen = Some(value.to_string());
                Ok(())
            }
        }
    }

    /// A node says `value` is chosen: it must be what ground truth says.
    fn confirm(&mut self, node: NodeId, value: &str, hops: Option<u32>) -> Result<(), Violation> {
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
        let learners = self.learners();
        if learners.contains(&node) && self.knows.keys().all(|k| !learners.contains(k)) {
            self.outcome.delays = hops;
        }
        self.knows.insert(node, value.to_string());
        Ok(())
    }
}
