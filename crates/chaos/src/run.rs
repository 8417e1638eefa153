//! One chaos run from start to verdict.

use crate::client::{self, Shared};
use crate::config::{Config, Network};
use crate::error::{ChaosError, Result};
use crate::nemesis::{self, FaultRecord};
use crate::netns::Netns;
use crate::nodes::{Cluster, Placement};
use crate::recorder::{self, Clock, Counts, Tally};
use crate::report::{Judgement, Report};
use crate::schedule::{plan, FaultKind};
use crate::verify::{self, FINAL_READER};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use synod_check::{Entry, Op, Outcome, Verdict};

/// What a run tells its caller while it goes on.
#[derive(Clone, Debug)]
pub enum Event {
    /// A phase starts or something worth a line happened.
    Info(String),
    /// A fault started or was healed.
    Fault(String),
    /// Once a second during the fault period.
    Progress {
        /// Seconds of faults done.
        elapsed: u64,
        /// Seconds of faults in all.
        total: u64,
        /// Operations so far.
        ops: Counts,
        /// The fault in force, if any.
        fault: Option<String>,
    },
}

/// Where the run's events go.
pub type Events = Arc<dyn Fn(Event) + Send + Sync>;

/// How long after healing the workload goes on before the final reads, so the run also shows
/// that the healed cluster serves again.
const AFTER_HEAL: Duration = Duration::from_secs(2);

