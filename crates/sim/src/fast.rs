//! The Fast Paxos world: coordinators, acceptors, learners and clients proposing at once, under
//! faults, with ground truth computed from every vote persisted.
//!
//! Every message carries the number of hops since a client's proposal (when it descends from
//! one), so a run reports how many message delays separated the first proposal from the first
//! learner learning: the figure the seed's charts claim (2 on the fast path, 3 with
//! uncoordinated recovery, 4 with coordinated recovery).

use crate::cast::{learned_what_was_chosen, Cast, CastEffects, CastSim, Timing};
use crate::faults::Faults;
use crate::net::NetConfig;
use crate::report::{RunReport, Violation};
use crate::trace::TraceEvent;
use crate::world::World;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
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

/// A running process of the Fast Paxos world.
pub enum Role {
    /// A coordinator.
    Coordinator(Coordinator<String>),
    /// An acceptor.
    Acceptor(Acceptor<String>),
    /// A learner.
    Learner(Learner<String>),
    /// A client.
    Client(Client<String>),
    /// A collapsed server.
    Server(Box<Server<String>>),
}

/// What a Fast Paxos process keeps on disk.
#[derive(Default)]
pub struct Disk {
    number: u64,
    acceptor: AcceptorState<String>,
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

/// The Fast Paxos side of the single-instance world: setup, ground truth and checkers.
pub struct FastCast {
    cfg: FastSimConfig,
    seed: u64,
    ids: Vec<NodeId>,
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

/// One simulated Fast Paxos run.
pub struct FastSim {
    sim: CastSim<FastCast>,
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
        let timing = Timing {
            fault_until: cfg.fault_until,
            liveness_bound: cfg.liveness_bound,
            crash_mid_step: cfg.crash_mid_step,
        };
        let cast = FastCast {
            seed,
            ids,
            truth,
            quorum,
            recovery,
            collapsed,
            votes: HashMap::new(),
            chosen: None,
            knows: BTreeMap::new(),
            outcome: FastOutcome::default(),
            cfg,
        };
        Ok(FastSim {
            sim: CastSim::new(cast, world, timing, seed),
        })
    }

    /// The value client `id` proposes.
    pub fn value_of(id: NodeId) -> String {
        format!("v{}", id - CLIENT_BASE)
    }

    /// Runs to completion (or to the first violation).
    pub fn run(self) -> (RunReport, Vec<TraceEvent>) {
        let (report, trace, _) = self.run_measured();
        (report, trace)
    }

    /// Runs, and also returns what the run measured.
    pub fn run_measured(mut self) -> (RunReport, Vec<TraceEvent>, FastOutcome) {
        let (mut report, trace) = self.sim.run();
        let cast = self.sim.cast;
        report.stats.decisions = cast.chosen.is_some() as u64;
        // A client's operation is its proposal; it completes when the client hears the decision.
        report.stats.ops = cast.knows.keys().filter(|&&k| k > CLIENT_BASE).count() as u64;
        let mut outcome = cast.outcome;
        outcome.chosen = cast.chosen;
        (report, trace, outcome)
    }
}

impl FastCast {
    fn learners(&self) -> Vec<NodeId> {
        if self.collapsed {
            return self.quorum.members().to_vec();
        }
        (1..=self.cfg.learners as NodeId)
            .map(|i| LEARNER_BASE + i)
            .collect()
    }

    fn clients(&self) -> Vec<NodeId> {
        (1..=self.cfg.clients as NodeId)
            .map(|i| CLIENT_BASE + i)
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

    fn must_learn(&self, id: NodeId) -> bool {
        self.collapsed || !is_acceptor(id)
    }

    /// Ground truth: acceptor `node` persisted a vote for `value` in `round`.
    fn vote(
        &mut self,
        node: NodeId,
        round: Round,
        fast: bool,
        value: &str,
        now: u64,
    ) -> Result<(), Violation> {
        let (kind, by_value) = self
            .votes
            .entry(round)
            .or_insert_with(|| (fast, BTreeMap::new()));
        let fail = |check, detail| {
            Err(Violation {
                check,
                at: now,
                detail,
            })
        };
        if *kind != fast {
            return fail(
                "round-kind",
                format!("round {round} was voted in both as fast and as classic"),
            );
        }
        if by_value.len() == 1 && !by_value.contains_key(value) && !fast {
            return fail(
                "classic-round",
                format!("two values voted in classic round {round}"),
            );
        }
        if !by_value.contains_key(value) && by_value.len() == 1 {
            self.outcome.collisions += 1;
        }
        if by_value.is_empty() && round.step > 0 {
            self.outcome.recoveries += 1;
        }
        let voters = by_value.entry(value.to_string()).or_default();
        voters.insert(node);
        if !self.truth.is_quorum(voters, fast) {
            return Ok(());
        }
        let voters = voters.clone();
        if !self
            .clients()
            .iter()
            .any(|&c| FastSim::value_of(c) == value)
        {
            return fail(
                "validity",
                format!("{value} was chosen but no client proposed it"),
            );
        }
        match &self.chosen {
            Some(c) if c != value => fail(
                "agreement",
                format!("{c} was chosen, then {value} by {voters:?} in round {round}"),
            ),
            _ => {
                self.chosen = Some(value.to_string());
                Ok(())
            }
        }
    }
}

impl Cast for FastCast {
    type Msg = Message<String>;
    type Record = Persist<String>;
    type Out = Output<String>;
    type Timer = Timer;
    type Disk = Disk;
    type Proc = Role;

