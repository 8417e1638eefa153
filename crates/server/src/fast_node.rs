//! The node loop of `synod server --protocol fast-multi`: the tokio shell around
//! [`synod_core::fast_multi::Server`] (acceptor, learner and leader in one) and a
//! [`Proposer`] for this node's clients. The protocol decides everything; the shell moves
//! bytes: gRPC requests become commands proposed straight to every acceptor, peers' messages go
//! in, the step's records go to the log (one group per loop turn) and the messages held for
//! them leave once it is synced, applied commands go to the store and answer their clients.
//!
//! Leases expire as in the default mode: the node that leads keeps a lease clock over the
//! store and proposes each lease's expiry when its TTL ran out without a keep-alive. The
//! key-value history is compacted as there too (`--auto-compaction-retention`): every node
//! samples the store's revision and the one that leads proposes the compaction, as root.
//!
//! What it does not do yet: compact the log (acceptors' votes and the learned log stay for
//! good, and a restarted node relearns the whole log from its peers), or serve reads without a
//! log slot (linearizable reads are ordered through the log).

use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::node::{Input, NodeError, NodeHandle, NodeStatus};
use crate::peer::{Deliver, Outbox};
use crate::watch::WatchHub;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use synod_core::effects::Outgoing;
use synod_core::fast::Recovery;
use synod_core::fast_multi::{
    AcceptorConfig, AcceptorState, FmEffects, LeaderConfig, Message, Output, Persist, Proposer,
    Server, Timer,
};
use synod_core::multi::StateMachine;
use synod_core::quorum::FastQuorum;
use synod_core::NodeId;
use synod_kv::{KvCommand, KvOutput, Store};
use synod_node::lease_clock::{fresh_lease_id, LeaseClock};
use synod_node::Compactor;
use synod_node::ProposeError;
use synod_storage::{CommitHandle, GroupCommitter, StorageError, StorageOptions, WalOptions};
use tokio::sync::{mpsc, oneshot};

/// A client's command as the log holds it: who proposed it (node, boot, sequence number), so
/// that equal commands from different clients stay distinct and a retried one is applied once.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FastCmd {
    /// The proposing node.
    pub origin: NodeId,
    /// Its boot count when it proposed.
    pub boot: u64,
    /// Its sequence number within that boot.
    pub seq: u64,
    /// The command, postcard-encoded.
    pub cmd: Vec<u8>,
}

/// A peer message of this mode.
pub type FastMessage = Message<FastCmd>;

/// One record of this mode's log.
#[derive(Debug, Serialize, Deserialize)]
enum Record {
    /// A boot began: commands proposed in it carry this number.
    Boot(u64),
    /// A protocol record.
    Persist(Persist<FastCmd>),
}

/// Every record starts with this byte, so a log of the other mode is recognised, not
/// misread.
const MAGIC: u8 = 0xF5;

fn encode(r: &Record) -> Vec<u8> {
    let mut out = vec![MAGIC];
    out.extend(postcard::to_stdvec(r).expect("records always serialize"));
    out
}

fn decode(index: u64, data: &[u8]) -> Result<Record, NodeError> {
    match data.split_first() {
        Some((&MAGIC, rest)) => postcard::from_bytes(rest)
            .map_err(|e| NodeError::Decode(format!("log record {index}: {e}"))),
        _ => Err(NodeError::Decode(format!(
            "log record {index} was not written by --protocol fast-multi; \
             start this data directory with the protocol that wrote it"
        ))),
    }
}

/// The peer side of a fast node's input.
#[derive(Clone)]
pub struct FastPeers {
    tx: mpsc::Sender<(NodeId, FastMessage)>,
}

impl Deliver<FastMessage> for FastPeers {
    fn deliver(&self, from: NodeId, msg: FastMessage) {
        let _ = self.tx.try_send((from, msg));
    }
}