/// Runs the whole thing: network, cluster, workload and nemesis, healing, final reads, check.
/// Everything started is torn down before this returns, also on error; if the future is
/// dropped (Ctrl-C), the drop guards of the cluster and the network do it.
pub async fn run(cfg: &Config, events: Events) -> Result<Report> {
    let started = Instant::now();
    if cfg.nodes == 0 || cfg.clients == 0 || cfg.keys == 0 {
        return Err(ChaosError::Config(
            "nodes, clients and keys must be at least 1".into(),
        ));
    }
    prepare_dir(&cfg.out_dir)?;
    let ids: Vec<u64> = (1..=cfg.nodes).collect();
    let mut skipped = Vec::new();
    let mut kinds = cfg.faults.clone();
    if cfg.network == Network::Loopback {
        for k in kinds.iter().filter(|k| k.needs_namespaces()) {
            skipped.push(format!(
                "{k}: needs network namespaces (root), not loopback"
            ));
        }
        kinds.retain(|k| !k.needs_namespaces());
    }
    if cfg.protocol.as_deref() == Some("fast-multi") && kinds.contains(&FaultKind::MoveLeader) {
        skipped.push("move-leader: Fast Multi-Paxos servers do not transfer leadership".into());
        kinds.retain(|k| *k != FaultKind::MoveLeader);
    }
    if kinds.contains(&FaultKind::Member) {
        // A replacement joins under a new member id, and the throwaway certificates name
        // nodes by their first ids; Fast Multi-Paxos servers do not change members.
        let why = if cfg.protocol.as_deref() == Some("fast-multi") {
            Some("Fast Multi-Paxos servers do not change members")
        } else if cfg.tls.is_some() {
            Some("a replacement's new member id has no certificate under --tls")
        } else if ids.len() < 3 {
            Some("needs at least 3 nodes")
        } else {
            None
        };
        if let Some(why) = why {
            skipped.push(format!("member: {why}"));
            kinds.retain(|k| *k != FaultKind::Member);
        }
    }
    if ids.len() < 3 && kinds.contains(&FaultKind::Partition) {
        skipped.push("partition: needs at least 3 nodes".into());
    }
    // Declared before the cluster, so dropped after it: processes die before their namespaces.
    let net = match cfg.network {
        Network::Namespaces => Some(Netns::create(&ids)?),
        Network::Loopback => None,
    };
    let (placements, network) = match &net {
        Some(n) => (
            ids.iter()
                .map(|&i| {
                    let ip = n.addr(i);
                    Placement {
                        id: i,
                        peer: SocketAddr::from((ip, 2380)),
                        client: SocketAddr::from((ip, 2379)),
                        admin: SocketAddr::from((ip, 2381)),
                        namespace: Some(n.namespace(i)),
                    }
                })
                .collect::<Vec<_>>(),
            format!(
                "namespaces ({} .. {} on bridge {}, clients from {})",
                n.addr(1),
                n.addr(cfg.nodes),
                n.bridge(),
                n.gateway()
            ),
        ),
        None => (loopback(&ids)?, "loopback (127.0.0.1)".to_string()),
    };
    let say = |s: String| events(Event::Info(s));
    say(format!(
        "{} nodes on {network}{}",
        cfg.nodes,
        if cfg.unsafe_local_reads {
            ", servers with --unsafe-local-reads"
        } else {
            ""
        }
    ));
    let mut server_args = Vec::new();
    if cfg.unsafe_local_reads {
        server_args.push("--unsafe-local-reads".to_string());
    }
    if let Some(p) = &cfg.protocol {
        say(format!("servers run --protocol {p}"));
        server_args.extend(["--protocol".to_string(), p.clone()]);
    }
    let client_tls = match &cfg.tls {
        Some(dir) => {
            say(format!("TLS on, certificates from {}", dir.display()));
            server_args.extend(tls_server_args(dir));
            Some(tls_client(dir)?)
        }
        None => None,
    };
    let mut cluster = Cluster::new(&cfg.synod, &cfg.out_dir, placements, server_args);
    if let Some(dir) = &cfg.tls {
        cluster.set_admin_tls(admin_connector(dir)?);
    }
    for &i in &ids {
        cluster.start(i)?;
    }
    for &i in &ids {
        cluster.wait_listening(i, Duration::from_secs(15)).await?;
    }
    if nemesis::wait_for_leader(&cluster, Duration::from_secs(20))
        .await
        .is_none()
    {
        return Err(ChaosError::NotReady(
            "the cluster elected no leader within 20 s (see the node logs)".into(),
        ));
    }
    let steps = plan(cfg.seed, &ids, &kinds, cfg.fault_time);
    say(format!(
        "{} faults planned over {} s (seed {}), {} clients on {} keys",
        steps.len(),
        cfg.fault_time.as_secs(),
        cfg.seed,
        cfg.clients,
        cfg.keys
    ));

    let clock = Clock::start();
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    let shared = Arc::new(Shared {
        endpoints: ids
            .iter()
            .filter_map(|&i| {
                cluster
                    .placement(i)
                    .map(|p| (i, format!("{scheme}://{}", p.client)))
            })
            .collect(),
        tls: client_tls,
        keys: client::keys(cfg.keys),
        op_timeout: cfg.op_timeout,
        clock,
        tally: Tally::default(),
        stop: Default::default(),
    });
    let workers: Vec<_> = (1..=cfg.clients)
        .map(|c| tokio::spawn(client::run(c, cfg.seed, shared.clone())))
        .collect();
    let current: Arc<Mutex<Option<String>>> = Arc::default();
    let ticker = {
        let (shared, current, events) = (shared.clone(), current.clone(), events.clone());
        let total = cfg.fault_time.as_secs();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let begin = tokio::time::Instant::now();
            loop {
                tick.tick().await;
                let fault = current.lock().map(|c| c.clone()).unwrap_or(None);
                events(Event::Progress {
                    elapsed: begin.elapsed().as_secs().min(total),
                    total,
                    ops: shared.tally.counts(),
                    fault,
                });
            }
        })
    };

    // The nemesis, on this task: one fault at a time, each healed before the next.
    let begin = tokio::time::Instant::now();
    let mut log: Vec<FaultRecord> = Vec::new();
    let mut exits = Vec::new();
    // When no node can say who leads (say, right after a kill), a "leader" fault hits a node
    // drawn from this seeded sequence instead, so that too repeats with the seed.
    let mut fallback_rng = cfg.seed;
    let outcome: Result<()> = async {
        for step in &steps {
            tokio::time::sleep_until(begin + step.at).await;
            note_exits(&mut cluster, &mut exits, &events);
            fallback_rng = fallback_rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1);
            let fallback = ids[(fallback_rng >> 33) as usize % ids.len()];
            // Before applying: a move-leader does its work while it is applied.
            let start_us = clock.now_us();
            let (applied, detail) = nemesis::apply(
                &step.fault,
                &mut cluster,
                net.as_ref(),
                fallback,
                shared.tls.as_ref(),
            )
            .await?;
            events(Event::Fault(format!(
                "{:>5.1}s  {detail}",
                step.at.as_secs_f64()
            )));
            if let Ok(mut c) = current.lock() {
                *c = Some(detail.clone());
            }
            tokio::time::sleep(step.hold).await;
            note_exits(&mut cluster, &mut exits, &events);
            nemesis::heal(&applied, &mut cluster, net.as_ref())?;
            if let Ok(mut c) = current.lock() {
                *c = None;
            }
            log.push(FaultRecord {
                name: step.fault.name().to_string(),
                detail,
                start_us,
                end_us: Some(clock.now_us()),
            });
        }
        tokio::time::sleep_until(begin + cfg.fault_time).await;
        Ok(())
    }
    .await;
    // Heal everything whatever happened above, then let the healed cluster serve a moment.
    note_exits(&mut cluster, &mut exits, &events);
    if let Some(n) = &net {
        n.heal()?;
    }
    cluster.heal()?;
    outcome?;
    say("healed everything; the workload goes on for 2 s".into());
    tokio::time::sleep(AFTER_HEAL).await;
    shared.stop.store(true, Ordering::Relaxed);
    ticker.abort();
    let mut history: Vec<Entry> = Vec::new();
    for w in workers {
        if let Ok(h) = w.await {
            history.extend(h);
        }
    }

    say("reading every key through every node".into());
    let leader = nemesis::wait_for_leader(&cluster, Duration::from_secs(20)).await;
    if leader.is_none() {
        say("no leader 20 s after healing; reading anyway".into());
    }
    let finals = verify::final_reads(
        &shared.endpoints,
        &shared.keys,
        &clock,
        cfg.op_timeout,
        Duration::from_secs(30),
        shared.tls.as_ref(),
    )
    .await;
    say("comparing every member's HashKV".into());
    let replica_hashes = verify::replica_hashes(
        &shared.endpoints,
        cfg.op_timeout,
        Duration::from_secs(30),
        shared.tls.as_ref(),
    )
    .await;
    note_exits(&mut cluster, &mut exits, &events);
    cluster.stop_all();
    drop(cluster);
    drop(net);

    let mut final_values = BTreeMap::new();
    for e in finals.iter().filter(|e| e.outcome == Outcome::Ok) {
        if let Op::Get { value } = &e.op {
            // The latest read wins; all were made after healing and the checker sees them all.
            final_values.insert(e.key.clone(), value.clone());
        }
    }
    let unread_keys: Vec<String> = shared
        .keys
        .iter()
        .filter(|k| !final_values.contains_key(*k))
        .cloned()
        .collect();
    let mut lost = Vec::new();
    for (k, v) in &final_values {
        lost.extend(verify::lost_writes(&history, k, v.as_deref()));
    }
    history.extend(finals);
    history.sort_by_key(|e| (e.call, e.client));
    let history_path = cfg.out_dir.join("history.jsonl");
    recorder::write(&history_path, &history)?;

    say(format!("checking {} operations", history.len()));
    let check_started = Instant::now();
    let options = synod_check::Options {
        time_limit: Some(cfg.check_time),
        ..Default::default()
    };
    let to_check = history.clone();
    let verdict = tokio::task::spawn_blocking(move || synod_check::check_with(&to_check, &options))
        .await
        .map_err(|e| ChaosError::Config(format!("the checker panicked: {e}")))?;
    let check_seconds = check_started.elapsed().as_secs_f64();
    let mut anomaly_svg = None;
    let mut anomaly_at = None;
    let judgement = match &verdict {
        Verdict::Linearizable { .. } => Judgement::Linearizable,
        Verdict::NotLinearizable(a) => {
            let path = cfg.out_dir.join("anomaly.svg");
            std::fs::write(&path, a.to_svg()).map_err(|source| ChaosError::Io {
                path: path.clone(),
                source,
            })?;
            anomaly_svg = Some(path);
            let t = a.stuck.call;
            let during = log
                .iter()
                .find(|r| in_force(r, t))
                .map(|r| r.detail.clone());
            anomaly_at = Some((t, during));
            Judgement::NotLinearizable
        }
        Verdict::Unknown { .. } => Judgement::Unknown,
    };
    let mut stale_reads = BTreeMap::new();
    for (_, t) in verify::stale_reads(&history) {
        let during = log
            .iter()
            .find(|r| in_force(r, t))
            .map_or("none", |r| r.name.as_str());
        *stale_reads.entry(during.to_string()).or_insert(0) += 1;
    }
    let mut faults = BTreeMap::new();
    for r in &log {
        *faults.entry(r.name.clone()).or_insert(0) += 1;
    }
    let report = Report {
        seed: cfg.seed,
        nodes: cfg.nodes,
        clients: cfg.clients,
        keys: cfg.keys,
        network,
        unsafe_local_reads: cfg.unsafe_local_reads,
        fault_seconds: cfg.fault_time.as_secs_f64(),
        skipped,
        ops: Counts::of(&history),
        ops_by_type: by_type(&history),
        faults,
        fault_log: log,
        unexpected_exits: exits,
        final_values,
        unread_keys,
        lost_writes: lost,
        replica_hashes,
        verdict: judgement,
        verdict_text: verdict.to_string(),
        check_seconds,
        wall_seconds: started.elapsed().as_secs_f64(),
        command: cfg.command.clone(),
        history: history_path,
        anomaly_svg,
        anomaly_at,
        stale_reads,
    };
    let summary = cfg.out_dir.join("summary.json");
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| ChaosError::Config(format!("cannot encode the summary: {e}")))?;
    std::fs::write(&summary, json + "\n").map_err(|source| ChaosError::Io {
        path: summary,
        source,
    })?;
    Ok(report)
}

