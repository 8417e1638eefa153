//! The node loop: the tokio shell around [`synod_node::NodeCore`], which decides everything
//! (lanes, read ids, the durability gate, checkpoints, leases, resubmits). The shell only moves
//! bytes: inputs from gRPC, peers and the ticker go in; the core's actions come out as peer
//! messages, log writes handed to the flusher thread (one group per loop turn, synced while the
//! loop goes on), client replies, and snapshot and checkpoint work on blocking threads.

use crate::config::{url_addr, AcceptTargets, ReadProbes, ServerConfig};
use crate::metrics::Metrics;
use crate::pace::{Pace, PacedWrite};
use crate::peer::Outbox;
use crate::watch::{WatchHub, WatchMsg, WatchSpec};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use synod_core::multi::{
    ChangeOutcome, Configuration, MemberOp, Message, PendingSnapshot, Persist, RoleKind, Snapshot,
    TransferError,
};
use synod_core::{Ballot, NodeId};
use synod_kv::{
    Alarm, AlarmCommand, AlarmKind, KvCommand, KvError, KvOutput, RangeRequest, RangeResponse,
    Store,
};
use synod_node::record::{
    checkpoint_head, checkpoint_len, encode_boot, encode_persist, write_checkpoint,
    write_checkpoint_tail, CHECKPOINT_HEAD_LEN,
};
use synod_node::{Action, NodeConfig, NodeCore, Ticket};
use synod_storage::{
    CommitHandle, GroupCommitter, SnapshotDraft, SnapshotStore, StorageError, StorageOptions, Wal,
    WalOptions,
};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

pub use synod_node::{ProposeError, ReadResult};

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
    /// Alarms raised, by member.
    pub alarms: Vec<Alarm>,
}

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
    /// A copy of the store as applied so far, cheap to take (its histories are shared), for
    /// work too long for the loop: hashing it, backing it up.
    StoreCopy(oneshot::Sender<Store>),
    /// An operator asks for a checkpoint now (etcd's defragment); answered once it is saved.
    Defragment(oneshot::Sender<()>),
    /// An operator asks this node, the leader, to hand leadership to a member (etcd's
    /// MoveLeader); answered once the transfer has started, or with why it cannot.
    MoveLeader(NodeId, oneshot::Sender<Result<(), MoveLeaderError>>),
    /// An operator asks for a membership change (etcd's MemberRemove, MemberPromote);
    /// answered once it is applied, with what it did.
    ChangeMembership(
        Vec<MemberOp>,
        oneshot::Sender<Result<ChangeOutcome, MemberChangeError>>,
    ),
    /// The latest configuration this node applied (`None`: this mode has a fixed one).
    Members(oneshot::Sender<Option<Configuration>>),
}

/// Why a membership change has no outcome.
#[derive(Debug, Error)]
pub enum MemberChangeError {
    /// Not proposed, or its outcome never came (see [`ProposeError`]).
    #[error(transparent)]
    Failed(#[from] ProposeError),
    /// This node's protocol keeps the members it started with.
    #[error("Fast Multi-Paxos servers keep the members they started with")]
    Unsupported,
}

/// Why a leadership transfer could not start.
#[derive(Debug, Error)]
pub enum MoveLeaderError {
    /// The replica refused: not the leader, or no such member.
    #[error(transparent)]
    Refused(#[from] TransferError),
    /// This node's protocol has no leadership to hand over.
    #[error("Fast Multi-Paxos servers do not transfer leadership")]
    Unsupported,
    /// The node is shutting down.
    #[error("the node has stopped")]
    Stopped,
}

/// What a node loop publishes for its request handlers, read without a trip through the loop.
#[derive(Debug, Default)]
pub struct Published {
    term: AtomicU64,
}

impl Published {
    /// Publishes the raft term.
    pub(crate) fn set_term(&self, term: u64) {
        self.term.store(term, Ordering::Relaxed);
    }
}

/// Logs a compaction the node issued itself (auto-compaction; both node loops).
pub(crate) fn log_auto_compaction(op: &KvCommand) {
    if let KvCommand::Compact(c) = op.inner() {
        tracing::info!(
            revision = c.revision,
            "auto-compaction: compacting the history"
        );
    }
}

/// The raft term etcd clients are shown: it rises with the highest ballot a node has heard
/// of, so on every leader change, since a new leader's ballot is above its predecessor's. The
/// round alone would not do: two leaders in turn may share a round, the later one with the
/// higher node id. Node ids above `max_id` (never a member's) count as `max_id`.
pub fn raft_term(ballot: Ballot, max_id: NodeId) -> u64 {
    ballot
        .round
        .saturating_mul(max_id.saturating_add(1))
        .saturating_add(ballot.node.min(max_id))
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
        /// Who asks, checked against the auth state of the store the watch is created on.
        access: crate::auth::ReadAccess,
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
    published: Arc<Published>,
}

impl NodeHandle {
    /// A handle feeding `tx` (a node loop's input queue), reading what that loop publishes.
    pub(crate) fn new(tx: mpsc::Sender<Input>, published: Arc<Published>) -> Self {
        NodeHandle { tx, published }
    }

    /// The raft term as the node last published it.
    pub fn term(&self) -> u64 {
        self.published.term.load(Ordering::Relaxed)
    }

    /// Sends `input` made around a reply channel, and waits for the reply.
    async fn ask<T>(
        &self,
        input: impl FnOnce(oneshot::Sender<T>) -> Input,
    ) -> Result<T, ProposeError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(input(tx))
            .await
            .map_err(|_| ProposeError::Stopped)?;
        rx.await.map_err(|_| ProposeError::Stopped)
    }

    /// A copy of the store as this node applied it so far.
    pub async fn store_copy(&self) -> Result<Store, ProposeError> {
        self.ask(Input::StoreCopy).await
    }

    /// Asks for a checkpoint now; returns once it is saved.
    pub async fn defragment(&self) -> Result<(), ProposeError> {
        self.ask(Input::Defragment).await
    }

