//! `synod server --auxiliary`: a Cheap Paxos auxiliary acceptor. It listens to its peers only
//! (no client API), keeps a write-ahead log of its promise and the few votes it holds, and
//! serves `/health` and `/metrics` on the admin address. In steady state it receives nothing
//! and writes nothing.
//!
//! One thread runs the [`AuxNode`]: messages in, records appended and synced before the votes
//! they hold leave, checkpoints saved in line (they hold a handful of votes).

use crate::config::ServerConfig;
use crate::node::NodeError;
use crate::peer::{self, AddressBook, Deliver, Outbox};
use crate::server::{bind, ServerError};
use crate::tls::PeerTls;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use synod_core::multi::Message;
use synod_core::NodeId;
use synod_kv::KvCommand;
use synod_node::record::{encode_boot, encode_checkpoint, encode_persist, recover_aux};
use synod_node::{Action, AuxNode};
use synod_storage::{StorageOptions, WalOptions};

type Inbound = (NodeId, Message<KvCommand>);

/// What the admin endpoint reports.
#[derive(Default)]
struct AuxStats {
    received: AtomicU64,
    votes: AtomicU64,
    records: AtomicU64,
    /// Bytes of those records: what digests in place of large batches save.
    record_bytes: AtomicU64,
}

/// The peer listener's way into the auxiliary's thread.
#[derive(Clone)]
struct Inbox(SyncSender<Inbound>);

impl Deliver<Message<KvCommand>> for Inbox {
    fn deliver(&self, from: NodeId, msg: Message<KvCommand>) {
        // Dropped when full: Paxos copes with lost messages, and a peer must not stall.
        if let Err(TrySendError::Full(_)) = self.0.try_send((from, msg)) {
            tracing::debug!(from, "auxiliary inbox full; message dropped");
        }
    }
}

/// Runs an auxiliary acceptor until `shutdown` completes.
pub async fn run(
    cfg: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let me = cfg.me().cloned().ok_or(ServerError::NotAMember(cfg.id))?;
    let peer_tls = cfg.peer_tls.as_ref().map(PeerTls::new).transpose()?;
    let peer_listener = bind("peers", me.peer_addr).await?;
    let admin_listener = match cfg.admin_addr {
        Some(addr) => Some(bind("admin HTTP", addr).await?),
        None => None,
    };
    let book = AddressBook::new(&cfg.members);
    let outbox = peer::start_writers(cfg.id, &book, peer_tls.clone());
    let (tx, rx) = sync_channel(65_536);
    let stats = Arc::new(AuxStats::default());
    let (id, dir) = (cfg.id, cfg.data_dir.clone());
    let loop_stats = stats.clone();
    // Opened before serving: a data directory that cannot be read stops the start.
    let opened = open(id, &dir)?;
    let thread = std::thread::Builder::new()
        .name(format!("synod-aux-{id}"))
        .spawn(move || {
            if let Err(e) = run_loop(opened, rx, outbox, &loop_stats) {
                tracing::error!(error = %e, "auxiliary stopped");
            }
        })
        .map_err(|e| NodeError::Config(format!("cannot start the auxiliary's thread: {e}")))?;
    tokio::spawn(peer::serve(
        peer_listener,
        cfg.id,
        book,
        Inbox(tx),
        peer_tls,
    ));
    if let Some(l) = admin_listener {
        let app = router(stats);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(l, app).await {
                tracing::error!(error = %e, "admin HTTP stopped");
            }
        });
    }
    tracing::info!(id = cfg.id, peer = %me.peer_addr, "serving as an auxiliary acceptor");
    shutdown.await;
    // The thread ends with the process; nothing of its state is lost (every vote it sent was
    // synced first).
    drop(thread);
    Ok(())
}

/// The auxiliary's node, recovered from its data directory, and its log and checkpoints.
struct Opened {
    node: AuxNode,
    wal: synod_storage::Wal,
    snapshots: synod_storage::SnapshotStore,
}

