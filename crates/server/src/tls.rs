//! TLS for clients (rustls, under the gRPC server's h2) and mutual TLS between peers, from PEM
//! files. A peer's certificate must name the member it claims to be: the DNS name
//! [`member_name`] among its subject alternative names, checked both ways (a dialling node
//! checks the server it reached, an accepting node checks the client against the id the
//! client then announces).

use crate::config::TlsFiles;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use synod_core::NodeId;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A TLS handshake that takes longer than this is abandoned.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why TLS could not be set up from the files given.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// Which flag named it.
        what: &'static str,
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A file held nothing usable.
    #[error("{what} {path}: {why}")]
    Content {
        /// Which flag named it.
        what: &'static str,
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The certificate, key and CA do not make a TLS configuration.
    #[error("{what}: {why}")]
    Config {
        /// Client or peer TLS.
        what: &'static str,
        /// What rustls said.
        why: String,
    },
}

/// The DNS name a member's peer certificate must carry (as a subject alternative name).
pub fn member_name(id: NodeId) -> String {
    format!("node{id}.synod")
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.display().to_string(),
        source,
    })
}

fn content(what: &'static str, path: &Path, why: impl ToString) -> TlsError {
    TlsError::Content {
        what,
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

/// Every certificate in a PEM file (at least one).
pub fn load_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| content(what, path, format!("not a PEM certificate file ({e})")))?;
    if certs.is_empty() {
        return Err(content(what, path, "holds no PEM certificate"));
    }
    for c in &certs {
        webpki::EndEntityCert::try_from(c)
            .map_err(|e| content(what, path, format!("not a valid X.509 certificate ({e})")))?;
    }
    Ok(certs)
}

/// The private key in a PEM file.
pub fn load_key(what: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(what, path)?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| content(what, path, format!("holds no usable PEM private key ({e})")))
}

/// The trusted CAs in a PEM file.
pub fn load_roots(what: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(what, path)? {
        roots
            .add(cert)
            .map_err(|e| content(what, path, format!("not a usable CA certificate ({e})")))?;
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Client TLS for the gRPC server, with client certificates required when asked for. The
/// server does the handshakes itself (not tonic) so that h2 writes into an
/// [`synod_h2conn::H2Conn`] above the TLS stream, and an answer is not a TLS record and a
/// system call of its own.
pub fn client_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    if files.client_cert_auth && files.trusted_ca.is_none() {
        return Err(TlsError::Config {
            what: "client TLS",
            why: "--client-cert-auth needs --trusted-ca-file".into(),
        });
    }
    acceptor(files, "client TLS", b"h2")
}

/// The admin HTTP port's TLS: the clients' certificate, and their client-certificate rule.
pub fn admin_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    acceptor(files, "admin TLS", b"http/1.1")
}

/// A server side of TLS from the clients' certificate and key, asking for a client
/// certificate that chains to `--trusted-ca-file` when `--client-cert-auth` is set, and
/// offering `alpn` as its one application protocol.
fn acceptor(files: &TlsFiles, what: &'static str, alpn: &[u8]) -> Result<TlsAcceptor, TlsError> {
    let config = |why: String| TlsError::Config { what, why };
    let certs = load_certs("--cert-file", &files.cert)?;
    let key = load_key("--key-file", &files.key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| config(e.to_string()))?;
    let builder = match (&files.trusted_ca, files.client_cert_auth) {
        (Some(ca), true) => {
            let roots = Arc::new(load_roots("--trusted-ca-file", ca)?);
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider())
                    .build()
                    .map_err(|e| config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut server = builder
        .with_single_cert(certs, key)
        .map_err(|e| config(e.to_string()))?;
    server.alpn_protocols = vec![alpn.to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// A stream a peer connection runs over: plain TCP or TLS.
pub trait PeerIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> PeerIo for T {}

/// Mutual TLS between members.
#[derive(Clone)]
pub struct PeerTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl PeerTls {
    /// From this member's certificate and key and the CA its peers' certificates chain to.
    pub fn new(files: &TlsFiles) -> Result<Self, TlsError> {
        const WHAT: &str = "peer TLS";
        let certs = load_certs("--peer-cert-file", &files.cert)?;
        let key = load_key("--peer-key-file", &files.key)?;
        let ca = files.trusted_ca.as_ref().ok_or(TlsError::Config {
            what: WHAT,
            why: "--peer-trusted-ca-file is required: peers prove who they are with \
                  certificates from that CA"
                .into(),
        })?;
        let roots = Arc::new(load_roots("--peer-trusted-ca-file", ca)?);
        let config = |why: String| TlsError::Config { what: WHAT, why };
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .map_err(|e| config(e.to_string()))?;
        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(|e| config(e.to_string()))?;
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| config(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(|e| config(e.to_string()))?;
        Ok(PeerTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }

    /// Dials member `peer` over `tcp`: its certificate must name it.
    pub async fn connect(&self, peer: NodeId, tcp: TcpStream) -> Result<Box<dyn PeerIo>, String> {
        let name = ServerName::try_from(member_name(peer)).map_err(|e| e.to_string())?;
        let s = handshake(self.connector.connect(name, tcp)).await?;
        // rustls accepted the name, wildcards included; members must be named exactly.
        let cert = first_cert(s.get_ref().1).ok_or("no server certificate")?;
        check_member(&cert, peer)?;
        Ok(Box::new(s))
    }

    /// Accepts a peer over `tcp`; returns the stream and the certificate it presented (which
    /// the CA vouched for; whose it is, [`check_member`] decides).
    pub async fn accept(
        &self,
        tcp: TcpStream,
    ) -> Result<(Box<dyn PeerIo>, CertificateDer<'static>), String> {
        let s = handshake(self.acceptor.accept(tcp)).await?;
        let cert = first_cert(s.get_ref().1).ok_or("no client certificate")?;
        Ok((Box::new(s), cert))
    }
}

/// A TLS handshake, abandoned after [`HANDSHAKE_TIMEOUT`].
async fn handshake<S>(
    shake: impl std::future::Future<Output = std::io::Result<S>>,
) -> Result<S, String> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, shake)
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake: {e}"))
}

/// The other side's own certificate (the first of its chain).
fn first_cert(conn: &rustls::CommonState) -> Option<CertificateDer<'static>> {
    conn.peer_certificates()?.first().cloned()
}

/// Does `cert` name member `id`? Exactly: a wildcard such as `*.synod` would name every member.
pub fn check_member(cert: &CertificateDer<'_>, id: NodeId) -> Result<(), String> {
    use x509_parser::extensions::GeneralName;
    let want = member_name(id);
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert).map_err(|e| format!("bad certificate: {e}"))?;
    let names = parsed
        .subject_alternative_name()
        .map_err(|e| format!("bad certificate: {e}"))?;
    let named = names.is_some_and(|san| {
        san.value
            .general_names
            .iter()
            .any(|n| matches!(n, GeneralName::DNSName(d) if d.eq_ignore_ascii_case(&want)))
    });
    if named {
        Ok(())
    } else {
        Err(format!("its certificate does not name {want}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_naming(names: &[&str]) -> CertificateDer<'static> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(names).unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn a_member_is_named_exactly_never_by_a_wildcard() {
        let two = cert_naming(&["localhost", "node2.synod"]);
        assert!(check_member(&two, 2).is_ok());
        assert!(check_member(&two, 3).is_err());
        assert!(check_member(&two, 22).is_err());
        assert!(check_member(&cert_naming(&["*.synod"]), 2).is_err());
        assert!(check_member(&cert_naming(&["node2.synod.evil"]), 2).is_err());
        assert!(check_member(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3]), 2).is_err());
    }
}
