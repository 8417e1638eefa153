//! Atomic commit under faults: 2PC, 3PC and Paxos Commit in the shared fault world, with the
//! three properties checked after every step and at the end.
//!
//! - **atomicity**: no participant commits a transaction another aborts;
//! - **validity**: a commit only after every participant's yes vote is durable;
//! - **non-blocking**: once faults stop, every participant that is up and voted yes learns the
//!   outcome, while the processes that were down when faults stopped stay down for good (at
//!   most [`CommitSimConfig::stay_down`] of them: the failures the protocol must survive).

mod compare;

pub use compare::{compare, CompareRow, DelayRow};

use crate::faults::Faults;
use crate::net::NetConfig;
use crate::report::{RunReport, Violation};
use crate::trace::TraceEvent;
use crate::world::World;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use synod_core::commit::{CommitEffects, CommitNode, CommitOutput, Decision, Setup, TxId, Vote};
use synod_core::NodeId;

/// The coordinator's id; participants are numbered from 11, acceptors from 21.
pub const COORDINATOR: NodeId = 1;
const PARTICIPANT_BASE: NodeId = 10;
const ACCEPTOR_BASE: NodeId = 20;

/// How a commit simulation is set up. Times are in ticks.
#[derive(Clone, Debug)]
pub struct CommitSimConfig {
    /// Participants in every transaction.
    pub participants: usize,
    /// Acceptors (Paxos Commit only): `2F+1`.
    pub acceptors: usize,
    /// Transactions the coordinator begins, one after another.
    pub txs: u64,
    /// Faults injected until `fault_until`.
    pub faults: Faults,
    /// The network model.
    pub net: NetConfig,
    /// Faults stop at this time.
    pub fault_until: u64,
    /// Once faults stop, the live participants must all know every outcome within this long.
    pub liveness_bound: u64,
    /// How long processes wait before acting on their own.
    pub timeout: u64,
    /// Probability that a participant votes no on a transaction.
    pub refuse: f64,
    /// At most this many processes fail for good (the failures the protocol must survive):
    /// a crash is permanent with probability `permanent` while the budget lasts, and the
    /// processes still down when faults stop fill what is left of it.
    pub stay_down: usize,
    /// Probability that a crash is a permanent failure.
    pub permanent: f64,
    /// Probability that a crash strikes in the middle of a step (some of its records written,
    /// none of its messages sent).
    pub crash_mid_step: f64,
    /// A bug planted on purpose.
    pub bug: Option<synod_core::PlantedBug>,
    /// Record a trace.
    pub trace: bool,
}

impl Default for CommitSimConfig {
    fn default() -> Self {
        CommitSimConfig {
            participants: 3,
            acceptors: 3,
            txs: 12,
            faults: Faults::ALL,
            net: NetConfig::default(),
            fault_until: 600,
            liveness_bound: 1_500,
            timeout: 20,
            refuse: 0.1,
            stay_down: 1,
            permanent: 0.25,
            crash_mid_step: 0.3,
            bug: None,
            trace: false,
        }
    }
}

/// What became of the transactions of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CommitTally {
    /// Transactions the coordinator began.
    pub begun: u64,
    /// Transactions every live participant that voted on them has decided, all alike.
    pub decided: u64,
    /// Transactions a live participant voted yes on and never learned the outcome of.
    pub blocked: u64,
    /// Transactions committed by one participant and aborted by another.
    pub split: u64,
    /// Commits without every participant's yes vote.
    pub invalid: u64,
    /// Transactions no participant voted on or learned the outcome of (the coordinator's
    /// request never got through): harmless, nobody waits for them.
    pub unheard: u64,
    /// Messages sent.
    pub messages: u64,
    /// Per decided transaction, ticks from its beginning to the last participant's decision.
    pub latencies: Vec<u64>,
}

enum Event<M> {
    Begin { tx: TxId },
    Deliver { from: NodeId, to: NodeId, msg: M },
    Timer { node: NodeId, tx: TxId, epoch: u64 },
    Crash,
    Pause,
    Restart { node: NodeId },
    Partition,
    Heal,
    FaultsEnd,
}

struct Proc<N: CommitNode> {
    node: Option<N>,
    disk: Vec<N::Record>,
    epoch: u64,
    timers: HashMap<TxId, u64>,
    dying: bool,
    down_since: Option<u64>,
    /// Stalled (a long GC, a stopped VM) until then: its events wait, then it acts on them as
    /// if no time had passed.
    paused_until: u64,
}