fn open(id: NodeId, dir: &std::path::Path) -> Result<Opened, NodeError> {
    std::fs::create_dir_all(dir).map_err(|e| NodeError::DataDir(dir.to_path_buf(), e))?;
    let opts = StorageOptions {
        wal: WalOptions {
            segment_size: 1 << 20,
            ..WalOptions::default()
        },
        keep_snapshots: 2,
    };
    let mut opened = synod_storage::open(dir, &opts)?;
    let recovered = recover_aux(
        opened
            .snapshot
            .take()
            .map(|s| (s.index, bytes::Bytes::from(s.data))),
        opened.records.iter().map(|r| (r.index, &r.data[..])),
    )
    .map_err(|e| NodeError::Decode(e.to_string()))?;
    let mut wal = opened.wal;
    wal.append(&encode_boot(recovered.boot + 1))?;
    wal.sync()?;
    Ok(Opened {
        node: AuxNode::new(id, recovered, wal.last_index()),
        wal,
        snapshots: opened.snapshots,
    })
}

fn run_loop(
    opened: Opened,
    rx: Receiver<Inbound>,
    outbox: Outbox<Message<KvCommand>>,
    stats: &AuxStats,
) -> Result<(), NodeError> {
    let Opened {
        mut node,
        mut wal,
        snapshots,
    } = opened;
    while let Ok((from, msg)) = rx.recv() {
        node.on_peer(from, msg);
        // Whatever else has arrived joins this turn: one sync for all of it.
        while let Ok((from, msg)) = rx.try_recv() {
            node.on_peer(from, msg);
        }
        loop {
            node.flush();
            let actions = node.take_actions();
            if actions.is_empty() {
                break;
            }
            for a in actions {
                match a {
                    Action::Send { to, msg } => outbox.send(to, msg),
                    Action::Write { batch, records, .. } => {
                        let mut bytes = 0;
                        for r in &records {
                            let record = encode_persist(r);
                            bytes += record.len() as u64;
                            wal.append(&record)?;
                        }
                        stats.record_bytes.fetch_add(bytes, Ordering::Relaxed);
                        wal.sync()?;
                        stats
                            .records
                            .fetch_add(records.len() as u64, Ordering::Relaxed);
                        node.synced(batch);
                    }
                    Action::Checkpoint {
                        covered,
                        checkpoint,
                    } => {
                        snapshots.save(covered, b"", &encode_checkpoint(&checkpoint))?;
                        wal.compact(covered + 1)?;
                        node.checkpointed(covered);
                    }
                    _ => {}
                }
            }
        }
        stats.received.store(node.received(), Ordering::Relaxed);
        let votes = node.auxiliary().votes() as u64;
        stats.votes.store(votes, Ordering::Relaxed);
    }
    Ok(())
}

/// `/health` and `/metrics` (Prometheus text).
fn router(stats: Arc<AuxStats>) -> axum::Router {
    use axum::routing::get;
    let metrics = move || {
        let s = stats.clone();
        async move {
            let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
            format!(
                "# HELP synod_aux_messages_received_total Peer messages this auxiliary received.\n\
                 # TYPE synod_aux_messages_received_total counter\n\
                 synod_aux_messages_received_total {}\n\
                 # HELP synod_aux_votes_held Votes this auxiliary holds.\n\
                 # TYPE synod_aux_votes_held gauge\n\
                 synod_aux_votes_held {}\n\
                 # HELP synod_aux_records_written_total Log records this auxiliary wrote.\n\
                 # TYPE synod_aux_records_written_total counter\n\
                 synod_aux_records_written_total {}\n\
                 # HELP synod_aux_record_bytes_written_total Bytes of the log records this \
                 auxiliary wrote.\n\
                 # TYPE synod_aux_record_bytes_written_total counter\n\
                 synod_aux_record_bytes_written_total {}\n",
                get(&s.received),
                get(&s.votes),
                get(&s.records),
                get(&s.record_bytes)
            )
        }
    };
    axum::Router::new()
        .route(
            "/health",
            get(|| async { "{\"health\":\"true\",\"role\":\"auxiliary\"}" }),
        )
        .route("/metrics", get(metrics))
}
