//! Peer transport: one outbound TCP connection per peer, length-delimited frames carrying
//! postcard-encoded messages, reconnect with backoff; an inbound listener that accepts only
//! members and closes any connection that sends a malformed frame. Who the members are and
//! where they listen is an [`AddressBook`]: the members a server was started with, plus those
//! the replicated membership added since. Generic over the
//! protocol's message type (Multi-Paxos by default, Fast Multi-Paxos with `--protocol`). With
//! peer TLS, both directions run over mutual TLS and each side checks the other's certificate
//! names the member it claims to be.

use crate::config::Member;
use crate::tls::{check_member, PeerIo, PeerTls};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
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

/// Where each member listens for its peers. Shared by the writers (which read a peer's
/// address at every connection attempt, so a changed address is used from the next one) and
/// the listener (which accepts only members, from their addresses' hosts).
#[derive(Clone, Debug, Default)]
pub struct AddressBook(Arc<RwLock<BTreeMap<NodeId, SocketAddr>>>);

impl AddressBook {
    /// A book of `members`.
    pub fn new(members: &[Member]) -> Self {
        let book = members.iter().map(|m| (m.id, m.peer_addr)).collect();
        AddressBook(Arc::new(RwLock::new(book)))
    }

    /// Where `id` listens, if it is a member.
    pub fn get(&self, id: NodeId) -> Option<SocketAddr> {
        self.0.read().ok()?.get(&id).copied()
    }

    /// Records where `id` listens; true if that is news.
    pub fn set(&self, id: NodeId, addr: SocketAddr) -> bool {
        match self.0.write() {
            Ok(mut book) => book.insert(id, addr) != Some(addr),
            Err(_) => false,
        }
    }

    fn any_at(&self, me: NodeId, ip: std::net::IpAddr) -> bool {
        self.0
            .read()
            .is_ok_and(|b| b.iter().any(|(&id, a)| id != me && a.ip() == ip))
    }
}

/// Queues for messages to each peer. Full queues drop messages rather than stall the node:
/// Paxos tolerates loss, and retransmission covers it.
pub struct Outbox<M> {
    queues: Arc<RwLock<HashMap<NodeId, mpsc::Sender<M>>>>,
    /// How to start a writer for a member added later; none for an outbox of no peers.
    dialer: Option<Dialer>,
}

impl<M> Clone for Outbox<M> {
    fn clone(&self) -> Self {
        Outbox {
            queues: self.queues.clone(),
            dialer: self.dialer.clone(),
        }
    }
}

impl<M> Default for Outbox<M> {
    fn default() -> Self {
        Outbox {
            queues: Arc::default(),
            dialer: None,
        }
    }
}

/// What every writer of one server shares.
#[derive(Clone)]
struct Dialer {
    me: NodeId,
    book: AddressBook,
    tls: Option<PeerTls>,
    refusals: RefusalLog,
}

impl<M> Outbox<M> {
    /// Queues `msg` for `to`.
    pub fn send(&self, to: NodeId, msg: M) {
        let Ok(queues) = self.queues.read() else {
            return;
        };
        if let Some(q) = queues.get(&to) {
            let _ = q.try_send(msg);
        }
    }
}

impl<M: Serialize + Send + 'static> Outbox<M> {
    /// Makes sure member `id`, listening at `addr`, has a writer (a member added since the
    /// start), and that the address book has its address (which a change may have moved).
    pub fn add_peer(&self, id: NodeId, addr: SocketAddr) {
        let Some(dialer) = &self.dialer else {
            return;
        };
        if id == dialer.me {
            return;
        }
        if dialer.book.set(id, addr) {
            tracing::info!(peer = id, %addr, "peer address recorded");
        }
        let Ok(mut queues) = self.queues.write() else {
            return;
        };
        queues.entry(id).or_insert_with(|| spawn_writer(dialer, id));
    }
}

fn spawn_writer<M: Serialize + Send + 'static>(dialer: &Dialer, peer: NodeId) -> mpsc::Sender<M> {
    let (tx, rx) = mpsc::channel(16_384);
    let link = Link {
        me: dialer.me,
        peer,
        book: dialer.book.clone(),
        tls: dialer.tls.clone(),
        refusals: dialer.refusals.clone(),
    };
    tokio::spawn(writer(link, rx));
    tx
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

