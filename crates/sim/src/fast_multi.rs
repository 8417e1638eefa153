//! The Fast Multi-Paxos world: servers (acceptor, learner and leader in one) and clients that
//! propose straight to the acceptors, under every fault, with ground truth computed per slot
//! from every vote persisted.
//!
//! Checkers, after every step:
//! - agreement: a slot is chosen with one entry only, and a server learns exactly that entry;
//! - validity: a chosen command is one a client proposed;
//! - the applied log: every server applies the same distinct commands in the same order, the
//!   order of the chosen log with repeats dropped;
//! - linearizability of the clients' appends: a command's position is the one the log gives it,
//!   and a command finished before another began comes first;
//! - liveness: once faults stop, every command is done and every server applied them all.

use crate::cast::{Cast, CastEffects, CastSim, Timing};
use crate::faults::Faults;
use crate::net::NetConfig;
use crate::report::{RunReport, Violation};
use crate::trace::TraceEvent;
use crate::world::World;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Arc;
use synod_core::fast::{Recovery, Round};
use synod_core::fast_multi::{
    AcceptorConfig, AcceptorState, Client, Entry, FmEffects, LeaderConfig, Message, Output,
    Persist, Server, Slot, Timer,
};
use synod_core::quorum::FastQuorum;
use synod_core::{NodeId, PlantedBug};

/// How a Fast Multi-Paxos simulation is set up. Times are in ticks.
#[derive(Clone, Debug)]
pub struct FastMultiSimConfig {
    /// Servers (each an acceptor, a learner and a possible leader).
    pub servers: usize,
    /// Clients, proposing at the same time.
    pub clients: usize,
    /// Commands per client, one after another.
    pub commands: usize,
    /// Faults injected until `fault_until`.
    pub faults: Faults,
    /// The network model.
    pub net: NetConfig,
    /// Faults stop at this time.
    pub fault_until: u64,
    /// Once faults stop, every command must be done and applied everywhere within this long.
    pub liveness_bound: u64,
    /// Probability that a crash strikes in the middle of a step.
    pub crash_mid_step: f64,
    /// How collisions are resolved; `None` lets each seed draw.
    pub recovery: Option<Recovery>,
    /// A bug planted on purpose.
    pub bug: Option<PlantedBug>,
    /// Record a trace.
    pub trace: bool,
}

impl Default for FastMultiSimConfig {
    fn default() -> Self {
        FastMultiSimConfig {
            servers: 5,
            clients: 3,
            commands: 4,
            faults: Faults::ALL,
            net: NetConfig::default(),
            fault_until: 800,
            liveness_bound: 4_000,
            crash_mid_step: 0.3,
            recovery: None,
            bug: None,
            trace: false,
        }
    }
}

/// Servers are 1..=N; clients from 101.
const CLIENT_BASE: NodeId = 100;

/// A running process.
pub enum Role {
    /// A server.
    Server(Box<Server<String>>),
    /// A client.
    Client(Client<String>),
}

/// What a server keeps on disk.
#[derive(Default)]
pub struct Disk {
    number: u64,
    acceptor: AcceptorState<String>,
}

/// What a run counted besides its report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FastMultiOutcome {
    /// Slots chosen.
    pub slots: u64,
    /// Slots chosen in a fast round (the fast path, or an uncoordinated recovery step).
    pub fast_slots: u64,
    /// Slots chosen in a recovery step of a fast round (uncoordinated recovery).
    pub step_slots: u64,
    /// Slots where a fast round's votes went to different entries.
    pub collisions: u64,
    /// Rounds prepared (campaigns, including recoveries).
    pub rounds: u64,
    /// Commands chosen in more than one slot (applied once).
    pub repeats: u64,
    /// Message delays from a client's proposal to the first server learning its slot, for
    /// commands chosen in a fast round's first step: delays → commands.
    pub fast_delays: BTreeMap<u32, u64>,
    /// The same for commands chosen in a recovery: a classic round after a collision or a
    /// stall (coordinated), or a fast round's later step (uncoordinated).
    pub recovered_delays: BTreeMap<u32, u64>,
}

/// A finished client command.
struct Finished {
    client: NodeId,
    index: u64,
    ended: u64,
}

/// One round's votes in one slot: whether it is fast, and who voted for each entry.
type RoundVotes = (bool, BTreeMap<Entry<String>, BTreeSet<NodeId>>);

/// Ground truth per slot: votes by round, and what was chosen.
#[derive(Default)]
struct SlotTruth {
    votes: HashMap<Round, RoundVotes>,
    /// The entry, and whether it was chosen on the fast path (a fast round's first step).
    chosen: Option<(Entry<String>, bool)>,
}