/// Records nodes that died without the nemesis killing them; they are restarted at the next
/// heal like killed ones.
fn note_exits(cluster: &mut Cluster, exits: &mut Vec<String>, events: &Events) {
    for (id, status) in cluster.exited() {
        let line = format!("node {id} exited by itself ({status})");
        events(Event::Info(line.clone()));
        exits.push(line);
    }
}

/// Whether fault `r` was in force at time `t`.
fn in_force(r: &FaultRecord, t: u64) -> bool {
    r.start_us <= t && !matches!(r.end_us, Some(end) if end <= t)
}

fn by_type(history: &[Entry]) -> BTreeMap<String, Counts> {
    let mut m: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    for e in history {
        let t = match (&e.op, e.client >= FINAL_READER) {
            (_, true) => "final-get",
            (Op::Get { .. }, _) => "get",
            (Op::Put { .. }, _) => "put",
            (Op::Delete, _) => "delete",
            (Op::Cas { .. }, _) => "cas",
        };
        m.entry(t.to_string()).or_default().push(e.clone());
    }
    m.into_iter().map(|(k, v)| (k, Counts::of(&v))).collect()
}

/// Free loopback ports for every node: every listener is held until all are chosen, so none
/// repeats.
fn loopback(ids: &[u64]) -> Result<Vec<Placement>> {
    let io = |source| ChaosError::Io {
        path: "127.0.0.1:0".into(),
        source,
    };
    let held: Vec<TcpListener> = (0..3 * ids.len())
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io))
        .collect::<Result<_>>()?;
    let ports: Vec<u16> = held
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()).map_err(io))
        .collect::<Result<_>>()?;
    let at = |p: u16| SocketAddr::from((Ipv4Addr::LOCALHOST, p));
    Ok(ids
        .iter()
        .enumerate()
        .map(|(k, &id)| Placement {
            id,
            peer: at(ports[3 * k]),
            client: at(ports[3 * k + 1]),
            admin: at(ports[3 * k + 2]),
            namespace: None,
        })
        .collect())
}

