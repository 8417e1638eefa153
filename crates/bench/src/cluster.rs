//! Local 3-member clusters of etcd and of Synod on free loopback ports, with their data in a
//! temporary directory: started, checked for a leader, and stopped when dropped.

use crate::error::{BenchError, Result};
use crate::procs::{free_ports, tail, which, ChildGuard};
use etcd_client::{Client, ConnectOptions};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A system under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    /// Synod (`synod server`).
    Synod,
    /// etcd (Debian's `etcd`).
    Etcd,
}

impl System {
    /// Both, in the order each case runs them.
    pub const BOTH: [System; 2] = [System::Synod, System::Etcd];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            System::Synod => "synod",
            System::Etcd => "etcd",
        }
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The member that leads, as its clients see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leader {
    /// Its client endpoint.
    pub endpoint: String,
    /// Its process id (for profiling).
    pub pid: u32,
    /// Its term (etcd) or ballot round (Synod): it grows with every election.
    pub term: u64,
}

/// A running local cluster.
pub struct Cluster {
    system: System,
    endpoints: Vec<String>,
    // Field order matters: the processes die before their data directory is removed.
    procs: Vec<ChildGuard>,
    tmp: tempfile::TempDir,
}

fn data_root(parent: Option<&Path>, system: System) -> Result<tempfile::TempDir> {
    let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
    std::fs::create_dir_all(&parent).map_err(|e| BenchError::file(&parent, e))?;
    tempfile::Builder::new()
        .prefix(&format!("bench-{system}-"))
        .tempdir_in(&parent)
        .map_err(|e| BenchError::file(&parent, e))
}

/// Starts `nodes` `synod server` processes of the binary `exe`, data under `parent` (default:
/// the system's temporary directory), each with the flags `extra` added.
pub fn start_synod(
    exe: &Path,
    nodes: usize,
    parent: Option<&Path>,
    extra: &[String],
) -> Result<Cluster> {
    let tmp = data_root(parent, System::Synod)?;
    let ports = free_ports(3 * nodes)?;
    let (peer, rest) = ports.split_at(nodes);
    let (client, admin) = rest.split_at(nodes);
    let list = |ps: &[u16]| {
        ps.iter()
            .enumerate()
            .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",")
    };
    let (peers, clients) = (list(peer), list(client));
    let mut procs = Vec::new();
    for i in 0..nodes {
        let id = i + 1;
        let mut cmd = Command::new(exe);
        cmd.arg("server")
            .args([
                "--id",
                &id.to_string(),
                "--peers",
                &peers,
                "--clients",
                &clients,
            ])
            .args(["--listen-client", &format!("127.0.0.1:{}", client[i])])
            .args(["--listen-admin", &format!("127.0.0.1:{}", admin[i])])
            .arg("--data-dir")
            .arg(tmp.path().join(format!("node{id}")))
            .args(extra)
            .env("RUST_LOG", "warn");
        let log = tmp.path().join(format!("node{id}.log"));
        procs.push(ChildGuard::spawn(format!("synod node {id}"), cmd, &log)?);
    }
    Ok(Cluster {
        system: System::Synod,
        endpoints: client.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
        procs,
        tmp,
    })
}