    /// Asks this node, which must lead, to start handing leadership to `target`.
    pub async fn move_leader(&self, target: NodeId) -> Result<(), MoveLeaderError> {
        self.ask(|tx| Input::MoveLeader(target, tx))
            .await
            .map_err(|_| MoveLeaderError::Stopped)?
    }

    /// Orders `cmd` through the replicated log and returns its result.
    pub async fn propose(&self, cmd: KvCommand) -> Result<KvOutput, ProposeError> {
        self.ask(|tx| Input::Propose(cmd, tx)).await?
    }

    /// A linearizable read served without a log slot; `Err(NotLeader)` if this node does not
    /// lead.
    pub async fn read_index(&self, req: RangeRequest) -> ReadResult {
        self.ask(|tx| Input::ReadIndex(req, tx)).await?
    }

    /// Reads from this node's state without consulting the others.
    pub async fn read_local(
        &self,
        req: RangeRequest,
    ) -> Result<(i64, Result<RangeResponse, synod_kv::KvError>), ProposeError> {
        self.ask(|tx| Input::ReadLocal(req, tx)).await
    }

    /// The node's status.
    pub async fn status(&self) -> Result<NodeStatus, ProposeError> {
        self.ask(Input::Status).await
    }

    /// Creates, cancels or closes watchers.
    pub async fn watch(&self, input: WatchInput) -> Result<(), ProposeError> {
        self.tx
            .send(Input::Watch(input))
            .await
            .map_err(|_| ProposeError::Stopped)
    }

    /// Asks for a membership change and waits until it is applied.
    pub async fn change_membership(
        &self,
        ops: Vec<MemberOp>,
    ) -> Result<ChangeOutcome, MemberChangeError> {
        self.ask(|tx| Input::ChangeMembership(ops, tx)).await?
    }

    /// The latest configuration this node applied (`None`: fixed at start).
    pub async fn members(&self) -> Result<Option<Configuration>, ProposeError> {
        self.ask(Input::Members).await
    }

    /// Seconds left on a lease by this node's lease clock (`None`: it has not seen it).
    pub async fn lease_remaining(&self, id: i64) -> Result<Option<i64>, ProposeError> {
        self.ask(|tx| Input::LeaseRemaining(id, tx)).await
    }
}

impl crate::peer::Deliver<Message<KvCommand>> for NodeHandle {
    fn deliver(&self, from: NodeId, msg: Message<KvCommand>) {
        let _ = self.tx.try_send(Input::Peer(from, msg));
    }
}

/// What the log's flusher thread and the background tasks report back to the loop.
enum Durable {
    /// Batch `batch` (and every earlier one) is durable, or the log failed.
    Synced {
        batch: u64,
        started: Instant,
        records: usize,
        /// Synced on the loop's own thread ([`Node::write_inline`]).
        inline: bool,
        result: Result<(), StorageError>,
    },
    /// Batch `batch`, which needs no sync of its own, was written to the log file (the
    /// indexes its records got), or the log failed.
    Written {
        batch: u64,
        result: Result<std::ops::Range<u64>, StorageError>,
    },
    /// A checkpoint was saved and the log below it dropped: the log record it covers, its
    /// size, and the log's byte counter right after; then its snapshot's slot and state as
    /// mapped from the file, if that worked.
    Checkpointed(Result<(u64, u64, u64), StorageError>, Option<(u64, Bytes)>),
    /// A snapshot begun on the loop was encoded on a blocking thread, into the file its
    /// checkpoint will be (see [`build_snapshot`]), or the disk failed.
    SnapshotBuilt {
        built: Result<(Snapshot, SnapshotDraft), StorageError>,
        ms: u64,
    },
}

/// A log batch held for [`Node::write_inline`].
struct InlineWrite {
    batch: u64,
    records: Vec<Vec<u8>>,
}

/// A batch of at most this many records is synced on the loop's thread when the log has been
/// idle for at least as long as its last sync took. At low load that saves waking the flusher
/// and being woken by it, two thread switches per sync on each node. Under load (larger
/// batches, more than one request waiting, or one batch right behind another) the flusher
/// syncs while the loop goes on: loops that waited for their syncs themselves served 8 clients
/// 3.5-20% slower, by which guards were missing (docs/performance.md).
const INLINE_MAX_RECORDS: usize = 4;

/// Nor more bytes than this: a large batch (a snapshot a follower installs) would stall
/// everything the loop's thread serves while it is written.
const INLINE_MAX_BYTES: usize = 256 * 1024;

/// A loop turn at least this long is logged as a warning.
const SLOW_TURN_MS: u64 = 50;

/// The node's shell, owned by its loop.
pub struct Node {
    /// Where the request handlers read the auth state this node applied.
    auth: crate::auth::AuthView,
    core: NodeCore,
    /// Keeps the flusher thread running; dropping it completes what is queued.
    _log: GroupCommitter,
    wal: CommitHandle,
    snapshots: Arc<SnapshotStore>,
    durable_tx: mpsc::UnboundedSender<Durable>,
    durable_rx: Option<mpsc::UnboundedReceiver<Durable>>,
    /// A small batch to sync on the loop's own thread once the turn's messages have left
    /// ([`Node::write_inline`]).
    inline_write: Option<InlineWrite>,
    /// When the last sync ended and how long it took: a log idle for at least that long is
    /// under half its capacity, so the loop may sync there itself.
    log_idle: Option<(Instant, Duration)>,
    outbox: Outbox<Message<KvCommand>>,
    metrics: Metrics,
    /// Counters already exported to `metrics`.
    exported: synod_node::NodeCounters,
    watchers: WatchHub,
    /// Revision the watchers were last moved to.
    pumped_revision: i64,
    progress_ticks: u64,
    next_ticket: Ticket,
    proposals: HashMap<Ticket, oneshot::Sender<Result<KvOutput, ProposeError>>>,
    reads: HashMap<Ticket, oneshot::Sender<ReadResult>>,
    published: Arc<Published>,
    /// The highest member id, which [`raft_term`] counts in.
    max_id: NodeId,
    /// Above this many bytes of checkpoint and log, writes are refused and NOSPACE raised
    /// (0: no quota).
    quota: u64,
    /// When this node last proposed its NOSPACE alarm, in ticks.
    raised_at: Option<u64>,
    /// The longest election timeout, in ticks: how long a raised alarm may take to apply.
    election_ticks: u64,
    /// Operators waiting for the checkpoint they asked for.
    defragments: Vec<oneshot::Sender<()>>,
    /// Operators waiting for a membership change's outcome.
    changes: HashMap<Ticket, oneshot::Sender<Result<ChangeOutcome, MemberChangeError>>>,
    /// The membership whose members' addresses the outbox has: the latest epoch, once joined.
    members_seen: Option<u64>,
    /// Where this node serves clients, as a member URL (none if it listens on every address).
    client_url: Option<String>,
    /// When this node last asked for its client URL to be recorded, in ticks.
    published_at: Option<u64>,
    /// When the last checkpoint was saved (or the node started): how fast the log grows since,
    /// which sets how fast the next snapshot goes (see [`crate::pace`]).
    checkpointed_at: Instant,
    /// `--snapshot-pace`: how many times faster than the log grows a snapshot goes (0: off).
    pace_factor: u32,
    /// The slot of the snapshot being built and then saved, and its pace in bytes per second
    /// (none when paced at full speed).
    pace: Option<(u64, f64)>,
    /// How much the log had grown since the last checkpoint when the snapshot under way began
    /// (see [`crate::pace::overdue`]).
    logged_at_snapshot: u64,
    /// Set when that snapshot should finish at full speed after all: someone now waits for a
    /// checkpoint (an operator, a joining member), or the node stops (whose runtime then waits
    /// for its blocking tasks). Each snapshot gets a flag of its own.
    hurry: Arc<AtomicBool>,
    /// The snapshot encoded straight into its checkpoint's file, waiting for the checkpoint
    /// that holds it ([`Node::save_checkpoint`]): the draft, the snapshot's slot, and its state
    /// as mapped from that file (what tells that checkpoint's snapshot apart).
    draft: Option<(SnapshotDraft, u64, Bytes)>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.hurry.store(true, Ordering::Relaxed);
    }
}

