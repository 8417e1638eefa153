//! The Multi-Paxos world: replicas and key-value clients in virtual time, under faults, with
//! every checker run after every step.

use crate::faults::Faults;
use crate::history::{HistoryOp, OpRecord};
use crate::kv::{Kv, KvOp, KvResult};
use crate::net::{transmit, NetConfig, Partition};
use crate::queue::EventQueue;
use crate::report::{RunReport, Stats, Violation};
use crate::trace::{Trace, TraceEvent};
use crate::truth::Truth;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use synod_core::multi::{
    ClientId, Command, Config, DurableState, Message, MultiEffects, Output, Persist, Replica,
    RoleKind, Slot, Snapshot, Timer, Value,
};
use synod_core::quorum::{Quorum, QuorumSpec};
use synod_core::{NodeId, PlantedBug};

/// How a Multi-Paxos simulation is set up. Times are in ticks.
#[derive(Clone, Debug)]
pub struct MultiSimConfig {
    /// Replicas.
    pub nodes: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Operations each client performs, one at a time.
    pub ops_per_client: usize,
    /// Distinct keys the clients share.
    pub keys: usize,
    /// Faults injected until `fault_until`.
    pub faults: Faults,
    /// The network model.
    pub net: NetConfig,
    /// Faults stop (network heals, crashed nodes restart) at this time.
    pub fault_until: u64,
    /// Once faults stop, every client operation must complete within this many ticks.
    pub liveness_bound: u64,
    /// A client that hears nothing for this long retries at another replica.
    pub client_timeout: u64,
    /// Probability that a crash strikes in the middle of a step (part of its writes lost).
    pub crash_mid_step: f64,
    /// Quorum sizes.
    pub quorum: QuorumSpec,
    /// A bug planted on purpose.
    pub bug: Option<PlantedBug>,
    /// Record a trace.
    pub trace: bool,
    /// About every this many ticks a random replica snapshots and compacts its log (0: never).
    pub snapshot_every: u64,
    /// A node syncs its records within this many ticks of writing them (group commit: the
    /// steps in between share the sync).
    pub sync_delay: u64,
    /// Share of reads served by the leader without a log slot (ReadIndex); the rest go
    /// through the log.
    pub index_reads: f64,
}

impl Default for MultiSimConfig {
    fn default() -> Self {
        MultiSimConfig {
            nodes: 5,
            clients: 4,
            ops_per_client: 25,
            keys: 3,
            faults: Faults::ALL,
            net: NetConfig::default(),
            fault_until: 3_000,
            liveness_bound: 3_000,
            client_timeout: 120,
            crash_mid_step: 0.3,
            quorum: QuorumSpec::Majority,
            bug: None,
            trace: false,
            snapshot_every: 150,
            sync_delay: 4,
            index_reads: 0.5,
        }
    }
}

enum Event {
    Deliver {
        from: NodeId,
        to: NodeId,
        msg: Message<KvOp>,
    },
    Timer {
        node: NodeId,
        kind: Timer,
        epoch: u64,
    },
    Request {
        node: NodeId,
        cmd: Command<KvOp>,
    },
    /// A read to be served without a log slot.
    Read {
        node: NodeId,
        client: ClientId,
        seq: u64,
        key: Arc<str>,
    },
    Reply {
        client: ClientId,
        seq: u64,
        result: Option<KvResult>,
        hint: Option<NodeId>,
    },
    ClientNext {
        client: ClientId,
    },
    ClientTimeout {
        client: ClientId,
        seq: u64,
        attempt: u32,
    },
    ClientResend {
        client: ClientId,
        seq: u64,
        attempt: u32,
    },
    Crash,
    /// A random live replica begins a snapshot of its state.
    Snapshot,
    /// The snapshot a node began is encoded: it compacts its log below it, unless it crashed
    /// meanwhile. The delay between the two is what a server encoding off its loop sees.
    SnapshotDone {
        node: NodeId,
        epoch: u64,
        snapshot: Snapshot,
    },
    /// A node's unsynced records reach the disk; what waited for them is released.
    Sync {
        node: NodeId,
        epoch: u64,
    },
    Restart {
        node: NodeId,
    },
    Partition,
    Heal,
    FaultsEnd,
}

