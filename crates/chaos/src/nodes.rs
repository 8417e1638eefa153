//! The `synod server` processes of a run: start, kill -9, pause, resume, restart.

use crate::error::{ChaosError, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs::{File, OpenOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where one node listens, and in which namespace it runs (`None`: the root one).
#[derive(Clone, Debug)]
pub struct Placement {
    /// Node id.
    pub id: u64,
    /// Peer address (the source address its peers must see, too).
    pub peer: SocketAddr,
    /// etcd gRPC address.
    pub client: SocketAddr,
    /// Admin HTTP address (`/status`).
    pub admin: SocketAddr,
    /// Network namespace to run in.
    pub namespace: Option<String>,
}

struct Node {
    at: Placement,
    /// The member id of the server running at this placement: `at.id` until a replacement
    /// (a new member with an empty disk, joined under a new id) took the place over.
    server: u64,
    child: Option<Child>,
    paused: bool,
}

/// The server processes; all are killed when this is dropped. Nodes are named by their
/// placement's id, which stays the same when a replacement takes a place over under another
/// member id ([`Cluster::replace`]).
pub struct Cluster {
    nodes: Vec<Node>,
    synod: PathBuf,
    dir: PathBuf,
    /// Arguments every server gets besides its addresses.
    server_args: Vec<String>,
    /// How to reach the admin pages when they are served over TLS.
    admin_tls: Option<tokio_rustls::TlsConnector>,
}

impl Cluster {
    /// Reach the admin pages over TLS with `connector` (servers with client TLS serve them so).
    pub fn set_admin_tls(&mut self, connector: tokio_rustls::TlsConnector) {
        self.admin_tls = Some(connector);
    }

    /// How to reach the admin pages over TLS, if they are served so.
    pub fn admin_tls(&self) -> Option<&tokio_rustls::TlsConnector> {
        self.admin_tls.as_ref()
    }

    /// A cluster of `placements` run from binary `synod`, keeping data and logs under `dir`.
    /// Starts nothing yet.
    pub fn new(
        synod: &Path,
        dir: &Path,
        placements: Vec<Placement>,
        server_args: Vec<String>,
    ) -> Cluster {
        Cluster {
            nodes: placements
                .into_iter()
                .map(|at| Node {
                    server: at.id,
                    at,
                    child: None,
                    paused: false,
                })
                .collect(),
            synod: synod.to_path_buf(),
            dir: dir.to_path_buf(),
            admin_tls: None,
            server_args,
        }
    }

    /// Node ids, in order.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.at.id).collect()
    }

    /// `--peers` or `--clients` as the servers running now are named.
    fn list(&self, f: fn(&Placement) -> SocketAddr) -> String {
        let entries = self
            .nodes
            .iter()
            .map(|n| format!("{}={}", n.server, f(&n.at)));
        entries.collect::<Vec<_>>().join(",")
    }

    /// The member id of the server at node `id`'s placement.
    pub fn server_id(&self, id: u64) -> Option<u64> {
        self.nodes.iter().find(|n| n.at.id == id).map(|n| n.server)
    }

    /// The node whose placement member `server` runs at.
    pub fn node_of(&self, server: u64) -> Option<u64> {
        self.nodes
            .iter()
            .find(|n| n.server == server)
            .map(|n| n.at.id)
    }

    /// From now on node `id`'s place is taken by member `server`, which joins the running
    /// cluster from an empty data directory of its own. The caller has stopped the old one.
    pub fn replace(&mut self, id: u64, server: u64) -> Result<()> {
        let old = self.node(id)?.server;
        let data = self.dir.join("data").join(format!("node{old}"));
        if data.exists() {
            std::fs::remove_dir_all(&data).map_err(|source| ChaosError::Io {
                path: data.clone(),
                source,
            })?;
        }
        self.node(id)?.server = server;
        Ok(())
    }

    /// Where node `id` listens.
    pub fn placement(&self, id: u64) -> Option<&Placement> {
        self.nodes.iter().find(|n| n.at.id == id).map(|n| &n.at)
    }

    fn node(&mut self, id: u64) -> Result<&mut Node> {
        self.nodes
            .iter_mut()
            .find(|n| n.at.id == id)
            .ok_or_else(|| ChaosError::Config(format!("no node {id}")))
    }

    /// Whether node `id` runs and is not paused: it can answer.
    pub fn is_up(&self, id: u64) -> bool {
        self.nodes
            .iter()
            .any(|n| n.at.id == id && n.child.is_some() && !n.paused)
    }

    /// Starts node `id` (from its data directory, so a restart recovers its log).
    pub fn start(&mut self, id: u64) -> Result<()> {
        let server = self.node(id)?.server;
        let data = self.dir.join("data").join(format!("node{server}"));
        let log_path = self.dir.join("logs").join(format!("node{id}.log"));
        let log = open_log(&log_path)?;
        let log2 = log.try_clone().map_err(|source| ChaosError::Io {
            path: log_path.clone(),
            source,
        })?;
        let (peers, clients) = (self.list(|p| p.peer), self.list(|p| p.client));
        let synod = self.synod.clone();
        let server_args = self.server_args.clone();
        let node = self.node(id)?;
        // `ip netns exec` enters the namespace and then execs the server, so the pid we get is
        // the server's own and signals reach it directly.
        let mut cmd = match &node.at.namespace {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&synod);
                c
            }
            None => Command::new(&synod),
        };
        cmd.arg("server")
            .args([
                "--id",
                &server.to_string(),
                "--peers",
                &peers,
                "--clients",
                &clients,
            ])
            .args(["--listen-client", &node.at.client.to_string()])
            .args(["--listen-admin", &node.at.admin.to_string()])
            .arg("--data-dir")
            .arg(&data)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        cmd.args(
            server_args
                .iter()
                .map(|a| a.replace("{id}", &id.to_string())),
        );
        if server != id {
            // A replacement: it joins the running cluster (and restarts from its disk later).
            cmd.args(["--initial-cluster-state", "existing"]);
        }
        let child = cmd.spawn().map_err(|source| ChaosError::Spawn {
            node: id,
            binary: synod.clone(),
            source,
        })?;
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    /// kill -9 node `id` and reap it. Nothing happens if it is not running.
    pub fn kill(&mut self, id: u64) -> Result<()> {
        let node = self.node(id)?;
        if let Some(mut child) = node.child.take() {
            // SIGKILL also ends a stopped process; the error only says it had already exited.
            let _ = child.kill();
            let _ = child.wait();
        }
        node.paused = false;
        Ok(())
    }

    /// Sends SIGSTOP (`pause`) or SIGCONT to node `id`, if it runs.
    pub fn pause(&mut self, id: u64, pause: bool) -> Result<()> {
        let node = self.node(id)?;
        let Some(child) = &node.child else {
            return Ok(());
        };
        let pid = Pid::from_raw(i32::try_from(child.id()).map_err(|_| {
            ChaosError::Config(format!("pid {} of node {id} out of range", child.id()))
        })?);
        let sig = if pause {
            Signal::SIGSTOP
        } else {
            Signal::SIGCONT
        };
        kill(pid, sig).map_err(|source| ChaosError::Os {
            what: format!("{sig} to node {id} (pid {pid})"),
            source,
        })?;
        node.paused = pause;
        Ok(())
    }

    /// Resumes every paused node and starts every stopped one.
    pub fn heal(&mut self) -> Result<()> {
        for id in self.ids() {
            if self.node(id)?.child.is_none() {
                self.start(id)?;
            } else {
                self.pause(id, false)?;
            }
        }
        Ok(())
    }

    /// Node ids whose process has died on its own (reaped here, reported to the caller).
    pub fn exited(&mut self) -> Vec<(u64, String)> {
        let mut dead = Vec::new();
        for n in &mut self.nodes {
            if let Some(c) = &mut n.child {
                if let Ok(Some(status)) = c.try_wait() {
                    dead.push((n.at.id, status.to_string()));
                    n.child = None;
                }
            }
        }
        dead
    }

    /// Waits until node `id` accepts connections on its client port.
    pub async fn wait_listening(&self, id: u64, within: Duration) -> Result<()> {
        let Some(at) = self.placement(id) else {
            return Err(ChaosError::Config(format!("no node {id}")));
        };
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let connect = tokio::net::TcpStream::connect(at.client);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(300), connect).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(ChaosError::NotReady(format!(
            "node {id} did not open {} within {within:?} (see {})",
            at.client,
            self.dir
                .join("logs")
                .join(format!("node{id}.log"))
                .display()
        )))
    }

    /// Kills every node.
    pub fn stop_all(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn open_log(path: &Path) -> Result<File> {
    let io = |source| ChaosError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)
}
