//! Peer transport: one outbound TCP connection per peer, length-delimited frames carrying
//! postcard-encoded messages, reconnect with backoff; an inbound listener that accepts only
//! configured peers and closes any connection that sends a malformed frame. Generic over the
//! protocol's message type (Multi-Paxos by default, Fast Multi-Paxos with `--protocol`). With
//! peer TLS, both directions run over mutual TLS and each side checks the other's certificate
//! names the member it claims to be.

use crate::config::Member;
use crate::tls::{check_member, PeerIo, PeerTls};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use synod_core::NodeId;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// The largest frame a peer may send.
pub const MAX_FRAME: usize = 64 << 20;

fn encode<T: serde::Serialize>(v: &T) -> Bytes {
    Bytes::from(postcard::to_stdvec(v).expect("messages always serialize"))
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// Queues for messages to each peer. Full queues drop messages rather than stall the node:
/// Paxos tolerates loss, and retransmission covers it.
#[derive(Clone)]
pub struct Outbox<M> {
    queues: HashMap<NodeId, mpsc::Sender<M>>,
}

impl<M> Default for Outbox<M> {
    fn default() -> Self {
        Outbox {
            queues: HashMap::new(),
        }
    }
}

impl<M> Outbox<M> {
    /// Queues `msg` for `to`.
    pub fn send(&self, to: NodeId, msg: M) {
        if let Some(q) = self.queues.get(&to) {
            let _ = q.try_send(msg);
        }
    }
}

/// Logs a refused connection at warning level the first time a peer is refused for a reason,
/// and at debug level after, so a peer retrying every second does not flood the log.
#[derive(Clone, Default)]
pub struct RefusalLog(Arc<Mutex<HashSet<String>>>);

impl RefusalLog {
    fn report(&self, who: &str, why: &str) {
        let first = self
            .0
            .lock()
            .map(|mut seen| seen.insert(format!("{who}: {why}")))
            .unwrap_or(true);
        if first {
            tracing::warn!("{who}: {why} (logged once; later repeats at debug level)");
        } else {
            tracing::debug!("{who}: {why}");
        }
    }
}

/// Starts one writer task per peer and returns the outbox that feeds them.
pub fn start_writers<M: Serialize + Send + 'static>(
    me: NodeId,
    members: &[Member],
    tls: Option<PeerTls>,
) -> Outbox<M> {
    let mut queues = HashMap::new();
    let refusals = RefusalLog::default();
    for m in members.iter().filter(|m| m.id != me) {
        let (tx, rx) = mpsc::channel(16_384);
        queues.insert(m.id, tx);
        let link = Link {
            me,
            peer: m.id,
            addr: m.peer_addr,
            tls: tls.clone(),
            refusals: refusals.clone(),
        };
        tokio::spawn(writer(link, rx));
    }
    Outbox { queues }
}

/// Where and how one writer connects.
struct Link {
    me: NodeId,
    peer: NodeId,
    addr: SocketAddr,
    tls: Option<PeerTls>,
    refusals: RefusalLog,
}

impl Link {
    async fn connect(&self) -> Option<Box<dyn PeerIo>> {
        let tcp = TcpStream::connect(self.addr).await.ok()?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Some(Box::new(tcp)),
            Some(tls) => match tls.connect(self.peer, tcp).await {
                Ok(s) => Some(s),
                Err(why) => {
                    let who = format!("connecting to node {} at {}", self.peer, self.addr);
                    self.refusals.report(&who, &why);
                    None
                }
            },
        }
    }
}

