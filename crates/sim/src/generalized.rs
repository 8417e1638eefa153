//! The Generalized Paxos world: leaders, acceptors, learners and clients issuing reads and
//! writes of two registers at once, under faults. Ground truth is computed from every history
//! persisted, with the true commutativity relation even when the nodes were given a wrong one.

use crate::cast::{Cast, CastSim, Timing};
use crate::faults::Faults;
use crate::net::NetConfig;
use crate::report::{RunReport, Violation};
use crate::trace::TraceEvent;
use crate::world::World;
use rand::seq::SliceRandom;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
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

/// A running process of the Generalized Paxos world.
pub enum Role {
    /// A leader.
    Leader(Leader),
    /// An acceptor.
    Acceptor(Acceptor),
    /// A learner.
    Learner(Learner),
    /// A client.
    Client(Client),
}

/// What a Generalized Paxos process keeps on disk.
#[derive(Default)]
pub struct Disk {
    number: u64,
    acceptor: AcceptorState,
}

/// The Generalized Paxos side of the single-instance world.
pub struct GenCast {
    cfg: GenSimConfig,
    seed: u64,
    ids: Vec<NodeId>,
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
    /// Commands some learner has learned, and what the run measured.
    first_learned: BTreeSet<Command>,
    /// When each client heard its command was done, and when it first proposed each command
    /// (a client's first command counts as proposed at time 0).
    done_at: BTreeMap<Command, u64>,
    proposed_at: BTreeMap<Command, u64>,
    outcome: GenOutcome,
}

/// What a Generalized Paxos run measured besides its report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenOutcome {
    /// Message delays from a command's proposal to the first learner learning it: delays →
    /// commands (commands learned through a timer's retry are not counted).
    pub delays: BTreeMap<u32, u64>,
    /// Recovery steps (a conflict's next step) that acceptors voted in.
    pub recoveries: u64,
}

/// One simulated Generalized Paxos run.
pub struct GenSim {
    sim: CastSim<GenCast>,
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
        let timing = Timing {
            fault_until: cfg.fault_until,
            liveness_bound: cfg.liveness_bound,
            crash_mid_step: cfg.crash_mid_step,
        };
        let cast = GenCast {
            seed,
            ids,
            quorum,
            relation,
            ops,
            votes: BTreeMap::new(),
            chosen: CStruct::new(),
            learned: BTreeMap::new(),
            finished: BTreeMap::new(),
            first_learned: BTreeSet::new(),
            done_at: BTreeMap::new(),
            proposed_at: BTreeMap::new(),
            outcome: GenOutcome::default(),
            cfg,
        };
        Ok(GenSim {
            sim: CastSim::new(cast, world, timing, seed),
        })
    }

    /// Runs to completion (or to the first violation).
    pub fn run(self) -> (RunReport, Vec<TraceEvent>) {
        let (report, trace, _) = self.run_measured();
        (report, trace)
    }

    /// Runs, and also returns what the run measured.
    pub fn run_measured(mut self) -> (RunReport, Vec<TraceEvent>, GenOutcome) {
        let (mut report, trace) = self.sim.run();
        let cast = self.sim.cast;
        report.stats.decisions = cast.chosen.len() as u64;
        report.stats.ops = (cast.finished.len() * cast.cfg.ops) as u64;
        (report, trace, cast.outcome)
    }
}

impl GenCast {
    fn learners(&self) -> Vec<NodeId> {
        (1..=self.cfg.learners as NodeId)
            .map(|i| LEARNER_BASE + i)
            .collect()
    }