/// One simulated run of the commit protocol `N`.
pub struct CommitSim<N: CommitNode> {
    cfg: CommitSimConfig,
    seed: u64,
    world: World<Event<N::Msg>>,
    setup: Setup,
    ids: Vec<NodeId>,
    procs: BTreeMap<NodeId, Proc<N>>,
    begun: BTreeMap<TxId, u64>,
    votes: BTreeMap<(TxId, NodeId), Vote>,
    decided: BTreeMap<TxId, BTreeMap<NodeId, (Decision, u64)>>,
    permanent: BTreeSet<NodeId>,
    faults_over: bool,
    begins_left: u64,
    split: BTreeSet<TxId>,
    invalid: BTreeSet<TxId>,
    violation: Option<Violation>,
    /// The latest partition: its label, when it began, and when it healed.
    last_partition: Option<(String, u64, Option<u64>)>,
}

/// Names a process as the charts and reports do: C, P1.., A1...
pub fn name(id: NodeId) -> String {
    match id {
        COORDINATOR => "C".into(),
        i if i > ACCEPTOR_BASE => format!("A{}", i - ACCEPTOR_BASE),
        i if i > PARTICIPANT_BASE => format!("P{}", i - PARTICIPANT_BASE),
        i => format!("{i}"),
    }
}

/// The setup of a run: who takes part, and who refuses which transaction.
pub fn setup_for<R: Rng>(rng: &mut R, cfg: &CommitSimConfig, uses_acceptors: bool) -> Setup {
    let participants: Vec<NodeId> = (1..=cfg.participants as NodeId)
        .map(|i| PARTICIPANT_BASE + i)
        .collect();
    let acceptors = if uses_acceptors {
        (1..=cfg.acceptors as NodeId)
            .map(|i| ACCEPTOR_BASE + i)
            .collect()
    } else {
        Vec::new()
    };
    let mut refuse = BTreeSet::new();
    for tx in 1..=cfg.txs {
        for &p in &participants {
            if cfg.refuse > 0.0 && rng.gen_bool(cfg.refuse) {
                refuse.insert((tx, p));
            }
        }
    }
    Setup {
        coordinator: COORDINATOR,
        participants,
        acceptors,
        refuse,
        timeout: cfg.timeout,
        bug: cfg.bug,
    }
}

impl<N: CommitNode> CommitSim<N> {
    /// Sets up a run.
    pub fn new(cfg: CommitSimConfig, seed: u64) -> Result<Self, String> {
        if cfg.participants == 0 || cfg.participants > 9 {
            return Err("commit protocols run with 1 to 9 participants".into());
        }
        if N::USES_ACCEPTORS && (cfg.acceptors == 0 || cfg.acceptors > 9) {
            return Err("Paxos Commit runs with 1 to 9 acceptors".into());
        }
        let mut world = World::new(seed, cfg.net.clone(), cfg.faults, cfg.trace);
        let setup = setup_for(&mut world.rng, &cfg, N::USES_ACCEPTORS);
        let mut ids = vec![COORDINATOR];
        ids.extend(&setup.participants);
        ids.extend(&setup.acceptors);
        let mut sim = CommitSim {
            world,
            seed,
            setup,
            procs: BTreeMap::new(),
            begun: BTreeMap::new(),
            votes: BTreeMap::new(),
            decided: BTreeMap::new(),
            permanent: BTreeSet::new(),
            faults_over: false,
            begins_left: cfg.txs,
            split: BTreeSet::new(),
            invalid: BTreeSet::new(),
            violation: None,
            last_partition: None,
            ids,
            cfg,
        };
        for id in sim.ids.clone() {
            sim.procs.insert(
                id,
                Proc {
                    node: None,
                    disk: Vec::new(),
                    epoch: 0,
                    timers: HashMap::new(),
                    dying: false,
                    down_since: None,
                    paused_until: 0,
                },
            );
            sim.boot(id);
        }
        let mut at = 5;
        for tx in 1..=sim.cfg.txs {
            sim.world.queue.push(at, Event::Begin { tx });
            at += sim.world.rng.gen_range(15..45);
        }
        if sim.world.faults.crash {
            let at = sim.world.rng.gen_range(5..80);
            sim.world.queue.push(at, Event::Crash);
        }
        if sim.world.faults.partition {
            let at = sim.world.rng.gen_range(5..80);
            sim.world.queue.push(at, Event::Partition);
        }
        if sim.world.faults.pause {
            let at = sim.world.rng.gen_range(5..80);
            sim.world.queue.push(at, Event::Pause);
        }
        sim.world.queue.push(sim.cfg.fault_until, Event::FaultsEnd);
        Ok(sim)
    }