/// The Fast Multi-Paxos side of the world: setup, ground truth and checkers.
pub struct FastMultiCast {
    cfg: FastMultiSimConfig,
    servers: Vec<NodeId>,
    clients: Vec<NodeId>,
    truth: Arc<FastQuorum>,
    quorum: Arc<FastQuorum>,
    recovery: Recovery,
    slots: BTreeMap<Slot, SlotTruth>,
    /// The chosen log's distinct commands, in order, as far as it is contiguous.
    log: Vec<String>,
    in_log: BTreeSet<String>,
    log_through: Slot,
    /// Commands applied by each server, since its last boot.
    applied: BTreeMap<NodeId, u64>,
    /// When each client's current command began (its previous one's end).
    began: BTreeMap<NodeId, u64>,
    finished: Vec<Finished>,
    /// Slots some server learned.
    learned: BTreeSet<Slot>,
    outcome: FastMultiOutcome,
}

/// One simulated Fast Multi-Paxos run.
pub struct FastMultiSim {
    sim: CastSim<FastMultiCast>,
}

impl FastMultiSim {
    /// Sets up a run.
    pub fn new(cfg: FastMultiSimConfig, seed: u64) -> Result<Self, String> {
        if cfg.servers == 0 || cfg.clients == 0 {
            return Err("a Fast Multi-Paxos run needs at least one server and one client".into());
        }
        let servers: Vec<NodeId> = (1..=cfg.servers as NodeId).collect();
        let clients: Vec<NodeId> = (1..=cfg.clients as NodeId)
            .map(|i| CLIENT_BASE + i)
            .collect();
        let truth = Arc::new(FastQuorum::majority(&servers).map_err(|e| e.to_string())?);
        let quorum = match cfg.bug {
            Some(PlantedBug::FastQuorumTooSmall) => Arc::new(truth.planted_too_small()),
            _ => truth.clone(),
        };
        let mut world = World::new(seed, cfg.net.clone(), cfg.faults, cfg.trace);
        let drawn = if world.rng.gen_bool(0.5) {
            Recovery::Coordinated
        } else {
            Recovery::Uncoordinated
        };
        let recovery = cfg.recovery.unwrap_or(drawn);
        let timing = Timing {
            fault_until: cfg.fault_until,
            liveness_bound: cfg.liveness_bound,
            crash_mid_step: cfg.crash_mid_step,
        };
        let cast = FastMultiCast {
            servers,
            began: clients.iter().map(|&c| (c, 0)).collect(),
            clients,
            truth,
            quorum,
            recovery,
            slots: BTreeMap::new(),
            log: Vec::new(),
            in_log: BTreeSet::new(),
            log_through: 0,
            applied: BTreeMap::new(),
            finished: Vec::new(),
            learned: BTreeSet::new(),
            outcome: FastMultiOutcome::default(),
            cfg,
        };
        Ok(FastMultiSim {
            sim: CastSim::new(cast, world, timing, seed),
        })
    }

    /// The `k`-th command of client `id`.
    pub fn command(id: NodeId, k: usize) -> String {
        format!("c{}.{}", id - CLIENT_BASE, k + 1)
    }

    /// Runs to completion (or to the first violation).
    pub fn run(self) -> (RunReport, Vec<TraceEvent>) {
        let (report, trace, _) = self.run_measured();
        (report, trace)
    }

    /// Runs, and also returns what the run counted.
    pub fn run_measured(mut self) -> (RunReport, Vec<TraceEvent>, FastMultiOutcome) {
        let (mut report, trace) = self.sim.run();
        let cast = self.sim.cast;
        report.stats.decisions = cast.outcome.slots;
        report.stats.ops = cast.finished.len() as u64;
        (report, trace, cast.outcome)
    }
}

fn violation(check: &'static str, at: u64, detail: String) -> Result<(), Violation> {
    Err(Violation { check, at, detail })
}

impl FastMultiCast {
    fn proposed(&self, value: &str) -> bool {
        self.clients
            .iter()
            .any(|&c| (0..self.cfg.commands).any(|k| FastMultiSim::command(c, k) == value))
    }

