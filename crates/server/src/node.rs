//! The node loop: one task owns the replica. It takes inputs (peer messages, client proposals,
//! ticks), hands the persist records of everything it handled to the log's flusher thread as one
//! group, and goes on while the disk syncs. Messages the core marks as revealing this node's
//! promises and votes (`Effects::send_after_sync`) wait for that sync; accepts, heartbeats and
//! client replies do not, so a leader's disk and its followers' disks write in parallel.

use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::peer::Outbox;
use crate::watch::{WatchHub, WatchMsg, WatchSpec};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use synod_core::multi::{
    ClientId, Command, Config, DurableState, Message, MultiEffects, Output, Persist, Replica,
    RoleKind, Snapshot, Timer,
};
use synod_core::{NodeId, Outgoing};
use synod_kv::{KvCommand, KvOutput, RangeRequest, RangeResponse, Store};
use synod_node::lease_clock::LeaseClock;
use synod_storage::{
    CommitHandle, GroupCommitter, SnapshotStore, StorageError, StorageOptions, WalOptions,
};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

/// Why a proposal did not complete.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProposeError {
    /// No leader could be reached in time.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// The node is shutting down.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// This node does not lead (for reads that only a leader serves).
    #[error("etcdserver: not leader")]
    NotLeader,
}

/// A snapshot of the node's state for status pages.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct NodeStatus {
    /// This node.
    pub id: NodeId,
    /// Who it believes leads.
    pub leader: Option<NodeId>,
    /// Its role.
    pub role: String,
    /// The ballot it promised.
    pub ballot: String,
    /// Ballot round (reported as the raft term to etcd clients).
    pub term: u64,
    /// First slot not known chosen.
    pub commit_index: u64,
    /// Next slot to apply.
    pub applied_index: u64,
    /// Store revision.
    pub revision: i64,
    /// Bytes in the write-ahead log.
    pub log_bytes: u64,
    /// Live keys.
    pub keys: usize,
    /// Proposal lanes free: how many more commands this node can have in flight.
    pub lanes_free: usize,
}

/// A read's store revision and result, or why it was not served.
pub type ReadResult = Result<(i64, Result<RangeResponse, synod_kv::KvError>), ProposeError>;

/// What the gRPC layer and peers hand the node.
pub enum Input {
    /// A message from a peer.
    Peer(NodeId, Message<KvCommand>),
    /// A command to order through the log.
    Propose(KvCommand, oneshot::Sender<Result<KvOutput, ProposeError>>),
    /// A linearizable read served without a log slot (the leader confirms it still leads and
    /// names the index to wait for); fails with `NotLeader` when no leader is known, and the
    /// caller orders it through the log instead.
    ReadIndex(RangeRequest, oneshot::Sender<ReadResult>),
    /// A read served from local state (serializable).
    ReadLocal(
        RangeRequest,
        oneshot::Sender<(i64, Result<RangeResponse, synod_kv::KvError>)>,
    ),
    /// Current status.
    Status(oneshot::Sender<NodeStatus>),
    /// Watcher management for one watch stream.
    Watch(WatchInput),
    /// Seconds left on a lease by this node's lease clock.
    LeaseRemaining(i64, oneshot::Sender<Option<i64>>),
}

/// What a watch stream asks of the node.
pub enum WatchInput {
    /// Start a watcher; the node sends its responses to `tx`.
    Create {
        /// The stream's id.
        stream: u64,
        /// The watcher's id within the stream.
        id: i64,
        /// What it watches.
        spec: WatchSpec,
        /// The stream's buffer.
        tx: mpsc::Sender<WatchMsg>,
    },
    /// Stop a watcher.
    Cancel {
        /// The stream's id.
        stream: u64,
        /// The watcher's id.
        id: i64,
    },
    /// Report progress to the stream if all its watchers caught up.
    Progress {
        /// The stream's id.
        stream: u64,
        /// The stream's buffer.
        tx: mpsc::Sender<WatchMsg>,
    },
    /// The stream ended: drop its watchers.
    Close {
        /// The stream's id.
        stream: u64,
    },
}

/// A handle to send inputs to a node.
#[derive(Clone)]
pub struct NodeHandle {
    tx: mpsc::Sender<Input>,
}

