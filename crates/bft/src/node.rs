//! A PBFT replica as a process: the core [`Replica`] on a thread of its own, its disk, a
//! listener for peers and clients, and a dialer per peer.
//!
//! The core thread takes every message that arrived, steps the replica on each, writes the
//! records of the whole batch with one sync, and only then sends anything (group commit: a
//! crash before the sync leaves no trace outside). A tick drives the replica's timers.

use crate::byzantine::{Byzantine, Liar};
use crate::conn::{dial, QUEUE};
use crate::disk::{Disk, DiskError};
use crate::kv::KvStore;
use crate::members::Members;
use crate::wire::{codec, Frame, KvMessage, MAX_CLIENT_FRAME, MAX_FRAME};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use synod_core::auth::{Signer, Verifier};
use synod_core::pbft::{Message, Output, PbftEffects, RecoverError, Replica, ReplicaConfig, Timer};
use synod_core::quorum::ByzantineQuorum;
use synod_core::{NodeId, Outgoing};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::codec::{FramedRead, FramedWrite};

/// Messages waiting for the core thread; more are dropped.
const INBOX: usize = 16_384;
/// Messages the core steps through before one sync.
const BATCH: usize = 512;
/// Connections one client id may hold at once; the oldest goes.
const CONNS_PER_CLIENT: usize = 4;
/// Connections a replica accepts at once; more are closed.
const MAX_CONNECTIONS: usize = 4096;

/// How to run a replica.
pub struct ReplicaOptions {
    /// Its id.
    pub id: NodeId,
    /// Every replica's address, its own included.
    pub members: Members,
    /// Where its log and snapshots live.
    pub data_dir: PathBuf,
    /// Its secret key.
    pub signer: Arc<dyn Signer>,
    /// Every replica's and client's public key.
    pub verifier: Arc<dyn Verifier>,
    /// Length of a tick.
    pub tick: Duration,
    /// Slots between checkpoints.
    pub checkpoint_interval: u64,
    /// Ticks a request may wait before the replica votes the primary out.
    pub view_change_ticks: u64,
    /// Ticks between status messages (which let peers fill gaps).
    pub status_ticks: u64,
    /// Run as a liar (tests and demonstrations only).
    pub byzantine: Option<Byzantine>,
}

impl ReplicaOptions {
    /// Defaults for everything but identity, keys and place: 10 ms ticks, a checkpoint every
    /// 128 slots, a view change after 1 s without progress, status every 200 ms.
    pub fn new(
        id: NodeId,
        members: Members,
        data_dir: PathBuf,
        signer: Arc<dyn Signer>,
        verifier: Arc<dyn Verifier>,
    ) -> Self {
        ReplicaOptions {
            id,
            members,
            data_dir,
            signer,
            verifier,
            tick: Duration::from_millis(10),
            checkpoint_interval: 128,
            view_change_ticks: 100,
            status_ticks: 20,
            byzantine: None,
        }
    }
}

/// Why a replica could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Its id is not among the members.
    #[error("replica {0} is not in the member list")]
    NotAMember(NodeId),
    /// The member list does not make a Byzantine quorum system.
    #[error("the member list: {0}")]
    Members(String),
    /// Its signing key is another replica's.
    #[error("the signing key is replica {found}'s, not {wanted}'s")]
    WrongKey {
        /// The id started as.
        wanted: NodeId,
        /// The key's id.
        found: NodeId,
    },
    /// Its disk failed or holds something else.
    #[error("data directory: {0}")]
    Disk(#[from] DiskError),
    /// Its durable state does not make a replica.
    #[error("data directory: {0}")]
    Recover(#[from] RecoverError),
    /// The core thread panicked (a bug: see its message above).
    #[error("the replica's core thread panicked")]
    Panicked,
    /// It could not listen.
    #[error("cannot listen on {addr}: {err}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        err: std::io::Error,
    },
}

/// What a running replica shows of itself.
#[derive(Debug, Default)]
pub struct ReplicaStatus {
    /// Slots executed.
    pub executed: AtomicU64,
    /// Its view.
    pub view: AtomicU64,
    /// Run as a liar: the messages it dropped, changed or invented so far.
    pub lies: AtomicU64,
}