/// Starts one writer task per member of `book` but `me`, and returns the outbox that feeds
/// them (and starts writers for members added later: [`Outbox::add_peer`]).
pub fn start_writers<M: Serialize + Send + 'static>(
    me: NodeId,
    book: &AddressBook,
    tls: Option<PeerTls>,
) -> Outbox<M> {
    let dialer = Dialer {
        me,
        book: book.clone(),
        tls,
        refusals: RefusalLog::default(),
    };
    let peers: Vec<NodeId> = match book.0.read() {
        Ok(b) => b.keys().copied().filter(|&id| id != me).collect(),
        Err(_) => Vec::new(),
    };
    let queues = peers
        .into_iter()
        .map(|id| (id, spawn_writer(&dialer, id)))
        .collect();
    Outbox {
        queues: Arc::new(RwLock::new(queues)),
        dialer: Some(dialer),
    }
}

/// Where and how one writer connects.
struct Link {
    me: NodeId,
    peer: NodeId,
    book: AddressBook,
    tls: Option<PeerTls>,
    refusals: RefusalLog,
}

impl Link {
    async fn connect(&self) -> Option<(Box<dyn PeerIo>, SocketAddr)> {
        let addr = self.book.get(self.peer)?;
        let tcp = TcpStream::connect(addr).await.ok()?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Some((Box::new(tcp), addr)),
            Some(tls) => match tls.connect(self.peer, tcp).await {
                Ok(s) => Some((s, addr)),
                Err(why) => {
                    let who = format!("connecting to node {} at {addr}", self.peer);
                    self.refusals.report(&who, &why);
                    None
                }
            },
        }
    }
}

async fn writer<M: Serialize>(link: Link, mut rx: mpsc::Receiver<M>) {
    let (me, peer) = (link.me, link.peer);
    let mut backoff = Duration::from_millis(20);
    loop {
        let (stream, addr) = match link.connect().await {
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
            // The peer never writes on this connection, so the read side only ever ends: a
            // peer that stopped or restarted closed it. Reconnect then, rather than when the
            // next message is written into the dead connection and lost (after a restart that
            // was a new leader's prepare, or its first accept).
            let first = tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => return,
                },
                read = framed.next() => match read {
                    Some(Ok(_)) => continue,
                    None | Some(Err(_)) => {
                        tracing::debug!(peer, "peer closed the connection; reconnecting");
                        break;
                    }
                },
            };
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

/// Accepts peer connections on `listener` from the members in `book` and hands their
/// messages to `node`.
pub async fn serve<M: DeserializeOwned, D: Deliver<M>>(
    listener: TcpListener,
    me: NodeId,
    book: AddressBook,
    node: D,
    tls: Option<PeerTls>,
) {
    let refusals = RefusalLog::default();
    loop {
        let Ok((stream, remote)) = listener.accept().await else {
            continue;
        };
        let members = book.clone();
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
    members: &AddressBook,
    node: D,
    tls: Option<PeerTls>,
) -> Result<(), String> {
    if !members.any_at(me, remote.ip()) {
        return Err("address is not a member's".into());
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
    let Some(addr) = members.get(from).filter(|_| from != me) else {
        return Err(format!("node {from} is not a peer of node {me}"));
    };
    if addr.ip() != remote.ip() {
        return Err(format!("node {from} must connect from {}", addr.ip()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Reads one connection's handshake and first message, if one comes within a second.
    async fn first_message(
        listener: &TcpListener,
    ) -> Option<(Framed<TcpStream, LengthDelimitedCodec>, u64)> {
        let wait = Duration::from_secs(1);
        let (stream, _) = tokio::time::timeout(wait, listener.accept())
            .await
            .ok()?
            .ok()?;
        let mut framed = Framed::new(stream, codec());
        let hello = tokio::time::timeout(wait, framed.next())
            .await
            .ok()??
            .ok()?;
        assert_eq!(postcard::from_bytes::<NodeId>(&hello).ok(), Some(1));
        let msg = tokio::time::timeout(wait, framed.next())
            .await
            .ok()??
            .ok()?;
        Some((framed, postcard::from_bytes(&msg).ok()?))
    }

    /// A peer that restarts closes the connection a writer holds to it: the writer notices
    /// and connects again, so the first message after the restart reaches the peer rather
    /// than the dead connection.
    #[tokio::test]
    async fn a_writer_reconnects_once_its_peer_closes_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let book = AddressBook::default();
        book.set(2, listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel::<u64>(16);
        let link = Link {
            me: 1,
            peer: 2,
            book,
            tls: None,
            refusals: RefusalLog::default(),
        };
        let task = tokio::spawn(writer(link, rx));
        tx.send(7).await.unwrap();
        let (framed, first) = first_message(&listener).await.expect("connected");
        assert_eq!(first, 7);
        // The peer goes away, and is back before the next message.
        drop(framed);
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send(8).await.unwrap();
        let (_framed, next) = first_message(&listener).await.expect("reconnected");
        assert_eq!(next, 8);
        task.abort();
    }
}
