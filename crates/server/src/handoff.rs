//! Leadership handed over on shutdown, as etcd does: a leader that stops without it leaves the
//! cluster without one for an election timeout, which a rolling restart pays once per node.

use crate::config::ServerConfig;
use crate::node::{MoveLeaderError, NodeHandle};
use std::time::Duration;

/// If this node leads, asks each other member in turn to take over, giving each an election
/// timeout (a live successor takes a round trip or two); returns once another leads, or every
/// member was tried. Never fails: stopping goes on either way.
pub async fn before_stopping(node: &NodeHandle, cfg: &ServerConfig) {
    let leads =
        |s: &Option<crate::node::NodeStatus>| s.as_ref().is_some_and(|s| s.leader == Some(cfg.id));
    if !leads(&node.status().await.ok()) {
        return;
    }
    let wait = cfg
        .tick
        .saturating_mul(u32::try_from(cfg.election_ticks.1).unwrap_or(u32::MAX));
    for target in cfg.members.iter().map(|m| m.id).filter(|&i| i != cfg.id) {
        match node.move_leader(target).await {
            Ok(()) => {}
            // This protocol has no leadership to hand over, or the node stopped meanwhile.
            Err(MoveLeaderError::Unsupported | MoveLeaderError::Stopped) => return,
            // Deposed meanwhile: nothing left to hand over.
            Err(MoveLeaderError::Refused(_)) => return,
        }
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(cfg.tick.max(Duration::from_millis(1))).await;
            if !leads(&node.status().await.ok()) {
                tracing::info!(to = target, "handed leadership over before stopping");
                return;
            }
        }
    }
    tracing::warn!("no member took over leadership before this node stopped");
}