    /// Ground truth: server `node` persisted a vote for `entry` in `slot` and `round`.
    fn vote(
        &mut self,
        node: NodeId,
        slot: Slot,
        round: Round,
        fast: bool,
        entry: &Entry<String>,
        now: u64,
    ) -> Result<(), Violation> {
        let truth = self.slots.entry(slot).or_default();
        let (kind, by_entry) = truth
            .votes
            .entry(round)
            .or_insert_with(|| (fast, BTreeMap::new()));
        if *kind != fast {
            let d = format!("slot {slot}: round {round} voted in both as fast and as classic");
            return violation("round-kind", now, d);
        }
        if !by_entry.contains_key(entry) && !by_entry.is_empty() {
            if !fast {
                let d = format!("slot {slot}: two entries voted in classic round {round}");
                return violation("classic-round", now, d);
            }
            if by_entry.len() == 1 {
                self.outcome.collisions += 1;
            }
        }
        let voters = by_entry.entry(entry.clone()).or_default();
        voters.insert(node);
        if !self.truth.is_quorum(voters, fast) {
            return Ok(());
        }
        if let Entry::Command(c) = entry {
            if !self.proposed(c) {
                return violation(
                    "validity",
                    now,
                    format!("slot {slot}: {c} chosen, never proposed"),
                );
            }
        }
        let truth = self.slots.get_mut(&slot).expect("just inserted");
        match &truth.chosen {
            Some((c, _)) if c != entry => {
                let d = format!("slot {slot}: {c:?} was chosen, then {entry:?} in round {round}");
                violation("agreement", now, d)
            }
            Some(_) => Ok(()),
            None => {
                truth.chosen = Some((entry.clone(), fast && round.step == 0));
                self.outcome.slots += 1;
                self.outcome.fast_slots += fast as u64;
                self.outcome.step_slots += (round.step > 0) as u64;
                self.extend_log();
                Ok(())
            }
        }
    }

    /// Extends the distinct-command log over newly contiguous chosen slots.
    fn extend_log(&mut self) {
        while let Some((entry, _)) = self
            .slots
            .get(&self.log_through)
            .and_then(|t| t.chosen.as_ref())
        {
            if let Entry::Command(c) = entry {
                if self.in_log.insert(c.clone()) {
                    self.log.push(c.clone());
                } else {
                    self.outcome.repeats += 1;
                }
            }
            self.log_through += 1;
        }
    }

    fn chosen(&self, slot: Slot) -> Option<&Entry<String>> {
        self.slots
            .get(&slot)
            .and_then(|t| t.chosen.as_ref())
            .map(|(e, _)| e)
    }

    /// A client finished `value` at position `index`: the position must be the log's, and no
    /// command that finished before this one began may come after it.
    fn done(&mut self, client: NodeId, value: &str, index: u64, now: u64) -> Result<(), Violation> {
        if self.log.get(index as usize).map(String::as_str) != Some(value) {
            let d = format!("client {client} was told {value} is command #{index}, but the log holds {:?} there", self.log.get(index as usize));
            return violation("linearizability", now, d);
        }
        let began = self.began.insert(client, now).unwrap_or(0);
        if let Some(before) = self
            .finished
            .iter()
            .find(|f| f.ended < began && f.index > index)
        {
            let d = format!(
                "command #{} of client {} finished at t={} before client {client}'s {value} began (t>={began}), yet comes after it (#{index})",
                before.index, before.client, before.ended
            );
            return violation("linearizability", now, d);
        }
        self.finished.push(Finished {
            client,
            index,
            ended: now,
        });
        Ok(())
    }

    /// Counts the delays to the first server learning `slot`, when that descends from a
    /// client's proposal of the command it holds.
    fn count_delays(&mut self, slot: Slot, value: &Entry<String>, hops: Option<u32>) {
        let (Some(hops), Entry::Command(_)) = (hops, value) else {
            return;
        };
        if !self.learned.insert(slot) {
            return;
        }
        let fast = self
            .slots
            .get(&slot)
            .and_then(|t| t.chosen.as_ref())
            .map(|(_, f)| *f);
        let bucket = match fast {
            Some(true) => &mut self.outcome.fast_delays,
            Some(false) => &mut self.outcome.recovered_delays,
            None => return,
        };
        *bucket.entry(hops).or_default() += 1;
    }

    fn total(&self) -> u64 {
        (self.clients.len() * self.cfg.commands) as u64
    }
}

impl Cast for FastMultiCast {
    type Msg = Message<String>;
    type Record = Persist<String>;
    type Out = Output<String>;
    type Timer = Timer;
    type Disk = Disk;
    type Proc = Role;

    fn ids(&self) -> Vec<NodeId> {
        self.servers.iter().chain(&self.clients).copied().collect()
    }

    fn boot(&mut self, id: NodeId, disk: &Disk) -> Role {
        if id > CLIENT_BASE {
            let commands = (0..self.cfg.commands)
                .map(|k| FastMultiSim::command(id, k))
                .collect();
            return Role::Client(Client::new(self.servers.clone(), commands, 200));
        }
        let acceptor = AcceptorConfig {
            id,
            quorum: self.quorum.clone(),
            learners: self.servers.clone(),
            bug: self.cfg.bug,
        };
        let leader = LeaderConfig {
            id,
            quorum: self.quorum.clone(),
            heartbeat_ticks: 20,
            election_ticks: 60 + 30 * (id - 1),
            stall_beats: 3,
            recovery: self.recovery,
            bug: self.cfg.bug,
        };
        let state = disk.acceptor.clone();
        Role::Server(Box::new(Server::recover(
            acceptor,
            state,
            leader,
            disk.number,
            40,
        )))
    }

