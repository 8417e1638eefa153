//! A TCP connection as an HTTP/2 (h2) layer sees it: Synod's gRPC server wraps its clients'
//! connections in it, and the load generator its own.
//!
//! h2 writes a DATA frame of 256 bytes or more on a vectored-write transport by reference, and
//! must flush it before it buffers the next frame. A linearizable get of a 256-byte value is
//! answered in about 300 bytes, so every answer was its own `writev`: 1.3 per get measured on
//! the leader at 64 clients, 39% of its CPU. On a transport that says it does not write
//! vectored, h2 copies frames under 1 KiB into its 16 KiB write buffer instead, so the answers
//! of one loop turn leave together.
//!
//! h2 then writes a larger frame as two plain writes, its buffer (the frame's head) and the
//! payload, which cost 64 KiB gets a quarter more CPU. So [`H2Conn`] holds a write back
//! until the next one or a flush, and sends the two in one vectored write: the payload is not
//! copied, and the system calls are as few as before.
//!
//! A client's h2 does the same with its requests: a put of a 256-byte value is sent in about
//! 300 bytes, so the load generator flushed every put on its own. Over [`H2Conn::joined`] its
//! CPU per put fell by about 30%.
//!
//! Under TLS the server puts [`H2Conn`] above the TLS stream, so h2 sees our answer and TLS
//! seals a loop turn's answers into one record and one write. With TLS between h2 and
//! [`H2Conn`] (as tonic's own TLS puts it), every answer of 256 bytes or more was a record and
//! a write of its own; joining above TLS took 64-client gets from 47k/s at 23.4 µs of server
//! CPU each to 59k/s at 18.7 µs (docs/performance.md, "Joined writes under TLS").

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::Connected;

/// The most bytes held back for the next write. h2 writes its buffer in chunks of at most
/// 16 KiB and a bit; anything larger goes out at once.
const HOLD_MAX: usize = 32 * 1024;

/// Capacity of the hold kept between flushes; a larger one is freed at a flush, so an idle
/// connection does not keep its largest write's worth.
const HOLD_KEEP: usize = 4 * 1024;

/// A connection that tells h2 to coalesce small frames and joins its writes in pairs (see the
/// module's doc); the server's side or the load generator's.
#[derive(Debug)]
pub struct H2Conn<T = TcpStream> {
    io: T,
    /// Bytes accepted from a write and not yet handed to `io`.
    held: Vec<u8>,
}

impl<T> H2Conn<T> {
    /// Wraps `io` (a socket, or a TLS stream over one), holding and joining writes.
    pub fn joined(io: T) -> Self {
        H2Conn {
            io,
            held: Vec::new(),
        }
    }
}

impl<T: AsyncWrite + Unpin> H2Conn<T> {
    /// Writes until nothing is held, or `io` is not ready.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.held))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for H2Conn<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for H2Conn<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.held.is_empty() {
            if buf.len() <= HOLD_MAX {
                this.held.extend_from_slice(buf);
                return Poll::Ready(Ok(buf.len()));
            }
            return Pin::new(&mut this.io).poll_write(cx, buf);
        }
        // Something is held: it leaves with `buf` in one write, and goes first.
        while !this.held.is_empty() {
            let slices = [IoSlice::new(&this.held), IoSlice::new(buf)];
            let n = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if n > this.held.len() {
                let of_buf = n - this.held.len();
                this.held.clear();
                return Poll::Ready(Ok(of_buf));
            }
            this.held.drain(..n);
        }
        // Exactly the held bytes went out: `buf` still needs a write of its own.
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if this.held.capacity() > HOLD_KEEP {
            this.held = Vec::new();
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }

    /// h2 picks how it frames its writes from this answer (see the module's doc).
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // Not vectored to callers: one slice at a time, through the holding above.
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &**b);
        self.poll_write(cx, first)
    }
}