/// Starts `nodes` etcd members of the binary `exe`, data under `parent`, each with the flags
/// `extra` added.
pub fn start_etcd(
    exe: &Path,
    nodes: usize,
    parent: Option<&Path>,
    extra: &[String],
) -> Result<Cluster> {
    let tmp = data_root(parent, System::Etcd)?;
    let ports = free_ports(2 * nodes)?;
    let (peer, client) = ports.split_at(nodes);
    let initial = peer
        .iter()
        .enumerate()
        .map(|(i, p)| format!("e{}=http://127.0.0.1:{p}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut procs = Vec::new();
    for i in 0..nodes {
        let name = format!("e{}", i + 1);
        let curl = format!("http://127.0.0.1:{}", client[i]);
        let purl = format!("http://127.0.0.1:{}", peer[i]);
        let mut cmd = Command::new(exe);
        cmd.args(["--name", &name])
            .arg("--data-dir")
            .arg(tmp.path().join(&name))
            .args([
                "--listen-client-urls",
                &curl,
                "--advertise-client-urls",
                &curl,
            ])
            .args([
                "--listen-peer-urls",
                &purl,
                "--initial-advertise-peer-urls",
                &purl,
            ])
            .args([
                "--initial-cluster",
                &initial,
                "--initial-cluster-state",
                "new",
            ])
            .args(["--initial-cluster-token", "synod-bench"])
            .args([
                "--logger",
                "zap",
                "--log-outputs",
                "stderr",
                "--log-level",
                "warn",
            ])
            .args(extra);
        let log = tmp.path().join(format!("{name}.log"));
        procs.push(ChildGuard::spawn(format!("etcd member {name}"), cmd, &log)?);
    }
    Ok(Cluster {
        system: System::Etcd,
        endpoints: client.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
        procs,
        tmp,
    })
}

impl Cluster {
    /// Which system this is.
    pub fn system(&self) -> System {
        self.system
    }

    /// Every member's client endpoint.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Where the members keep their data and logs.
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Process ids of the members, in endpoint order.
    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(ChildGuard::pid).collect()
    }

    /// An error if any member has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        for p in &mut self.procs {
            if let Some(why) = p.exited() {
                return Err(BenchError::NotReady(why));
            }
        }
        Ok(())
    }

    /// Asks every member who leads, and returns the leader's endpoint once one member says it
    /// is the leader itself.
    pub async fn leader(&self) -> Result<Leader> {
        let opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(1))
            .with_timeout(Duration::from_secs(2));
        let mut last = String::from("no member answered");
        for (i, ep) in self.endpoints.iter().enumerate() {
            let status = match Client::connect([ep], Some(opts.clone())).await {
                Ok(mut c) => c.status().await,
                Err(e) => Err(e),
            };
            match status {
                Ok(s) => {
                    let me = s.header().map_or(0, |h| h.member_id());
                    if s.leader() != 0 && s.leader() == me {
                        return Ok(Leader {
                            endpoint: ep.clone(),
                            pid: self.procs[i].pid(),
                            term: s.raft_term(),
                        });
                    }
                    last = format!("{ep} reports leader {:#x}, itself {me:#x}", s.leader());
                }
                Err(e) => last = format!("{ep}: {e}"),
            }
        }
        Err(BenchError::NotReady(format!(
            "{}: no leader yet ({last})",
            self.system
        )))
    }

    /// Waits until a leader is known and a put through it succeeds.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<Leader> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            let err = match self.leader().await {
                Ok(l) => match put_once(&l.endpoint).await {
                    Ok(()) => return Ok(l),
                    Err(e) => e,
                },
                Err(e) => e,
            };
            if Instant::now() > deadline {
                let logs: Vec<String> = self
                    .procs
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let log = self.log_of(i);
                        format!("--- {} ({}):\n{}", p.name(), log.display(), tail(&log, 5))
                    })
                    .collect();
                return Err(BenchError::NotReady(format!(
                    "{} was not ready after {timeout:?}: {err}\n{}",
                    self.system,
                    logs.join("\n")
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Like [`Cluster::leader`], but waits up to `timeout` for an election to settle.
    pub async fn leader_within(&self, timeout: Duration) -> Result<Leader> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.leader().await {
                Ok(l) => return Ok(l),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Copies the members' logs into `dir` (they vanish with the data directory).
    pub fn save_logs(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| BenchError::file(dir, e))?;
        for i in 0..self.procs.len() {
            let from = self.log_of(i);
            let name = format!(
                "{}-{}",
                self.system,
                from.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            );
            let to = dir.join(name);
            std::fs::copy(&from, &to).map_err(|e| BenchError::file(&to, e))?;
        }
        Ok(())
    }

    fn log_of(&self, i: usize) -> PathBuf {
        match self.system {
            System::Synod => self.tmp.path().join(format!("node{}.log", i + 1)),
            System::Etcd => self.tmp.path().join(format!("e{}.log", i + 1)),
        }
    }
}

async fn put_once(endpoint: &str) -> Result<()> {
    let opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_timeout(Duration::from_secs(3));
    let mut c = Client::connect([endpoint], Some(opts))
        .await
        .map_err(|e| BenchError::client(format!("connecting to {endpoint}"), e))?;
    c.put("bench/ready", "1", None)
        .await
        .map_err(|e| BenchError::client(format!("a first put to {endpoint}"), e))?;
    Ok(())
}

/// The etcd binary: found on the PATH, or installed from Debian's `etcd-server` package when
/// `install` is set (it needs root and the package index).
pub fn ensure_etcd(install: bool) -> Result<PathBuf> {
    if let Some(p) = which("etcd") {
        return Ok(p);
    }
    if !install {
        return Err(BenchError::Missing(
            "etcd is not installed: run `apt-get install -y etcd-server` or pass --etcd PATH"
                .into(),
        ));
    }
    eprintln!("etcd not found; installing Debian's etcd-server ...");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| BenchError::process("cannot run apt-get", e))
    };
    if !apt(&["install", "-y", "-q", "etcd-server"])?.success() {
        // A fresh machine may have no package index yet.
        apt(&["update", "-q"])?;
        apt(&["install", "-y", "-q", "etcd-server"])?;
    }
    which("etcd").ok_or_else(|| {
        BenchError::Missing(
            "etcd is still missing after `apt-get install etcd-server`; install it by hand or \
             pass --etcd PATH"
                .into(),
        )
    })
}