    /// The participants, coordinator and acceptors of this run.
    pub fn setup(&self) -> &Setup {
        &self.setup
    }

    fn boot(&mut self, id: NodeId) {
        let p = self.procs.get_mut(&id).expect("process");
        let (node, fx) = N::boot(&self.setup, id, &p.disk);
        p.node = Some(node);
        p.down_since = None;
        self.apply(id, fx);
    }

    /// Runs to the end and returns the report, the trace and the tally.
    pub fn run(mut self) -> (RunReport, Vec<TraceEvent>, CommitTally) {
        let deadline = self.cfg.fault_until + self.cfg.liveness_bound;
        while let Some((at, ev)) = self.world.queue.pop() {
            if at > deadline {
                break;
            }
            self.world.now = at;
            self.world.stats.steps += 1;
            self.step(ev);
            if self.faults_over && self.begins_left == 0 && self.blocked().is_empty() {
                break;
            }
        }
        let blocked = self.blocked();
        if let (Some((tx, who)), None) = (blocked.iter().next(), &self.violation) {
            let down: Vec<String> = self
                .permanent
                .iter()
                .map(|&d| {
                    let since = self.procs[&d].down_since.unwrap_or(0);
                    format!("{} since t={since}", name(d))
                })
                .collect();
            self.violation = Some(Violation {
                check: "non-blocking",
                at: self.world.now,
                detail: format!(
                    "{} blocked on tx {tx}: voted yes and never learned the outcome, {} ticks \
                     after faults stopped; down for good: {}",
                    who.iter().map(|&p| name(p)).collect::<Vec<_>>().join(", "),
                    self.world.now.saturating_sub(self.cfg.fault_until),
                    if down.is_empty() {
                        "nobody".into()
                    } else {
                        down.join(", ")
                    }
                ),
            });
        }
        let tally = self.tally(&blocked);
        let mut stats = std::mem::take(&mut self.world.stats);
        stats.decisions = tally.decided;
        stats.ops = tally.begun;
        stats.end_time = self.world.now;
        let report = RunReport {
            seed: self.seed,
            stats,
            violation: self.violation.take(),
        };
        (report, self.world.trace.take(), tally)
    }

    /// Live participants that voted yes on a transaction and do not know its outcome.
    fn blocked(&self) -> BTreeMap<TxId, Vec<NodeId>> {
        let mut out: BTreeMap<TxId, Vec<NodeId>> = BTreeMap::new();
        for (&(tx, p), &v) in &self.votes {
            let up = self.procs[&p].node.is_some();
            let knows = self.decided.get(&tx).is_some_and(|d| d.contains_key(&p));
            if v == Vote::Yes && up && !knows {
                out.entry(tx).or_default().push(p);
            }
        }
        out
    }

    fn tally(&self, blocked: &BTreeMap<TxId, Vec<NodeId>>) -> CommitTally {
        let mut t = CommitTally {
            begun: self.begun.len() as u64,
            blocked: blocked.len() as u64,
            split: self.split.len() as u64,
            invalid: self.invalid.len() as u64,
            messages: self.world.stats.sent,
            ..Default::default()
        };
        t.unheard = self
            .begun
            .keys()
            .filter(|tx| {
                !self.decided.contains_key(tx) && !self.votes.keys().any(|(vtx, _)| vtx == *tx)
            })
            .count() as u64;
        for (tx, who) in &self.decided {
            if blocked.contains_key(tx) || self.split.contains(tx) {
                continue;
            }
            t.decided += 1;
            if let (Some(&start), Some(&end)) =
                (self.begun.get(tx), who.values().map(|(_, at)| at).max())
            {
                if who.len() == self.setup.participants.len() {
                    t.latencies.push(end - start);
                }
            }
        }
        t
    }

    fn live(&self) -> Vec<NodeId> {
        self.ids
            .iter()
            .copied()
            .filter(|id| self.procs[id].node.is_some())
            .collect()
    }

