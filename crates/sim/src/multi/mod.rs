//! The Multi-Paxos world: server nodes and key-value clients in virtual time, under faults,
//! with every checker run after every step.
//!
//! Each node is the server's own node layer ([`synod_node::NodeCore`]) over the real store
//! (`synod-kv`), with a simulated disk that keeps the server's actual log records and
//! checkpoints ([`disk`]). The simulator is the node's driver, as the tokio server is
//! ([`driver`]); clients behave as etcd clients do ([`clients`]); the nemesis crashes nodes,
//! aims crashes at write and sync boundaries, and splits the network ([`nemesis`]). Ground
//! truth ([`crate::truth`]) sees every vote as it becomes durable.

mod auxiliary;
pub mod clients;
pub mod disk;
mod driver;
mod nemesis;
mod operator;
mod stalls;
mod traffic;

use crate::faults::Faults;
use crate::history::OpRecord;
use crate::report::{RunReport, Violation};
use crate::swarm::Swarm;
use crate::trace::TraceEvent;
use crate::truth::Truth;
use crate::world::World;
use clients::{Answer, Client, Request, CLIENT_BASE};
use disk::SimDisk;
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use synod_core::multi::{MemberInfo, Membership, Message, Role, Snapshot};
use synod_core::quorum::{Quorum, QuorumSpec};
use synod_core::{NodeId, PlantedBug};
use synod_kv::{KvCommand, RangeRequest};
use synod_node::{AutoCompaction, Checkpoint, NodeConfig, NodeCore, Ticket};

/// How a Multi-Paxos simulation is set up. Times are in ticks.
#[derive(Clone, Debug)]
pub struct MultiSimConfig {
    /// Server nodes.
    pub nodes: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Operations each client completes, one at a time.
    pub ops_per_client: usize,
    /// Distinct keys the clients share.
    pub keys: usize,
    /// Fault classes allowed.
    pub faults: Faults,
    /// Each seed draws its own mix and rates of the allowed faults (swarm testing); off, every
    /// seed runs every allowed fault at fixed rates.
    pub swarm: bool,
    /// Faults stop (network heals, crashed nodes restart) at this time.
    pub fault_until: u64,
    /// Once faults stop, every client operation must complete within this many ticks.
    pub liveness_bound: u64,
    /// A client that hears nothing for this long gives up on the attempt.
    pub client_timeout: u64,
    /// Quorum sizes.
    pub quorum: QuorumSpec,
    /// A bug planted on purpose.
    pub bug: Option<PlantedBug>,
    /// Record a trace.
    pub trace: bool,
    /// Share of gets served without a log slot (ReadIndex); the rest go through the log
    /// (without swarm testing; with it, each seed draws its own share).
    pub index_reads: f64,
    /// Cheap Paxos: auxiliary acceptors besides the `nodes` mains (numbered after them).
    pub auxiliaries: usize,
}

impl Default for MultiSimConfig {
    fn default() -> Self {
        MultiSimConfig {
            nodes: 5,
            clients: 4,
            ops_per_client: 25,
            keys: 3,
            faults: Faults::ALL,
            swarm: true,
            fault_until: 3_000,
            liveness_bound: 3_000,
            client_timeout: 120,
            quorum: QuorumSpec::Majority,
            bug: None,
            trace: false,
            index_reads: 0.6,
            auxiliaries: 0,
        }
    }
}

enum Event {
    Deliver {
        from: NodeId,
        to: NodeId,
        msg: Message<KvCommand>,
    },
    Tick {
        node: NodeId,
        epoch: u64,
    },
    Request {
        node: NodeId,
        ticket: Ticket,
        req: Request,
    },
    Reply {
        ticket: Ticket,
        answer: Answer,
    },
    ClientNext {
        client: u64,
    },
    ClientTimeout {
        ticket: Ticket,
    },
    /// A client asks again after a pause.
    ClientResend {
        ticket: Ticket,
    },
    /// A node's written records reach the disk; what waited for them is released.
    Sync {
        node: NodeId,
        epoch: u64,
    },
    SnapshotBuilt {
        node: NodeId,
        epoch: u64,
        snapshot: Snapshot,
    },
    CheckpointDone {
        node: NodeId,
        epoch: u64,
        covered: u64,
        checkpoint: Checkpoint,
    },
    /// The nemesis strikes a node of its choice.
    Crash,
    /// A crash aimed at one node, in the same tick as what prompted it.
    CrashNode {
        node: NodeId,
        epoch: u64,
    },
    Restart {
        node: NodeId,
    },
    /// The nemesis stalls a node of its choice.
    Pause,
    /// The operator transfers leadership or forces a checkpoint.
    Operate,
    /// The operator starts a node to join the running cluster.
    AddNode,
    Partition,
    Heal,
    FaultsEnd,
}