impl NodeHandle {
    /// Orders `cmd` through the replicated log and returns its result.
    pub async fn propose(&self, cmd: KvCommand) -> Result<KvOutput, ProposeError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Input::Propose(cmd, tx))
            .await
            .map_err(|_| ProposeError::Stopped)?;
        rx.await.map_err(|_| ProposeError::Stopped)?
    }

    /// A linearizable read served without a log slot; `Err(NotLeader)` if this node does not
    /// lead.
    pub async fn read_index(&self, req: RangeRequest) -> ReadResult {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Input::ReadIndex(req, tx))
            .await
            .map_err(|_| ProposeError::Stopped)?;
        rx.await.map_err(|_| ProposeError::Stopped)?
    }

    /// Reads from this node's state without consulting the others.
    pub async fn read_local(
        &self,
        req: RangeRequest,
    ) -> Result<(i64, Result<RangeResponse, synod_kv::KvError>), ProposeError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Input::ReadLocal(req, tx))
            .await
            .map_err(|_| ProposeError::Stopped)?;
        rx.await.map_err(|_| ProposeError::Stopped)
    }

    /// The node's status.
    pub async fn status(&self) -> Result<NodeStatus, ProposeError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Input::Status(tx))
            .await
            .map_err(|_| ProposeError::Stopped)?;
        rx.await.map_err(|_| ProposeError::Stopped)
    }

    /// Creates, cancels or closes watchers.
    pub async fn watch(&self, input: WatchInput) -> Result<(), ProposeError> {
        self.tx
            .send(Input::Watch(input))
            .await
            .map_err(|_| ProposeError::Stopped)
    }

    /// Seconds left on a lease by this node's lease clock (`None`: it has not seen it).
    pub async fn lease_remaining(&self, id: i64) -> Result<Option<i64>, ProposeError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Input::LeaseRemaining(id, tx))
            .await
            .map_err(|_| ProposeError::Stopped)?;
        rx.await.map_err(|_| ProposeError::Stopped)
    }

    /// Hands the node a message from a peer (dropped if the node is overloaded: Paxos copes
    /// with lost messages, and a peer must never stall on us).
    pub fn deliver(&self, from: NodeId, msg: Message<KvCommand>) {
        let _ = self.tx.try_send(Input::Peer(from, msg));
    }
}

/// Exactly-once needs a client id and a sequence number per command, with one command in flight
/// per client id. The node runs many "lanes": each proposal takes a free lane, so concurrency is
/// bounded by the lane count and the session table by lanes per boot. A lane's next command
/// takes the next sequence number, even after one that timed out and may still be chosen: the
/// replicas skip a lane's command whose number is below one already applied, and replies are
/// matched by number, so the late one can neither run after the new one nor answer it.
const LANES: u64 = 4096;

struct Waiting {
    cmd: Command<KvCommand>,
    reply: oneshot::Sender<Result<KvOutput, ProposeError>>,
    submitted_tick: u64,
    first_tick: u64,
}

/// What the log's flusher thread and the checkpoint task report back to the loop.
enum Durable {
    /// Persist batch `seq` (and every earlier one) is durable, or the log failed.
    Synced {
        seq: u64,
        started: Instant,
        records: usize,
        result: Result<(), StorageError>,
    },
    /// A checkpoint was saved and the log below it dropped: its size, and the log's byte
    /// counter right after.
    Checkpointed(Result<(u64, u64), StorageError>),
    /// A snapshot begun on the loop was encoded on a blocking thread.
    SnapshotBuilt { snapshot: Snapshot, ms: u64 },
}

type Outgoings = Vec<Outgoing<Message<KvCommand>>>;

/// A loop turn at least this long is logged as a warning.
const SLOW_TURN_MS: u64 = 50;

/// The node's state, owned by its loop.
pub struct Node {
    replica: Replica<Store>,
    /// Keeps the flusher thread running; dropping it completes what is queued.
    _log: GroupCommitter,
    wal: CommitHandle,
    snapshots: Arc<SnapshotStore>,
    /// Index of the last record handed to the log.
    appended: u64,
    /// Persist batches handed to the log, and the newest known durable.
    batches: u64,
    synced: u64,
    /// Messages waiting for a persist batch to be durable, by batch.
    held: VecDeque<(u64, Outgoings)>,
    durable_tx: mpsc::UnboundedSender<Durable>,
    durable_rx: Option<mpsc::UnboundedReceiver<Durable>>,
    /// A snapshot is being encoded or a checkpoint written in the background.
    checkpointing: bool,
    /// A snapshot encoded in the background, to adopt at the end of the loop turn.
    built_snapshot: Option<Snapshot>,
    /// Commands taken since the last flush, proposed together so they can share slots.
    proposals: Vec<Command<KvCommand>>,
    /// Reads that arrived this turn: handed to the replica together, so one round of probes
    /// confirms them all.
    new_reads: Vec<u64>,
    /// The newest commit point not yet handed to the log.
    lazy_commit: Option<Persist<KvCommand>>,
    /// Bytes of the latest checkpoint plus what the log gained since.
    checkpoint_bytes: u64,
    appended_at_checkpoint: u64,
    outbox: Outbox,
    timers: HashMap<Timer, u64>,
    now: u64,
    boot: u64,
    free_lanes: Vec<u64>,
    lane_seq: Vec<u64>,
    waiting: BTreeMap<(ClientId, u64), Waiting>,
    retry: VecDeque<(ClientId, u64)>,
    resubmit_ticks: u64,
    give_up_ticks: u64,
    snapshot_every: u64,
    metrics: Metrics,
    watchers: WatchHub,
    /// Revision the watchers were last moved to.
    pumped_revision: i64,
    progress_ticks: u64,
    lease_clock: LeaseClock,
    leases_granted: u64,
    /// Reads waiting for the replica's go-ahead, by read id, with the tick they arrived.
    reads: HashMap<u64, (RangeRequest, oneshot::Sender<ReadResult>, u64)>,
    next_read: u64,
}