impl Node {
    /// Opens the log, recovers the node from it, and returns the node ready to run.
    pub fn open(
        cfg: &ServerConfig,
        outbox: Outbox<Message<KvCommand>>,
        metrics: Metrics,
        auth: crate::auth::AuthView,
    ) -> Result<Node, NodeError> {
        std::fs::create_dir_all(&cfg.data_dir)
            .map_err(|e| NodeError::DataDir(cfg.data_dir.clone(), e))?;
        let opts = StorageOptions {
            wal: WalOptions {
                segment_size: 16 << 20,
                // A snapshot installed from a peer is one log record until the checkpoint
                // after it is saved: records up to the storage's own limit (1 GiB), so that
                // a store larger than the 64 MiB default can still reach a joiner or a
                // follower that fell behind.
                max_record_size: synod_storage::record::MAX_PAYLOAD_LEN,
                ..WalOptions::default()
            },
            keep_snapshots: 2,
        };
        let mut opened = synod_storage::open(&cfg.data_dir, &opts)?;
        let report = opened.report.to_string();
        if !report.trim().is_empty() {
            tracing::info!(report = %report.trim(), "recovered storage");
        }
        // The checkpoint's bytes are handed over, not copied: the snapshot recovered from them
        // shares them until the checkpoint file's mapping replaces it (below).
        let checkpoint = opened
            .snapshot
            .take()
            .map(|s| (s.index, Bytes::from(s.data)));
        let checkpoint_index = checkpoint.as_ref().map(|c| c.0);
        let recovered = synod_node::record::recover(
            checkpoint,
            opened.records.iter().map(|r| (r.index, &r.data[..])),
        )
        .map_err(|e| NodeError::Decode(e.to_string()))?;
        // No replica state yet (boot records aside: a joiner that stopped before it joined
        // wrote those and nothing else).
        let fresh = recovered.durable == Default::default();
        // Only an empty data directory joins; one with data restarts from it (etcd ignores
        // --initial-cluster-state there too).
        let join = cfg.join && fresh;
        if cfg.join && !fresh {
            tracing::info!(
                "--initial-cluster-state existing: this member has data; restarting from it"
            );
        }
        let flags: Vec<NodeId> = cfg.members.iter().map(|m| m.id).collect();
        // Before the first log record: a member with records always has its first members.
        let first_members = match join {
            true => flags,
            false => {
                crate::genesis::pin(&cfg.data_dir, fresh, &flags).map_err(NodeError::Genesis)?
            }
        };
        let mut wal = opened.wal;
        // A new boot epoch gives this run's lanes, leases and reads ids no earlier run used.
        wal.append(&encode_boot(recovered.boot + 1))?;
        wal.sync()?;
        let (log_index, log_bytes) = (wal.last_index(), wal.stats().bytes);
        let log = GroupCommitter::start(wal)?;
        let (durable_tx, durable_rx) = mpsc::unbounded_channel();
        let mut nc = NodeConfig::new(cfg.id, first_members, cfg.tick);
        nc.heartbeat_ticks = cfg.heartbeat_ticks;
        nc.election_ticks = cfg.election_ticks;
        nc.window = cfg.window;
        nc.max_batch = cfg.max_batch;
        nc.snapshot_every = cfg.snapshot_every.max(1);
        nc.join = join;
        nc.auxiliaries = cfg.auxiliaries.clone();
        nc.aux_digest_min = cfg.aux_digest_min;
        nc.thrifty_reads = cfg.read_probes == ReadProbes::Quorum;
        nc.thrifty_writes = cfg.accept_targets == AcceptTargets::Quorum;
        nc.notice_ticks = cfg.notice_ticks;
        nc.auto_compaction = cfg.auto_compaction.in_ticks(cfg.tick);
        // Auxiliaries are listed in --peers too: the rest are mains (and only mains can send
        // a joiner the cluster's state).
        nc.members.retain(|m| !cfg.auxiliaries.contains(m));
        let mut core = NodeCore::new(nc, recovered, log_index, log_bytes)
            .map_err(|e| NodeError::Config(e.to_string()))?;
        if let Some(index) = checkpoint_index {
            let mapped = map_snapshot_state(&opened.snapshots, index)
                .is_some_and(|(slot, state)| core.rebase_snapshot(slot, state));
            // Otherwise the replica's state is a slice of the whole checkpoint read at start,
            // which also held the log: keep only the state's bytes.
            if let (false, Some(s)) = (mapped, core.replica().snapshot()) {
                let (slot, state) = (s.slot, Bytes::copy_from_slice(&s.state));
                core.rebase_snapshot(slot, state);
            }
        }
        // Before any request is served: a restarted node must not look auth-free meanwhile.
        auth.publish(core.store().auth());
        Ok(Node {
            auth,
            core,
            wal: log.handle(),
            _log: log,
            snapshots: Arc::new(opened.snapshots),
            durable_tx,
            durable_rx: Some(durable_rx),
            inline_write: None,
            log_idle: None,
            outbox,
            metrics,
            exported: Default::default(),
            watchers: WatchHub::default(),
            pumped_revision: 0,
            progress_ticks: (cfg.watch_progress_interval.as_millis() / cfg.tick.as_millis().max(1))
                .max(1) as u64,
            next_ticket: 0,
            proposals: HashMap::new(),
            reads: HashMap::new(),
            published: Arc::default(),
            max_id: cfg.members.iter().map(|m| m.id).max().unwrap_or(cfg.id),
            quota: cfg.quota_backend_bytes,
            raised_at: None,
            election_ticks: cfg.election_ticks.1,
            defragments: Vec::new(),
            checkpointed_at: Instant::now(),
            pace_factor: cfg.snapshot_pace,
            pace: None,
            logged_at_snapshot: 0,
            hurry: Arc::default(),
            draft: None,
            changes: HashMap::new(),
            members_seen: None,
            client_url: (!cfg.client_addr.ip().is_unspecified()).then(|| {
                let scheme = if cfg.client_tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{}", cfg.client_addr)
            }),
            published_at: None,
        })
    }