/// A server node: its node layer while it runs, and its disk, which outlives it.
struct SimNode {
    core: Option<NodeCore>,
    disk: SimDisk,
    /// Bumped at each crash, so events meant for an earlier life never reach a later one.
    epoch: u64,
    sync_pending: bool,
    /// The node is stalled until then: whatever reaches it waits.
    paused_until: u64,
    /// Reads the node's API is serving by ReadIndex, kept to order them through the log when
    /// no leader is known (as the gRPC layer does).
    reads: BTreeMap<Ticket, RangeRequest>,
    /// Peer messages that reached the node while it was down and wait for its restart.
    held: Vec<(NodeId, Message<KvCommand>)>,
}

/// The most messages held for a crashed node (the server's peer queues are bounded too).
const HELD_MAX: usize = 256;

/// One simulated Multi-Paxos run.
pub struct MultiSim {
    cfg: MultiSimConfig,
    seed: u64,
    swarm: Swarm,
    world: World<Event>,
    /// Every node ever started: the first members, then those the operator added.
    ids: Vec<NodeId>,
    /// Nodes started to join the running cluster, with the peers each was told to ask.
    joiners: BTreeMap<NodeId, Vec<NodeId>>,
    /// The cluster's first members.
    genesis: Vec<NodeId>,
    nodes: BTreeMap<NodeId, SimNode>,
    clients: Vec<Client>,
    keys: Vec<String>,
    truth: Truth<KvCommand>,
    history: Vec<OpRecord>,
    /// The highest store revision any client has been answered at so far.
    seen_revision: i64,
    /// The successor of the latest leadership transfer, and the time by which it must lead for
    /// the transfer to count as done.
    transfer_to: Option<(NodeId, u64)>,
    /// Cheap Paxos's auxiliary acceptors.
    auxes: BTreeMap<NodeId, auxiliary::SimAux>,
}

impl MultiSim {
    /// Sets up a run; nothing happens until [`MultiSim::run`].
    pub fn new(cfg: MultiSimConfig, seed: u64) -> Result<Self, String> {
        if cfg.nodes == 0 || cfg.clients == 0 {
            return Err("a simulation needs at least one node and one client".into());
        }
        let ids: Vec<NodeId> = (1..=cfg.nodes as NodeId).collect();
        let n = cfg.nodes as NodeId;
        let aux_ids: Vec<NodeId> = (n + 1..=n + cfg.auxiliaries as NodeId).collect();
        let all: Vec<NodeId> = ids.iter().chain(&aux_ids).copied().collect();
        Quorum::from_spec(cfg.quorum, &all).map_err(|e| e.to_string())?;
        let mut world = World::new(seed, Default::default(), cfg.faults, cfg.trace);
        let mut swarm = if cfg.swarm {
            Swarm::draw(&mut world.rng, cfg.faults, cfg.keys)
        } else {
            Swarm::fixed(cfg.faults)
        };
        swarm.keys = swarm.keys.clamp(1, cfg.keys.max(1));
        if !cfg.swarm {
            swarm.index_reads = cfg.index_reads;
        }
        world.net = swarm.net.clone();
        world.faults = swarm.faults;
        let mut sim = MultiSim {
            keys: (0..swarm.keys).map(|k| format!("k{k}")).collect(),
            nodes: BTreeMap::new(),
            clients: Vec::new(),
            truth: Truth::new(
                Membership::genesis(
                    (ids.iter().map(|&id| (id, Role::Voter)))
                        .chain(
                            aux_ids
                                .iter()
                                .map(|&id| (id, Role::Auxiliary { active: true })),
                        )
                        .map(|(id, role)| (id, role, MemberInfo::default())),
                    cfg.quorum,
                    swarm.alpha,
                )
                .map_err(|e| e.to_string())?,
            ),
            history: Vec::new(),
            seen_revision: 0,
            transfer_to: None,
            auxes: BTreeMap::new(),
            joiners: BTreeMap::new(),
            genesis: ids.clone(),
            ids,
            swarm,
            world,
            seed,
            cfg,
        };
        if sim.cfg.trace {
            let text = format!("seed {seed}: {:?}", sim.swarm);
            sim.world.trace.record(|| TraceEvent::Note { t: 0, text });
        }
        for id in aux_ids {
            sim.boot_aux(id).map_err(|v| v.to_string())?;
        }
        for id in sim.ids.clone() {
            sim.add_node(id).map_err(|v| v.to_string())?;
        }
        for i in 0..sim.cfg.clients as u64 {
            let target = *sim.ids.choose(&mut sim.world.rng).expect("a node");
            sim.clients.push(Client::new(CLIENT_BASE + i, target));
            let at = sim.world.rng.gen_range(0..20);
            sim.world.after(
                at,
                Event::ClientNext {
                    client: CLIENT_BASE + i,
                },
            );
        }
        sim.schedule_faults();
        sim.schedule_operator();
        let end = sim.cfg.fault_until;
        sim.world.after(end, Event::FaultsEnd);
        Ok(sim)
    }