impl Node {
    /// Opens the log, recovers the replica from it, and returns the node ready to run.
    pub fn open(cfg: &ServerConfig, outbox: Outbox, metrics: Metrics) -> Result<Node, NodeError> {
        std::fs::create_dir_all(&cfg.data_dir)
            .map_err(|e| NodeError::DataDir(cfg.data_dir.clone(), e))?;
        let opts = StorageOptions {
            wal: WalOptions {
                segment_size: 16 << 20,
                ..WalOptions::default()
            },
            keep_snapshots: 2,
        };
        let opened = synod_storage::open(&cfg.data_dir, &opts)?;
        let report = opened.report.to_string();
        if !report.trim().is_empty() {
            tracing::info!(report = %report.trim(), "recovered storage");
        }
        let mut durable = DurableState::default();
        let mut boot = 0u64;
        let mut checkpoint_bytes = 0;
        if let Some(s) = &opened.snapshot {
            let cp: Checkpoint = postcard::from_bytes(&s.data)
                .map_err(|e| NodeError::Decode(format!("checkpoint {}", s.index), e.to_string()))?;
            boot = cp.boot;
            checkpoint_bytes = s.data.len() as u64;
            for p in &cp.records {
                durable.apply(p);
            }
        }
        for rec in &opened.records {
            match postcard::from_bytes::<LogRecord>(&rec.data) {
                Ok(LogRecord::Persist(p)) => durable.apply(&p),
                Ok(LogRecord::Boot(b)) => boot = boot.max(b),
                Err(e) => {
                    return Err(NodeError::Decode(
                        format!("log record {}", rec.index),
                        e.to_string(),
                    ))
                }
            }
        }
        let mut wal = opened.wal;
        let snapshots = Arc::new(opened.snapshots);
        // A new boot epoch gives this run's lanes client ids no earlier run used.
        wal.append(
            &postcard::to_stdvec(&LogRecord::<Persist<KvCommand>>::Boot(boot + 1))
                .expect("serializes"),
        )?;
        wal.sync()?;
        let appended = wal.last_index();
        let appended_at_checkpoint = wal.stats().bytes;
        let log = GroupCommitter::start(wal)?;
        let (durable_tx, durable_rx) = mpsc::unbounded_channel();
        let mut rc = Config::new(cfg.id, cfg.members.iter().map(|m| m.id).collect());
        rc.heartbeat_ticks = cfg.heartbeat_ticks;
        rc.election_ticks = cfg.election_ticks;
        rc.window = cfg.window;
        rc.max_batch = cfg.max_batch;
        rc.seed = cfg.id ^ (boot + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let replica = Replica::recover(rc, Store::new(), durable)
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let node = Node {
            replica,
            wal: log.handle(),
            _log: log,
            snapshots,
            appended,
            batches: 0,
            synced: 0,
            held: VecDeque::new(),
            durable_tx,
            durable_rx: Some(durable_rx),
            checkpointing: false,
            built_snapshot: None,
            proposals: Vec::new(),
            new_reads: Vec::new(),
            lazy_commit: None,
            checkpoint_bytes,
            appended_at_checkpoint,
            outbox,
            timers: HashMap::new(),
            now: 0,
            boot: boot + 1,
            free_lanes: (0..LANES).rev().collect(),
            lane_seq: vec![0; LANES as usize],
            waiting: BTreeMap::new(),
            retry: VecDeque::new(),
            resubmit_ticks: cfg.election_ticks.1,
            give_up_ticks: cfg.election_ticks.1 * 10,
            snapshot_every: cfg.snapshot_every.max(1),
            metrics,
            watchers: WatchHub::default(),
            pumped_revision: 0,
            progress_ticks: (cfg.watch_progress_interval.as_millis() / cfg.tick.as_millis().max(1))
                .max(1) as u64,
            lease_clock: LeaseClock::new(cfg.tick, cfg.election_ticks.1 * 2),
            leases_granted: 0,
            reads: HashMap::new(),
            next_read: 0,
        };
        Ok(node)
    }

    fn client_id(&self, lane: u64) -> ClientId {
        (self.replica.id() << 48) | ((self.boot & 0xFFFFF) << 24) | lane
    }

    fn lane_of(client: ClientId) -> u64 {
        client & 0xFF_FFFF
    }

    /// Runs until the input channel closes.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Input>, tick: Duration) {
        let mut pending = self.replica.start();
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut durable_rx = self.durable_rx.take().expect("run once");
        loop {
            let stepped = tokio::select! {
                input = rx.recv() => match input {
                    Some(i) => {
                        self.handle(i, &mut pending);
                        Ok(())
                    }
                    None => break,
                },
                _ = ticker.tick() => {
                    self.tick(&mut pending);
                    Ok(())
                }
                Some(d) = durable_rx.recv() => self.on_durable(d, &mut pending),
            };
            let turn = Instant::now();
            // Group commit: take whatever else is already queued before handing one batch to
            // the log.
            let mut n = 0;
            let drained = stepped.and_then(|()| {
                while n < 1024 {
                    match rx.try_recv() {
                        Ok(i) => self.handle(i, &mut pending),
                        Err(_) => break,
                    }
                    n += 1;
                }
                while let Ok(d) = durable_rx.try_recv() {
                    self.on_durable(d, &mut pending)?;
                }
                self.flush(&mut pending)
            });
            if let Err(e) = drained {
                tracing::error!(error = %e, "cannot write the log; stopping this node");
                break;
            }
            let ms = turn.elapsed().as_millis() as u64;
            if ms >= SLOW_TURN_MS {
                // Nothing is received, sent or ticked meanwhile: long enough and peers elect.
                tracing::warn!(ms, inputs = n, "slow node loop turn");
            }
        }
        for (_, w) in std::mem::take(&mut self.waiting) {
            let _ = w.reply.send(Err(ProposeError::Stopped));
        }
    }