    fn step(&mut self, ev: Event<N::Msg>) {
        let target = match &ev {
            Event::Begin { .. } => Some(COORDINATOR),
            Event::Deliver { to, .. } => Some(*to),
            Event::Timer { node, .. } => Some(*node),
            _ => None,
        };
        if let Some(node) = target {
            let now = self.world.now;
            let p = self.procs.get_mut(&node).expect("process");
            if p.paused_until > now {
                let until = p.paused_until;
                // A timer due during the pause fires when the process resumes.
                if let Event::Timer { tx, .. } = &ev {
                    if p.timers.get(tx) == Some(&now) {
                        p.timers.insert(*tx, until);
                    }
                }
                self.world.queue.push(until, ev);
                return;
            }
        }
        match ev {
            Event::Begin { tx } => {
                self.begins_left -= 1;
                let Some(c) = self
                    .procs
                    .get_mut(&COORDINATOR)
                    .and_then(|p| p.node.as_mut())
                else {
                    return;
                };
                let fx = c.begin(tx);
                self.begun.insert(tx, self.world.now);
                self.note(format!("tx {tx} begins"));
                self.apply(COORDINATOR, fx);
            }
            Event::Deliver { from, to, msg } => {
                let Some(node) = self.procs.get_mut(&to).and_then(|p| p.node.as_mut()) else {
                    self.world.stats.dropped += 1;
                    return;
                };
                self.world.stats.delivered += 1;
                let fx = node.on_message(from, msg);
                self.apply(to, fx);
            }
            Event::Timer { node, tx, epoch } => {
                let p = self.procs.get_mut(&node).expect("process");
                if p.epoch != epoch || p.timers.get(&tx) != Some(&self.world.now) {
                    return;
                }
                p.timers.remove(&tx);
                let Some(n) = p.node.as_mut() else { return };
                let fx = n.on_timer(synod_core::commit::CommitTimer { tx });
                self.world.trace.record(|| TraceEvent::Timer {
                    t: self.world.now,
                    node,
                    timer: format!("timeout tx {tx}"),
                });
                self.apply(node, fx);
            }
            Event::Crash => {
                if self.faults_over {
                    return;
                }
                if let Some(&v) = self.live().choose(&mut self.world.rng) {
                    if self.world.rng.gen_bool(self.cfg.crash_mid_step) {
                        self.procs.get_mut(&v).expect("process").dying = true;
                    } else {
                        self.crash(v, false);
                    }
                }
                let at = self.world.rng.gen_range(20..150);
                self.world.after(at, Event::Crash);
            }
            Event::Pause => {
                if self.faults_over {
                    return;
                }
                if let Some(&v) = self.live().choose(&mut self.world.rng) {
                    let d = self.world.rng.gen_range(10..100);
                    let p = self.procs.get_mut(&v).expect("process");
                    p.paused_until = p.paused_until.max(self.world.now + d);
                    self.world.stats.pauses += 1;
                    self.note(format!("{} pauses for {d} ticks", name(v)));
                }
                let at = self.world.rng.gen_range(30..150);
                self.world.after(at, Event::Pause);
            }
            Event::Restart { node } => {
                if self.procs[&node].node.is_none() && !self.permanent.contains(&node) {
                    self.world.trace.record(|| TraceEvent::Restart {
                        t: self.world.now,
                        node,
                    });
                    self.boot(node);
                }
            }
            Event::Partition => {
                if !self.faults_over {
                    let ids = self.ids.clone();
                    self.world.partition_randomly(&ids, Some(COORDINATOR));
                    let label = self.world.partition.label.clone();
                    self.last_partition = Some((label, self.world.now, None));
                    let at = self.world.rng.gen_range(20..200);
                    self.world.after(at, Event::Heal);
                }
            }
            Event::Heal => {
                self.world.heal();
                if let Some((_, _, end @ None)) = &mut self.last_partition {
                    *end = Some(self.world.now);
                }
                if !self.faults_over {
                    let at = self.world.rng.gen_range(10..100);
                    self.world.after(at, Event::Partition);
                }
            }
            Event::FaultsEnd => self.end_faults(),
        }
    }

    /// Faults stop: the network heals, the most recent crashes (up to what is left of
    /// `stay_down`) become permanent failures, and everyone else still down restarts.
    fn end_faults(&mut self) {
        self.faults_over = true;
        self.world.faults = Faults::NONE;
        self.world.heal();
        let mut down: Vec<(u64, NodeId)> = self
            .procs
            .iter()
            .filter_map(|(&id, p)| p.down_since.filter(|_| p.node.is_none()).map(|t| (t, id)))
            .collect();
        down.sort_by(|a, b| b.cmp(a));
        down.retain(|(_, id)| !self.permanent.contains(id));
        let budget = self.cfg.stay_down.saturating_sub(self.permanent.len());
        for (i, (_, id)) in down.into_iter().enumerate() {
            if i < budget {
                self.permanent.insert(id);
                self.note(format!("{} stays down", name(id)));
            } else {
                self.world.trace.record(|| TraceEvent::Restart {
                    t: self.world.now,
                    node: id,
                });
                self.boot(id);
            }
        }
        for p in self.procs.values_mut() {
            p.dying = false;
        }
    }

