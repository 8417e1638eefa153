//! The gRPC server's client connections, plain or TLS, each wrapped in an [`H2Conn`] so that
//! h2's small frames (a loop turn's answers) leave in one write. Under TLS the wrapper sits
//! above the TLS stream: h2 writes into it, it joins the writes, and TLS seals the joined bytes
//! into as few records as they fit. Left to tonic, TLS would sit above the wrapper, and every
//! answer of 256 bytes or more would be a record and a system call of its own.

use crate::tls::HANDSHAKE_TIMEOUT;
use futures::Stream;
use std::io;
use std::time::Duration;
use synod_h2conn::H2Conn;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long to wait after a failed accept before the next: a listener out of file descriptors
/// fails at once, and retrying at once would spin a core until one is freed.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Handshaken connections that may wait for the server to take them.
const READY_QUEUE: usize = 64;

/// Accepts the next connection on `listener`, waiting out failures (a client that gave up
/// before it was accepted, or no file descriptor free).
async fn accept(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((s, _)) => {
                let _ = s.set_nodelay(true);
                return s;
            }
            Err(e) => {
                tracing::debug!(error = %e, "accepting a client connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// The plain client connections `listener` accepts.
pub fn plain(listener: TcpListener) -> impl Stream<Item = Result<H2Conn, io::Error>> {
    futures::stream::unfold(listener, |l| async move {
        let conn = H2Conn::joined(accept(&l).await);
        Some((Ok(conn), l))
    })
}

/// The TLS client connections `listener` accepts, each handshake in a task of its own (within
/// [`HANDSHAKE_TIMEOUT`]) so that a slow or silent client holds up no other. A failed
/// handshake is logged at debug level and dropped, as tonic does. The listener closes once
/// the server drops the stream.
pub fn tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> impl Stream<Item = Result<H2Conn<TlsStream<TcpStream>>, io::Error>> {
    let (ready, rx) = mpsc::channel(READY_QUEUE);
    tokio::spawn(async move {
        loop {
            let tcp = tokio::select! {
                _ = ready.closed() => return,
                tcp = accept(&listener) => tcp,
            };
            let (ready, acceptor) = (ready.clone(), acceptor.clone());
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                // A server that stopped takes no more connections: drop the handshake.
                let done = tokio::select! {
                    _ = ready.closed() => return,
                    done = handshake => done,
                };
                match done {
                    Ok(Ok(conn)) => {
                        let _ = ready.send(Ok(H2Conn::joined(conn))).await;
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "client TLS handshake failed"),
                    Err(_) => tracing::debug!("client TLS handshake timed out"),
                }
            });
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        let conn = rx.recv().await?;
        Some((conn, rx))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TlsFiles;
    use futures::StreamExt;
    use rustls::pki_types::{CertificateDer, ServerName};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tonic::transport::server::Connected;

    /// A self-signed certificate for 127.0.0.1 in `dir`, as the server's TLS files.
    fn files(dir: &std::path::Path) -> (TlsFiles, CertificateDer<'static>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let files = TlsFiles {
            cert: cert_path,
            key: key_path,
            trusted_ca: None,
            client_cert_auth: false,
        };
        (files, cert.der().clone())
    }

    /// The clients' side of TLS as the server builds it, over a self-signed certificate (the
    /// files' directory goes once the acceptor has read them), and that certificate.
    fn acceptor() -> (TlsAcceptor, CertificateDer<'static>) {
        let dir = tempfile::tempdir().unwrap();
        let (files, root) = files(dir.path());
        (crate::tls::client_acceptor(&files).unwrap(), root)
    }

    async fn listener() -> (TcpListener, std::net::SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    async fn tls_client(
        addr: std::net::SocketAddr,
        root: CertificateDer<'static>,
    ) -> tokio_rustls::client::TlsStream<TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(root).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_silent_client_holds_up_no_other_handshake() {
        let (acceptor, root) = acceptor();
        let (listener, addr) = listener().await;
        let mut conns = Box::pin(tls(listener, acceptor));

        // Connects and never says hello: its handshake waits for HANDSHAKE_TIMEOUT.
        let silent = TcpStream::connect(addr).await.unwrap();
        let client = tokio::spawn(tls_client(addr, root));
        let mut served = conns.next().await.unwrap().unwrap();
        let mut client = client.await.unwrap();
        assert_eq!(client.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let info = served.connect_info();
        assert_eq!(
            info.get_ref().remote_addr(),
            Some(client.get_ref().0.local_addr().unwrap())
        );

        // Bytes pass both ways through the joined connection once flushed.
        served.write_all(b"answer").await.unwrap();
        served.flush().await.unwrap();
        let mut got = [0u8; 6];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"answer");

        // The silent client's handshake is still waiting: it was neither served nor dropped.
        let mut byte = [0u8; 1];
        let read = silent.try_read(&mut byte);
        assert!(
            matches!(&read, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
            "{read:?}"
        );
    }

    #[tokio::test]
    async fn the_listener_closes_when_the_server_drops_the_stream() {
        let (acceptor, _) = acceptor();
        let (listener, addr) = listener().await;
        drop(tls(listener, acceptor));
        // The accepting task notices at its next turn; give it a few.
        for _ in 0..200 {
            if TcpStream::connect(addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{addr} still accepts connections after the stream was dropped");
    }

    #[tokio::test]
    async fn plain_connections_carry_their_addresses() {
        let (listener, addr) = listener().await;
        let mut conns = Box::pin(plain(listener));
        let client = TcpStream::connect(addr).await.unwrap();
        let served = conns.next().await.unwrap().unwrap();
        assert_eq!(
            served.connect_info().remote_addr(),
            client.local_addr().ok()
        );
    }
}
