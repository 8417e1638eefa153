//! Real `synod server` processes on free loopback ports, torn down when dropped.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A plain HTTP/1.0 GET on loopback; returns (status code, body).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("admin port");
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|b| b.1.to_string())
        .unwrap_or_default();
    (code, body)
}

/// Runs `etcdctl` (API v3) with `args`, writing `stdin` to it if given; whether it succeeded,
/// and its standard output followed by its standard error.
pub fn etcdctl_with<S: AsRef<std::ffi::OsStr>>(args: &[S], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl is not installed: `apt-get install etcd-client` (the README says so)");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).expect("etcdctl's stdin");
    }
    let out = child.wait_with_output().expect("etcdctl ran");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// etcdctl with short dial and command timeouts, then `args`; (succeeded, stdout + stderr).
pub fn etcdctl<S: AsRef<str>>(args: &[S]) -> (bool, String) {
    let args: Vec<&str> = ["--command-timeout=5s", "--dial-timeout=3s"]
        .into_iter()
        .chain(args.iter().map(|a| a.as_ref()))
        .collect();
    etcdctl_with(&args, None)
}

/// Retries [`etcdctl`] `args` for up to `within` (a fresh cluster elects a leader first, a
/// follower catches up); its output once it succeeds.
pub fn etcdctl_until_ok<S: AsRef<str> + std::fmt::Debug>(args: &[S], within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let (ok, out) = etcdctl(args);
        if ok {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "etcdctl {args:?} kept failing: {out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A local cluster of `synod server` processes.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub ids: Vec<u64>,
    peers: String,
    clients: String,
    client_ports: Vec<u16>,
    pub admin_ports: Vec<u16>,
    procs: Vec<Option<Child>>,
    extra: Vec<String>,
    /// Nodes added to the running cluster, with the `--peers` each was started with.
    joined: std::collections::BTreeMap<u64, String>,
    /// RUST_LOG for nodes started from now on.
    pub log_level: String,
    /// Nodes run as Cheap Paxos auxiliary acceptors (`--auxiliary`).
    pub auxiliaries: Vec<u64>,
}

/// `n` distinct free ports, outside the kernel's ephemeral range and never handed out twice in
/// this process (see `synod_bench::procs::free_ports`).
pub fn free_ports(n: usize) -> Vec<u16> {
    synod_bench::procs::free_ports(n).expect("free ports")
}

impl Cluster {
    /// Starts `n` nodes.
    pub fn start(n: u64) -> Cluster {
        Self::start_with(n, &[])
    }

    /// Starts `n` nodes, each with `extra` arguments.
    pub fn start_with(n: u64, extra: &[&str]) -> Cluster {
        Self::start_cheap(n, 0, extra)
    }

    /// Starts `mains` nodes and `aux` auxiliary acceptors (the last ids), each with `extra`
    /// arguments and `--auxiliaries` naming the auxiliaries.
    pub fn start_cheap(mains: u64, aux: u64, extra: &[&str]) -> Cluster {
        let n = mains + aux;
        let ids: Vec<u64> = (1..=n).collect();
        let ports = free_ports(3 * ids.len());
        let k = ids.len();
        let peer_ports = ports[..k].to_vec();
        let client_ports = ports[k..2 * k].to_vec();
        let admin_ports = ports[2 * k..].to_vec();
        let list = |ports: &[u16]| {
            ids.iter()
                .zip(ports)
                .map(|(i, p)| format!("{i}=127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut c = Cluster {
            dir: tempfile::tempdir().unwrap(),
            peers: list(&peer_ports),
            clients: list(&client_ports),
            client_ports,
            admin_ports,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            procs: ids.iter().map(|_| None).collect(),
            joined: Default::default(),
            log_level: "warn".into(),
            auxiliaries: (mains + 1..=n).collect(),
            ids,
        };
        if aux > 0 {
            let list: Vec<String> = c.auxiliaries.iter().map(u64::to_string).collect();
            c.extra
                .extend(["--auxiliaries".to_string(), list.join(",")]);
        }
        for i in c.ids.clone() {
            c.restart(i);
        }
        c
    }

    pub fn data_dir(&self, i: u64) -> PathBuf {
        self.dir.path().join(format!("node{i}"))
    }

    /// Starts (or restarts) node `i` from its data directory.
    pub fn restart(&mut self, i: u64) {
        self.restart_with(i, &self.extra.clone());
    }

    /// Node `i`'s log (its stderr, appended across restarts).
    pub fn log_path(&self, i: u64) -> PathBuf {
        self.dir.path().join(format!("node{i}.log"))
    }

    /// Starts (or restarts) node `i` with `extra` arguments instead of the cluster's; `{id}` in
    /// them stands for `i`.
    pub fn restart_with(&mut self, i: u64, extra: &[String]) {
        let idx = (i - 1) as usize;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .expect("node log file");
        let mut extra = extra.to_vec();
        let aux = self.auxiliaries.contains(&i);
        if aux {
            extra.push("--auxiliary".into());
        }
        let peers = match self.joined.get(&i) {
            Some(peers) => {
                extra.extend(["--initial-cluster-state".into(), "existing".into()]);
                peers
            }
            None => &self.peers,
        };
        let child = Command::new(env!("CARGO_BIN_EXE_synod"))
            .args([
                "server",
                "--id",
                &i.to_string(),
                "--peers",
                peers,
                "--clients",
                &self.clients,
            ])
            .args([
                "--listen-client",
                &format!("127.0.0.1:{}", self.client_ports[idx]),
            ])
            .args([
                "--listen-admin",
                &format!("127.0.0.1:{}", self.admin_ports[idx]),
            ])
            .arg("--data-dir")
            .arg(self.data_dir(i))
            .args(extra.iter().map(|a| a.replace("{id}", &i.to_string())))
            .env("RUST_LOG", &self.log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start synod server");
        self.procs[idx] = Some(child);
        // An auxiliary has no client API; its admin address says it is up.
        wait_for_port(match aux {
            true => self.admin_ports[idx],
            false => self.client_ports[idx],
        });
        // A server that could not listen exits at once; someone else answering on its port
        // must not pass for it.
        std::thread::sleep(Duration::from_millis(20));
        if let Some(Ok(Some(status))) = self.procs[idx].as_mut().map(|c| c.try_wait()) {
            let log = std::fs::read_to_string(self.log_path(i)).unwrap_or_default();
            panic!(
                "node {i} exited at start ({status}); port {} in use? Its log:\n{log}",
                self.client_ports[idx]
            );
        }
    }

    /// Starts node `id`, which `member add` added with peer URL `http://127.0.0.1:{peer_port}`,
    /// to join the running cluster (`--initial-cluster-state existing`), listing every node
    /// started so far as the peers to ask. Ids are consecutive: `id` is one above the last.
    /// The cluster's first nodes keep the `--peers` they were started with.
    pub fn join(&mut self, id: u64, peer_port: u16) {
        assert_eq!(Some(&(id - 1)), self.ids.last(), "ids are consecutive");
        let ports = free_ports(2);
        let mut peers = self.peers.clone();
        for (&j, p) in &self.joined {
            let own = p.rsplit(',').next().expect("its own entry last");
            assert!(own.starts_with(&format!("{j}=")));
            peers = format!("{peers},{own}");
        }
        peers = format!("{peers},{id}=127.0.0.1:{peer_port}");
        self.joined.insert(id, peers);
        self.ids.push(id);
        self.client_ports.push(ports[0]);
        self.admin_ports.push(ports[1]);
        self.procs.push(None);
        self.restart(id);
    }

    /// From now on, the cluster's first nodes restart with every node started so far in
    /// `--peers`, as an operator who edits the flags after adding members would.
    pub fn list_joined_in_peers(&mut self) {
        for p in self.joined.values() {
            let own = p.rsplit(',').next().expect("its own entry last");
            if !self.peers.split(',').any(|e| e == own) {
                self.peers = format!("{},{own}", self.peers);
            }
        }
    }

    /// Stops node `i` as an operator would (SIGTERM), and waits for it to exit.
    pub fn stop(&mut self, i: u64) -> std::process::ExitStatus {
        let mut c = self.procs[(i - 1) as usize].take().expect("node runs");
        let ok = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(ok.success());
        c.wait().expect("node exits")
    }

    /// The first node other than `i`.
    pub fn other_than(&self, i: u64) -> u64 {
        self.ids
            .iter()
            .copied()
            .find(|&n| n != i)
            .expect("another node")
    }

    /// kill -9 node `i`.
    pub fn kill(&mut self, i: u64) {
        if let Some(mut c) = self.procs[(i - 1) as usize].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Node `i`'s peer address.
    pub fn peer_endpoint(&self, i: u64) -> String {
        let prefix = format!("{i}=");
        let peers = self.joined.get(&i).unwrap_or(&self.peers);
        peers
            .split(',')
            .find_map(|p| p.strip_prefix(&prefix))
            .expect("a listed node")
            .to_string()
    }

    pub fn endpoint(&self, i: u64) -> String {
        format!("127.0.0.1:{}", self.client_ports[(i - 1) as usize])
    }

    /// Endpoints of the nodes that are running.
    pub fn endpoints(&self) -> Vec<String> {
        self.ids
            .iter()
            .filter(|&&i| self.procs[(i - 1) as usize].is_some() && !self.auxiliaries.contains(&i))
            .map(|&i| self.endpoint(i))
            .collect()
    }

    /// Every node's client endpoint (auxiliaries have none).
    pub fn all_endpoints(&self) -> Vec<String> {
        (self.ids.iter())
            .filter(|i| !self.auxiliaries.contains(i))
            .map(|&i| self.endpoint(i))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in self.ids.clone() {
            self.kill(i);
        }
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("synod server did not open port {port} within 10 s");
}

/// An etcd client of `endpoints`, retried for up to 10 s while the servers start.
pub async fn connect(endpoints: Vec<String>) -> etcd_client::Client {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match etcd_client::Client::connect(endpoints.clone(), None).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("cannot connect: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Retries a put for up to 20 s, until a leader answers (right after a start or a kill, none
/// may yet).
pub async fn put_retry(
    c: &mut etcd_client::Client,
    k: &str,
    v: &str,
    opts: Option<etcd_client::PutOptions>,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match c.put(k, v, opts.clone()).await {
            Ok(_) => return,
            Err(e) if Instant::now() > deadline => panic!("put {k} never succeeded: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Every member `member list` shows at `ep`: (id, is learner, client URLs), by id.
pub fn member_list(ep: &str) -> Vec<(u64, bool, Vec<String>)> {
    let out = etcdctl_until_ok(
        &["--endpoints", ep, "member", "list", "-w", "json"],
        Duration::from_secs(20),
    );
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    let mut m: Vec<_> = v["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            let urls = m["clientURLs"].as_array().cloned().unwrap_or_default();
            (
                m["ID"].as_u64().expect("an id"),
                m["isLearner"].as_bool().unwrap_or(false),
                urls.iter()
                    .filter_map(|u| u.as_str().map(String::from))
                    .collect(),
            )
        })
        .collect();
    m.sort();
    m
}

/// The ids `member list` shows at `ep`, with whether each is a learner.
pub fn member_roles(ep: &str) -> Vec<(u64, bool)> {
    member_list(ep)
        .into_iter()
        .map(|(id, l, _)| (id, l))
        .collect()
}
