//! The PBFT world: `3f + 1` replicas of which up to `f` lie (each with lies drawn by the seed),
//! clients that send to every replica and take a result on `f + 1` matching replies, and the
//! usual faults (loss, duplication, delay, partitions, crash-restarts) on top.
//!
//! Checkers, after every step, over the correct replicas only: agreement, validity, client
//! results and real-time order ([`crate::ledger`]), and liveness once faults stop (the liars
//! keep lying).

mod liar;

pub use liar::{Liar, Lie};

use crate::cast::{Cast, CastEffects, CastSim, Timing};
use crate::faults::Faults;
use crate::ledger::{self, Ledger, CLIENT_BASE};
use crate::net::NetConfig;
use crate::report::{RunReport, Violation};
use crate::trace::TraceEvent;
use crate::world::World;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;
use synod_core::auth::{SimKeyring, Verifier};
use synod_core::pbft::{
    Client, Durable, Message, OpLog, Output, Persist, Replica, ReplicaConfig, Timer,
};
use synod_core::quorum::ByzantineQuorum;
use synod_core::{NodeId, PlantedBug};

/// How a PBFT simulation is set up. Times are in ticks.
#[derive(Clone, Debug)]
pub struct PbftSimConfig {
    /// Replicas (at least 4; `f = (n - 1) / 3`).
    pub replicas: usize,
    /// Liars among them; `None` lets each seed draw 0..=f (mostly f).
    pub liars: Option<usize>,
    /// Clients.
    pub clients: usize,
    /// Requests per client, one after another.
    pub commands: usize,
    /// Faults injected until `fault_until`.
    pub faults: Faults,
    /// The network model.
    pub net: NetConfig,
    /// Faults stop at this time.
    pub fault_until: u64,
    /// Once faults stop, every request must be done within this long.
    pub liveness_bound: u64,
    /// Probability that a crash strikes in the middle of a step.
    pub crash_mid_step: f64,
    /// A bug planted on purpose.
    pub bug: Option<PlantedBug>,
    /// Record a trace.
    pub trace: bool,
}

impl Default for PbftSimConfig {
    fn default() -> Self {
        PbftSimConfig {
            replicas: 4,
            liars: None,
            clients: 3,
            commands: 6,
            faults: Faults::ALL,
            net: NetConfig::default(),
            fault_until: 800,
            liveness_bound: 6_000,
            crash_mid_step: 0.3,
            bug: None,
            trace: false,
        }
    }
}

/// A running process.
pub enum Role {
    /// A correct replica.
    Replica(Box<Replica<OpLog<String>>>),
    /// A Byzantine replica.
    Liar(Box<Liar>),
    /// A client.
    Client(Box<Client<String, u64>>),
}

/// What a run counted besides its report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PbftOutcome {
    /// Slots executed by some correct replica.
    pub slots: u64,
    /// Of those, null requests (filled by a new view).
    pub nulls: u64,
    /// Views some correct replica started.
    pub views: u64,
    /// Liars, and what each did.
    pub liars: BTreeMap<NodeId, Vec<Lie>>,
    /// Message delays from a client's request to the first correct replica executing it:
    /// delays → requests.
    pub delays: BTreeMap<u32, u64>,
}

/// The PBFT side of the world.
pub struct PbftCast {
    cfg: PbftSimConfig,
    replicas: Vec<NodeId>,
    clients: Vec<NodeId>,
    quorum: ByzantineQuorum,
    keys: Arc<SimKeyring>,
    liars: BTreeMap<NodeId, Vec<Lie>>,
    seed: u64,
    ledger: Ledger,
    views: BTreeSet<u64>,
    outcome: PbftOutcome,
}

/// One simulated PBFT run.
pub struct PbftSim {
    sim: CastSim<PbftCast>,
}