    /// The members of the latest configuration ground truth has seen chosen: the nodes a
    /// client may be served by (the others were taken out of the cluster).
    fn members(&self) -> Vec<NodeId> {
        self.truth.membership().latest().receivers().collect()
    }

    /// True when the cluster runs Cheap Paxos.
    fn cheap(&self) -> bool {
        !self.auxes.is_empty()
    }

    /// This seed's fault mix.
    pub fn swarm(&self) -> &Swarm {
        &self.swarm
    }

    /// Starts node `id` with an empty disk.
    fn add_node(&mut self, id: NodeId) -> Result<(), Violation> {
        self.nodes.insert(
            id,
            SimNode {
                core: None,
                disk: SimDisk::default(),
                epoch: 0,
                sync_pending: false,
                paused_until: 0,
                reads: BTreeMap::new(),
                held: Vec::new(),
            },
        );
        self.boot(id)
    }

    fn node_config(&self, id: NodeId) -> NodeConfig {
        let (members, join) = match self.joiners.get(&id) {
            Some(seeds) => (seeds.clone(), true),
            None => (self.genesis.clone(), false),
        };
        let mut c = NodeConfig::new(id, members, Duration::from_millis(10));
        c.join = join;
        c.auxiliaries = self.auxes.keys().copied().collect();
        // Digests to auxiliaries: off, for every batch, or for batches of 200 encoded bytes
        // or more, by seed (not drawn from the swarm's generator, whose draws stay as they
        // were for every seed).
        c.aux_digest_min = [None, Some(0), Some(200)][(self.seed % 3) as usize];
        // Reads' probes to a quorum's worth of members (the server's default) on odd seeds,
        // to every member on even ones; by seed for the same reason.
        c.thrifty_reads = self.seed % 2 == 1;
        // Accepts to a quorum's worth of members, the rest told once a value is chosen, on
        // seeds whose second bit is set (so every pairing with thrifty reads is drawn), and
        // always with the bug that only such accepts can show.
        c.thrifty_writes =
            (self.seed / 2) % 2 == 1 || self.cfg.bug == Some(PlantedBug::ChosenPushedEarly);
        // Notices held back for 0, 1 or 2 ticks, by the seed's third and fourth bits.
        c.notice_ticks = (self.seed / 4) % 3;
        // Auto-compaction keeping 20 ticks of history on every other seed (by the seed's
        // next factor, independent of those above): the leader's compactions through the log
        // interleave with clients' writes, snapshots and crashes.
        c.auto_compaction = if (self.seed / 12) % 2 == 1 {
            AutoCompaction::Window { keep: 20 }
        } else {
            AutoCompaction::Off
        };
        c.quorum = self.cfg.quorum;
        c.window = 8;
        c.alpha = self.swarm.alpha;
        c.max_batch = 8;
        c.snapshot_every = self.swarm.snapshot_every;
        c.snapshot_chunk = self.swarm.snapshot_chunk;
        c.heartbeat_ticks = self.swarm.heartbeat;
        c.election_ticks = self.swarm.election;
        c.seed = self.seed.wrapping_mul(31).wrapping_add(id);
        c.bug = self.cfg.bug;
        c
    }

    /// Runs to completion (or to the first violation).
    pub fn run(mut self) -> (RunReport, Vec<TraceEvent>, Vec<OpRecord>) {
        let violation = self.run_inner().err();
        let mut stats = std::mem::take(&mut self.world.stats);
        stats.decisions = self.truth.decisions();
        stats.epochs = self.truth.membership().latest().epoch();
        let m = self.truth.membership();
        stats.removed = self.ids.iter().filter(|&&id| m.was_removed(id)).count() as u64;
        stats.joined = (self.joiners.keys())
            .filter(|id| {
                let core = self.nodes[id].core.as_ref();
                core.is_some_and(|c| !c.replica().joining())
            })
            .count() as u64;
        for a in self.auxes.values() {
            stats.aux_messages += a.received;
            stats.aux_digests += a.digests;
            stats.aux_votes_left += a.votes_held();
        }
        stats.end_time = self.world.now;
        let report = RunReport {
            seed: self.seed,
            stats,
            violation,
        };
        (report, self.world.trace.take(), self.history)
    }