    /// Servers start at once; clients a little later, at about the same time as each other.
    fn start_delay(&self, id: NodeId) -> Range<u64> {
        if id > CLIENT_BASE {
            100..140
        } else {
            0..10
        }
    }

    fn start(proc: &mut Role) -> (FmEffects<String>, Option<u32>) {
        match proc {
            Role::Server(s) => (s.start(), None),
            Role::Client(c) => (c.start(), Some(1)),
        }
    }

    fn deliver(proc: &mut Role, from: NodeId, msg: Message<String>) -> FmEffects<String> {
        match proc {
            Role::Server(s) => s.on_message(from, msg),
            Role::Client(c) => c.on_message(msg),
        }
    }

    fn timer(proc: &mut Role, kind: Timer) -> CastEffects<Self> {
        match proc {
            Role::Server(s) => s.on_timer(kind),
            Role::Client(c) => c.on_timer(kind),
        }
    }

    fn persisted(
        &mut self,
        id: NodeId,
        record: &Persist<String>,
        disk: &mut Disk,
        now: u64,
    ) -> Result<(), Violation> {
        match record {
            Persist::Voted { slot, vote } => {
                self.vote(id, *slot, vote.round, vote.fast, &vote.value, now)?;
                disk.acceptor.apply(record);
            }
            Persist::Number(n) => {
                disk.number = disk.number.max(*n);
                self.outcome.rounds += 1;
            }
            Persist::Promised(_) => disk.acceptor.apply(record),
        }
        Ok(())
    }

    fn output(
        &mut self,
        node: NodeId,
        _proc: &Role,
        out: Output<String>,
        hops: Option<u32>,
        now: u64,
    ) -> Result<(), Violation> {
        match out {
            Output::Chosen { slot, value } => {
                self.count_delays(slot, &value, hops);
                if self.chosen(slot) != Some(&value) {
                    let d = format!(
                        "server {node} learned {value:?} in slot {slot}, but ground truth says {:?}",
                        self.chosen(slot)
                    );
                    return violation("agreement", now, d);
                }
            }
            Output::Applied { index, value } => {
                if self.log.get(index as usize) != Some(&value) {
                    let d = format!(
                        "server {node} applied {value} as command #{index}, but the log holds {:?} there",
                        self.log.get(index as usize)
                    );
                    return violation("applied-log", now, d);
                }
                let n = self.applied.entry(node).or_default();
                *n = (*n).max(index + 1);
            }
            Output::Done { value, index } => self.done(node, &value, index, now)?,
            // Clients propose until told; only a server's proposer gives up.
            Output::GaveUp { .. } => {}
        }
        Ok(())
    }

    /// A client told its command is done proposes the next: a new request.
    fn starts_request(proc: &Role, msg: &Message<String>) -> bool {
        match (proc, msg) {
            (Role::Client(c), Message::Done { value, .. }) => c.current() == Some(value),
            _ => false,
        }
    }

    fn decision(out: &Output<String>) -> Option<String> {
        match out {
            Output::Chosen {
                value: Entry::Command(c),
                ..
            } => Some(c.clone()),
            Output::Chosen {
                value: Entry::Noop, ..
            } => Some("no-op".into()),
            _ => None,
        }
    }

    fn decision_slot(out: &Output<String>) -> u64 {
        match out {
            Output::Chosen { slot, .. } => *slot,
            _ => 0,
        }
    }

    fn may_crash(&self, id: NodeId) -> bool {
        id < CLIENT_BASE
    }

    fn rebooted(&mut self, id: NodeId) {
        self.applied.remove(&id);
    }

    fn finished(&self) -> bool {
        let total = self.total();
        self.finished.len() as u64 == total
            && self
                .servers
                .iter()
                .all(|s| self.applied.get(s) == Some(&total))
    }

    fn missing(&self) -> String {
        let behind: Vec<String> = self
            .servers
            .iter()
            .filter(|s| self.applied.get(s) != Some(&self.total()))
            .map(|s| format!("{s} ({})", self.applied.get(s).copied().unwrap_or(0)))
            .collect();
        format!(
            "{} of {} commands finished; servers behind (applied): {}",
            self.finished.len(),
            self.total(),
            behind.join(", ")
        )
    }

    fn leader(&self) -> Option<NodeId> {
        self.servers.first().copied()
    }
}