    fn leaders(&self) -> Vec<NodeId> {
        (1..=self.cfg.leaders as NodeId).collect()
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

    /// Ground truth: acceptor `node` persisted history `h` in `round`. What the round's
    /// quorums chose must be compatible with everything chosen before, under the true relation.
    fn vote(&mut self, node: NodeId, round: Round, h: &CStruct, now: u64) -> Result<(), Violation> {
        let by = self.votes.entry(round).or_default();
        if by.is_empty() && round.step > 0 {
            self.outcome.recoveries += 1;
        }
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
                    at: now,
                    detail: format!("{c:?} was chosen but no client proposed it"),
                });
            }
        }
        match self.chosen.lub(&chosen, &Registers) {
            Some(l) => {
                let before = std::mem::replace(&mut self.chosen, l);
                self.check_real_time(&before, now)
            }
            None => Err(Violation {
                check: "agreement",
                at: now,
                detail: format!(
                    "round {round} chose {chosen}, incompatible with what was chosen before: {}",
                    self.chosen
                ),
            }),
        }
    }

    /// Real-time order, the linearizability of this world's clients: a command a client heard
    /// was done before another client proposed a conflicting one must come first in what was
    /// chosen, since the second could only have read or overwritten the first's effect. Checked
    /// for every command that just joined the chosen history.
    fn check_real_time(&self, before: &CStruct, now: u64) -> Result<(), Violation> {
        let pos = |c: &Command| self.chosen.commands().iter().position(|x| x == c);
        for b in self
            .chosen
            .commands()
            .iter()
            .filter(|c| !before.contains(c))
        {
            let proposed = self.proposed_at.get(b).copied().unwrap_or(0);
            for (a, &done) in &self.done_at {
                if done >= proposed || !Registers.conflict(&a.op, &b.op) {
                    continue;
                }
                if !matches!((pos(a), pos(b)), (Some(pa), Some(pb)) if pa < pb) {
                    return Err(Violation {
                        check: "real-time order",
                        at: now,
                        detail: format!(
                            "{a:?} was done at t={done}, before {b:?} was proposed at \
                             t={proposed}, yet the chosen history {} does not put it first",
                            self.chosen
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// A node's learned history grew to `h`: it must extend what it learned before, be
    /// compatible with every other learner's, and hold only what was chosen.
    fn confirm(&mut self, node: NodeId, h: CStruct, now: u64) -> Result<(), Violation> {
        let rel = &Registers;
        let fail = |detail: String| Violation {
            check: "agreement",
            at: now,
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
        self.learned.insert(node, h);
        Ok(())
    }
}

impl Cast for GenCast {
    type Msg = Message;
    type Record = Persist;
    type Out = Output;
    type Timer = Timer;
    type Disk = Disk;
    type Proc = Role;

    fn ids(&self) -> Vec<NodeId> {
        self.ids.clone()
    }

    fn boot(&mut self, id: NodeId, disk: &Disk) -> Role {
        let learners = self.learners();
        let leaders = self.leaders();
        let rel = self.relation.clone();
        let quorum = self.quorum.clone();
        if id < ACCEPTOR_BASE {
            let cfg = LeaderConfig {
                id,
                quorum,
                relation: rel,
                retry_ticks: (80, 200),
                seed: self.seed.wrapping_mul(131).wrapping_add(id),
            };
            Role::Leader(Leader::recover(cfg, disk.number))
        } else if id < LEARNER_BASE {
            let cfg = AcceptorConfig {
                id,
                quorum,
                learners,
                relation: rel,
                bug: self.cfg.bug,
            };
            Role::Acceptor(Acceptor::recover(cfg, disk.acceptor.clone()))
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
        }
    }

    fn start_delay(&self, id: NodeId) -> Range<u64> {
        if id >= CLIENT_BASE {
            20..60
        } else {
            0..10
        }
    }

    fn start(proc: &mut Role) -> (GenEffects, Option<u32>) {
        match proc {
            Role::Leader(p) => (p.start(), None),
            Role::Learner(p) => (p.start(), None),
            Role::Client(p) => (p.start(), Some(1)),
            Role::Acceptor(_) => (GenEffects::new(), None),
        }
    }

    fn deliver(proc: &mut Role, from: NodeId, msg: Message) -> GenEffects {
        match proc {
            Role::Leader(p) => p.on_message(from, msg),
            Role::Acceptor(p) => p.on_message(from, msg),
            Role::Learner(p) => p.on_message(from, msg),
            Role::Client(p) => p.on_message(from, msg),
        }
    }

    fn timer(proc: &mut Role, kind: Timer) -> GenEffects {
        match proc {
            Role::Leader(p) => p.on_timer(kind),
            Role::Learner(p) => p.on_timer(kind),
            Role::Client(p) => p.on_timer(kind),
            Role::Acceptor(_) => GenEffects::new(),
        }
    }

    fn persisted(
        &mut self,
        id: NodeId,
        record: &Persist,
        disk: &mut Disk,
        now: u64,
    ) -> Result<(), Violation> {
        if let Persist::Voted(round, h) = record {
            self.vote(id, *round, h, now)?;
        }
        match record {
            Persist::Number(n) => disk.number = disk.number.max(*n),
            other => disk.acceptor.apply(other),
        }
        Ok(())
    }

    fn output(
        &mut self,
        id: NodeId,
        proc: &Role,
        out: Output,
        hops: Option<u32>,
        now: u64,
    ) -> Result<(), Violation> {
        match out {
            Output::Learned(h) => {
                if self.learners().contains(&id) {
                    for c in h.commands() {
                        if self.first_learned.insert(c.clone()) {
                            if let Some(d) = hops {
                                *self.outcome.delays.entry(d).or_default() += 1;
                            }
                        }
                    }
                }
                self.confirm(id, h, now)
            }
            Output::Done(cmd) => {
                self.done_at.entry(cmd).or_insert(now);
                if let Role::Client(c) = proc {
                    match c.current() {
                        Some(next) => {
                            self.proposed_at.entry(next).or_insert(now);
                        }
                        None => {
                            self.finished.insert(id, true);
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn starts_request(proc: &Role, msg: &Message) -> bool {
        match (proc, msg) {
            (Role::Client(c), Message::Done { cmd }) => c.current().as_ref() == Some(cmd),
            _ => false,
        }
    }

    fn decision(out: &Output) -> Option<String> {
        match out {
            Output::Learned(h) => Some(h.to_string()),
            Output::Done(_) => None,
        }
    }

    fn rebooted(&mut self, id: NodeId) {
        self.learned.remove(&id);
    }

    fn finished(&self) -> bool {
        let all = self.all_commands();
        self.learners().iter().all(|l| {
            self.learned
                .get(l)
                .is_some_and(|h| all.iter().all(|c| h.contains(c)))
        }) && self.finished.len() == self.cfg.clients
    }

    fn missing(&self) -> String {
        let have: Vec<String> = self
            .learners()
            .iter()
            .map(|l| format!("{l} learned {}", self.learned.get(l).map_or(0, |h| h.len())))
            .collect();
        format!(
            "not every command of {} was learned everywhere ({}; clients finished: {})",
            self.all_commands().len(),
            have.join(", "),
            self.finished.len()
        )
    }

    fn leader(&self) -> Option<NodeId> {
        Some(1)
    }
}