    fn run_inner(&mut self) -> Result<(), Violation> {
        let deadline = self.cfg.fault_until + self.cfg.liveness_bound;
        while let Some((at, ev)) = self.world.queue.pop() {
            self.world.now = at;
            self.world.stats.steps += 1;
            self.step(ev)?;
            let done = self
                .clients
                .iter()
                .all(|c| c.done >= self.cfg.ops_per_client);
            if done && self.world.now >= self.cfg.fault_until {
                return self.settle();
            }
            if self.world.now > deadline {
                return Err(self.stuck());
            }
        }
        Err(self.stuck())
    }

    fn stuck(&self) -> Violation {
        let waiting: Vec<String> = self
            .clients
            .iter()
            .filter(|c| c.done < self.cfg.ops_per_client)
            .map(|c| match &c.pending {
                Some(p) => format!("client {} {:?} since t={}", c.id, p.op, p.call),
                None => format!("client {} idle after {} ops", c.id, c.done),
            })
            .collect();
        Violation {
            check: "liveness",
            at: self.world.now,
            detail: format!(
                "faults stopped at t={} but operations did not complete within {} ticks: {}",
                self.cfg.fault_until,
                self.cfg.liveness_bound,
                waiting.join("; ")
            ),
        }
    }

    /// After the last client operation: let the cluster run quietly, then every node must hold
    /// the same state: applied point, store (keys, history, leases) and session table.
    fn settle(&mut self) -> Result<(), Violation> {
        // Long enough for a member that missed the last decision to find out with nobody
        // leading: a first election timeout may find a candidate heard from, the second
        // stands, and a third covers a lost election (seed 717 of the 3-node sweep, with
        // timeouts up to 276 ticks, was cut off at 400).
        let mut quiet = 400.max(3 * self.swarm.election.1);
        if self.world.stats.reconfigurations > 0 {
            // A leader a change takes out steps down, so the voters elect anew, a candidate
            // catching up first and perhaps losing to a higher ballot, and the winner fills up
            // to alpha slots with no-ops (seed 22877 of the 3-node sweep: the leader removed at
            // t=3046, the next one elected at 3368 on its second try, cut off mid-fill at 3400).
            quiet += 2 * self.swarm.election.1;
        }
        if self.cheap() {
            // A main paused past the end of faults is taken out of the quorum three election
            // timeouts into its silence and put back once it answers, each change followed
            // by up to alpha no-ops (seed 1750 of the 3+2 sweep was cut off mid-way).
            quiet += self.swarm.pause + 6 * self.swarm.election.1;
        }
        let until = self.world.now + quiet;
        while let Some((at, ev)) = self.world.queue.pop() {
            if at > until {
                break;
            }
            self.world.now = at;
            self.world.stats.steps += 1;
            self.step(ev)?;
        }
        // A member taken out stops hearing of the log: only the members must agree.
        let members = self.members();
        let mut states = BTreeMap::new();
        for (&id, n) in self.nodes.iter().filter(|(id, _)| members.contains(id)) {
            let Some(core) = &n.core else {
                return Err(self.diverged(format!("node {id} is down after the quiet period")));
            };
            let r = core.replica();
            states.insert(id, (r.applied_index(), r.applied_state()));
        }
        let mut distinct: BTreeSet<_> = BTreeSet::new();
        for (applied, state) in states.values() {
            distinct.insert((applied, &state.state, &state.sessions));
        }
        if distinct.len() > 1 {
            let applied: Vec<_> = states.iter().map(|(id, (a, _))| (*id, *a)).collect();
            return Err(self.diverged(format!(
                "replicas hold different states after a quiet period (applied {applied:?})"
            )));
        }
        self.exactly_once()
    }

    /// Every client write carries a value no other write carries, so a value the store kept
    /// twice is a command applied twice.
    fn exactly_once(&self) -> Result<(), Violation> {
        let members = self.members();
        let mut cores = members.iter().filter_map(|id| self.nodes[id].core.as_ref());
        let Some(core) = cores.next() else {
            return Ok(());
        };
        let mut seen = BTreeSet::new();
        for kv in core.store().versions() {
            if !seen.insert((kv.key.clone(), kv.value.clone())) {
                return Err(Violation {
                    check: "exactly-once",
                    at: self.world.now,
                    detail: format!(
                        "the write of {:?} to {:?} was applied twice",
                        String::from_utf8_lossy(&kv.value),
                        String::from_utf8_lossy(&kv.key)
                    ),
                });
            }
        }
        Ok(())
    }