    fn handle(&mut self, input: Input, fx: &mut MultiEffects<KvCommand, KvOutput>) {
        match input {
            Input::Peer(from, msg) => {
                self.metrics.received.with_label_values(&[msg.kind()]).inc();
                fx.extend(self.replica.on_message(from, msg));
            }
            Input::Propose(cmd, reply) => self.propose(cmd, reply),
            Input::ReadIndex(req, reply) => {
                self.next_read += 1;
                let id = self.next_read;
                self.reads.insert(id, (req, reply, self.now));
                self.new_reads.push(id);
            }
            Input::ReadLocal(req, reply) => {
                let store = self.replica.state_machine();
                let _ = reply.send((store.revision(), store.range(&req)));
            }
            Input::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Input::Watch(w) => self.on_watch(w),
            Input::LeaseRemaining(id, reply) => {
                let _ = reply.send(self.lease_clock.remaining_secs(id, self.now));
            }
        }
    }

    fn propose(
        &mut self,
        mut cmd: KvCommand,
        reply: oneshot::Sender<Result<KvOutput, ProposeError>>,
    ) {
        if let KvCommand::LeaseGrant { id, .. } = &mut cmd {
            if *id == 0 {
                *id = self.fresh_lease_id();
            }
        }
        let Some(lane) = self.free_lanes.pop() else {
            let _ = reply.send(Err(ProposeError::Timeout));
            return;
        };
        self.lane_seq[lane as usize] += 1;
        let command = Command {
            client: self.client_id(lane),
            seq: self.lane_seq[lane as usize],
            op: cmd,
        };
        let key = (command.client, command.seq);
        self.metrics.proposals.inc();
        self.proposals.push(command.clone());
        self.waiting.insert(
            key,
            Waiting {
                cmd: command,
                reply,
                submitted_tick: self.now,
                first_tick: self.now,
            },
        );
    }

    /// A lease id no other node and no earlier boot of this one can pick: node id, boot epoch
    /// and a counter, kept positive.
    fn fresh_lease_id(&mut self) -> i64 {
        self.leases_granted += 1;
        let id = ((self.replica.id() & 0x7FF) << 52)
            | ((self.boot & 0xF_FFFF) << 32)
            | (self.leases_granted & 0xFFFF_FFFF);
        id as i64
    }