/// Proposals wait this many ticks before they are sent again, and are given up after this
/// many such periods.
const RETRY_TICKS: u64 = 50;
const GIVE_UP_PERIODS: u32 = 10;

/// The shell's state, owned by its loop.
pub struct FastNode {
    /// Where the request handlers read the auth state this node applied.
    auth: crate::auth::AuthView,
    id: NodeId,
    boot: u64,
    server: Server<FastCmd>,
    proposer: Proposer<FastCmd>,
    store: Store,
    _log: GroupCommitter,
    wal: CommitHandle,
    synced_tx: mpsc::UnboundedSender<(u64, Result<(), StorageError>)>,
    synced_rx: Option<mpsc::UnboundedReceiver<(u64, Result<(), StorageError>)>>,
    outbox: Outbox<FastMessage>,
    metrics: Metrics,
    /// Ticks since start, and when each armed timer fires.
    now: u64,
    deadlines: HashMap<Timer, u64>,
    /// This turn's records, and the messages that must wait for them.
    records: Vec<Vec<u8>>,
    held: Vec<Outgoing<FastMessage>>,
    /// Messages waiting for a batch of records, oldest first.
    waiting: VecDeque<(u64, Vec<Outgoing<FastMessage>>)>,
    next_batch: u64,
    next_seq: u64,
    replies: HashMap<u64, oneshot::Sender<Result<KvOutput, ProposeError>>>,
    watchers: WatchHub,
    pumped_revision: i64,
    progress_ticks: u64,
    leases: LeaseClock,
    compactor: Compactor,
    published: Arc<crate::node::Published>,
}

impl FastNode {
    /// Opens the log, recovers the acceptor's promise and votes and the leader's round number
    /// from it, and returns the node ready to run.
    pub fn open(
        cfg: &ServerConfig,
        outbox: Outbox<FastMessage>,
        metrics: Metrics,
        auth: crate::auth::AuthView,
    ) -> Result<FastNode, NodeError> {
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
        let (mut state, mut number, mut boot) = (AcceptorState::default(), 0, 0);
        for r in &opened.records {
            match decode(r.index, &r.data)? {
                Record::Boot(b) => boot = boot.max(b),
                Record::Persist(Persist::Number(n)) => number = number.max(n),
                Record::Persist(p) => state.apply(&p),
            }
        }
        let mut wal = opened.wal;
        boot += 1;
        wal.append(&encode(&Record::Boot(boot)))?;
        wal.sync()?;
        let log = GroupCommitter::start(wal)?;
        let ids: Vec<NodeId> = cfg.members.iter().map(|m| m.id).collect();
        let quorum =
            Arc::new(FastQuorum::majority(&ids).map_err(|e| NodeError::Config(e.to_string()))?);
        let acceptor = AcceptorConfig {
            id: cfg.id,
            quorum: quorum.clone(),
            learners: ids.clone(),
            bug: None,
        };
        // Election timeouts differ by member, so that campaigns rarely duel.
        let position = ids.iter().position(|&i| i == cfg.id).unwrap_or(0) as u64;
        let (low, high) = cfg.election_ticks;
        let spread = (high - low) / ids.len().max(1) as u64;
        let leader = LeaderConfig {
            id: cfg.id,
            quorum,
            heartbeat_ticks: cfg.heartbeat_ticks,
            election_ticks: low + spread * position,
            stall_beats: 3,
            recovery: Recovery::Coordinated,
            bug: None,
        };
        let query_ticks = cfg.heartbeat_ticks.max(1);
        let server = Server::recover(acceptor, state, leader, number, query_ticks).quiet();
        let (synced_tx, synced_rx) = mpsc::unbounded_channel();
        Ok(FastNode {
            auth,
            id: cfg.id,
            boot,
            server,
            proposer: Proposer::new(ids, RETRY_TICKS, GIVE_UP_PERIODS),
            store: Store::new(),
            wal: log.handle(),
            _log: log,
            synced_tx,
            synced_rx: Some(synced_rx),
            outbox,
            metrics,
            now: 0,
            deadlines: HashMap::new(),
            records: Vec::new(),
            held: Vec::new(),
            waiting: VecDeque::new(),
            next_batch: 0,
            next_seq: 0,
            replies: HashMap::new(),
            watchers: WatchHub::default(),
            pumped_revision: 0,
            progress_ticks: (cfg.watch_progress_interval.as_millis() / cfg.tick.as_millis().max(1))
                .max(1) as u64,
            leases: LeaseClock::new(cfg.tick, cfg.election_ticks.1 * 2),
            compactor: Compactor::new(cfg.auto_compaction.in_ticks(cfg.tick), 0),
            published: Arc::default(),
        })
    }