/// Creates the output folder and clears what an earlier run left in it (its data, logs and
/// results), so that nodes start empty and no stale file is mistaken for this run's.
fn prepare_dir(dir: &Path) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ChaosError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for sub in ["data", "logs"] {
        let p = dir.join(sub);
        if p.exists() {
            std::fs::remove_dir_all(&p).map_err(io(&p))?;
        }
    }
    for f in ["history.jsonl", "summary.json", "anomaly.svg"] {
        let p = dir.join(f);
        if p.exists() {
            std::fs::remove_file(&p).map_err(io(&p))?;
        }
    }
    Ok(())
}

/// `synod server` flags for the certificates in `dir`; `{id}` stands for each node's id.
fn tls_server_args(dir: &Path) -> Vec<String> {
    let p = |f: &str| dir.join(f).display().to_string();
    [
        ("--cert-file", p("node{id}.pem")),
        ("--key-file", p("node{id}-key.pem")),
        ("--trusted-ca-file", p("ca.pem")),
        ("--peer-cert-file", p("node{id}.pem")),
        ("--peer-key-file", p("node{id}-key.pem")),
        ("--peer-trusted-ca-file", p("ca.pem")),
    ]
    .into_iter()
    .flat_map(|(f, v)| [f.to_string(), v])
    .chain(["--client-cert-auth".to_string()])
    .collect()
}

/// The clients' TLS: the CA and the client certificate in `dir`.
fn tls_client(dir: &Path) -> Result<etcd_client::TlsOptions, ChaosError> {
    let read = |f: &str| {
        let path = dir.join(f);
        std::fs::read(&path).map_err(|source| ChaosError::Io { path, source })
    };
    Ok(etcd_client::TlsOptions::new()
        .ca_certificate(etcd_client::Certificate::from_pem(read("ca.pem")?))
        .identity(etcd_client::Identity::from_pem(
            read("client.pem")?,
            read("client-key.pem")?,
        )))
}

/// TLS to the admin pages: the CA and the client certificate in `dir`.
fn admin_connector(dir: &Path) -> Result<tokio_rustls::TlsConnector, ChaosError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let path = |f: &str| dir.join(f);
    let bad = |f: &str, why: String| ChaosError::Io {
        path: path(f),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, why),
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in
        CertificateDer::pem_file_iter(path("ca.pem")).map_err(|e| bad("ca.pem", e.to_string()))?
    {
        let c = c.map_err(|e| bad("ca.pem", e.to_string()))?;
        roots.add(c).map_err(|e| bad("ca.pem", e.to_string()))?;
    }
    let certs = CertificateDer::pem_file_iter(path("client.pem"))
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad("client.pem", e.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(path("client-key.pem"))
        .map_err(|e| bad("client-key.pem", e.to_string()))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("client.pem", e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| bad("client.pem", e.to_string()))?;
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        config,
    )))
}