    fn on_watch(&mut self, input: WatchInput) {
        let store = self.replica.state_machine();
        match input {
            WatchInput::Create {
                stream,
                id,
                spec,
                tx,
            } => {
                self.watchers.create(stream, id, spec, tx, store, self.now);
                self.watchers.pump(store, self.now, self.progress_ticks);
            }
            WatchInput::Cancel { stream, id } => {
                self.watchers.cancel(stream, id);
                self.watchers.pump(store, self.now, self.progress_ticks);
            }
            WatchInput::Progress { stream, tx } => self.watchers.progress(stream, &tx, store),
            WatchInput::Close { stream } => self.watchers.close(stream),
        }
        self.metrics.watchers.set(self.watchers.len() as i64);
    }

    fn status(&self) -> NodeStatus {
        let r = &self.replica;
        let promised = r.promised();
        NodeStatus {
            id: r.id(),
            leader: match r.role_kind() {
                RoleKind::Leader => Some(r.id()),
                _ => r.leader_hint(),
            },
            role: format!("{:?}", r.role_kind()).to_lowercase(),
            ballot: promised.to_string(),
            term: promised.round,
            commit_index: r.commit_index(),
            applied_index: r.applied_index(),
            revision: r.state_machine().revision(),
            log_bytes: self.checkpoint_bytes + self.logged_since_checkpoint(),
            keys: r.state_machine().len(),
            lanes_free: self.free_lanes.len(),
        }
    }

    fn tick(&mut self, fx: &mut MultiEffects<KvCommand, KvOutput>) {
        self.now += 1;
        let due: Vec<Timer> = self
            .timers
            .iter()
            .filter(|(_, &at)| at <= self.now)
            .map(|(&k, _)| k)
            .collect();
        for k in due {
            self.timers.remove(&k);
            let before = self.replica.ballot();
            fx.extend(self.replica.on_timer(k));
            if self.replica.role_kind() == RoleKind::Candidate && self.replica.ballot() != before {
                self.metrics.elections.inc();
            }
        }
        let leading = self.replica.role_kind() == RoleKind::Leader;
        for (id, refreshes) in
            self.lease_clock
                .observe(self.replica.state_machine(), leading, self.now)
        {
            tracing::debug!(lease = id, "lease ran out; proposing its expiry");
            let (reply, _) = oneshot::channel();
            self.propose(KvCommand::LeaseExpire { id, refreshes }, reply);
        }
        // Retry watchers whose streams were full, and send progress notifications.
        if !self.watchers.is_empty() {
            self.watchers
                .pump(self.replica.state_machine(), self.now, self.progress_ticks);
        }
        // A read whose confirmation round never completes (a leader cut off from its quorum)
        // times out like a proposal.
        let give_up = self.give_up_ticks;
        let now = self.now;
        let replica = &mut self.replica;
        self.reads.retain(|&id, (_, reply, at)| {
            let keep = now - *at < give_up && !reply.is_closed();
            if !keep {
                replica.cancel_read(id);
                let (tx, _) = oneshot::channel();
                let _ = std::mem::replace(reply, tx).send(Err(ProposeError::Timeout));
            }
            keep
        });
        // Commands told "no leader", or stuck behind a lost forward or a dead leader, are
        // submitted again; exactly-once application makes that safe.
        let now = self.now;
        let stale: Vec<(ClientId, u64)> = self
            .waiting
            .iter()
            .filter(|(_, w)| now - w.submitted_tick >= self.resubmit_ticks)
            .map(|(k, _)| *k)
            .chain(self.retry.drain(..))
            .collect();
        for key in stale {
            let Some(w) = self.waiting.get_mut(&key) else {
                continue;
            };
            if now - w.first_tick >= self.give_up_ticks {
                let w = self.waiting.remove(&key).expect("present");
                let _ = w.reply.send(Err(ProposeError::Timeout));
                // The command may still be chosen later; the lane's next command has a higher
                // number (see `LANES`), so the lane is free again. Kept retired, every lane of a
                // node cut off long enough would be used up until a restart.
                self.free_lanes.push(Self::lane_of(key.0));
                continue;
            }
            w.submitted_tick = now;
            let cmd = w.cmd.clone();
            fx.extend(self.replica.on_client_request(cmd));
        }
    }