    fn diverged(&self, detail: String) -> Violation {
        Violation {
            check: "convergence",
            at: self.world.now,
            detail,
        }
    }

    /// The node an event happens at, if it happens at one (and so waits while it is paused).
    fn target(ev: &Event) -> Option<NodeId> {
        match ev {
            Event::Deliver { to, .. } => Some(*to),
            Event::Tick { node, .. }
            | Event::Request { node, .. }
            | Event::Sync { node, .. }
            | Event::SnapshotBuilt { node, .. }
            | Event::CheckpointDone { node, .. } => Some(*node),
            _ => None,
        }
    }

    fn step(&mut self, ev: Event) -> Result<(), Violation> {
        if let Some(aux) = self.aux_target(&ev) {
            return self.aux_step(aux, ev);
        }
        if let Some(node) = Self::target(&ev) {
            let until = self.nodes[&node].paused_until;
            if until > self.world.now {
                self.world.queue.push(until, ev);
                return Ok(());
            }
        }
        match ev {
            Event::Deliver { from, to, msg } => {
                if self.nodes[&to].core.is_some() {
                    self.world.stats.delivered += 1;
                } else if self.swarm.redeliver > 0.0
                    && self.world.rng.gen_bool(self.swarm.redeliver)
                {
                    let n = self.nodes.get_mut(&to).expect("node");
                    if n.held.len() < HELD_MAX {
                        n.held.push((from, msg));
                    }
                    return Ok(());
                }
                self.drive(to, |c| c.on_peer(from, msg))
            }
            Event::Tick { node, epoch } => {
                if self.alive(node, epoch) {
                    self.drive(node, |c| c.tick())?;
                    self.world.after(1, Event::Tick { node, epoch });
                }
                Ok(())
            }
            Event::Request { node, ticket, req } => self.on_request(node, ticket, req),
            Event::Reply { ticket, answer } => self.on_answer(ticket, answer),
            Event::ClientNext { client } => {
                self.client_next(client);
                Ok(())
            }
            Event::ClientTimeout { ticket } => self.client_timeout(ticket),
            Event::ClientResend { ticket } => {
                self.client_resend(ticket);
                Ok(())
            }
            Event::Sync { node, epoch } => {
                if self.alive(node, epoch) {
                    self.sync(node)?;
                }
                Ok(())
            }
            Event::SnapshotBuilt {
                node,
                epoch,
                snapshot,
            } => {
                if self.alive(node, epoch) {
                    self.drive(node, |c| c.snapshot_built(snapshot))?;
                }
                Ok(())
            }
            Event::CheckpointDone {
                node,
                epoch,
                covered,
                checkpoint,
            } => {
                if self.alive(node, epoch) {
                    self.checkpoint(node, covered, &checkpoint)?;
                }
                Ok(())
            }
            Event::Crash => self.nemesis_crash(),
            Event::CrashNode { node, epoch } => {
                if self.alive(node, epoch) && self.world.faults.crash {
                    self.crash(node, true)?;
                }
                Ok(())
            }
            Event::Restart { node } => {
                if self.nodes[&node].core.is_none() {
                    let t = self.world.now;
                    self.world.trace.record(|| TraceEvent::Restart { t, node });
                    self.boot(node)?;
                }
                Ok(())
            }
            Event::Pause => {
                self.nemesis_pause();
                Ok(())
            }
            Event::Operate => self.operate(),
            Event::AddNode => self.add_learner(),
            Event::Partition => {
                self.nemesis_partition();
                Ok(())
            }
            Event::Heal => {
                self.nemesis_heal();
                Ok(())
            }
            Event::FaultsEnd => self.faults_end(),
        }
    }

    fn alive(&self, node: NodeId, epoch: u64) -> bool {
        let n = &self.nodes[&node];
        n.epoch == epoch && n.core.is_some()
    }

    /// A request from a client reaches a node's API.
    fn on_request(&mut self, node: NodeId, ticket: Ticket, req: Request) -> Result<(), Violation> {
        if self.nodes[&node].core.is_none() {
            self.world.stats.dropped += 1;
            return Ok(());
        }
        self.world.stats.delivered += 1;
        match req {
            Request::Read(r) => {
                let n = self.nodes.get_mut(&node).expect("node");
                n.reads.insert(ticket, r.clone());
                self.drive(node, |c| c.read_index(ticket, r))
            }
            Request::Propose(cmd) => self.drive(node, |c| c.propose(ticket, cmd)),
        }
    }
}
