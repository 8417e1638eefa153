//! The PBFT world: `3f + 1` replicas of which up to `f` lie (each with lies drawn by the seed),
//! clients that send to every replica and take a result on `f + 1` matching replies, and the
//! usual faults (loss, duplication, delay, partitions, crash-restarts) on top.
//!
//! Checkers, after every step, over the correct replicas only:
//! - agreement: no two correct replicas execute different requests at one slot, or get
//!   different results for one request;
//! - validity: a request executed is one a client sent;
//! - clients: a result a client took is the one correct replicas computed, and a request that
//!   finished before another began comes first in the log;
//! - liveness: once faults stop (the liars keep lying), every request is done and every correct
//!   replica executed through the last of them.

mod liar;

pub use liar::{Liar, Lie};

use crate::cast::{Cast, CastEffects, CastSim, Timing};
use crate::faults::Faults;
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
    Client, Durable, Message, OpLog, Output, Persist, Replica, ReplicaConfig, Seq, Timer,
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

/// Replicas are 1..=N; clients from 101.
const CLIENT_BASE: NodeId = 100;

/// A running process.
pub enum Role {
    /// A correct replica.
    Replica(Box<Replica<OpLog<String>>>),
    /// A Byzantine replica.
    Liar(Box<Liar>),
    /// A client.
    Client(Client<String, u64>),
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

struct Finished {
    client: NodeId,
    index: u64,
    ended: u64,
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
    /// What correct replicas executed at each slot (none: a null request).
    executed: BTreeMap<Seq, Option<String>>,
    /// The result correct replicas computed for each request.
    results: BTreeMap<String, u64>,
    /// The slot a correct replica executed through, since its last boot.
    through: BTreeMap<NodeId, Seq>,
    began: BTreeMap<NodeId, u64>,
    finished: Vec<Finished>,
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
            began: clients.iter().map(|&c| (c, 0)).collect(),
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
            executed: BTreeMap::new(),
            results: BTreeMap::new(),
            through: BTreeMap::new(),
            finished: Vec::new(),
            views: BTreeSet::new(),
            cfg,
        };
        Ok(PbftSim {
            sim: CastSim::new(cast, world, timing, seed),
        })
    }

    /// The `k`-th request of client `id`.
    pub fn command(id: NodeId, k: usize) -> String {
        format!("c{}.{}", id - CLIENT_BASE, k + 1)
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
        report.stats.decisions = cast.outcome.slots;
        report.stats.ops = cast.finished.len() as u64;
        let mut outcome = cast.outcome;
        outcome.views = cast.views.len() as u64;
        (report, trace, outcome)
    }
}

fn violation(check: &'static str, at: u64, detail: String) -> Result<(), Violation> {
    Err(Violation { check, at, detail })
}

impl PbftCast {
    fn proposed(&self, value: &str) -> bool {
        self.clients
            .iter()
            .any(|&c| (0..self.cfg.commands).any(|k| PbftSim::command(c, k) == value))
    }

    fn total(&self) -> u64 {
        (self.clients.len() * self.cfg.commands) as u64
    }

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

    /// A correct replica executed `request` at `seq`, with `result` (none: a repeat).
    fn executed(
        &mut self,
        node: NodeId,
        seq: Seq,
        request: Option<(String, Option<u64>)>,
        now: u64,
    ) -> Result<(), Violation> {
        let op = request.as_ref().map(|(op, _)| op.clone());
        match self.executed.get(&seq) {
            Some(known) if *known != op => {
                let d = format!(
                    "replica {node} executed {op:?} at slot {seq}, another correct replica {known:?}"
                );
                return violation("agreement", now, d);
            }
            Some(_) => {}
            None => {
                if let Some(op) = &op {
                    if !self.proposed(op) {
                        return violation("validity", now, format!("{op} executed, never sent"));
                    }
                }
                self.outcome.slots += 1;
                self.outcome.nulls += op.is_none() as u64;
                self.executed.insert(seq, op);
            }
        }
        if let Some((op, Some(result))) = request {
            match self.results.get(&op) {
                Some(r) if *r != result => {
                    let d = format!(
                        "replica {node} computed {result} for {op}, another correct replica {r}"
                    );
                    return violation("agreement", now, d);
                }
                Some(_) => {}
                None => {
                    self.results.insert(op, result);
                }
            }
        }
        let t = self.through.entry(node).or_default();
        *t = (*t).max(seq);
        Ok(())
    }