struct Node {
    replica: Option<Replica<Kv>>,
    disk: DurableState<KvOp>,
    /// Bumped at each crash, so timers armed before it never fire after it.
    epoch: u64,
    timers: HashMap<Timer, u64>,
    /// The next step this node takes is cut short by a crash.
    dying: bool,
    /// Records written but not yet synced: a crash loses them, except a prefix that happened
    /// to reach the disk first.
    unsynced: Vec<Persist<KvOp>>,
    /// Messages and outputs of steps whose records are not yet synced: they wait for the sync
    /// (the persist-before-send contract, with group commit).
    held: Vec<Held>,
    /// A sync is scheduled.
    sync_pending: bool,
    /// Reads handed to the replica, by read id: who asked, and for which key.
    reads: HashMap<u64, (ClientId, u64, Arc<str>)>,
}

/// An effect waiting for its step's records to be synced. Learned and applied values are
/// read when the step happens, since a snapshot may compact them before the sync.
enum Held {
    Send(NodeId, Message<KvOp>),
    Learned(Slot, Value<KvOp>),
    Applied(Slot, Value<KvOp>),
    Reply(ClientId, u64, Option<KvResult>, Option<NodeId>),
}

struct Client {
    id: ClientId,
    seq: u64,
    pending: Option<(KvOp, u64)>,
    /// The pending read is served without a log slot.
    by_index: bool,
    target: NodeId,
    attempt: u32,
    done: usize,
    last_seen: HashMap<Arc<str>, Option<Arc<str>>>,
}

/// One simulated Multi-Paxos run.
pub struct MultiSim {
    cfg: MultiSimConfig,
    seed: u64,
    rng: ChaCha8Rng,
    now: u64,
    queue: EventQueue<Event>,
    ids: Vec<NodeId>,
    nodes: HashMap<NodeId, Node>,
    clients: Vec<Client>,
    keys: Vec<Arc<str>>,
    faults: Faults,
    partition: Partition,
    truth: Truth,
    stats: Stats,
    history: Vec<OpRecord>,
    trace: Trace,
    /// Read ids handed out so far.
    next_read: u64,
}

const CLIENT_BASE: ClientId = 1000;

impl MultiSim {
    /// Sets up a run; nothing happens until [`MultiSim::run`].
    pub fn new(cfg: MultiSimConfig, seed: u64) -> Result<Self, String> {
        let ids: Vec<NodeId> = (1..=cfg.nodes as NodeId).collect();
        let quorum = Quorum::from_spec(cfg.quorum, &ids).map_err(|e| e.to_string())?;
        let mut sim = MultiSim {
            rng: ChaCha8Rng::seed_from_u64(seed),
            seed,
            now: 0,
            queue: EventQueue::default(),
            nodes: HashMap::new(),
            clients: Vec::new(),
            keys: (0..cfg.keys).map(|k| Arc::from(format!("k{k}"))).collect(),
            faults: cfg.faults,
            partition: Partition::none(),
            truth: Truth::new(Box::new(quorum)),
            stats: Stats::default(),
            history: Vec::new(),
            trace: Trace::new(cfg.trace),
            next_read: 0,
            ids,
            cfg,
        };
        for &id in &sim.ids.clone() {
            sim.nodes.insert(
                id,
                Node {
                    replica: None,
                    disk: DurableState::default(),
                    epoch: 0,
                    timers: HashMap::new(),
                    dying: false,
                    unsynced: Vec::new(),
                    held: Vec::new(),
                    sync_pending: false,
                    reads: HashMap::new(),
                },
            );
            sim.boot(id).map_err(|v| v.to_string())?;
        }
        for i in 0..sim.cfg.clients {
            let target = *sim.ids.choose(&mut sim.rng).expect("at least one node");
            sim.clients.push(Client {
                id: CLIENT_BASE + i as ClientId,
                seq: 0,
                pending: None,
                by_index: false,
                target,
                attempt: 0,
                done: 0,
                last_seen: HashMap::new(),
            });
            let at = sim.rng.gen_range(0..20);
            sim.queue.push(
                at,
                Event::ClientNext {
                    client: CLIENT_BASE + i as ClientId,
                },
            );
        }
        if sim.faults.crash {
            let at = sim.rng.gen_range(100..600);
            sim.queue.push(at, Event::Crash);
        }
        if sim.faults.partition {
            let at = sim.rng.gen_range(100..600);
            sim.queue.push(at, Event::Partition);
        }
        if sim.cfg.snapshot_every > 0 {
            let at = sim.rng.gen_range(1..=sim.cfg.snapshot_every);
            sim.queue.push(at, Event::Snapshot);
        }
        sim.queue.push(sim.cfg.fault_until, Event::FaultsEnd);
        Ok(sim)
    }