    /// What the flusher or the checkpoint task finished: release the messages that waited for
    /// a sync (our own votes go back into the replica), or account for a checkpoint.
    fn on_durable(
        &mut self,
        done: Durable,
        fx: &mut MultiEffects<KvCommand, KvOutput>,
    ) -> Result<(), StorageError> {
        match done {
            Durable::Synced {
                seq,
                started,
                records,
                result,
            } => {
                result?;
                self.metrics
                    .fsync_seconds
                    .observe(started.elapsed().as_secs_f64());
                self.metrics.records_per_fsync.observe(records as f64);
                self.synced = self.synced.max(seq);
                while self.held.front().is_some_and(|(s, _)| *s <= self.synced) {
                    let (_, msgs) = self.held.pop_front().expect("checked");
                    self.send(msgs, fx);
                }
            }
            Durable::SnapshotBuilt { snapshot, ms } => {
                tracing::info!(
                    slot = snapshot.slot,
                    bytes = snapshot.state.len() + snapshot.sessions.len(),
                    ms,
                    "encoded a snapshot; checkpointing in the background"
                );
                self.built_snapshot = Some(snapshot);
            }
            Durable::Checkpointed(result) => {
                let (bytes, log_bytes) = result?;
                self.checkpointing = false;
                self.checkpoint_bytes = bytes;
                self.appended_at_checkpoint = log_bytes;
            }
        }
        Ok(())
    }

    /// Sends messages whose records are durable; our own votes are handed to the replica.
    fn send(&mut self, msgs: Outgoings, fx: &mut MultiEffects<KvCommand, KvOutput>) {
        let me = self.replica.id();
        for o in msgs {
            if o.to == me {
                fx.extend(self.replica.on_message(me, o.msg));
            } else {
                self.metrics.sent.with_label_values(&[o.msg.kind()]).inc();
                self.outbox.send(o.to, o.msg);
            }
        }
    }

    fn flush(&mut self, fx: &mut MultiEffects<KvCommand, KvOutput>) -> Result<(), StorageError> {
        if !self.proposals.is_empty() {
            let batch = std::mem::take(&mut self.proposals);
            fx.extend(self.replica.on_client_requests(batch));
        }
        if !self.new_reads.is_empty() {
            let batch = std::mem::take(&mut self.new_reads);
            fx.extend(self.replica.on_reads(batch));
        }
        // Own votes released at once (nothing unsynced) produce effects of their own.
        while !fx.is_empty() {
            let step = std::mem::take(fx);
            self.flush_step(step, fx)?;
        }
        self.snapshot_step();
        let revision = self.replica.state_machine().revision();
        if revision != self.pumped_revision {
            self.pumped_revision = revision;
            self.watchers
                .pump(self.replica.state_machine(), self.now, self.progress_ticks);
        }
        Ok(())
    }

    fn flush_step(
        &mut self,
        fx: MultiEffects<KvCommand, KvOutput>,
        next: &mut MultiEffects<KvCommand, KvOutput>,
    ) -> Result<(), StorageError> {
        let snapshotted = fx.persist.iter().any(|p| matches!(p, Persist::Snapshot(_)));
        let mut persist = fx.persist;
        if persist.iter().all(|p| matches!(p, Persist::Commit(_))) {
            // A commit point alone is not worth a sync (losing it costs a catch-up, never
            // safety): it rides along with the next records that need one.
            if let Some(c) = persist.pop() {
                self.lazy_commit = Some(c);
            }
        } else if let Some(c) = self.lazy_commit.take() {
            persist.insert(0, c);
        }
        if !persist.is_empty() {
            let records: Vec<Vec<u8>> = persist
                .iter()
                .map(|p| postcard::to_stdvec(&LogRecord::Persist(p)).expect("serializes"))
                .collect();
            self.appended += records.len() as u64;
            self.batches += 1;
            let (seq, tx, n) = (self.batches, self.durable_tx.clone(), records.len());
            let started = Instant::now();
            self.wal.append_then(records, move |result| {
                let _ = tx.send(Durable::Synced {
                    seq,
                    started,
                    records: n,
                    result: result.map(|_| ()),
                });
            });
        }
        if snapshotted {
            self.start_checkpoint();
        }
        for t in fx.timers {
            self.timers.insert(t.kind, self.now + t.after);
        }
        let me = self.replica.id();
        // Messages to ourselves are local steps: they always wait (the core sends none at once).
        let (mut late, early): (Outgoings, Outgoings) =
            fx.send.into_iter().partition(|o| o.to == me);
        late.extend(fx.send_after_sync);
        for o in early {
            self.metrics.sent.with_label_values(&[o.msg.kind()]).inc();
            self.outbox.send(o.to, o.msg);
        }
        if !late.is_empty() {
            if self.batches > self.synced {
                // The newest batch covers this step's records and every earlier one's.
                self.held.push_back((self.batches, late));
            } else {
                self.send(late, next);
            }
        }
        for out in fx.output {
            self.on_output(out);
        }
        Ok(())
    }