/// What tonic tells a request about its connection is what `io` tells: the peer's address,
/// and under TLS its certificates (which name a user where the CA checked them).
impl<T: Connected> Connected for H2Conn<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::task::Waker;

    /// A socket limit that makes a write take nothing.
    const ZERO: usize = usize::MAX - 1;

    /// A socket that takes at most `limits[i]` bytes on its `i`-th write (cycling; 0 means
    /// "not ready" once, `ZERO` a write of nothing) and records what each write took.
    struct Socket {
        limits: Vec<usize>,
        calls: usize,
        writes: Vec<Vec<u8>>,
    }

    impl Socket {
        fn new(limits: Vec<usize>) -> Self {
            Socket {
                limits,
                calls: 0,
                writes: Vec::new(),
            }
        }

        fn take(&mut self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
            let limit = self.limits[self.calls % self.limits.len()];
            self.calls += 1;
            if limit == 0 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if limit == ZERO {
                return Poll::Ready(Ok(0));
            }
            let mut took = Vec::new();
            for b in bufs {
                let n = b.len().min(limit - took.len());
                took.extend_from_slice(&b[..n]);
            }
            let n = took.len();
            self.writes.push(took);
            Poll::Ready(Ok(n))
        }

        fn all(&self) -> Vec<u8> {
            self.writes.concat()
        }
    }

    impl AsyncWrite for Socket {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().take(cx, &[IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().take(cx, bufs)
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }
    }

    /// Writes `buf` whole, as h2 does: again after a short write, again after "not ready".
    fn write_all(conn: &mut H2Conn<Socket>, mut buf: &[u8]) {
        let mut cx = Context::from_waker(Waker::noop());
        while !buf.is_empty() {
            if let Poll::Ready(r) = Pin::new(&mut *conn).poll_write(&mut cx, buf) {
                let n = r.expect("the socket never fails");
                assert!(n > 0 && n <= buf.len(), "took {n} of {}", buf.len());
                buf = &buf[n..];
            }
        }
    }

    fn flush(conn: &mut H2Conn<Socket>) {
        let mut cx = Context::from_waker(Waker::noop());
        while Pin::new(&mut *conn).poll_flush(&mut cx).is_pending() {}
    }

    #[test]
    fn a_frame_head_and_its_payload_leave_in_one_write() {
        let mut conn = H2Conn::joined(Socket::new(vec![usize::MAX]));
        assert!(
            !conn.is_write_vectored(),
            "h2 must be told to copy small frames"
        );
        let head = [1u8; 9];
        let payload = vec![2u8; 16 * 1024];
        write_all(&mut conn, &head);
        assert!(
            conn.io.writes.is_empty(),
            "a small write is held for the next one"
        );
        write_all(&mut conn, &payload);
        write_all(&mut conn, &[3u8; 30]);
        flush(&mut conn);
        assert_eq!(
            conn.io.writes.len(),
            2,
            "head with payload, then the rest at the flush"
        );
        assert_eq!(conn.io.writes[0].len(), 9 + 16 * 1024);
        assert_eq!(conn.io.all(), [&head[..], &payload, &[3u8; 30]].concat());
    }

    #[test]
    fn a_write_larger_than_the_hold_goes_straight_out() {
        let mut conn = H2Conn::joined(Socket::new(vec![usize::MAX]));
        write_all(&mut conn, &vec![7u8; HOLD_MAX + 1]);
        assert_eq!(conn.io.writes.len(), 1);
        assert!(conn.held.is_empty());
    }

    #[test]
    fn when_exactly_the_held_bytes_go_out_the_next_write_still_goes() {
        // The first call takes exactly the 9 held bytes; the payload needs a call of its own.
        let mut conn = H2Conn::joined(Socket::new(vec![9, usize::MAX]));
        write_all(&mut conn, &[1u8; 9]);
        write_all(&mut conn, &[2u8; 40_000]);
        assert_eq!(conn.io.writes.len(), 2);
        assert_eq!(conn.io.writes[0], vec![1u8; 9]);
        assert_eq!(conn.io.writes[1], vec![2u8; 40_000]);
    }

    #[test]
    fn shutdown_sends_what_is_held_first() {
        let mut conn = H2Conn::joined(Socket::new(vec![usize::MAX]));
        write_all(&mut conn, b"goaway");
        let mut cx = Context::from_waker(Waker::noop());
        while Pin::new(&mut conn).poll_shutdown(&mut cx).is_pending() {}
        assert_eq!(conn.io.all(), b"goaway");
    }

    #[test]
    fn a_vectored_write_to_a_joined_connection_takes_its_first_slice() {
        let mut conn = H2Conn::joined(Socket::new(vec![usize::MAX]));
        let mut cx = Context::from_waker(Waker::noop());
        let slices = [IoSlice::new(b""), IoSlice::new(b"ab"), IoSlice::new(b"cd")];
        let took = Pin::new(&mut conn).poll_write_vectored(&mut cx, &slices);
        assert!(matches!(took, Poll::Ready(Ok(2))), "{took:?}");
        let none = Pin::new(&mut conn).poll_write_vectored(&mut cx, &[IoSlice::new(b"")]);
        assert!(matches!(none, Poll::Ready(Ok(0))), "{none:?}");
        flush(&mut conn);
        assert_eq!(conn.io.all(), b"ab");
    }

    #[test]
    fn a_socket_that_takes_nothing_is_an_error_not_a_loop() {
        let mut conn = H2Conn::joined(Socket::new(vec![ZERO]));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            Pin::new(&mut conn).poll_write(&mut cx, b"held"),
            Poll::Ready(Ok(4))
        ));
        let flushed = Pin::new(&mut conn).poll_flush(&mut cx);
        assert!(
            matches!(&flushed, Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::WriteZero),
            "{flushed:?}"
        );
        let joined = Pin::new(&mut conn).poll_write(&mut cx, b"more");
        assert!(
            matches!(&joined, Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::WriteZero),
            "{joined:?}"
        );
    }

    #[test]
    fn a_large_hold_is_freed_at_the_flush() {
        let mut conn = H2Conn::joined(Socket::new(vec![usize::MAX]));
        write_all(&mut conn, &[5u8; 20_000]);
        flush(&mut conn);
        assert!(conn.held.capacity() <= HOLD_KEEP);
        assert_eq!(conn.io.all(), vec![5u8; 20_000]);
    }

    proptest! {
        /// Whatever the socket takes per write, and however often it is not ready, the bytes
        /// arrive whole and in order once flushed, and nothing is left held.
        #[test]
        fn bytes_arrive_whole_and_in_order(
            sizes in prop::collection::vec(1usize..40_000, 1..12),
            limits in prop::collection::vec(prop_oneof![Just(0usize), 1usize..50_000], 1..6),
        ) {
            prop_assume!(limits.iter().any(|&l| l > 0));
            let socket = Socket::new(limits);
            let mut conn = H2Conn::joined(socket);
            let mut sent = Vec::new();
            for (i, size) in sizes.into_iter().enumerate() {
                let chunk: Vec<u8> = (0..size).map(|j| (i * 31 + j) as u8).collect();
                write_all(&mut conn, &chunk);
                sent.extend(chunk);
            }
            flush(&mut conn);
            prop_assert!(conn.held.is_empty());
            prop_assert_eq!(conn.io.all(), sent);
        }
    }
}