/// A running replica. Dropping it does not stop it; call [`RunningReplica::stop`].
pub struct RunningReplica {
    addr: SocketAddr,
    status: Arc<ReplicaStatus>,
    stop: Arc<AtomicBool>,
    core: Option<std::thread::JoinHandle<Result<(), NodeError>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningReplica {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its progress.
    pub fn status(&self) -> &ReplicaStatus {
        &self.status
    }

    /// Whether the core thread still runs (it ends on a disk error, or when stopped).
    pub fn is_running(&self) -> bool {
        self.core.as_ref().is_some_and(|c| !c.is_finished())
    }

    /// Waits until the core thread ends (an error, or [`RunningReplica::stop`]), then closes
    /// every connection and waits for them to go.
    pub async fn wait(mut self) -> Result<(), NodeError> {
        let core = self.core.take();
        let result = tokio::task::spawn_blocking(move || match core {
            Some(c) => c.join().unwrap_or(Err(NodeError::Panicked)),
            None => Ok(()),
        })
        .await
        .unwrap_or(Err(NodeError::Panicked));
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        result
    }

    /// Stops it: the core thread finishes its batch, connections close.
    pub async fn stop(self) -> Result<(), NodeError> {
        self.stop.store(true, Ordering::SeqCst);
        self.wait().await
    }
}

/// Client connections by client id, for replies.
type ClientTable = Arc<Mutex<HashMap<NodeId, Vec<mpsc::Sender<Bytes>>>>>;

/// Starts a replica on the current tokio runtime. `listener` (bound by the caller, for tests
/// that pick free ports) or else the replica's own address in `members` is listened on.
pub async fn start(
    opts: ReplicaOptions,
    listener: Option<TcpListener>,
) -> Result<RunningReplica, NodeError> {
    let me = opts.id;
    let own = *opts.members.get(&me).ok_or(NodeError::NotAMember(me))?;
    if opts.signer.id() != me {
        return Err(NodeError::WrongKey {
            wanted: me,
            found: opts.signer.id(),
        });
    }
    let replicas: Vec<NodeId> = opts.members.keys().copied().collect();
    let quorum =
        ByzantineQuorum::new(replicas.len()).map_err(|e| NodeError::Members(e.to_string()))?;
    let disk = Disk::open(&opts.data_dir)?;
    let cfg = ReplicaConfig {
        id: me,
        replicas: replicas.clone(),
        quorum,
        checkpoint_interval: opts.checkpoint_interval,
        window: opts.checkpoint_interval * 2,
        view_change_ticks: opts.view_change_ticks,
        status_ticks: opts.status_ticks,
        bug: None,
    };
    let replica = Replica::recover(
        cfg,
        opts.signer.clone(),
        opts.verifier.clone(),
        disk.durable().clone(),
        KvStore::default(),
    )?;
    let listener = match listener {
        Some(l) => l,
        None => TcpListener::bind(own)
            .await
            .map_err(|err| NodeError::Listen { addr: own, err })?,
    };
    let addr = listener
        .local_addr()
        .map_err(|err| NodeError::Listen { addr: own, err })?;

    let (inbox_tx, inbox_rx) = sync_channel(INBOX);
    let clients: ClientTable = Arc::default();
    let mut tasks = Vec::new();
    let mut peers = BTreeMap::new();
    for (&id, &peer) in opts.members.iter().filter(|(&id, _)| id != me) {
        let (tx, rx) = mpsc::channel(QUEUE);
        peers.insert(id, tx);
        tasks.push(tokio::spawn(dial(peer, me, rx, None)));
    }
    let shared = Arc::new(Shared {
        replicas: replicas.clone(),
        verifier: opts.verifier.clone(),
        inbox: inbox_tx,
        clients: clients.clone(),
    });
    tasks.push(tokio::spawn(serve(listener, shared)));
    let stop = Arc::new(AtomicBool::new(false));
    let status = Arc::new(ReplicaStatus::default());
    let liar = opts
        .byzantine
        .map(|mode| Liar::new(mode, opts.signer.clone(), replicas));
    let core = Core {
        replica,
        disk,
        inbox: inbox_rx,
        peers,
        clients,
        liar,
        tick: opts.tick,
        status: status.clone(),
        stop: stop.clone(),
    };
    let core = std::thread::Builder::new()
        .name(format!("pbft-{me}"))
        .spawn(move || core.run())
        .expect("spawning a thread");
    Ok(RunningReplica {
        addr,
        status,
        stop,
        core: Some(core),
        tasks,
    })
}

/// Accepts connections: peers' messages and clients' requests go to the core; a client's
/// connection also gets its replies. The connections live in a set that goes with this task,
/// so that stopping the replica closes them.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if conns.len() >= MAX_CONNECTIONS {
            // Refused by closing: the peer's dialer retries later.
            continue;
        }
        let _ = stream.set_nodelay(true);
        conns.spawn(connection(stream, shared.clone()));
    }
}

/// What every connection of a replica needs.
struct Shared {
    replicas: Vec<NodeId>,
    verifier: Arc<dyn Verifier>,
    inbox: SyncSender<KvMessage>,
    clients: ClientTable,
}

async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let (read, write) = stream.into_split();
    // Small frames until the connection says who it is: anyone can connect.
    let mut read = FramedRead::new(read, codec(MAX_CLIENT_FRAME));
    let hello = tokio::time::timeout(Duration::from_secs(5), read.next()).await;
    let Ok(Some(Ok(bytes))) = hello else { return };
    let Ok(Frame::Hello { from }) = Frame::decode(&bytes) else {
        return;
    };
    let peer = shared.replicas.contains(&from);
    if peer {
        // A peer's state transfer can be large. (The claim is not trusted for anything
        // else: every message it carries is signed.)
        read.decoder_mut().set_max_frame_length(MAX_FRAME);
    }
    let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
    let mut write = FramedWrite::new(write, codec(MAX_FRAME));
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if write.send(frame).await.is_err() {
                return;
            }
        }
    });
    let mut registered = false;
    while let Some(Ok(bytes)) = read.next().await {
        // A frame that does not decode is the sender's fault: skip it, keep the connection.
        let Ok(Frame::Message(m)) = Frame::decode(&bytes) else {
            continue;
        };
        if !peer && !registered {
            registered = register(&shared, from, &m, &tx);
        }
        if let Err(TrySendError::Disconnected(_)) = shared.inbox.try_send(m) {
            break;
        }
    }
    writer.abort();
    drop(tx);
    if registered {
        let mut table = shared.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(conns) = table.get_mut(&from) {
            conns.retain(|c| !c.is_closed());
            if conns.is_empty() {
                table.remove(&from);
            }
        }
    }
}