    fn ids(&self) -> Vec<NodeId> {
        self.ids.clone()
    }

    fn boot(&mut self, id: NodeId, disk: &Disk) -> Role {
        let (learners, clients) = (self.learners(), self.clients());
        let coordinator = self
            .recovery
            .contains_key(&id)
            .then(|| self.coordinator_config(id));
        if id < ACCEPTOR_BASE {
            let cfg = coordinator.expect("a coordinator's id");
            Role::Coordinator(Coordinator::recover(cfg, disk.number))
        } else if id < LEARNER_BASE {
            let cfg = AcceptorConfig {
                id,
                quorum: self.quorum.clone(),
                learners: learners.clone(),
                bug: self.cfg.bug,
            };
            let state = disk.acceptor.clone();
            if self.collapsed {
                let coordinator = coordinator.map(|c| (c, disk.number));
                let server = Server::recover(cfg, state, clients, 80, coordinator);
                Role::Server(Box::new(server))
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
            Role::Client(Client::new(id, FastSim::value_of(id), targets, 150))
        }
    }

    /// Coordinators start at once; clients a little later, at about the same time as each
    /// other, so their proposals race.
    fn start_delay(&self, id: NodeId) -> Range<u64> {
        if id >= CLIENT_BASE {
            20..60
        } else {
            0..10
        }
    }

    fn start(proc: &mut Role) -> (FastEffects<String>, Option<u32>) {
        match proc {
            Role::Coordinator(c) => (c.start(), None),
            Role::Learner(l) => (l.start(), None),
            Role::Client(c) => (c.start(), Some(1)),
            Role::Server(s) => (s.start(), None),
            Role::Acceptor(_) => (FastEffects::new(), None),
        }
    }

    fn deliver(proc: &mut Role, from: NodeId, msg: Message<String>) -> FastEffects<String> {
        match proc {
            Role::Coordinator(c) => c.on_message(from, msg),
            Role::Acceptor(a) => a.on_message(from, msg),
            Role::Learner(l) => l.on_message(from, msg),
            Role::Client(c) => c.on_message(from, msg),
            Role::Server(s) => s.on_message(from, msg),
        }
    }

    fn timer(proc: &mut Role, kind: Timer) -> CastEffects<Self> {
        match proc {
            Role::Coordinator(c) => c.on_timer(kind),
            Role::Learner(l) => l.on_timer(kind),
            Role::Client(c) => c.on_timer(kind),
            Role::Server(s) => s.on_timer(kind),
            Role::Acceptor(_) => FastEffects::new(),
        }
    }

    fn persisted(
        &mut self,
        id: NodeId,
        record: &Persist<String>,
        disk: &mut Disk,
        now: u64,
    ) -> Result<(), Violation> {
        if let Persist::Voted(v) = record {
            self.vote(id, v.round, v.fast, &v.value, now)?;
        }
        match record {
            Persist::Number(n) => disk.number = disk.number.max(*n),
            other => disk.acceptor.apply(other),
        }
        Ok(())
    }

    /// A node says a value is chosen: it must be what ground truth says.
    fn output(
        &mut self,
        node: NodeId,
        _proc: &Role,
        out: Output<String>,
        hops: Option<u32>,
        now: u64,
    ) -> Result<(), Violation> {
        let Output::Chosen(value) = out;
        learned_what_was_chosen(node, &value, self.chosen.as_deref(), now)?;
        let learners = self.learners();
        if learners.contains(&node) && self.knows.keys().all(|k| !learners.contains(k)) {
            self.outcome.delays = hops;
        }
        self.knows.insert(node, value);
        Ok(())
    }

    fn decision(out: &Output<String>) -> Option<String> {
        let Output::Chosen(v) = out;
        Some(v.clone())
    }

    fn rebooted(&mut self, id: NodeId) {
        self.knows.remove(&id);
    }

    fn finished(&self) -> bool {
        self.ids
            .iter()
            .filter(|&&id| self.must_learn(id))
            .all(|id| self.knows.contains_key(id))
    }

    fn missing(&self) -> String {
        let missing: Vec<NodeId> = self
            .ids
            .iter()
            .copied()
            .filter(|&id| self.must_learn(id) && !self.knows.contains_key(&id))
            .collect();
        format!("{missing:?} did not learn the decision")
    }

    fn leader(&self) -> Option<NodeId> {
        self.recovery.keys().next().copied()
    }
}