    fn crash(&mut self, id: NodeId, mid_step: bool) {
        let now = self.world.now;
        let p = self.procs.get_mut(&id).expect("process");
        p.node = None;
        p.epoch += 1;
        p.timers.clear();
        p.dying = false;
        p.paused_until = 0;
        p.down_since = Some(now);
        self.world.stats.crashes += 1;
        self.world.trace.record(|| TraceEvent::Crash {
            t: now,
            node: id,
            mid_step,
        });
        if self.permanent.len() < self.cfg.stay_down && self.world.rng.gen_bool(self.cfg.permanent)
        {
            self.permanent.insert(id);
            self.note(format!("{} fails for good", name(id)));
        } else {
            let at = self.world.rng.gen_range(10..150);
            self.world.after(at, Event::Restart { node: id });
        }
    }

    fn note(&mut self, text: String) {
        let t = self.world.now;
        self.world.trace.record(|| TraceEvent::Note { t, text });
    }

    fn violate(&mut self, check: &'static str, detail: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation {
                check,
                at: self.world.now,
                detail,
            });
        }
    }

    /// Carries out one step's effects: records first (all of them, or a prefix if the process
    /// dies in this step), then outputs and timers, then messages.
    fn apply(&mut self, id: NodeId, fx: CommitEffects<N::Msg, N::Record>) {
        let p = self.procs.get_mut(&id).expect("process");
        let dying = std::mem::take(&mut p.dying);
        let keep = if dying {
            self.world.rng.gen_range(0..=fx.persist.len())
        } else {
            fx.persist.len()
        };
        let facts: Vec<CommitOutput> = fx.persist[..keep].iter().filter_map(N::fact).collect();
        p.disk.extend(fx.persist.into_iter().take(keep));
        // The checkers judge what is durable: a vote or decision whose record survived counts,
        // even if the process died before the step ended.
        for fact in facts {
            self.check_output(id, fact);
        }
        if dying {
            self.crash(id, true);
            return;
        }
        let epoch = self.procs[&id].epoch;
        for t in fx.timers {
            let at = self.world.now + t.after;
            self.procs
                .get_mut(&id)
                .expect("process")
                .timers
                .insert(t.kind.tx, at);
            self.world.queue.push(
                at,
                Event::Timer {
                    node: id,
                    tx: t.kind.tx,
                    epoch,
                },
            );
        }
        for o in fx.send.into_iter().chain(fx.send_after_sync) {
            let to = o.to;
            self.world.send(
                id,
                to,
                o.msg,
                |m| format!("{} tx {}", N::label(m), N::tx_of(m)),
                |msg| Event::Deliver { from: id, to, msg },
            );
        }
    }

    fn check_output(&mut self, id: NodeId, out: CommitOutput) {
        match out {
            CommitOutput::Voted { tx, vote } => {
                self.votes.insert((tx, id), vote);
            }
            CommitOutput::Decided { tx, decision } => {
                let now = self.world.now;
                self.note(format!("{} decides {decision} on tx {tx}", name(id)));
                let others = self.decided.entry(tx).or_default();
                let conflict = others
                    .iter()
                    .find(|(_, (d, _))| *d != decision)
                    .map(|(&p, &(d, at))| (p, d, at));
                others.insert(id, (decision, now));
                if decision == Decision::Commit {
                    let missing: Vec<String> = self
                        .setup
                        .participants
                        .iter()
                        .filter(|&&p| self.votes.get(&(tx, p)) != Some(&Vote::Yes))
                        .map(|&p| name(p))
                        .collect();
                    if !missing.is_empty() {
                        self.invalid.insert(tx);
                        self.violate(
                            "validity",
                            format!(
                                "{} committed tx {tx} without a yes vote from {}",
                                name(id),
                                missing.join(", ")
                            ),
                        );
                    }
                }
                if let Some((p, d, at)) = conflict {
                    self.split.insert(tx);
                    let partition = match &self.last_partition {
                        None => "no partition so far".to_string(),
                        Some((label, from, None)) => format!("partition {label} since t={from}"),
                        Some((label, from, Some(to))) => {
                            format!("last partition: {label}, t={from} to t={to}")
                        }
                    };
                    self.violate(
                        "atomicity",
                        format!(
                            "tx {tx}: {} decided {d} at t={at}, then {} decided {decision} \
                             ({partition})",
                            name(p),
                            name(id)
                        ),
                    );
                }
            }
        }
    }
}