    /// Runs until the input channel closes.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Input>, tick: Duration) {
        self.core.start();
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut durable_rx = self.durable_rx.take().expect("run once");
        loop {
            let stepped = tokio::select! {
                input = rx.recv() => match input {
                    Some(i) => {
                        self.handle(i);
                        Ok(())
                    }
                    None => break,
                },
                _ = ticker.tick() => {
                    self.tick();
                    Ok(())
                }
                Some(d) = durable_rx.recv() => self.on_durable(d),
            };
            let turn = Instant::now();
            // Group commit: take whatever else is already queued before the turn's one batch
            // goes to the log.
            let mut n = 0;
            let drained = stepped.and_then(|()| {
                while n < 1024 {
                    match rx.try_recv() {
                        Ok(i) => self.handle(i),
                        Err(_) => break,
                    }
                    n += 1;
                }
                while let Ok(d) = durable_rx.try_recv() {
                    self.on_durable(d)?;
                }
                Ok(())
            });
            if let Err(e) = drained {
                tracing::error!(error = %e, "cannot write the log; stopping this node");
                break;
            }
            self.flush();
            // A sync's flush can stage another batch: none may wait for the next input.
            while let Some(w) = self.inline_write.take() {
                // Let the turn's messages and replies leave first (the writers' tasks run now,
                // best effort), so that the other members sync what they were sent meanwhile.
                tokio::task::yield_now().await;
                if let Err(e) = self.write_inline(w) {
                    tracing::error!(error = %e, "cannot write the log; stopping this node");
                    return self.stop_loop();
                }
            }
            let ms = turn.elapsed().as_millis() as u64;
            if ms >= SLOW_TURN_MS {
                // Nothing is received, sent or ticked meanwhile: long enough and peers elect.
                tracing::warn!(
                    node = self.core.replica().id(),
                    ms,
                    inputs = n,
                    "slow node loop turn"
                );
            }
        }
        self.stop_loop();
    }

    /// Fails what still waits on this node once its loop ends.
    fn stop_loop(&mut self) {
        for ticket in self.core.stop() {
            if let Some(tx) = self.proposals.remove(&ticket) {
                let _ = tx.send(Err(ProposeError::Stopped));
            }
            if let Some(tx) = self.reads.remove(&ticket) {
                let _ = tx.send(Err(ProposeError::Stopped));
            }
        }
    }

    fn ticket(&mut self) -> Ticket {
        self.next_ticket += 1;
        self.next_ticket
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Peer(from, msg) => {
                self.metrics.received.with_label_values(&[msg.kind()]).inc();
                self.core.on_peer(from, msg);
            }
            Input::Propose(cmd, reply) => {
                if self.over_quota(&cmd) {
                    let revision = self.core.store().revision();
                    let _ = reply.send(Ok(KvOutput {
                        revision,
                        result: Err(KvError::NoSpace),
                    }));
                    return;
                }
                let ticket = self.ticket();
                self.proposals.insert(ticket, reply);
                self.core.propose(ticket, cmd);
            }
            Input::ReadIndex(req, reply) => {
                let ticket = self.ticket();
                self.reads.insert(ticket, reply);
                self.core.read_index(ticket, req);
            }
            Input::ReadLocal(req, reply) => {
                let store = self.core.store();
                // Before the answer: the handler checks the reader against what it sees then.
                self.auth.publish(store.auth());
                let _ = reply.send((store.revision(), store.range(&req)));
            }
            Input::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Input::Watch(w) => self.on_watch(w),
            Input::LeaseRemaining(id, reply) => {
                let _ = reply.send(self.core.lease_remaining(id));
            }
            Input::StoreCopy(reply) => {
                let _ = reply.send(self.core.store().shared_copy());
            }
            Input::Defragment(reply) => {
                self.core.request_checkpoint();
                self.defragments.push(reply);
            }
            Input::MoveLeader(target, reply) => {
                let _ = reply.send(self.core.move_leader(target).map_err(Into::into));
            }
            Input::ChangeMembership(ops, reply) => {
                let ticket = self.ticket();
                self.changes.insert(ticket, reply);
                self.core.change_membership(Some(ticket), ops);
            }
            Input::Members(reply) => {
                // A joiner's membership is a stand-in: it knows only the flags' members.
                let r = self.core.replica();
                let latest = (!r.joining()).then(|| r.membership().latest().clone());
                let _ = reply.send(latest);
            }
        }
    }

    /// Whether `cmd` must be refused because this node's data outgrew its quota, as etcd
    /// refuses it before proposing; raises this node's NOSPACE alarm through the log then (at
    /// most once per election timeout until it is applied), so every member refuses writes.
    fn over_quota(&mut self, cmd: &KvCommand) -> bool {
        if self.quota == 0 || self.core.log_bytes() <= self.quota || !cmd.grows() {
            return false;
        }
        let me = Alarm {
            member: self.core.replica().id(),
            kind: AlarmKind::NoSpace,
        };
        let now = self.core.now();
        let raised = self.core.store().alarms().any(|a| *a == me);
        let recently = self
            .raised_at
            .is_some_and(|t| now < t + self.election_ticks);
        if !raised && !recently {
            self.raised_at = Some(now);
            tracing::warn!(
                node = me.member,
                bytes = self.core.log_bytes(),
                quota = self.quota,
                "over the backend quota: raising NOSPACE, writes are refused until it is disarmed"
            );
            let ticket = self.ticket();
            self.core
                .propose(ticket, KvCommand::Alarm(AlarmCommand::Raise(me)));
        }
        true
    }

    fn on_watch(&mut self, input: WatchInput) {
        let (store, now) = (self.core.store(), self.core.now());
        self.watchers.handle(input, store, now, self.progress_ticks);
        self.metrics.watchers.set(self.watchers.len() as i64);
    }

    /// The term this node reports (etcd's raft term): from the highest ballot it has heard
    /// of, so that a follower that missed its leader's prepare and hears only its heartbeats
    /// reports the leader's term, not the one it last promised (until a write reached it, it
    /// reported the old leader's term beside the new leader's id).
    fn term(&self) -> u64 {
        raft_term(self.core.replica().highest_ballot_seen(), self.max_id)
    }

    fn status(&self) -> NodeStatus {
        let r = self.core.replica();
        let promised = r.promised();
        let alarms = r.state_machine().alarms().copied().collect();
        NodeStatus {
            id: r.id(),
            leader: match r.role_kind() {
                RoleKind::Leader => Some(r.id()),
                _ => r.leader_hint(),
            },
            role: format!("{:?}", r.role_kind()).to_lowercase(),
            ballot: promised.to_string(),
            term: self.term(),
            commit_index: r.commit_index(),
            applied_index: r.applied_index(),
            revision: r.state_machine().revision(),
            log_bytes: self.core.log_bytes(),
            keys: r.state_machine().len(),
            lanes_free: self.core.lanes_free(),
            alarms,
        }
    }

    fn tick(&mut self) {
        self.core.tick();
        self.publish_client_url();
        // Retry watchers whose streams were full, and send progress notifications.
        if !self.watchers.is_empty() {
            self.watchers
                .pump(self.core.store(), self.core.now(), self.progress_ticks);
        }
    }

    /// Whether the loop may sync `records` itself: a small batch, at most one client request
    /// waiting here, and the log idle for at least as long as its last sync took.
    fn may_sync_inline(&self, records: &[Vec<u8>]) -> bool {
        records.len() <= INLINE_MAX_RECORDS
            && records.iter().map(Vec::len).sum::<usize>() <= INLINE_MAX_BYTES
            && self.proposals.len() + self.reads.len() <= 1
            && self
                .log_idle
                .is_some_and(|(end, took)| end.elapsed() >= took)
    }

    /// Hands a batch to the flusher thread; the loop hears when it is durable.
    fn submit_write(&mut self, batch: u64, bytes: Vec<Vec<u8>>) {
        let n = bytes.len();
        let (tx, started) = (self.durable_tx.clone(), Instant::now());
        self.wal.append_then(bytes, move |result| {
            let _ = tx.send(Durable::Synced {
                batch,
                started,
                records: n,
                inline: false,
                result: result.map(|_| ()),
            });
        });
    }

    /// Writes a batch that needs no sync of its own (chosen values learned from others, see
    /// `synod_node::Action::Write`): on this thread if it is small and the log is idle, since
    /// that costs a write and no wait, or behind the flusher's batch. Nothing waits for it.
    fn write_unsynced(&mut self, batch: u64, bytes: Vec<Vec<u8>>) {
        let small = bytes.iter().map(Vec::len).sum::<usize>() <= INLINE_MAX_BYTES;
        let bytes = match small {
            true => match self.wal.write_inline(bytes) {
                Ok(Ok(range)) => return self.on_written(batch, range),
                // Reported through the loop's channel, as a failed sync is.
                Ok(Err(e)) => {
                    let result = Err(e);
                    let _ = self.durable_tx.send(Durable::Written { batch, result });
                    return;
                }
                Err(bytes) => bytes,
            },
            false => bytes,
        };
        let tx = self.durable_tx.clone();
        self.wal.write_then(bytes, move |result| {
            let _ = tx.send(Durable::Written { batch, result });
        });
    }

    /// Unsynced batch `batch` reached the log file as records `written`. If a sync of the
    /// flusher's (for a later batch in the same run) covered it, the core hears it is durable,
    /// so it does not sync it again.
    fn on_written(&mut self, batch: u64, written: std::ops::Range<u64>) {
        self.metrics.log_unsynced_batches.inc();
        let bytes = self.wal.stats().bytes;
        if written.end > written.start && self.wal.durable_index() >= written.end - 1 {
            self.core.synced(batch, bytes);
        } else {
            self.core.written(bytes);
        }
    }

    /// Syncs a small batch on this thread if the log is idle (otherwise it queues behind the
    /// flusher's batch as usual), then ends another turn with what its durability released.
    fn write_inline(&mut self, w: InlineWrite) -> Result<(), StorageError> {
        let (n, started) = (w.records.len(), Instant::now());
        match self.wal.append_inline(w.records) {
            Ok(result) => {
                self.on_durable(Durable::Synced {
                    batch: w.batch,
                    started,
                    records: n,
                    inline: true,
                    result: result.map(|_| ()),
                })?;
                self.flush();
            }
            Err(records) => self.submit_write(w.batch, records),
        }
        Ok(())
    }

    /// What the flusher or a background task finished.
    fn on_durable(&mut self, done: Durable) -> Result<(), StorageError> {
        match done {
            Durable::Synced {
                batch,
                started,
                records,
                inline,
                result,
            } => {
                result?;
                let thread = if inline { "loop" } else { "flusher" };
                self.metrics.log_batches.with_label_values(&[thread]).inc();
                let took = started.elapsed();
                self.log_idle = Some((Instant::now(), took));
                self.metrics.fsync_seconds.observe(took.as_secs_f64());
                self.metrics.records_per_fsync.observe(records as f64);
                self.core.synced(batch, self.wal.stats().bytes);
            }
            Durable::Written { batch, result } => self.on_written(batch, result?),
            Durable::SnapshotBuilt { built, ms } => {
                let (snapshot, draft) = built?;
                tracing::info!(
                    node = self.core.replica().id(),
                    slot = snapshot.slot,
                    bytes = snapshot.state.len() + snapshot.sessions.len(),
                    ms,
                    "encoded a snapshot; checkpointing in the background"
                );
                let built = Some((draft, snapshot.slot, snapshot.state.clone()));
                drop_off_loop(std::mem::replace(&mut self.draft, built));
                self.core.snapshot_built(snapshot);
            }
            Durable::Checkpointed(result, mapped) => {
                let (covered, bytes, log_bytes) = result?;
                self.core.checkpointed(covered, bytes, log_bytes);
                self.checkpointed_at = Instant::now();
                if let Some((slot, state)) = mapped {
                    self.core.rebase_snapshot(slot, state);
                }
            }
        }
        Ok(())
    }

    /// Ends the loop turn: the core sorts the turn's effects into actions, and the shell
    /// carries them out.
    fn flush(&mut self) {
        self.core.flush();
        // A snapshot in the background finishes at full speed once one is asked for (it is in
        // the way), or once the log has grown by as much again as it began with: its pace, set
        // from how fast the log grew before it began, was too slow for the load since, and the
        // log it would let go of is growing in memory.
        let overdue = crate::pace::overdue(
            self.core.logged_since_checkpoint(),
            self.logged_at_snapshot,
            self.core.checkpoint_bytes(),
        );
        if self.core.checkpoint_wanted() || overdue {
            self.hurry.store(true, Ordering::Relaxed);
        }
        // Before the replies go: a client that saw its auth change must find it.
        self.auth.publish(self.core.store().auth());
        for action in self.core.take_actions() {
            self.act(action);
        }
        self.drop_unused_draft();
        let c = self.core.counters();
        self.metrics
            .proposals
            .inc_by(c.proposals - self.exported.proposals);
        self.metrics
            .elections
            .inc_by(c.elections - self.exported.elections);
        self.metrics
            .rerouted
            .inc_by(c.rerouted - self.exported.rerouted);
        self.exported = c;
        self.published.set_term(self.term());
        self.follow_members();
        if !self.defragments.is_empty() && self.core.checkpoint_idle() {
            for done in self.defragments.drain(..) {
                let _ = done.send(());
            }
        }
        let revision = self.core.store().revision();
        if revision != self.pumped_revision {
            self.pumped_revision = revision;
            self.watchers
                .pump(self.core.store(), self.core.now(), self.progress_ticks);
        }
    }

    /// Keeps the outbox's writers and the address book in step with the latest membership:
    /// a member added since this node started gets a writer, and one whose peer address a
    /// change moved is dialled there next.
    fn follow_members(&mut self) {
        let r = self.core.replica();
        if r.joining() {
            return;
        }
        let latest = r.membership().latest();
        if self.members_seen == Some(latest.epoch()) {
            return;
        }
        self.members_seen = Some(latest.epoch());
        for (id, _, info) in latest.iter() {
            // Members a cluster started with have no URLs in the log: their addresses are
            // this server's flags, in the book from the start.
            if let Some(addr) = info.peer_urls.iter().find_map(|u| url_addr(u).ok()) {
                self.outbox.add_peer(id, addr);
            }
        }
    }

    /// A member added with MemberAdd has only peer URLs in the log; once it has joined, it
    /// records where it serves clients (etcd's members publish theirs the same way), so that
    /// `member list` and clients that sync endpoints find it. Retried now and then until the
    /// change is applied; the leader refuses nothing here, but a concurrent change can win.
    fn publish_client_url(&mut self) {
        let Some(url) = &self.client_url else {
            return;
        };
        let r = self.core.replica();
        if r.joining() {
            return;
        }
        let me = r.id();
        let Some((_, _, info)) = r.membership().latest().iter().find(|(id, ..)| *id == me) else {
            return;
        };
        if info.peer_urls.is_empty() || !info.client_urls.is_empty() {
            return;
        }
        let now = self.core.now();
        if self
            .published_at
            .is_some_and(|at| now < at + 4 * self.election_ticks)
        {
            return;
        }
        self.published_at = Some(now);
        let op = MemberOp::Update {
            id: me,
            peer_urls: info.peer_urls.clone(),
            client_urls: vec![url.clone()],
        };
        self.core.change_membership(None, vec![op]);
    }

    fn act(&mut self, action: Action) {
        if matches!(action, Action::Write { .. } | Action::Checkpoint { .. }) {
            // What comes after a held batch and goes to the log (another batch, a checkpoint's
            // barrier) finds it queued first.
            if let Some(w) = self.inline_write.take() {
                self.submit_write(w.batch, w.records);
            }
        }
        match action {
            Action::Send { to, msg } => {
                self.metrics.sent.with_label_values(&[msg.kind()]).inc();
                self.outbox.send(to, msg);
            }
            Action::Write {
                batch,
                records,
                sync: false,
            } => {
                let bytes: Vec<Vec<u8>> = records.iter().map(encode_persist).collect();
                self.write_unsynced(batch, bytes);
            }
            Action::Write { batch, records, .. } => {
                let bytes: Vec<Vec<u8>> = records.iter().map(encode_persist).collect();
                if self.may_sync_inline(&bytes) {
                    self.inline_write = Some(InlineWrite {
                        batch,
                        records: bytes,
                    });
                } else {
                    self.submit_write(batch, bytes);
                }
            }
            Action::Reply { ticket, result } => {
                if let Some(tx) = self.proposals.remove(&ticket) {
                    let _ = tx.send(result);
                }
            }
            Action::ReadReply { ticket, result } => {
                if let Some(tx) = self.reads.remove(&ticket) {
                    let _ = tx.send(result);
                }
            }
            Action::BuildSnapshot { pending, wanted } => {
                // One that someone waits for goes at full speed.
                let rate = if wanted {
                    None
                } else {
                    crate::pace::snapshot_rate(
                        self.pace_factor,
                        self.core.logged_since_checkpoint(),
                        self.checkpointed_at.elapsed(),
                    )
                };
                self.pace = rate.map(|r| (pending.slot(), r));
                self.logged_at_snapshot = self.core.logged_since_checkpoint();
                self.hurry = Arc::default();
                let encode = rate.map(crate::pace::encode_rate);
                let mib = |r: Option<f64>| r.map(|r| (r / (1 << 20) as f64).round() as u64);
                tracing::info!(
                    node = self.core.replica().id(),
                    slot = pending.slot(),
                    encode_mib_per_s = mib(encode),
                    save_mib_per_s = mib(rate),
                    "encoding a snapshot in the background"
                );
                let (tx, snapshots) = (self.durable_tx.clone(), self.snapshots.clone());
                let pace = Pace::new(encode, self.hurry.clone());
                tokio::task::spawn_blocking(move || {
                    let started = Instant::now();
                    let built = build_snapshot(&snapshots, pending, &pace);
                    let ms = started.elapsed().as_millis() as u64;
                    let _ = tx.send(Durable::SnapshotBuilt { built, ms });
                });
            }
            Action::Checkpoint {
                covered,
                checkpoint,
            } => self.save_checkpoint(covered, checkpoint),
            // Thousands of slots' commands: freeing them on the loop stalled it for ~100 ms.
            Action::Free(removed) => {
                tokio::task::spawn_blocking(move || drop(removed));
            }
            Action::MemberReply { ticket, result } => {
                if let Some(tx) = self.changes.remove(&ticket) {
                    let _ = tx.send(result.map_err(Into::into));
                }
            }
            Action::Issued(op) => log_auto_compaction(&op),
            Action::Chosen { .. } => {}
            Action::Applied { value, .. } => {
                self.metrics.applied.inc();
                self.metrics
                    .batch_size
                    .observe(value.commands().len() as f64);
            }
        }
    }

    /// Drops a draft no checkpoint will take: its snapshot was not adopted (one installed from
    /// the leader meanwhile is newer), so the replica holds another. Otherwise the draft, and
    /// its file of hundreds of megabytes, would wait for the next checkpoint.
    fn drop_unused_draft(&mut self) {
        let adopted = |state: &Bytes| {
            self.core
                .replica()
                .snapshot()
                .is_some_and(|s| same_bytes(&s.state, state))
        };
        if self
            .draft
            .as_ref()
            .is_some_and(|(_, _, state)| !adopted(state))
        {
            drop_off_loop(self.draft.take());
        }
    }

    /// Saves a checkpoint in the background once what it covers is durable, then drops the log
    /// below it. The loop goes on meanwhile.
    fn save_checkpoint(&mut self, covered: u64, checkpoint: synod_node::Checkpoint) {
        let (wal, snapshots, tx) = (
            self.wal.clone(),
            self.snapshots.clone(),
            self.durable_tx.clone(),
        );
        // At the pace its snapshot was built at, if it holds that snapshot; any other (an
        // installed snapshot's, or the log folded for an operator) at full speed.
        let slot = checkpoint.records.iter().find_map(|r| match r {
            Persist::Snapshot(s) => Some(s.slot),
            _ => None,
        });
        let rate = self
            .pace
            .take()
            .filter(|&(paced, _)| Some(paced) == slot)
            .map(|(_, rate)| rate);
        let pace = Pace::new(rate, self.hurry.clone());
        // The snapshot's state is in a draft of this file already if the checkpoint holds the
        // snapshot encoded last; any other draft is not needed (removed off the loop: it can
        // be hundreds of megabytes).
        let draft = self.draft.take();
        let (draft, stale) = match (draft, checkpoint.records.first()) {
            (Some((draft, slot, state)), Some(Persist::Snapshot(s)))
                if s.slot == slot && same_bytes(&s.state, &state) =>
            {
                (Some((draft, slot)), None)
            }
            (other, _) => (None, other),
        };
        drop_off_loop(stale);
        // Named in the lines it logs: `synod cluster` interleaves its nodes' logs.
        let node = self.core.replica().id();
        tokio::task::spawn_blocking(move || {
            let result = (|| {
                let started = Instant::now();
                let save = match draft {
                    Some((draft, slot)) => Save::Draft(draft, slot),
                    None => Save::Whole(checkpoint_len(&checkpoint)),
                };
                let encoded = started.elapsed();
                let drafted = matches!(save, Save::Draft(..));
                // Saved only once what it covers is durable, so the log never ends before it.
                wal.append_batch_durable(Vec::new())?;
                let len = match save {
                    Save::Draft(draft, slot) => {
                        let head = checkpoint_head(
                            checkpoint.boot,
                            checkpoint.records.len(),
                            slot,
                            draft.body_len(),
                        );
                        let (_, len) = snapshots.finish_draft(draft, covered, &head, |out| {
                            write_checkpoint_tail(&checkpoint, &mut PacedWrite::new(out, pace))
                        })?;
                        len
                    }
                    Save::Whole(len) => {
                        snapshots.save_streamed(covered, b"", len, |out| {
                            write_checkpoint(&checkpoint, &mut PacedWrite::new(out, pace))
                        })?;
                        len
                    }
                };
                let saved = started.elapsed();
                // The segments below it are removed here, not on the log's thread.
                let (log_bytes, detached) = wal.with_wal(move |w| {
                    let detached = w.detach_below(covered + 1)?;
                    Ok::<_, StorageError>((w.stats().bytes, detached))
                })??;
                Wal::remove_detached(&detached)?;
                tracing::info!(
                    node,
                    covered,
                    bytes = len,
                    drafted,
                    size_ms = encoded.as_millis() as u64,
                    encode_and_save_ms = (saved - encoded).as_millis() as u64,
                    compact_ms = (started.elapsed() - saved).as_millis() as u64,
                    "checkpoint saved"
                );
                Ok((covered, len, log_bytes))
            })();
            let mapped = result
                .as_ref()
                .ok()
                .and_then(|_| map_snapshot_state(&snapshots, covered));
            let _ = tx.send(Durable::Checkpointed(result, mapped));
        });
    }
}