    /// Acts on a replica output. Outputs need not wait for a sync: they rest on values chosen
    /// by durable votes (see `synod_core::effects`).
    fn on_output(&mut self, out: Output<KvOutput>) {
        match out {
            Output::Reply {
                client,
                seq,
                result,
            } => {
                if let Some(w) = self.waiting.remove(&(client, seq)) {
                    let _ = w.reply.send(Ok(result));
                    self.free_lanes.push(Self::lane_of(client));
                }
            }
            Output::NotLeader { client, seq, .. } => self.retry.push_back((client, seq)),
            Output::Applied { slot } => {
                self.metrics.applied.inc();
                if let Some(e) = self.replica.log().get(&slot) {
                    self.metrics
                        .batch_size
                        .observe(e.value.commands().len() as f64);
                }
            }
            Output::Chosen { .. } => {}
            Output::ReadReady { id } => {
                if let Some((req, reply, _)) = self.reads.remove(&id) {
                    let store = self.replica.state_machine();
                    let _ = reply.send(Ok((store.revision(), store.range(&req))));
                }
            }
            Output::ReadFailed { id, .. } => {
                if let Some((_, reply, _)) = self.reads.remove(&id) {
                    let _ = reply.send(Err(ProposeError::NotLeader));
                }
            }
        }
    }

    /// Folds the log into a checkpoint in the background: boot epoch, snapshot, promise, the
    /// log from the snapshot on, and the commit point. The loop goes on meanwhile; the log's
    /// segments below the checkpoint are dropped once it is saved.
    /// Begins a snapshot when enough was applied since the last one, or adopts one encoded in
    /// the background. Encoding a large store takes long enough to stall the loop (and, on the
    /// leader, to let followers time out), so only the copy of the state happens here.
    fn snapshot_step(&mut self) {
        if let Some(snapshot) = self.built_snapshot.take() {
            // After every record of this turn is handed to the log, so the checkpoint covers
            // exactly the records appended so far. The log still holds every slot the snapshot
            // covers until that checkpoint is saved, so the snapshot is not written to the log.
            let (fx, removed) = self.replica.finish_snapshot(snapshot);
            // Thousands of slots' commands: freeing them here stalled the loop for ~100 ms.
            tokio::task::spawn_blocking(move || drop(removed));
            if fx.persist.is_empty() {
                // A snapshot installed meanwhile already moved the log start past this one.
                self.checkpointing = false;
            } else {
                self.start_checkpoint();
            }
            return;
        }
        if self.checkpointing
            || self.replica.applied_index() < self.replica.log_start() + self.snapshot_every
        {
            return;
        }
        // Encoding costs the whole state. Waiting until the log has grown by as much as the last
        // checkpoint keeps that cost within the bytes logged since; otherwise a store keeping
        // all its history (27 MB after 10,000 slots of 64-client puts, 84 MB after 30,000) is
        // encoded as often when large as when small.
        if self.logged_since_checkpoint() < self.checkpoint_bytes {
            return;
        }
        let Some(pending) = self.replica.begin_snapshot() else {
            return;
        };
        self.checkpointing = true;
        let tx = self.durable_tx.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let snapshot = pending.build();
            let ms = started.elapsed().as_millis() as u64;
            let _ = tx.send(Durable::SnapshotBuilt { snapshot, ms });
        });
    }

    /// Bytes the log gained since the latest checkpoint was saved.
    fn logged_since_checkpoint(&self) -> u64 {
        self.wal
            .stats()
            .bytes
            .saturating_sub(self.appended_at_checkpoint)
    }

    fn start_checkpoint(&mut self) {
        let r = &self.replica;
        let mut records: Vec<Persist<KvCommand>> = Vec::new();
        if let Some(s) = r.snapshot() {
            records.push(Persist::Snapshot(s.clone()));
        }
        records.push(Persist::Promise(r.promised()));
        for (&slot, e) in r.log() {
            records.push(if e.chosen {
                Persist::Chosen {
                    slot,
                    value: e.value.clone(),
                }
            } else {
                Persist::Accept {
                    slot,
                    ballot: e.ballot,
                    value: e.value.clone(),
                }
            });
        }
        records.push(Persist::Commit(r.commit_index()));
        let checkpoint = Checkpoint {
            boot: self.boot,
            records,
        };
        // The checkpoint holds the state after every record handed to the log so far.
        let covered = self.appended;
        let (wal, snapshots, tx) = (
            self.wal.clone(),
            self.snapshots.clone(),
            self.durable_tx.clone(),
        );
        self.checkpointing = true;
        tokio::task::spawn_blocking(move || {
            let result = (|| {
                let started = Instant::now();
                let data =
                    synod_core::encode::to_vec_exact(&checkpoint).expect("checkpoints serialize");
                let encoded = started.elapsed();
                // Saved only once what it covers is durable, so the log never ends before it.
                wal.append_batch_durable(Vec::new())?;
                snapshots.save(covered, b"", &data)?;
                let saved = started.elapsed();
                let log_bytes = wal.with_wal(move |w| {
                    w.compact(covered + 1)?;
                    Ok::<_, StorageError>(w.stats().bytes)
                })??;
                tracing::info!(
                    covered,
                    bytes = data.len(),
                    encode_ms = encoded.as_millis() as u64,
                    save_ms = (saved - encoded).as_millis() as u64,
                    compact_ms = (started.elapsed() - saved).as_millis() as u64,
                    "checkpoint saved"
                );
                Ok((data.len() as u64, log_bytes))
            })();
            let _ = tx.send(Durable::Checkpointed(result));
        });
    }
}