    fn replica_config(&self, id: NodeId) -> Config {
        let mut c = Config::new(id, self.ids.clone());
        c.quorum = self.cfg.quorum;
        c.seed = self.seed.wrapping_mul(31).wrapping_add(id);
        c.window = 8;
        c.max_batch = 8;
        c.bug = self.cfg.bug;
        c
    }

    /// Starts (or restarts) node `id` from its disk.
    fn boot(&mut self, id: NodeId) -> Result<(), Violation> {
        let cfg = self.replica_config(id);
        let node = self.nodes.get_mut(&id).expect("known node");
        let disk = node.disk.clone();
        // What survived on disk below the commit point must be exactly what was chosen.
        for (&slot, e) in disk.log.range(..disk.commit) {
            self.truth
                .confirm(self.now, id, "recovered", slot, &e.value)?;
        }
        let mut replica = Replica::recover(cfg, Kv::default(), disk).map_err(|e| Violation {
            check: "recovery",
            at: self.now,
            detail: format!("node {id} cannot restart: {e}"),
        })?;
        let fx = replica.start();
        let node = self.nodes.get_mut(&id).expect("known node");
        node.replica = Some(replica);
        self.apply_effects(id, fx)
    }

    /// Runs to completion (or to the first violation).
    pub fn run(mut self) -> (RunReport, Vec<TraceEvent>, Vec<OpRecord>) {
        let violation = self.run_inner().err();
        self.stats.decisions = self.truth.decisions();
        self.stats.end_time = self.now;
        let report = RunReport {
            seed: self.seed,
            stats: self.stats,
            violation,
        };
        (report, self.trace.take(), self.history)
    }

    fn run_inner(&mut self) -> Result<(), Violation> {
        let deadline = self.cfg.fault_until + self.cfg.liveness_bound;
        while let Some((at, ev)) = self.queue.pop() {
            self.now = at;
            self.stats.steps += 1;
            self.step(ev)?;
            if self
                .clients
                .iter()
                .all(|c| c.done >= self.cfg.ops_per_client)
                && self.now >= self.cfg.fault_until
            {
                return self.settle();
            }
            if self.now > deadline {
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
                Some((op, t)) => format!("client {} op {} ({op:?}) since t={t}", c.id, c.seq),
                None => format!("client {} idle after {} ops", c.id, c.done),
            })
            .collect();
        Violation {
            check: "liveness",
            at: self.now,
            detail: format!(
                "faults stopped at t={} but operations did not complete within {} ticks: {}",
                self.cfg.fault_until,
                self.cfg.liveness_bound,
                waiting.join("; ")
            ),
        }
    }

    /// After the last client operation: let the cluster run quietly, then every replica must
    /// have applied the same log.
    fn settle(&mut self) -> Result<(), Violation> {
        let until = self.now + 400;
        while let Some((at, ev)) = self.queue.pop() {
            if at > until {
                break;
            }
            self.now = at;
            self.stats.steps += 1;
            self.step(ev)?;
        }
        let applied: Vec<(NodeId, u64)> = self
            .ids
            .iter()
            .filter_map(|id| {
                let r = self.nodes[id].replica.as_ref()?;
                Some((*id, r.applied_index()))
            })
            .collect();
        let max = applied.iter().map(|a| a.1).max().unwrap_or(0);
        if applied.iter().any(|a| a.1 != max) || applied.len() != self.ids.len() {
            return Err(Violation {
                check: "convergence",
                at: self.now,
                detail: format!(
                    "replicas did not converge after a quiet period: applied {applied:?}"
                ),
            });
        }
        Ok(())
    }