async fn writer<M: Serialize>(link: Link, mut rx: mpsc::Receiver<M>) {
    let (me, peer, addr) = (link.me, link.peer, link.addr);
    let mut backoff = Duration::from_millis(20);
    loop {
        let stream = match link.connect().await {
            Some(s) => s,
            None => {
                // Drop what queued up while the peer was unreachable: it is stale by now.
                while rx.try_recv().is_ok() {}
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                if rx.is_closed() {
                    return;
                }
                continue;
            }
        };
        backoff = Duration::from_millis(20);
        let mut framed = Framed::new(stream, codec());
        if framed.send(encode(&me)).await.is_err() {
            continue;
        }
        tracing::debug!(peer, %addr, "connected to peer");
        loop {
            let Some(first) = rx.recv().await else { return };
            let mut ok = framed.feed(encode(&first)).await.is_ok();
            // Batch whatever else is queued into one flush.
            while ok {
                match rx.try_recv() {
                    Ok(m) => ok = framed.feed(encode(&m)).await.is_ok(),
                    Err(_) => break,
                }
            }
            if !ok || SinkExt::<Bytes>::flush(&mut framed).await.is_err() {
                tracing::debug!(peer, "lost connection to peer; reconnecting");
                break;
            }
        }
    }
}

/// What takes a peer's messages in (a node's input queue).
pub trait Deliver<M>: Clone + Send + 'static {
    /// Hands the node `msg` from `from`, dropping it if the node is overloaded: Paxos copes
    /// with lost messages, and a peer must never stall on us.
    fn deliver(&self, from: NodeId, msg: M);
}

/// Accepts peer connections on `listener` and hands their messages to `node`.
pub async fn serve<M: DeserializeOwned, D: Deliver<M>>(
    listener: TcpListener,
    me: NodeId,
    members: Vec<Member>,
    node: D,
    tls: Option<PeerTls>,
) {
    let refusals = RefusalLog::default();
    loop {
        let Ok((stream, remote)) = listener.accept().await else {
            continue;
        };
        let members = members.clone();
        let node = node.clone();
        let tls = tls.clone();
        let refusals = refusals.clone();
        tokio::spawn(async move {
            if let Err(why) = inbound(stream, remote, me, &members, node, tls).await {
                // By address, not port: each retry comes from a new port.
                let who = format!("closed peer connection from {}", remote.ip());
                refusals.report(&who, &why);
            }
        });
    }
}

async fn inbound<M: DeserializeOwned, D: Deliver<M>>(
    stream: TcpStream,
    remote: SocketAddr,
    me: NodeId,
    members: &[Member],
    node: D,
    tls: Option<PeerTls>,
) -> Result<(), String> {
    if !members
        .iter()
        .any(|m| m.id != me && m.peer_addr.ip() == remote.ip())
    {
        return Err("address is not a configured peer".into());
    }
    let _ = stream.set_nodelay(true);
    let (stream, cert): (Box<dyn PeerIo>, _) = match &tls {
        None => (Box::new(stream), None),
        Some(tls) => {
            let (s, cert) = tls.accept(stream).await?;
            (s, Some(cert))
        }
    };
    let mut framed = Framed::new(stream, codec());
    let hello = match tokio::time::timeout(Duration::from_secs(5), framed.next()).await {
        Ok(Some(Ok(f))) => f,
        Ok(Some(Err(e))) => return Err(format!("bad handshake frame: {e}")),
        _ => return Err("no handshake".into()),
    };
    let from: NodeId = postcard::from_bytes(&hello).map_err(|e| format!("bad handshake: {e}"))?;
    let Some(member) = members.iter().find(|m| m.id == from && from != me) else {
        return Err(format!("node {from} is not a peer of node {me}"));
    };
    if member.peer_addr.ip() != remote.ip() {
        return Err(format!(
            "node {from} must connect from {}",
            member.peer_addr.ip()
        ));
    }
    if let Some(cert) = &cert {
        check_member(cert, from).map_err(|why| format!("claims to be node {from}, but {why}"))?;
    }
    while let Some(frame) = framed.next().await {
        let frame = frame.map_err(|e| format!("bad frame from node {from}: {e}"))?;
        let msg: M = postcard::from_bytes(&frame)
            .map_err(|e| format!("malformed message from node {from}: {e}"))?;
        node.deliver(from, msg);
    }
    Ok(())
}