/// The durable state at one point of the log, as the records that rebuild it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Checkpoint {
    boot: u64,
    records: Vec<Persist<KvCommand>>,
}

/// What the log file holds. Generic so that a record is written from a reference
/// (`LogRecord<&Persist<_>>` encodes exactly as `LogRecord<Persist<_>>`), without copying
/// every command of a batch first.
#[derive(serde::Serialize, serde::Deserialize)]
enum LogRecord<P = Persist<KvCommand>> {
    /// A replica persist record.
    Persist(P),
    /// A boot epoch (one per start).
    Boot(u64),
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_core::multi::{Command, Value};
    use synod_kv::PutRequest;

    #[test]
    fn a_record_written_by_reference_reads_back_as_owned() {
        let put = KvCommand::Put(PutRequest {
            key: b"k".to_vec(),
            value: vec![7; 300],
            ..Default::default()
        });
        let p = Persist::Accept {
            slot: 9,
            ballot: synod_core::Ballot::new(3, 2),
            value: Value::batch(vec![Command {
                client: 5,
                seq: 6,
                op: put,
            }]),
        };
        let by_ref = postcard::to_stdvec(&LogRecord::Persist(&p)).unwrap();
        let owned = postcard::to_stdvec(&LogRecord::Persist(p.clone())).unwrap();
        assert_eq!(by_ref, owned);
        let back: LogRecord = postcard::from_bytes(&by_ref).unwrap();
        assert!(matches!(back, LogRecord::Persist(q) if q == p));
    }

    #[tokio::test]
    async fn a_lane_whose_command_timed_out_is_free_again() {
        let dir = tempfile::tempdir().unwrap();
        // A member of three whose peers never answer: nothing commits, every proposal times out.
        let member = |id: NodeId| crate::config::Member {
            id,
            peer_addr: ([127, 0, 0, 1], 9).into(),
            client_addr: None,
        };
        let cfg = ServerConfig {
            id: 1,
            members: vec![member(1), member(2), member(3)],
            client_addr: ([127, 0, 0, 1], 9).into(),
            admin_addr: None,
            data_dir: dir.path().to_path_buf(),
            tick: Duration::from_millis(1),
            heartbeat_ticks: 1,
            election_ticks: (3, 6),
            window: 2,
            max_batch: 16,
            max_request_bytes: 1 << 20,
            snapshot_every: 1000,
            unsafe_local_reads: false,
            watch_progress_interval: Duration::from_secs(600),
        };
        let node = Node::open(&cfg, Outbox::default(), Metrics::new()).unwrap();
        let (handle, join) = spawn(node, cfg.tick);
        let lanes = handle.status().await.unwrap().lanes_free;
        assert_eq!(lanes, LANES as usize);
        let put = |i: u8| {
            KvCommand::Put(PutRequest {
                key: vec![i],
                value: vec![i],
                ..Default::default()
            })
        };
        let tries = (0..3).map(|i| handle.propose(put(i)));
        for r in futures::future::join_all(tries).await {
            assert_eq!(r, Err(ProposeError::Timeout));
        }
        assert_eq!(handle.status().await.unwrap().lanes_free, lanes);
        join.abort();
    }
}

/// Why a node could not start.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The data directory cannot be created.
    #[error("cannot create data directory {0}")]
    DataDir(std::path::PathBuf, #[source] std::io::Error),
    /// The log or snapshots cannot be read or written.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A record does not decode.
    #[error("{0} does not decode: {1}")]
    Decode(String, String),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Starts a node's loop on the current runtime; returns the handle to talk to it.
pub fn spawn(node: Node, tick: Duration) -> (NodeHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(65_536);
    let join = tokio::spawn(node.run(rx, tick));
    (NodeHandle { tx }, join)
}