impl PbftSim {
    /// Sets up a run.
    pub fn new(cfg: PbftSimConfig, seed: u64) -> Result<Self, String> {
        let quorum = ByzantineQuorum::new(cfg.replicas).map_err(|e| e.to_string())?;
        if quorum.f() == 0 || cfg.clients == 0 {
            return Err("a PBFT run needs at least 4 replicas (f >= 1) and a client".into());
        }
        let replicas: Vec<NodeId> = (1..=cfg.replicas as NodeId).collect();
        let clients: Vec<NodeId> = (1..=cfg.clients as NodeId)
            .map(|i| CLIENT_BASE + i)
            .collect();
        let mut world = World::new(seed, cfg.net.clone(), cfg.faults, cfg.trace);
        let count = match cfg.liars {
            Some(k) if k > quorum.f() => {
                return Err(format!(
                    "{k} liars among {} replicas: PBFT tolerates at most {}",
                    cfg.replicas,
                    quorum.f()
                ))
            }
            Some(k) => k,
            None if world.rng.gen_bool(0.85) => quorum.f(),
            None => world.rng.gen_range(0..=quorum.f()),
        };
        let mut shuffled = replicas.clone();
        shuffled.shuffle(&mut world.rng);
        let liars: BTreeMap<NodeId, Vec<Lie>> = shuffled[..count]
            .iter()
            .map(|&id| (id, Lie::draw(&mut world.rng)))
            .collect();
        let keys = Arc::new(SimKeyring::new(
            seed,
            replicas.iter().chain(&clients).copied(),
        ));
        let timing = Timing {
            fault_until: cfg.fault_until,
            liveness_bound: cfg.liveness_bound,
            crash_mid_step: cfg.crash_mid_step,
        };
        let cast = PbftCast {
            ledger: Ledger::new(clients.clone(), cfg.commands),
            replicas,
            clients,
            quorum,
            keys,
            outcome: PbftOutcome {
                liars: liars.clone(),
                ..Default::default()
            },
            liars,
            seed,
            views: BTreeSet::new(),
            cfg,
        };
        Ok(PbftSim {
            sim: CastSim::new(cast, world, timing, seed),
        })
    }

    /// The `k`-th request of client `id`.
    pub fn command(id: NodeId, k: usize) -> String {
        ledger::command(id, k)
    }

    /// Runs to completion (or to the first violation).
    pub fn run(self) -> (RunReport, Vec<TraceEvent>) {
        let (report, trace, _) = self.run_measured();
        (report, trace)
    }

    /// Runs, and also returns what the run counted.
    pub fn run_measured(mut self) -> (RunReport, Vec<TraceEvent>, PbftOutcome) {
        let (mut report, trace) = self.sim.run();
        let cast = self.sim.cast;
        report.stats.decisions = cast.ledger.slots;
        report.stats.ops = cast.ledger.done_count();
        let mut outcome = cast.outcome;
        outcome.slots = cast.ledger.slots;
        outcome.nulls = cast.ledger.nulls;
        outcome.views = cast.views.len() as u64;
        (report, trace, outcome)
    }
}

impl PbftCast {
    fn correct(&self, id: NodeId) -> bool {
        id < CLIENT_BASE && !self.liars.contains_key(&id)
    }

    fn replica_config(&self, id: NodeId) -> ReplicaConfig {
        let quorum = match self.cfg.bug {
            Some(PlantedBug::PbftQuorumTooSmall) => self.quorum.planted_too_small(),
            _ => self.quorum,
        };
        ReplicaConfig {
            id,
            replicas: self.replicas.clone(),
            quorum,
            checkpoint_interval: 4,
            window: 8,
            view_change_ticks: 120,
            status_ticks: 25,
            bug: self.cfg.bug,
        }
    }

    fn correct_replicas(&self) -> Vec<NodeId> {
        self.replicas
            .iter()
            .copied()
            .filter(|&r| self.correct(r))
            .collect()
    }
}

impl Cast for PbftCast {
    type Msg = Message<String, u64>;
    type Record = Persist<String>;
    type Out = Output<String, u64>;
    type Timer = Timer;
    type Disk = Durable<String>;
    type Proc = Role;

    fn ids(&self) -> Vec<NodeId> {
        self.replicas.iter().chain(&self.clients).copied().collect()
    }

