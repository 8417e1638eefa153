//! The single-decree world: separate proposers, acceptors and learners under faults, with
//! ground truth computed from every vote persisted.

use crate::cast::{learned_what_was_chosen, Cast, CastSim, Timing};
use crate::faults::Faults;
use crate::net::NetConfig;
use crate::report::{RunReport, Violation};
use crate::trace::TraceEvent;
use crate::world::World;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
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

/// A running process of the single-decree world.
pub enum Role {
    /// A proposer.
    Proposer(Proposer<String>),
    /// An acceptor.
    Acceptor(Acceptor<String>),
    /// A learner.
    Learner(Learner<String>),
}

/// What a single-decree process keeps on disk.
#[derive(Default)]
pub struct Disk {
    round: u64,
    acceptor: AcceptorState<String>,
}

/// The Basic Paxos side of the single-instance world.
pub struct BasicCast {
    cfg: BasicSimConfig,
    seed: u64,
    ids: Vec<NodeId>,
    quorum: Arc<Quorum>,
    votes: HashMap<Ballot, (String, BTreeSet<NodeId>)>,
    chosen: Option<String>,
    knows: BTreeMap<NodeId, String>,
    /// Message delays from a proposer's first Prepare to the first learner learning.
    delays: Option<u32>,
}

/// One simulated single-decree run.
pub struct BasicSim {
    sim: CastSim<BasicCast>,
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
        let world = World::new(seed, cfg.net.clone(), cfg.faults, cfg.trace);
        let timing = Timing {
            fault_until: cfg.fault_until,
            liveness_bound: cfg.liveness_bound,
            crash_mid_step: cfg.crash_mid_step,
        };
        let cast = BasicCast {
            seed,
            ids,
            quorum,
            votes: HashMap::new(),
            chosen: None,
            knows: BTreeMap::new(),
            delays: None,
            cfg,
        };
        Ok(BasicSim {
            sim: CastSim::new(cast, world, timing, seed),
        })
    }

    /// Runs to completion (or to the first violation).
    pub fn run(self) -> (RunReport, Vec<TraceEvent>) {
        let (report, trace, _) = self.run_measured();
        (report, trace)
    }

    /// Runs, and also returns the message delays from a proposer's first Prepare to the first
    /// learner learning (when the decision descends from a proposal, not a retry).
    pub fn run_measured(mut self) -> (RunReport, Vec<TraceEvent>, Option<u32>) {
        let (mut report, trace) = self.sim.run();
        report.stats.decisions = self.sim.cast.chosen.is_some() as u64;
        (report, trace, self.sim.cast.delays)
    }
}

impl BasicCast {
    fn value_of(id: NodeId) -> String {
        format!("v{id}")
    }

    /// Ground truth: acceptor `node` persisted a vote for `value` in `ballot`.
    fn vote(
        &mut self,
        node: NodeId,
        ballot: Ballot,
        value: &str,
        now: u64,
    ) -> Result<(), Violation> {
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
                at: now,
                detail: format!("{v} was chosen but no proposer proposed it"),
            });
        }
        match &self.chosen {
            Some(c) if *c != v => Err(Violation {
                check: "agreement",
                at: now,
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
}

impl Cast for BasicCast {
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
        if id < ACCEPTOR_BASE {
            let cfg = ProposerConfig {
                id,
                quorum: self.quorum.clone(),
                retry_ticks: (30, 90),
                seed: self.seed.wrapping_mul(131).wrapping_add(id),
                bug: self.cfg.bug,
            };
            Role::Proposer(Proposer::recover(cfg, disk.round))
        } else if id < LEARNER_BASE {
            let learners = (1..=self.cfg.learners as NodeId)
                .map(|i| LEARNER_BASE + i)
                .collect();
            let mut a = Acceptor::recover(id, learners, disk.acceptor.clone());
            a.plant(self.cfg.bug);
            Role::Acceptor(a)
        } else {
            Role::Learner(Learner::new(id, self.quorum.clone(), 60))
        }
    }

    /// Proposers propose within 50 ticks of booting; the others start at once.
    fn start_delay(&self, id: NodeId) -> Range<u64> {
        if id < ACCEPTOR_BASE {
            0..50
        } else {
            0..1
        }
    }

    fn start(proc: &mut Role) -> (BasicEffects<String>, Option<u32>) {
        match proc {
            Role::Proposer(p) => {
                let value = Self::value_of(p.id());
                (p.propose(value), Some(1))
            }
            Role::Learner(l) => (l.start(), None),
            Role::Acceptor(_) => (BasicEffects::new(), None),
        }
    }

    fn deliver(proc: &mut Role, from: NodeId, msg: Message<String>) -> BasicEffects<String> {
        match proc {
            Role::Proposer(p) => p.on_message(from, msg),
            Role::Acceptor(a) => a.on_message(from, msg),
            Role::Learner(l) => l.on_message(from, msg),
        }
    }

    fn timer(proc: &mut Role, kind: Timer) -> BasicEffects<String> {
        match proc {
            Role::Proposer(p) => p.on_timer(kind),
            Role::Learner(l) => l.on_timer(kind),
            Role::Acceptor(_) => BasicEffects::new(),
        }
    }

    fn persisted(
        &mut self,
        id: NodeId,
        record: &Persist<String>,
        disk: &mut Disk,
        now: u64,
    ) -> Result<(), Violation> {
        if let Persist::Accepted(b, v) = record {
            self.vote(id, *b, v, now)?;
        }
        match record {
            Persist::Round(r) => disk.round = disk.round.max(*r),
            other => disk.acceptor.apply(other),
        }
        Ok(())
    }

    /// A proposer or learner says a value is chosen: it must be what ground truth says.
    fn output(
        &mut self,
        node: NodeId,
        _proc: &Role,
        out: Output<String>,
        hops: Option<u32>,
        now: u64,
    ) -> Result<(), Violation> {
        let Output::Chosen(value) = out;
        let learner = node > LEARNER_BASE;
        if learner && self.knows.keys().all(|&k| k <= LEARNER_BASE) {
            self.delays = hops;
        }
        learned_what_was_chosen(node, &value, self.chosen.as_deref(), now)?;
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
            .filter(|&&id| must_learn(id))
            .all(|id| self.knows.contains_key(id))
    }

    fn missing(&self) -> String {
        let missing: Vec<NodeId> = self
            .ids
            .iter()
            .copied()
            .filter(|&id| must_learn(id) && !self.knows.contains_key(&id))
            .collect();
        format!("{missing:?} did not learn the decision")
    }
}
