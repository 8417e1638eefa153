//! Peer transport: one outbound TCP connection per peer, length-delimited frames carrying
//! postcard-encoded messages, reconnect with backoff; an inbound listener that accepts only
//! configured peers and closes any connection that sends a malformed frame. Generic over the
//! protocol's message type (Multi-Paxos by default, Fast Multi-Paxos with `--protocol`).

use crate::config::Member;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
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

/// Starts one writer task per peer and returns the outbox that feeds them.
pub fn start_writers<M: Serialize + Send + 'static>(me: NodeId, members: &[Member]) -> Outbox<M> {
    let mut queues = HashMap::new();
    for m in members.iter().filter(|m| m.id != me) {
        let (tx, rx) = mpsc::channel(16_384);
        queues.insert(m.id, tx);
        tokio::spawn(writer(me, m.id, m.peer_addr, rx));
    }
    Outbox { queues }
}

async fn writer<M: Serialize>(
    me: NodeId,
    peer: NodeId,
    addr: SocketAddr,
    mut rx: mpsc::Receiver<M>,
) {
    let mut backoff = Duration::from_millis(20);
    loop {
        let stream = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(_) => {
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
        let _ = stream.set_nodelay(true);
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
) {
    loop {
        let Ok((stream, remote)) = listener.accept().await else {
            continue;
        };
        let members = members.clone();
        let node = node.clone();
        tokio::spawn(async move {
            if let Err(why) = inbound(stream, remote, me, &members, node).await {
                tracing::warn!(%remote, "closed peer connection: {why}");
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
) -> Result<(), String> {
    if !members
        .iter()
        .any(|m| m.id != me && m.peer_addr.ip() == remote.ip())
    {
        return Err("address is not a configured peer".into());
    }
    let _ = stream.set_nodelay(true);
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
    while let Some(frame) = framed.next().await {
        let frame = frame.map_err(|e| format!("bad frame from node {from}: {e}"))?;
        let msg: M = postcard::from_bytes(&frame)
            .map_err(|e| format!("malformed message from node {from}: {e}"))?;
        node.deliver(from, msg);
    }
    Ok(())
}