    /// A client took `result` for `op`: correct replicas must have computed it, and real time
    /// order must agree with the log's.
    fn done(&mut self, client: NodeId, op: &str, result: u64, now: u64) -> Result<(), Violation> {
        if self.results.get(op) != Some(&result) {
            let d = format!(
                "client {client} took {result} for {op}, but correct replicas computed {:?}",
                self.results.get(op)
            );
            return violation("client-result", now, d);
        }
        let began = self.began.insert(client, now).unwrap_or(0);
        if let Some(before) = self
            .finished
            .iter()
            .find(|f| f.ended < began && f.index > result)
        {
            let d = format!(
                "request #{} of client {} finished at t={} before client {client}'s {op} began (t>={began}), yet comes after it (#{result})",
                before.index, before.client, before.ended
            );
            return violation("linearizability", now, d);
        }
        self.finished.push(Finished {
            client,
            index: result,
            ended: now,
        });
        Ok(())
    }

    fn last_request_slot(&self) -> Seq {
        self.executed
            .iter()
            .rev()
            .find(|(_, op)| op.is_some())
            .map_or(0, |(s, _)| *s)
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
            return Role::Client(Client::new(
                signer,
                verifier,
                self.replicas.clone(),
                self.quorum,
                ops,
                300,
                self.cfg.bug,
            ));
        }
        let replica = Replica::recover(
            self.replica_config(id),
            signer.clone(),
            verifier,
            disk.clone(),
            OpLog::default(),
        );
        match self.liars.get(&id) {
            Some(lies) => {
                let rng = ChaCha8Rng::seed_from_u64(self.seed ^ (id << 32));
                let liar = Liar::new(replica, lies.clone(), rng, signer, self.replicas.clone());
                Role::Liar(Box::new(liar))
            }
            None => {
                self.through.insert(id, replica.executed());
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
            Output::Done { op, result, .. } => self.done(node, &op, result, now),
            _ if !self.correct(node) => Ok(()),
            Output::Executed { seq, request } => {
                let first = !self.executed.contains_key(&seq);
                let fresh = request.as_ref().is_some_and(|(_, r)| r.is_some());
                let request = request.map(|(r, result)| (r.op, result));
                self.executed(node, seq, request, now)?;
                if let (true, true, Some(h)) = (first, fresh, hops) {
                    *self.outcome.delays.entry(h).or_default() += 1;
                }
                Ok(())
            }
            Output::Installed { seq } => {
                let t = self.through.entry(node).or_default();
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
        let last = self.last_request_slot();
        self.finished.len() as u64 == self.total()
            && self
                .replicas
                .iter()
                .filter(|&&r| self.correct(r))
                .all(|r| self.through.get(r).copied().unwrap_or(0) >= last)
    }

    fn missing(&self) -> String {
        let last = self.last_request_slot();
        let behind: Vec<String> = self
            .replicas
            .iter()
            .filter(|&&r| self.correct(r))
            .filter(|r| self.through.get(r).copied().unwrap_or(0) < last)
            .map(|r| format!("{r} ({})", self.through.get(r).copied().unwrap_or(0)))
            .collect();
        format!(
            "{} of {} requests done; correct replicas behind slot {last}: {}; liars {:?}",
            self.finished.len(),
            self.total(),
            behind.join(", "),
            self.liars
        )
    }

    fn leader(&self) -> Option<NodeId> {
        self.replicas.first().copied()
    }
}