/// Encodes a snapshot straight into a draft of the checkpoint file that will hold it, at
/// `pace`, and reads its state back as a mapping of that file. At a million keys the
/// encoding held in memory was a few hundred megabytes of fresh pages per node, zeroed by the
/// kernel, held for as long as the snapshot took, then copied into the file.
fn build_snapshot(
    snapshots: &SnapshotStore,
    pending: PendingSnapshot,
    pace: &Pace,
) -> Result<(Snapshot, SnapshotDraft), StorageError> {
    let (draft, written) = snapshots.draft(pending.slot(), b"", CHECKPOINT_HEAD_LEN, |out| {
        pending.build_into(out, &mut |done| pace.wait(done as u64))
    })?;
    let state = draft.map_body().or_else(|e| {
        tracing::warn!(error = %e, "cannot map the snapshot's draft; reading it into memory");
        draft.read_body()
    })?;
    Ok((written.with_state(state), draft))
}

/// Whether `a` and `b` are the same bytes in memory (a snapshot's state shared, not copied):
/// a draft's mapped state is told apart from any other this way, without reading it.
fn same_bytes(a: &Bytes, b: &Bytes) -> bool {
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

/// Drops `it` on a blocking thread: a draft's file, removed when it is dropped, can be hundreds
/// of megabytes, and freeing that many blocks is file-system work the loop need not wait for.
fn drop_off_loop<T: Send + 'static>(it: Option<T>) {
    if let Some(it) = it {
        tokio::task::spawn_blocking(move || drop(it));
    }
}

