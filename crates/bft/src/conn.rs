//! Connections: a dialer that keeps one outgoing connection up and writes what it is given,
//! and the frame reader both ends use.

use crate::wire::{codec, Frame, KvMessage, MAX_FRAME};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use synod_core::NodeId;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};

/// Frames waiting for one connection; more are dropped (the protocols resend what matters).
pub const QUEUE: usize = 4096;

/// Keeps a connection to `addr` open, introduced as `me`, writing every frame from `out`, and
/// hands each message read back to `back` (replies, for a client). Reconnects after any
/// error, with a growing pause; frames queued meanwhile go out once it is back. Ends when
/// every sender of `out` is gone.
pub async fn dial(
    addr: SocketAddr,
    me: NodeId,
    mut out: mpsc::Receiver<Bytes>,
    back: Option<mpsc::Sender<KvMessage>>,
) {
    let mut pause = Duration::from_millis(50);
    loop {
        let Ok(stream) = TcpStream::connect(addr).await else {
            if out.is_closed() {
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let mut write = FramedWrite::new(write, codec(MAX_FRAME));
        let mut read = FramedRead::new(read, codec(MAX_FRAME));
        if write
            .send(Frame::Hello { from: me }.encode())
            .await
            .is_err()
        {
            // Accepted, then reset: pause as after a refusal, not spin.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
            continue;
        }
        pause = Duration::from_millis(50);
        loop {
            tokio::select! {
                frame = out.recv() => {
                    let Some(frame) = frame else { return };
                    // Write as many as are queued, then flush once.
                    if write.feed(frame).await.is_err() {
                        break;
                    }
                    let mut failed = false;
                    while let Ok(more) = out.try_recv() {
                        if write.feed(more).await.is_err() {
                            failed = true;
                            break;
                        }
                    }
                    if failed || SinkExt::<Bytes>::flush(&mut write).await.is_err() {
                        break;
                    }
                }
                got = read.next() => match got {
                    Some(Ok(bytes)) => {
                        if let (Ok(Frame::Message(m)), Some(back)) = (Frame::decode(&bytes), &back) {
                            let _ = back.try_send(m);
                        }
                    }
                    _ => break,
                },
            }
        }
    }
}