    /// Runs until the input channel closes.
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Input>,
        mut peers: mpsc::Receiver<(NodeId, FastMessage)>,
        tick: Duration,
    ) {
        let fx = self.server.start();
        self.absorb(fx);
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut synced_rx = self.synced_rx.take().expect("run once");
        loop {
            let stepped = tokio::select! {
                input = rx.recv() => match input {
                    Some(i) => { self.handle(i); Ok(()) }
                    None => break,
                },
                Some((from, msg)) = peers.recv() => { self.peer(from, msg); Ok(()) }
                _ = ticker.tick() => { self.tick(); Ok(()) }
                Some((batch, result)) = synced_rx.recv() => self.synced(batch, result),
            };
            // Group commit: take whatever else is queued before the turn's one batch.
            let drained = stepped.and_then(|()| {
                for _ in 0..1024 {
                    match rx.try_recv() {
                        Ok(i) => self.handle(i),
                        Err(_) => break,
                    }
                }
                for _ in 0..1024 {
                    match peers.try_recv() {
                        Ok((from, msg)) => self.peer(from, msg),
                        Err(_) => break,
                    }
                }
                while let Ok((batch, result)) = synced_rx.try_recv() {
                    self.synced(batch, result)?;
                }
                Ok(())
            });
            if let Err(e) = drained {
                tracing::error!(error = %e, "cannot write the log; stopping this node");
                break;
            }
            self.flush();
        }
        for (_, tx) in self.replies.drain() {
            let _ = tx.send(Err(ProposeError::Stopped));
        }
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Propose(mut cmd, reply) => {
                // The proposing node picks a lease id the client left to the server, as the
                // default mode does.
                if let KvCommand::LeaseGrant { id, .. } = cmd.inner_mut() {
                    if *id == 0 {
                        *id = fresh_lease_id(self.id, self.boot, self.next_seq + 1);
                    }
                }
                let seq = self.propose(&cmd);
                self.replies.insert(seq, reply);
            }
            // No read without a log slot here: the caller orders the read through the log.
            Input::ReadIndex(_, reply) => {
                let _ = reply.send(Err(ProposeError::NotLeader));
            }
            Input::ReadLocal(req, reply) => {
                // Before the answer: the handler checks the reader against what it sees then.
                self.auth.publish(self.store.auth());
                let _ = reply.send((self.store.revision(), self.store.range(&req)));
            }
            Input::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Input::Watch(w) => {
                self.watchers
                    .handle(w, &self.store, self.now, self.progress_ticks);
                self.metrics.watchers.set(self.watchers.len() as i64);
            }
            Input::LeaseRemaining(id, reply) => {
                let _ = reply.send(self.leases.remaining_secs(id, self.now));
            }
            Input::StoreCopy(reply) => {
                let _ = reply.send(self.store.shared_copy());
            }
            // This mode keeps its whole log (it has no checkpoints yet): nothing to fold.
            Input::Defragment(reply) => {
                let _ = reply.send(());
            }
            Input::MoveLeader(_, reply) => {
                let _ = reply.send(Err(crate::node::MoveLeaderError::Unsupported));
            }
            Input::ChangeMembership(_, reply) => {
                let _ = reply.send(Err(crate::node::MemberChangeError::Unsupported));
            }
            Input::Members(reply) => {
                let _ = reply.send(None);
            }
            // Peers of this mode come in on their own channel.
            Input::Peer(..) => {}
        }
    }

    /// Proposes `cmd` as this node's next command; returns its sequence number.
    fn propose(&mut self, cmd: &KvCommand) -> u64 {
        self.next_seq += 1;
        let value = FastCmd {
            origin: self.id,
            boot: self.boot,
            seq: self.next_seq,
            cmd: postcard::to_stdvec(cmd).expect("commands always serialize"),
        };
        self.metrics.proposals.inc();
        let fx = self.proposer.propose(value);
        self.absorb(fx);
        self.next_seq
    }

    fn peer(&mut self, from: NodeId, msg: FastMessage) {
        self.metrics.received.with_label_values(&[kind(&msg)]).inc();
        let fx = self.server.on_message(from, msg);
        self.absorb(fx);
    }

    fn tick(&mut self) {
        self.now += 1;
        let due: Vec<Timer> = self
            .deadlines
            .iter()
            .filter(|(_, &at)| at <= self.now)
            .map(|(&k, _)| k)
            .collect();
        for kind in due {
            self.deadlines.remove(&kind);
            let fx = match kind {
                Timer::Retry => self.proposer.on_timer(kind),
                _ => self.server.on_timer(kind),
            };
            self.absorb(fx);
        }
        if !self.watchers.is_empty() {
            self.watchers
                .pump(&self.store, self.now, self.progress_ticks);
        }
        let leading = self.server.leading().is_some();
        for (id, refreshes) in self.leases.observe(&self.store, leading, self.now) {
            self.propose(&KvCommand::LeaseExpire { id, refreshes });
        }
        if let Some(cmd) = self.compactor.due(&self.store, leading, self.now) {
            crate::node::log_auto_compaction(&cmd);
            self.propose(&cmd);
        }
    }

    /// Takes one step's effects: records and held messages wait for the turn's flush, other
    /// messages leave (to this node itself: handled at once), outputs are applied.
    fn absorb(&mut self, fx: FmEffects<FastCmd>) {
        let mut local = VecDeque::new();
        self.take(fx, &mut local);
        while let Some(msg) = local.pop_front() {
            let fx = self.server.on_message(self.id, msg);
            self.take(fx, &mut local);
        }
    }

    fn take(&mut self, fx: FmEffects<FastCmd>, local: &mut VecDeque<FastMessage>) {
        for p in fx.persist {
            self.records.push(encode(&Record::Persist(p)));
        }
        for t in fx.timers {
            self.deadlines.insert(t.kind, self.now + t.after);
        }
        for o in fx.send {
            if o.to == self.id {
                local.push_back(o.msg);
            } else {
                self.metrics.sent.with_label_values(&[kind(&o.msg)]).inc();
                self.outbox.send(o.to, o.msg);
            }
        }
        self.held.extend(fx.send_after_sync);
        for out in fx.output {
            self.output(out);
        }
    }

    fn output(&mut self, out: Output<FastCmd>) {
        match out {
            Output::Applied { value, .. } => {
                self.proposer.applied(&value);
                self.metrics.applied.inc();
                let result = match postcard::from_bytes::<KvCommand>(&value.cmd) {
                    Ok(cmd) => {
                        let out = self.store.apply(&cmd);
                        // Before the reply: a client that saw its auth change must find it.
                        self.auth.publish(self.store.auth());
                        Ok(out)
                    }
                    // Every replica skips it alike: the bytes are the same everywhere.
                    Err(e) => {
                        tracing::error!(origin = value.origin, error = %e, "undecodable command in the log; skipped");
                        Err(ProposeError::Timeout)
                    }
                };
                if value.origin == self.id && value.boot == self.boot {
                    if let Some(tx) = self.replies.remove(&value.seq) {
                        let _ = tx.send(result);
                    }
                }
            }
            Output::GaveUp { value } => {
                if let Some(tx) = self.replies.remove(&value.seq) {
                    let _ = tx.send(Err(ProposeError::Timeout));
                }
            }
            Output::Chosen { .. } | Output::Done { .. } => {}
        }
    }

    /// Ends the loop turn: the turn's records go to the log as one batch, and the messages
    /// that must wait for them (and for every earlier batch) are queued behind it.
    fn flush(&mut self) {
        self.published
            .set_term(self.server.acceptor_state().promised.number);
        let held = std::mem::take(&mut self.held);
        if !self.records.is_empty() {
            self.next_batch += 1;
            let (batch, tx) = (self.next_batch, self.synced_tx.clone());
            let records = std::mem::take(&mut self.records);
            let started = Instant::now();
            let metrics = self.metrics.clone();
            let n = records.len();
            self.wal.append_then(records, move |result| {
                metrics
                    .fsync_seconds
                    .observe(started.elapsed().as_secs_f64());
                metrics.records_per_fsync.observe(n as f64);
                let _ = tx.send((batch, result.map(|_| ())));
            });
            self.waiting.push_back((batch, held));
        } else if let Some((_, last)) = self.waiting.back_mut() {
            last.extend(held);
        } else {
            self.release(held);
        }
        let revision = self.store.revision();
        if revision != self.pumped_revision {
            self.pumped_revision = revision;
            self.watchers
                .pump(&self.store, self.now, self.progress_ticks);
        }
    }

    fn synced(&mut self, batch: u64, result: Result<(), StorageError>) -> Result<(), StorageError> {
        result?;
        while self.waiting.front().is_some_and(|(b, _)| *b <= batch) {
            let (_, held) = self.waiting.pop_front().expect("checked");
            self.release(held);
        }
        Ok(())
    }

    fn release(&mut self, held: Vec<Outgoing<FastMessage>>) {
        for o in held {
            if o.to == self.id {
                let fx = self.server.on_message(self.id, o.msg);
                self.absorb(fx);
            } else {
                self.metrics.sent.with_label_values(&[kind(&o.msg)]).inc();
                self.outbox.send(o.to, o.msg);
            }
        }
    }

    fn status(&self) -> NodeStatus {
        let leading = self.server.leading();
        NodeStatus {
            id: self.id,
            leader: leading.map(|_| self.id),
            role: if leading.is_some() {
                "leader"
            } else {
                "follower"
            }
            .into(),
            ballot: self.server.acceptor_state().promised.to_string(),
            term: self.server.acceptor_state().promised.number,
            commit_index: self.server.learned_through(),
            applied_index: self.server.applied_through(),
            revision: self.store.revision(),
            log_bytes: self.wal.stats().bytes,
            keys: self.store.len(),
            lanes_free: 0,
            alarms: self.store.alarms().copied().collect(),
        }
    }
}

/// A message's kind, for metrics labels.
fn kind(m: &FastMessage) -> &'static str {
    match m {
        Message::Propose { .. } => "propose",
        Message::Prepare { .. } => "prepare",
        Message::Promise { .. } => "promise",
        Message::Any { .. } => "any",
        Message::Accept { .. } => "accept",
        Message::Accepted { .. } => "accepted",
        Message::Nack { .. } => "nack",
        Message::Chosen { .. } => "chosen",
        Message::Query { .. } => "query",
        Message::Done { .. } => "done",
    }
}

/// Starts a fast node's loop on the current runtime; returns the handle the gRPC layer talks
/// to, and the one peers deliver to.
pub fn spawn(
    node: FastNode,
    tick: Duration,
) -> (NodeHandle, FastPeers, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(65_536);
    let (peer_tx, peer_rx) = mpsc::channel(65_536);
    let published = node.published.clone();
    let join = tokio::spawn(node.run(rx, peer_rx, tick));
    (
        NodeHandle::new(tx, published),
        FastPeers { tx: peer_tx },
        join,
    )
}