    fn step(&mut self, ev: Event) -> Result<(), Violation> {
        match ev {
            Event::Deliver { from, to, msg } => {
                let alive = self.nodes[&to].replica.is_some();
                if !alive {
                    self.stats.dropped += 1;
                    return Ok(());
                }
                self.stats.delivered += 1;
                let fx = self.with_replica(to, |r| r.on_message(from, msg));
                self.apply_effects(to, fx)?;
            }
            Event::Timer { node, kind, epoch } => {
                let n = &self.nodes[&node];
                let due = n.epoch == epoch && n.timers.get(&kind) == Some(&self.now);
                if due && n.replica.is_some() {
                    self.nodes
                        .get_mut(&node)
                        .expect("node")
                        .timers
                        .remove(&kind);
                    self.trace.record(|| TraceEvent::Timer {
                        t: self.now,
                        node,
                        timer: format!("{kind:?}"),
                    });
                    let fx = self.with_replica(node, |r| r.on_timer(kind));
                    self.apply_effects(node, fx)?;
                }
            }
            Event::Request { node, cmd } => {
                if self.nodes[&node].replica.is_some() {
                    self.stats.delivered += 1;
                    let fx = self.with_replica(node, |r| r.on_client_request(cmd));
                    self.apply_effects(node, fx)?;
                } else {
                    self.stats.dropped += 1;
                }
            }
            Event::Read {
                node,
                client,
                seq,
                key,
            } => {
                if self.nodes[&node].replica.is_some() {
                    self.stats.delivered += 1;
                    self.next_read += 1;
                    let id = self.next_read;
                    let n = self.nodes.get_mut(&node).expect("node");
                    n.reads.insert(id, (client, seq, key));
                    let fx = self.with_replica(node, |r| r.on_read(id));
                    self.apply_effects(node, fx)?;
                } else {
                    self.stats.dropped += 1;
                }
            }
            Event::Reply {
                client,
                seq,
                result,
                hint,
            } => self.on_reply(client, seq, result, hint)?,
            Event::ClientNext { client } => self.client_next(client),
            Event::ClientTimeout {
                client,
                seq,
                attempt,
            } => self.client_timeout(client, seq, attempt)?,
            Event::ClientResend {
                client,
                seq,
                attempt,
            } => {
                let c = &self.clients[Self::client_index(client)];
                if c.seq == seq && c.attempt == attempt && c.pending.is_some() {
                    self.client_send(client);
                }
            }
            Event::Crash => self.nemesis_crash()?,
            Event::Sync { node, epoch } => {
                let n = &self.nodes[&node];
                if n.epoch == epoch && n.replica.is_some() {
                    self.sync(node)?;
                }
            }
            Event::Snapshot => {
                let live: Vec<NodeId> = self
                    .ids
                    .iter()
                    .copied()
                    .filter(|id| self.nodes[id].replica.is_some())
                    .collect();
                if let Some(&id) = live.choose(&mut self.rng) {
                    let begun = self.nodes[&id]
                        .replica
                        .as_ref()
                        .and_then(|r| r.begin_snapshot());
                    if let Some(pending) = begun {
                        let at = self.now + self.rng.gen_range(0..=20);
                        let done = Event::SnapshotDone {
                            node: id,
                            epoch: self.nodes[&id].epoch,
                            snapshot: pending.build(),
                        };
                        self.queue.push(at, done);
                    }
                }
                let at = self.now + self.rng.gen_range(1..=self.cfg.snapshot_every);
                self.queue.push(at, Event::Snapshot);
            }
            Event::SnapshotDone {
                node,
                epoch,
                snapshot,
            } => {
                let n = &self.nodes[&node];
                if n.epoch == epoch && n.replica.is_some() {
                    let fx = self.with_replica(node, |r| r.finish_snapshot(snapshot).0);
                    self.apply_effects(node, fx)?;
                }
            }
            Event::Restart { node } => {
                if self.nodes[&node].replica.is_none() {
                    self.trace
                        .record(|| TraceEvent::Restart { t: self.now, node });
                    self.boot(node)?;
                }
            }
            Event::Partition => self.nemesis_partition(),
            Event::Heal => {
                if !self.partition.is_whole() {
                    self.partition = Partition::none();
                    self.trace.record(|| TraceEvent::Heal { t: self.now });
                }
                if self.faults.partition && self.now < self.cfg.fault_until {
                    let at = self.now + self.rng.gen_range(50..400);
                    self.queue.push(at, Event::Partition);
                }
            }
            Event::FaultsEnd => {
                self.faults = Faults::NONE;
                self.partition = Partition::none();
                self.trace.record(|| TraceEvent::Note {
                    t: self.now,
                    text: "faults stop: network healed, crashed nodes restart".into(),
                });
                for id in self.ids.clone() {
                    self.nodes.get_mut(&id).expect("node").dying = false;
                    if self.nodes[&id].replica.is_none() {
                        self.trace.record(|| TraceEvent::Restart {
                            t: self.now,
                            node: id,
                        });
                        self.boot(id)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn with_replica(
        &mut self,
        id: NodeId,
        f: impl FnOnce(&mut Replica<Kv>) -> MultiEffects<KvOp, KvResult>,
    ) -> MultiEffects<KvOp, KvResult> {
        let r = self
            .nodes
            .get_mut(&id)
            .and_then(|n| n.replica.as_mut())
            .expect("caller checked the node is alive");
        f(r)
    }

    /// The driver's half of the persist-before-send contract: persist, then (unless the node
    /// dies mid-step) arm timers, act on outputs, and send.
    fn apply_effects(
        &mut self,
        id: NodeId,
        fx: MultiEffects<KvOp, KvResult>,
    ) -> Result<(), Violation> {
        let dying = std::mem::take(&mut self.nodes.get_mut(&id).expect("node").dying);
        let mut held = Vec::with_capacity(fx.output.len() + fx.send.len());
        if let Some(o) = fx.send.iter().find(|o| o.to == id) {
            return Err(Violation {
                check: "durability",
                at: self.now,
                detail: format!(
                    "node {id} hands itself {} without waiting for its sync",
                    o.msg.kind()
                ),
            });
        }
        let mut answered = Vec::new();
        for out in fx.output {
            let value = |slot: Slot| -> Value<KvOp> {
                let r = self.nodes[&id].replica.as_ref().expect("alive");
                r.log()
                    .get(&slot)
                    .map(|e| e.value.clone())
                    .expect("an output's slot is in the log")
            };
            held.push(match out {
                Output::Chosen { slot } => Held::Learned(slot, value(slot)),
                Output::Applied { slot } => Held::Applied(slot, value(slot)),
                Output::Reply {
                    client,
                    seq,
                    result,
                } => Held::Reply(client, seq, Some(result), None),
                Output::NotLeader {
                    client,
                    seq,
                    leader,
                } => Held::Reply(client, seq, None, leader),
                // The read is linearizable now: read the state machine at this point.
                Output::ReadReady { id: read } => {
                    let n = &self.nodes[&id];
                    let Some((client, seq, key)) = n.reads.get(&read).cloned() else {
                        continue;
                    };
                    answered.push(read);
                    let v = n
                        .replica
                        .as_ref()
                        .expect("alive")
                        .state_machine()
                        .get(&key)
                        .cloned();
                    Held::Reply(client, seq, Some(KvResult::Value(v)), None)
                }
                Output::ReadFailed { id: read, leader } => {
                    let Some((client, seq, _)) = self.nodes[&id].reads.get(&read).cloned() else {
                        continue;
                    };
                    answered.push(read);
                    Held::Reply(client, seq, None, leader)
                }
            });
        }
        // Outputs, and the messages the core lets go at once, go before the sync; the rest wait
        // for it (the contract of `synod_core::effects`).
        let mut early: Vec<Held> = fx
            .send
            .into_iter()
            .map(|o| Held::Send(o.to, o.msg))
            .collect();
        early.append(&mut held);
        let held: Vec<Held> = fx
            .send_after_sync
            .into_iter()
            .map(|o| Held::Send(o.to, o.msg))
            .collect();
        let node = self.nodes.get_mut(&id).expect("node");
        for read in answered {
            node.reads.remove(&read);
        }
        node.unsynced.extend(fx.persist);
        if dying {
            self.crash(id, true)?;
            return Ok(());
        }
        for t in fx.timers {
            let node = self.nodes.get_mut(&id).expect("node");
            let at = self.now + t.after;
            node.timers.insert(t.kind, at);
            let epoch = node.epoch;
            self.queue.push(
                at,
                Event::Timer {
                    node: id,
                    kind: t.kind,
                    epoch,
                },
            );
        }
        self.release(id, early)?;
        let node = self.nodes.get_mut(&id).expect("node");
        if node.unsynced.is_empty() && node.held.is_empty() {
            return self.release(id, held);
        }
        // Hold everything until a sync covers this step's records and every earlier step's.
        node.held.extend(held);
        if !node.sync_pending {
            node.sync_pending = true;
            let epoch = node.epoch;
            let at = self.now + self.rng.gen_range(0..=self.cfg.sync_delay);
            self.queue.push(at, Event::Sync { node: id, epoch });
        }
        Ok(())
    }

    /// Makes `records` durable on `id`'s disk, feeding every vote to ground truth.
    fn write_disk(&mut self, id: NodeId, records: Vec<Persist<KvOp>>) -> Result<(), Violation> {
        for record in &records {
            if let Persist::Accept {
                slot,
                ballot,
                value,
            } = record
            {
                self.truth.vote(self.now, id, *slot, *ballot, value)?;
            }
            self.nodes.get_mut(&id).expect("node").disk.apply(record);
        }
        Ok(())
    }

    /// The sync: unsynced records become durable, then what waited for them is released.
    fn sync(&mut self, id: NodeId) -> Result<(), Violation> {
        let node = self.nodes.get_mut(&id).expect("node");
        node.sync_pending = false;
        let records = std::mem::take(&mut node.unsynced);
        let held = std::mem::take(&mut node.held);
        self.write_disk(id, records)?;
        self.release(id, held)
    }

    fn release(&mut self, id: NodeId, held: Vec<Held>) -> Result<(), Violation> {
        for h in held {
            match h {
                Held::Learned(slot, value) => {
                    self.truth.confirm(self.now, id, "learned", slot, &value)?;
                    self.trace.record(|| TraceEvent::Chosen {
                        t: self.now,
                        node: id,
                        slot,
                        value: format!("{value:?}"),
                    });
                }
                Held::Applied(slot, value) => {
                    self.truth.confirm(self.now, id, "applied", slot, &value)?;
                }
                Held::Reply(client, seq, result, hint) => {
                    self.reply_to_client(id, client, seq, result, hint)
                }
                Held::Send(to, msg) => self.send(id, to, msg),
            }
        }
        Ok(())
    }

    fn send(&mut self, id: NodeId, to: NodeId, msg: Message<KvOp>) {
        if to == id {
            // A leader's own vote, handed back to it after its sync: a local step, not a
            // network message, so never lost or delayed.
            self.queue
                .push(self.now, Event::Deliver { from: id, to, msg });
            return;
        }
        self.stats.sent += 1;
        let summary = self.trace.on().then(|| summarize(&msg));
        let dropped = transmit(
            &mut self.rng,
            &self.cfg.net,
            self.faults,
            &self.partition,
            &mut self.queue,
            self.now,
            id,
            to,
            msg,
            |msg| Event::Deliver { from: id, to, msg },
        );
        if dropped.is_some() {
            self.stats.dropped += 1;
        }
        self.trace.record(|| match dropped {
            Some(reason) => TraceEvent::Drop {
                t: self.now,
                from: id,
                to,
                msg: summary.unwrap_or_default(),
                reason: reason.into(),
            },
            None => TraceEvent::Send {
                t: self.now,
                from: id,
                to,
                msg: summary.unwrap_or_default(),
            },
        });
    }

    fn reply_to_client(
        &mut self,
        from: NodeId,
        client: ClientId,
        seq: u64,
        result: Option<KvResult>,
        hint: Option<NodeId>,
    ) {
        self.stats.sent += 1;
        let dropped = transmit(
            &mut self.rng,
            &self.cfg.net,
            self.faults,
            &self.partition,
            &mut self.queue,
            self.now,
            from,
            client,
            result,
            |result| Event::Reply {
                client,
                seq,
                result,
                hint,
            },
        );
        self.stats.dropped += dropped.is_some() as u64;
    }

    // ----- clients -----

    fn client_index(client: ClientId) -> usize {
        (client - CLIENT_BASE) as usize
    }

    fn client_next(&mut self, client: ClientId) {
        let i = Self::client_index(client);
        if self.clients[i].done >= self.cfg.ops_per_client || self.clients[i].pending.is_some() {
            return;
        }
        let key = self.keys.choose(&mut self.rng).expect("keys").clone();
        let c = &mut self.clients[i];
        c.seq += 1;
        let fresh: Arc<str> = Arc::from(format!("c{}-{}", c.id, c.seq));
        let op = match self.rng.gen_range(0..10) {
            0..=3 => KvOp::Get(key),
            4..=6 => KvOp::Put(key, fresh),
            _ => KvOp::Cas {
                expected: c.last_seen.get(&key).cloned().flatten(),
                key,
                new: fresh,
            },
        };
        c.by_index = matches!(op, KvOp::Get(_)) && self.rng.gen_bool(self.cfg.index_reads);
        c.pending = Some((op.clone(), self.now));
        c.attempt = 0;
        let (id, seq) = (c.id, c.seq);
        self.truth.issued(id, seq, op);
        self.trace.record(|| TraceEvent::Client {
            t: self.now,
            client: id,
            what: format!("invoke #{seq}"),
        });
        self.client_send(client);
    }

    fn client_send(&mut self, client: ClientId) {
        let i = Self::client_index(client);
        let c = &self.clients[i];
        let Some((op, _)) = &c.pending else { return };
        let cmd = Command {
            client: c.id,
            seq: c.seq,
            op: op.clone(),
        };
        let (target, seq, attempt, by_index) = (c.target, c.seq, c.attempt, c.by_index);
        self.stats.sent += 1;
        let dropped = transmit(
            &mut self.rng,
            &self.cfg.net,
            self.faults,
            &self.partition,
            &mut self.queue,
            self.now,
            client,
            target,
            cmd,
            |cmd| match cmd.op {
                KvOp::Get(key) if by_index => Event::Read {
                    node: target,
                    client,
                    seq,
                    key,
                },
                _ => Event::Request { node: target, cmd },
            },
        );
        self.stats.dropped += dropped.is_some() as u64;
        self.queue.push(
            self.now + self.cfg.client_timeout,
            Event::ClientTimeout {
                client,
                seq,
                attempt,
            },
        );
    }

    fn client_timeout(
        &mut self,
        client: ClientId,
        seq: u64,
        attempt: u32,
    ) -> Result<(), Violation> {
        let i = Self::client_index(client);
        let c = &mut self.clients[i];
        if c.seq != seq || c.attempt != attempt || c.pending.is_none() {
            return Ok(());
        }
        // Try the next replica: the one we asked may be dead, partitioned or not leading.
        let pos = self.ids.iter().position(|&n| n == c.target).unwrap_or(0);
        c.target = self.ids[(pos + 1) % self.ids.len()];
        c.attempt += 1;
        self.client_send(client);
        Ok(())
    }

    fn on_reply(
        &mut self,
        client: ClientId,
        seq: u64,
        result: Option<KvResult>,
        hint: Option<NodeId>,
    ) -> Result<(), Violation> {
        let i = Self::client_index(client);
        let c = &mut self.clients[i];
        if c.seq != seq || c.pending.is_none() {
            return Ok(()); // a duplicate or late answer
        }
        let Some(result) = result else {
            // Not leader: go where we were pointed, or to the next replica, after a pause.
            let pos = self.ids.iter().position(|&n| n == c.target).unwrap_or(0);
            c.target = hint.unwrap_or(self.ids[(pos + 1) % self.ids.len()]);
            c.attempt += 1;
            let attempt = c.attempt;
            self.queue.push(
                self.now + 10,
                Event::ClientResend {
                    client,
                    seq,
                    attempt,
                },
            );
            return Ok(());
        };
        let (op, call) = c.pending.take().expect("checked");
        // Durability: an acknowledged command is chosen, hence in every later decided log. (A
        // read served outside the log is judged by the linearizability check alone.)
        if !c.by_index && self.truth.placed(client, seq).is_none() {
            return Err(Violation {
                check: "durability",
                at: self.now,
                detail: format!(
                    "client {client} was told #{seq} ({op:?}) committed, but it was never chosen"
                ),
            });
        }
        match (&op, &result) {
            (KvOp::Get(k), KvResult::Value(v)) => {
                c.last_seen.insert(k.clone(), v.clone());
            }
            (KvOp::Put(k, v), _) => {
                c.last_seen.insert(k.clone(), Some(v.clone()));
            }
            (KvOp::Cas { key, new, .. }, KvResult::Swapped(true)) => {
                c.last_seen.insert(key.clone(), Some(new.clone()));
            }
            _ => {}
        }
        c.done += 1;
        self.stats.ops += 1;
        self.history.push(OpRecord {
            client,
            op: HistoryOp::from_kv(&op, &result),
            call,
            ret: Some(self.now),
        });
        self.trace.record(|| TraceEvent::Client {
            t: self.now,
            client,
            what: format!("ok #{seq} {result:?}"),
        });
        let think = self.rng.gen_range(0..10);
        self.queue
            .push(self.now + think, Event::ClientNext { client });
        Ok(())
    }

    // ----- nemesis -----

    fn leader(&self) -> Option<NodeId> {
        self.ids
            .iter()
            .filter_map(|id| {
                let r = self.nodes[id].replica.as_ref()?;
                (r.role_kind() == RoleKind::Leader).then(|| (r.ballot(), *id))
            })
            .max()
            .map(|(_, id)| id)
    }

    fn crash(&mut self, id: NodeId, mid_step: bool) -> Result<(), Violation> {
        // The disk keeps what was synced, plus whatever prefix of the unsynced writes happened
        // to reach it; the rest, and every message still waiting for a sync, is gone.
        let node = self.nodes.get_mut(&id).expect("node");
        let mut unsynced = std::mem::take(&mut node.unsynced);
        node.held.clear();
        node.reads.clear();
        node.sync_pending = false;
        node.replica = None;
        node.epoch += 1;
        node.timers.clear();
        node.dying = false;
        let keep = self.rng.gen_range(0..=unsynced.len());
        unsynced.truncate(keep);
        self.write_disk(id, unsynced)?;
        self.stats.crashes += 1;
        self.trace.record(|| TraceEvent::Crash {
            t: self.now,
            node: id,
            mid_step,
        });
        let at = self.now + self.rng.gen_range(20..400);
        self.queue.push(at, Event::Restart { node: id });
        Ok(())
    }

    fn nemesis_crash(&mut self) -> Result<(), Violation> {
        if !self.faults.crash || self.now >= self.cfg.fault_until {
            return Ok(());
        }
        let live: Vec<NodeId> = self
            .ids
            .iter()
            .copied()
            .filter(|id| self.nodes[id].replica.is_some())
            .collect();
        let victim = match self.leader() {
            Some(l) if self.rng.gen_bool(0.5) => Some(l),
            _ => live.choose(&mut self.rng).copied(),
        };
        if let Some(v) = victim {
            if self.rng.gen_bool(self.cfg.crash_mid_step) {
                self.nodes.get_mut(&v).expect("node").dying = true;
            } else {
                self.crash(v, false)?;
            }
        }
        let at = self.now + self.rng.gen_range(100..600);
        self.queue.push(at, Event::Crash);
        Ok(())
    }

    fn nemesis_partition(&mut self) {
        if !self.faults.partition || self.now >= self.cfg.fault_until {
            return;
        }
        let n = self.ids.len();
        let mut shuffled = self.ids.clone();
        shuffled.shuffle(&mut self.rng);
        let leader = self.leader();
        self.partition = match self.rng.gen_range(0..4) {
            0 => {
                let k = self.rng.gen_range(1..=n.div_ceil(2).max(1));
                let side: BTreeSet<_> = shuffled[..k].iter().copied().collect();
                Partition::split(&self.ids, &side, format!("split {side:?} | rest"))
            }
            1 => {
                let l = leader.unwrap_or(shuffled[0]);
                let side: BTreeSet<_> = [l].into_iter().collect();
                Partition::split(&self.ids, &side, format!("isolate leader {l}"))
            }
            2 => {
                let l = leader.unwrap_or(shuffled[0]);
                Partition::one_way(l, &self.ids, format!("one-way: {l} cannot send"))
            }
            _ => {
                // A bridge: two sides that cannot hear each other, and one node that hears both.
                let bridge = shuffled[0];
                let half = (n - 1) / 2;
                let a: BTreeSet<_> = shuffled[1..1 + half].iter().copied().collect();
                Partition::split(
                    &self.ids,
                    &a,
                    format!("bridge {bridge} between {a:?} and rest"),
                )
                .without_node(bridge)
            }
        };
        self.stats.partitions += 1;
        let label = self.partition.label.clone();
        self.trace
            .record(|| TraceEvent::Partition { t: self.now, label });
        let at = self.now + self.rng.gen_range(100..600);
        self.queue.push(at, Event::Heal);
    }
}

/// A one-line description of a message for traces.
fn summarize(m: &Message<KvOp>) -> String {
    match m {
        Message::Accept {
            ballot,
            slot,
            value,
            commit,
        } => {
            format!(
                "accept(b={ballot}, slot={slot}, {} cmds, commit={commit})",
                value.commands().len()
            )
        }
        Message::Promise {
            ballot, entries, ..
        } => {
            format!("promise(b={ballot}, {} votes)", entries.len())
        }
        Message::CatchUp { entries } => format!("catchup({} slots)", entries.len()),
        Message::Chosen { slot, .. } => format!("chosen(slot={slot})"),
        Message::Forward { commands } => format!("forward({} cmds)", commands.len()),
        other => format!("{other:?}"),
    }
}
