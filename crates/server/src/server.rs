//! Starting a server: bind the ports, recover the node from its log, and serve.

use crate::admin;
use crate::auth::{AuthView, Authenticator, TokenKind};
use crate::config::{ServerConfig, ServerProtocol};
use crate::fast_node::{self, FastNode};
use crate::grpc::Api;
use crate::incoming;
use crate::metrics::Metrics;
use crate::node::{self, Node, NodeError};
use crate::peer;
use crate::proto::etcdserverpb::{
    auth_server::AuthServer, cluster_server::ClusterServer, kv_server::KvServer,
    lease_server::LeaseServer, maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use crate::proto::v3electionpb::election_server::ElectionServer;
use crate::proto::v3lockpb::lock_server::LockServer;
use crate::tls::PeerTls;
use std::future::Future;
use std::sync::Arc;
use thiserror::Error;
use tokio::net::TcpListener;

/// Why a server could not start or stopped.
#[derive(Debug, Error)]
pub enum ServerError {
    /// This node is not in the member list.
    #[error("node {0} is not among the members given; list it in --peers")]
    NotAMember(u64),
    /// A port could not be bound.
    #[error("cannot listen on {addr} for {what} (is another process using it?)")]
    Bind {
        /// Client or peer.
        what: &'static str,
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The node could not start.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// Only Multi-Paxos clusters change their members.
    #[error("--initial-cluster-state existing: Fast Multi-Paxos clusters keep the members they started with")]
    JoinUnsupported,
    /// `--auth-token` is not usable.
    #[error("--auth-token: {0}")]
    AuthToken(String),
    /// TLS could not be set up from the files given.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// Runs a server until `shutdown` completes.
pub async fn run(
    cfg: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    if cfg.auxiliary {
        return crate::aux_server::run(cfg, shutdown).await;
    }
    let me = cfg.me().cloned().ok_or(ServerError::NotAMember(cfg.id))?;
    // Files first: a wrong path should fail before anything binds or opens the log.
    let tokens = TokenKind::parse(&cfg.auth_token).map_err(ServerError::AuthToken)?;
    let peer_tls = cfg.peer_tls.as_ref().map(PeerTls::new).transpose()?;
    let client_tls = cfg
        .client_tls
        .as_ref()
        .map(crate::tls::client_acceptor)
        .transpose()?;
    let admin_tls = cfg
        .client_tls
        .as_ref()
        .map(crate::tls::admin_acceptor)
        .transpose()?;
    let peer_listener = bind("peers", me.peer_addr).await?;
    let client_listener = bind("clients", cfg.client_addr).await?;
    let admin_listener = match cfg.admin_addr {
        Some(addr) => Some(bind("admin HTTP", addr).await?),
        None => None,
    };
    let metrics = Metrics::new();
    let auth_view = AuthView::default();
    let book = peer::AddressBook::new(&cfg.members);
    let (handle, join) = match cfg.protocol {
        ServerProtocol::Multi => {
            let outbox = peer::start_writers(cfg.id, &book, peer_tls.clone());
            let node = Node::open(&cfg, outbox, metrics.clone(), auth_view.clone())?;
            let (handle, join) = node::spawn(node, cfg.tick);
            let peers = handle.clone();
            tokio::spawn(peer::serve(peer_listener, cfg.id, book, peers, peer_tls));
            (handle, join)
        }
        ServerProtocol::FastMulti => {
            if cfg.join {
                return Err(ServerError::JoinUnsupported);
            }
            let outbox = peer::start_writers(cfg.id, &book, peer_tls.clone());
            let node = FastNode::open(&cfg, outbox, metrics.clone(), auth_view.clone())?;
            let (handle, peers, join) = fast_node::spawn(node, cfg.tick);
            tokio::spawn(peer::serve(peer_listener, cfg.id, book, peers, peer_tls));
            (handle, join)
        }
    };
    tracing::info!(
        id = cfg.id,
        client = %cfg.client_addr,
        peer = %me.peer_addr,
        protocol = ?cfg.protocol,
        client_tls = client_tls.is_some(),
        peer_tls = cfg.peer_tls.is_some(),
        "serving"
    );

    let cfg = Arc::new(cfg);
    if let Some(l) = admin_listener {
        let app = admin::router(handle.clone(), cfg.clone(), metrics.clone());
        match admin_tls {
            Some(acceptor) => {
                tokio::spawn(admin::serve_tls(l, app, acceptor));
            }
            None => {
                tokio::spawn(async move {
                    if let Err(e) = axum::serve(l, app).await {
                        tracing::error!(error = %e, "admin HTTP stopped");
                    }
                });
            }
        }
    }
    // On the signal to stop, a leader first hands leadership over while it still serves.
    let shutdown = {
        let (node, cfg) = (handle.clone(), cfg.clone());
        async move {
            shutdown.await;
            crate::handoff::before_stopping(&node, &cfg).await;
        }
    };
    let auth = Authenticator::new(auth_view, cfg.auth_token_ttl, tokens);
    let api = Api::new(handle, cfg.clone(), metrics, auth);
    let limit = cfg.max_request_bytes;
    let router = tonic::transport::Server::builder()
        .add_service(AuthServer::new(api.clone()))
        .add_service(KvServer::new(api.clone()).max_decoding_message_size(limit))
        .add_service(WatchServer::new(api.clone()))
        .add_service(LeaseServer::new(api.clone()))
        .add_service(ClusterServer::new(api.clone()))
        .add_service(MaintenanceServer::new(api.clone()))
        .add_service(LockServer::new(api.clone()))
        .add_service(ElectionServer::new(api));
    match client_tls {
        Some(acceptor) => {
            let conns = incoming::tls(client_listener, acceptor);
            router.serve_with_incoming_shutdown(conns, shutdown).await?
        }
        None => {
            let conns = incoming::plain(client_listener);
            router.serve_with_incoming_shutdown(conns, shutdown).await?
        }
    }
    join.abort();
    Ok(())
}

/// Listens on `addr` for `what`.
pub(crate) async fn bind(
    what: &'static str,
    addr: std::net::SocketAddr,
) -> Result<TcpListener, ServerError> {
    (TcpListener::bind(addr).await).map_err(|source| ServerError::Bind { what, addr, source })
}
