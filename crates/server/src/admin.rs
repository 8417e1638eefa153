//! Admin HTTP on its own port: `/health`, `/status` (JSON), `/metrics` (Prometheus). Over
//! TLS, with the clients' certificate and rules, when the server serves its clients over TLS.

use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::node::NodeHandle;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

#[derive(Clone)]
struct Admin {
    node: NodeHandle,
    cfg: Arc<ServerConfig>,
    metrics: Metrics,
}

/// The admin routes.
pub fn router(node: NodeHandle, cfg: Arc<ServerConfig>, metrics: Metrics) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/status", get(status))
        .route("/metrics", get(metrics_text))
        .with_state(Admin { node, cfg, metrics })
}

/// 200 when the node loop answers and knows a leader; 503 otherwise.
async fn health(State(a): State<Admin>) -> impl IntoResponse {
    match a.node.status().await {
        Ok(s) if s.leader.is_some() => (StatusCode::OK, "ok\n".to_string()),
        Ok(_) => (StatusCode::SERVICE_UNAVAILABLE, "no leader\n".to_string()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
    }
}

async fn status(State(a): State<Admin>) -> impl IntoResponse {
    match a.node.status().await {
        Ok(s) => {
            let members: Vec<_> = a
                .cfg
                .members
                .iter()
                .map(|m| {
                    serde_json::json!({
                        "id": m.id,
                        "peer_addr": m.peer_addr.to_string(),
                        "client_addr": m.client_addr.map(|c| c.to_string()),
                    })
                })
                .collect();
            let mut v = serde_json::to_value(&s).unwrap_or_default();
            v["members"] = serde_json::Value::Array(members);
            (StatusCode::OK, Json(v)).into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

async fn metrics_text(State(a): State<Admin>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        a.metrics.render(),
    )
}

/// Serves `app` over TLS on `listener`: each connection's handshake on its own task (bounded by
/// the handshake timeout), then HTTP/1.1. A failed handshake drops that connection only.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: Router,
    acceptor: tokio_rustls::TlsAcceptor,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (app, acceptor) = (app.clone(), acceptor.clone());
        tokio::spawn(async move {
            let handshake =
                tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
            let Ok(Ok(tls)) = handshake else { return };
            let io = hyper_util::rt::TokioIo::new(tls);
            let svc = hyper_util::service::TowerToHyperService::new(app);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await;
        });
    }
}
