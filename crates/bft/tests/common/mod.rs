//! Four PBFT replicas on loopback in the test's process, with Ed25519 keys from fixed secrets.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use synod_bft::node::RunningReplica;
use synod_bft::{BftClient, Byzantine, ClientOptions, Members, ReplicaOptions};
use synod_core::auth::{Ed25519Signer, Ed25519Verifier};
use synod_core::NodeId;
use tokio::net::TcpListener;

/// The replicas.
pub const IDS: [NodeId; 4] = [1, 2, 3, 4];
/// The first client.
pub const CLIENT: NodeId = 101;

/// The key of `id`.
pub fn signer(id: NodeId) -> Arc<Ed25519Signer> {
    Arc::new(Ed25519Signer::from_secret(id, &[id as u8; 32]))
}

/// Every replica's and client's public key.
pub fn verifier() -> Arc<Ed25519Verifier> {
    let mut v = Ed25519Verifier::default();
    for id in IDS.iter().copied().chain(CLIENT..CLIENT + 4) {
        v.add(id, &signer(id).public()).expect("a valid key");
    }
    Arc::new(v)
}

/// A cluster of [`IDS`], one of them possibly a liar.
pub struct Cluster {
    /// Every replica's address.
    pub members: Members,
    dir: tempfile::TempDir,
    /// The replicas running.
    pub running: BTreeMap<NodeId, RunningReplica>,
    liar: Option<(NodeId, Byzantine)>,
}

impl Cluster {
    /// Starts every replica, `liar` lying.
    pub async fn start(liar: Option<(NodeId, Byzantine)>) -> Cluster {
        let mut listeners = BTreeMap::new();
        for id in IDS {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("binds");
            listeners.insert(id, l);
        }
        let members = listeners
            .iter()
            .map(|(&id, l)| (id, l.local_addr().expect("bound")))
            .collect();
        let mut c = Cluster {
            members,
            dir: tempfile::tempdir().expect("temp dir"),
            running: BTreeMap::new(),
            liar,
        };
        for (id, l) in listeners {
            c.boot(id, Some(l)).await;
        }
        c
    }

    fn options(&self, id: NodeId, dir: &Path) -> ReplicaOptions {
        let mut o = ReplicaOptions::new(
            id,
            self.members.clone(),
            dir.join(format!("node{id}")),
            signer(id),
            verifier(),
        );
        o.tick = Duration::from_millis(5);
        o.view_change_ticks = 100;
        o.status_ticks = 10;
        o.checkpoint_interval = 4;
        o.byzantine = self.liar.filter(|(l, _)| *l == id).map(|(_, m)| m);
        o
    }

    /// Starts replica `id` (again: from its disk).
    pub async fn boot(&mut self, id: NodeId, listener: Option<TcpListener>) {
        let opts = self.options(id, self.dir.path());
        let r = synod_bft::start(opts, listener).await.expect("starts");
        self.running.insert(id, r);
    }

    /// Stops replica `id`.
    pub async fn stop(&mut self, id: NodeId) {
        let r = self.running.remove(&id).expect("running");
        r.stop().await.expect("stops cleanly");
    }

    /// A client that waits up to 20 s per operation.
    pub fn client(&self, id: NodeId) -> BftClient {
        self.client_with(id, Duration::from_secs(20))
    }

    /// A client that gives an operation up after `timeout`.
    pub fn client_with(&self, id: NodeId, timeout: Duration) -> BftClient {
        let mut opts = ClientOptions::new(self.members.clone());
        opts.retry = Duration::from_millis(200);
        opts.timeout = timeout;
        BftClient::connect(signer(id), verifier(), opts).expect("connects")
    }

    /// Stops every replica still running.
    pub async fn shutdown(mut self) {
        for id in IDS {
            if self.running.contains_key(&id) {
                self.stop(id).await;
            }
        }
    }
}