    fn boot(&mut self, id: NodeId, disk: &Durable<String>) -> Role {
        let verifier: Arc<dyn Verifier> = self.keys.clone();
        let signer = Arc::new(self.keys.signer(id));
        if id > CLIENT_BASE {
            let ops = (0..self.cfg.commands)
                .map(|k| PbftSim::command(id, k))
                .collect();
            return Role::Client(Box::new(Client::new(
                signer,
                verifier,
                self.replicas.clone(),
                self.quorum,
                ops,
                300,
                self.cfg.bug,
            )));
        }
        let replica = Replica::recover(
            self.replica_config(id),
            signer.clone(),
            verifier,
            disk.clone(),
            OpLog::default(),
        )
        .expect("the simulated disk holds only what the replica persisted");
        match self.liars.get(&id) {
            Some(lies) => {
                let rng = ChaCha8Rng::seed_from_u64(self.seed ^ (id << 32));
                let liar = Liar::new(replica, lies.clone(), rng, signer, self.replicas.clone());
                Role::Liar(Box::new(liar))
            }
            None => {
                self.ledger.through.insert(id, replica.executed());
                Role::Replica(Box::new(replica))
            }
        }
    }

    fn start_delay(&self, id: NodeId) -> Range<u64> {
        if id > CLIENT_BASE {
            30..60
        } else {
            0..10
        }
    }

    fn start(proc: &mut Role) -> (CastEffects<Self>, Option<u32>) {
        match proc {
            Role::Replica(r) => (r.start(), None),
            Role::Liar(l) => (l.start(), None),
            Role::Client(c) => (c.start(), Some(1)),
        }
    }

    fn deliver(proc: &mut Role, _from: NodeId, msg: Self::Msg) -> CastEffects<Self> {
        match proc {
            Role::Replica(r) => r.on_message(msg),
            Role::Liar(l) => l.on_message(msg),
            Role::Client(c) => c.on_message(msg),
        }
    }

    fn timer(proc: &mut Role, kind: Timer) -> CastEffects<Self> {
        match proc {
            Role::Replica(r) => r.on_timer(kind),
            Role::Liar(l) => l.on_timer(kind),
            Role::Client(c) => c.on_timer(kind),
        }
    }

    fn persisted(
        &mut self,
        _id: NodeId,
        record: &Persist<String>,
        disk: &mut Durable<String>,
        _now: u64,
    ) -> Result<(), Violation> {
        disk.apply(record);
        Ok(())
    }

    fn output(
        &mut self,
        node: NodeId,
        _proc: &Role,
        out: Output<String, u64>,
        hops: Option<u32>,
        now: u64,
    ) -> Result<(), Violation> {
        match out {
            Output::Done { op, result, .. } => self.ledger.done(node, &op, result, now),
            _ if !self.correct(node) => Ok(()),
            Output::Executed { seq, request } => {
                let first = self.ledger.first_at(seq);
                let fresh = request.as_ref().is_some_and(|(_, r)| r.is_some());
                let request = request.map(|(r, result)| (r.op, result));
                self.ledger.executed(node, seq, request, now)?;
                if let (true, true, Some(h)) = (first, fresh, hops) {
                    *self.outcome.delays.entry(h).or_default() += 1;
                }
                Ok(())
            }
            Output::Installed { seq } => {
                let t = self.ledger.through.entry(node).or_default();
                *t = (*t).max(seq);
                Ok(())
            }
            Output::ViewStarted { view } => {
                self.views.insert(view);
                Ok(())
            }
        }
    }

    fn starts_request(proc: &Role, msg: &Self::Msg) -> bool {
        match (proc, msg) {
            (Role::Client(c), Message::Reply(r)) => {
                c.current().is_some_and(|cur| cur.stamp == r.body.stamp)
            }
            _ => false,
        }
    }

    fn decision(out: &Output<String, u64>) -> Option<String> {
        match out {
            Output::Executed { request, .. } => Some(
                request
                    .as_ref()
                    .map_or_else(|| "null".to_string(), |(r, _)| r.op.clone()),
            ),
            _ => None,
        }
    }

    fn decision_slot(out: &Output<String, u64>) -> u64 {
        match out {
            Output::Executed { seq, .. } => *seq,
            _ => 0,
        }
    }

    fn may_crash(&self, id: NodeId) -> bool {
        id < CLIENT_BASE
    }

    fn rebooted(&mut self, _id: NodeId) {
        // `boot` already recorded where a correct replica resumes.
    }

    fn finished(&self) -> bool {
        self.ledger.finished(&self.correct_replicas())
    }

    fn missing(&self) -> String {
        let m = self.ledger.missing(&self.correct_replicas());
        format!("{m}; liars {:?}", self.liars)
    }

    fn leader(&self) -> Option<NodeId> {
        self.replicas.first().copied()
    }
}