/// How a checkpoint is saved.
enum Save {
    /// Its snapshot's state is in this draft of its file already (the snapshot's slot).
    Draft(SnapshotDraft, u64),
    /// Written whole, this many bytes.
    Whole(u64),
}

/// The snapshot state inside the checkpoint saved as `index`, mapped from its file: the replica
/// holds that in place of its own copy, which at a million keys was a quarter of the node's
/// memory. `None` (logged) if the file cannot be mapped or holds no snapshot; the replica then
/// keeps its copy, which costs memory and nothing else.
fn map_snapshot_state(snapshots: &SnapshotStore, index: u64) -> Option<(u64, Bytes)> {
    match snapshots.map_data(index) {
        Ok(data) => synod_node::record::checkpoint_state(&data),
        Err(e) => {
            tracing::warn!(index, error = %e, "cannot map the checkpoint; keeping its snapshot in memory");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_kv::PutRequest;

    #[test]
    fn the_raft_term_rises_with_every_ballot() {
        let ballots: Vec<Ballot> = (0..4)
            .flat_map(|r| (1..=3).map(move |n| Ballot::new(r, n)))
            .collect();
        for w in ballots.windows(2) {
            assert!(raft_term(w[0], 3) < raft_term(w[1], 3), "{w:?}");
        }
        assert_eq!(raft_term(Ballot::new(2, 1), 3), 9);
        assert_eq!(
            raft_term(Ballot::new(2, 7), 3),
            raft_term(Ballot::new(2, 3), 3)
        );
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
            snapshot_pace: crate::pace::DEFAULT_FACTOR,
            unsafe_local_reads: false,
            watch_progress_interval: Duration::from_secs(600),
            protocol: Default::default(),
            join: false,
            auxiliaries: Vec::new(),
            auxiliary: false,
            aux_digest_min: None,
            read_probes: Default::default(),
            accept_targets: Default::default(),
            notice_ticks: 1,
            client_tls: None,
            peer_tls: None,
            auth_token_ttl: Duration::from_secs(300),
            auth_token: "simple".into(),
            quota_backend_bytes: 0,
            auto_compaction: Default::default(),
        };
        let node = Node::open(&cfg, Outbox::default(), Metrics::new(), Default::default()).unwrap();
        let (handle, join) = spawn(node, cfg.tick);
        let lanes = handle.status().await.unwrap().lanes_free;
        assert_eq!(lanes, synod_node::LANES as usize);
        let put = |i: u8| {
            KvCommand::Put(PutRequest {
                key: vec![i],
                value: vec![i].into(),
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
    #[error("{0}")]
    Decode(String),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The first members pinned in the data directory cannot be read or written.
    #[error("{0}")]
    Genesis(String),
}

/// Starts a node's loop on the current runtime; returns the handle to talk to it.
pub fn spawn(node: Node, tick: Duration) -> (NodeHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(65_536);
    let handle = NodeHandle::new(tx, node.published.clone());
    let join = tokio::spawn(node.run(rx, tick));
    (handle, join)
}