/// Makes `tx` a way to reach client `from` once the connection carried a request that `from`
/// signed, so that a connection merely claiming a client's id cannot crowd out the client's
/// own. Returns whether it did.
fn register(shared: &Shared, from: NodeId, m: &KvMessage, tx: &mpsc::Sender<Bytes>) -> bool {
    let Message::Request(r) = m else { return false };
    if r.body.client != from || !r.verify(shared.verifier.as_ref()) {
        return false;
    }
    let mut table = shared.clients.lock().unwrap_or_else(|p| p.into_inner());
    let conns = table.entry(from).or_default();
    conns.retain(|c| !c.is_closed());
    if conns.len() >= CONNS_PER_CLIENT {
        conns.remove(0);
    }
    conns.push(tx.clone());
    true
}

/// The core thread's state.
struct Core {
    replica: Replica<KvStore>,
    disk: Disk,
    inbox: Receiver<KvMessage>,
    peers: BTreeMap<NodeId, mpsc::Sender<Bytes>>,
    clients: ClientTable,
    liar: Option<Liar>,
    tick: Duration,
    status: Arc<ReplicaStatus>,
    stop: Arc<AtomicBool>,
}

impl Core {
    fn run(mut self) -> Result<(), NodeError> {
        let mut now: u64 = 0;
        let mut deadlines: HashMap<Timer, u64> = HashMap::new();
        let mut next_tick = Instant::now() + self.tick;
        let first = self.replica.start();
        self.finish(first, now, &mut deadlines)?;
        let mut batch = Vec::with_capacity(BATCH);
        while !self.stop.load(Ordering::SeqCst) {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.inbox.recv_timeout(wait) {
                Ok(m) => batch.push(m),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while batch.len() < BATCH {
                match self.inbox.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let mut fx = PbftEffects::new();
            for m in batch.drain(..) {
                fx.extend(self.replica.on_message(m));
            }
            // The batch's timer requests replace the deadlines before any falls due: a
            // deadline the replica re-armed in this batch must not go off at its old time.
            for t in std::mem::take(&mut fx.timers) {
                deadlines.insert(t.kind, now + t.after.max(1));
            }
            if Instant::now() >= next_tick {
                now += 1;
                next_tick += self.tick;
                if next_tick < Instant::now() {
                    // A stall (a long sync): do not replay the missed ticks in a burst.
                    next_tick = Instant::now() + self.tick;
                }
                let due: Vec<Timer> = deadlines
                    .iter()
                    .filter(|(_, &at)| at <= now)
                    .map(|(&k, _)| k)
                    .collect();
                for kind in due {
                    deadlines.remove(&kind);
                    fx.extend(self.replica.on_timer(kind));
                }
            }
            self.finish(fx, now, &mut deadlines)?;
        }
        Ok(())
    }

    /// Arms timers, persists, then sends and reports.
    fn finish(
        &mut self,
        fx: PbftEffects<crate::kv::KvOp, crate::kv::KvResult>,
        now: u64,
        deadlines: &mut HashMap<Timer, u64>,
    ) -> Result<(), NodeError> {
        for t in &fx.timers {
            deadlines.insert(t.kind, now + t.after.max(1));
        }
        self.disk.write(&fx.persist)?;
        let mut out = fx.send;
        out.extend(fx.send_after_sync);
        if let Some(liar) = &mut self.liar {
            out = liar.bend(out);
            self.status.lies.store(liar.lies(), Ordering::Relaxed);
        }
        for Outgoing { to, msg } in out {
            self.deliver(to, msg);
        }
        for o in fx.output {
            match o {
                Output::Executed { seq, .. } | Output::Installed { seq } => {
                    self.status.executed.store(seq, Ordering::Relaxed);
                }
                Output::ViewStarted { view } => {
                    self.status.view.store(view, Ordering::Relaxed);
                    tracing::info!(view, "pbft view started");
                }
                Output::Done { .. } => {}
            }
        }
        Ok(())
    }

    fn deliver(&self, to: NodeId, msg: KvMessage) {
        let frame = Frame::Message(msg).encode();
        if let Some(peer) = self.peers.get(&to) {
            // A full queue means the peer is down or slow: drop, status rounds catch it up.
            let _ = peer.try_send(frame);
            return;
        }
        let table = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        for conn in table.get(&to).into_iter().flatten() {
            let _ = conn.try_send(frame.clone());
        }
    }
}
