//! The client of a PBFT cluster: it sends each signed request to every replica and takes a
//! result once `f + 1` replicas sent the same one, since at least one of them is correct.
//!
//! ```no_run
//! use std::path::Path;
//! use synod_bft::{keys, parse_members, BftClient, ClientOptions};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // Keys from `synod keygen --dir keys`; the replicas from `synod server --protocol pbft`.
//! let dir = Path::new("keys");
//! let replicas = parse_members("1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003,4=127.0.0.1:7004")?;
//! let ids: Vec<u64> = replicas.keys().copied().collect();
//! let signer = keys::load_signer(&keys::client_key(dir, 101), 101)?;
//! let verifier = keys::load_verifier(dir, &ids)?;
//! let mut client = BftClient::connect(signer, verifier, ClientOptions::new(replicas))?;
//! client.put(b"greeting", b"hello").await?;
//! assert_eq!(client.get(b"greeting").await?, Some(b"hello".to_vec()));
//! # Ok(())
//! # }
//! ```
//!
//! One client id must be used by one [`BftClient`] at a time: replicas run a client's
//! requests in stamp order and answer only its latest.

use crate::conn::{dial, QUEUE};
use crate::kv::{KvOp, KvResult};
use crate::members::Members;
use crate::wire::{Frame, KvMessage};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use synod_core::auth::{Signer, Verifier};
use synod_core::pbft::{Client, Output, PbftEffects};
use synod_core::quorum::ByzantineQuorum;
use synod_core::NodeId;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How a client talks to the cluster.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Every replica's address.
    pub replicas: Members,
    /// How long to wait for `f + 1` matching replies before sending the request again.
    pub retry: Duration,
    /// How long an operation may take in all before it fails with [`ClientError::Timeout`].
    pub timeout: Duration,
}

impl ClientOptions {
    /// Defaults: resend after 500 ms, give up after 10 s.
    pub fn new(replicas: Members) -> Self {
        ClientOptions {
            replicas,
            retry: Duration::from_millis(500),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No `f + 1` replicas agreed in time. The operation may still take effect.
    #[error(
        "no {needed} matching replies within {timeout:?}; the operation may still take effect"
    )]
    Timeout {
        /// Matching replies needed.
        needed: usize,
        /// The time allowed.
        timeout: Duration,
    },
    /// The replica list does not make a Byzantine quorum system.
    #[error("replica list: {0}")]
    Members(String),
    /// A client id that is a replica's.
    #[error("client id {0} is a replica's")]
    ReplicaId(NodeId),
    /// The replicas agreed on a result of another kind than the operation's (a bug, or more
    /// than `f` liars).
    #[error("the replicas answered a {op} with {result:?}")]
    Mismatch {
        /// The operation's kind.
        op: &'static str,
        /// What came back.
        result: KvResult,
    },
}

/// A connected client. Dropping it closes its connections.
pub struct BftClient {
    core: Client<KvOp, KvResult>,
    needed: usize,
    conns: BTreeMap<NodeId, mpsc::Sender<Bytes>>,
    replies: mpsc::Receiver<KvMessage>,
    tasks: Vec<JoinHandle<()>>,
    opts: ClientOptions,
}

impl Drop for BftClient {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl BftClient {
    /// A client signing as `signer`'s id, on the current tokio runtime. It connects in the
    /// background (and reconnects), so replicas that are down do not stop it.
    pub fn connect(
        signer: Arc<dyn Signer>,
        verifier: Arc<dyn Verifier>,
        opts: ClientOptions,
    ) -> Result<BftClient, ClientError> {
        let me = signer.id();
        if opts.replicas.contains_key(&me) {
            return Err(ClientError::ReplicaId(me));
        }
        let ids: Vec<NodeId> = opts.replicas.keys().copied().collect();
        let quorum =
            ByzantineQuorum::new(ids.len()).map_err(|e| ClientError::Members(e.to_string()))?;
        // Stamps must grow across restarts of this id: start from the clock, in microseconds.
        let first_stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let core = Client::new(signer, verifier, ids, quorum, Vec::new(), 1, None)
            .with_first_stamp(first_stamp);
        let (back_tx, replies) = mpsc::channel(QUEUE);
        let mut conns = BTreeMap::new();
        let mut tasks = Vec::new();
        for (&id, &addr) in &opts.replicas {
            let (tx, rx) = mpsc::channel(QUEUE);
            conns.insert(id, tx);
            tasks.push(tokio::spawn(dial(addr, me, rx, Some(back_tx.clone()))));
        }
        Ok(BftClient {
            core,
            needed: quorum.weak(),
            conns,
            replies,
            tasks,
            opts,
        })
    }

    fn send(&self, fx: PbftEffects<KvOp, KvResult>) {
        for o in fx.send.into_iter().chain(fx.send_after_sync) {
            if let Some(conn) = self.conns.get(&o.to) {
                let _ = conn.try_send(Frame::Message(o.msg).encode());
            }
        }
    }

    /// Runs `op` and returns the result `f + 1` replicas agreed on.
    pub async fn execute(&mut self, op: KvOp) -> Result<KvResult, ClientError> {
        let give_up = Instant::now() + self.opts.timeout;
        if self.core.current().is_some() {
            // A call before this one was dropped mid-flight (a caller's timeout, a select):
            // its request is abandoned, and its result must not be taken for this one's.
            self.core.cancel();
        }
        let fx = self.core.submit(op);
        let stamp = self.core.current().map(|r| r.stamp);
        self.send(fx);
        let mut resend = Instant::now() + self.opts.retry;
        loop {
            let fx = tokio::select! {
                got = self.replies.recv() => match got {
                    Some(m) => self.core.on_message(m),
                    None => PbftEffects::new(),
                },
                () = tokio::time::sleep_until(resend.min(give_up)) => {
                    if Instant::now() >= give_up {
                        self.core.cancel();
                        return Err(ClientError::Timeout {
                            needed: self.needed,
                            timeout: self.opts.timeout,
                        });
                    }
                    resend = Instant::now() + self.opts.retry;
                    self.core.on_timer(synod_core::pbft::Timer::Retry)
                }
            };
            let done = fx.output.iter().find_map(|o| match o {
                Output::Done {
                    result, stamp: s, ..
                } if Some(*s) == stamp => Some(result.clone()),
                _ => None,
            });
            self.send(fx);
            if let Some(result) = done {
                return Ok(result);
            }
        }
    }

    /// Sets `key` to `value`; returns the value it had.
    pub async fn put(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        let op = KvOp::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        };
        match self.execute(op).await? {
            KvResult::Put { prev } => Ok(prev.map(|v| v.into_vec())),
            result => Err(ClientError::Mismatch { op: "put", result }),
        }
    }

    /// The value of `key`, read through the agreement (linearizable).
    pub async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        match self.execute(KvOp::Get { key: key.to_vec() }).await? {
            KvResult::Get { value } => Ok(value.map(|v| v.into_vec())),
            result => Err(ClientError::Mismatch { op: "get", result }),
        }
    }

    /// Removes `key`; returns whether it was set.
    pub async fn delete(&mut self, key: &[u8]) -> Result<bool, ClientError> {
        match self.execute(KvOp::Delete { key: key.to_vec() }).await? {
            KvResult::Delete { existed } => Ok(existed),
            result => Err(ClientError::Mismatch {
                op: "delete",
                result,
            }),
        }
    }
}
