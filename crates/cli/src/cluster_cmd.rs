//! `synod cluster`: a local cluster in one command.

use crate::Outcome;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::process::{Child, Command};

/// Options of `synod cluster`.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
    nodes: u64,
    /// Where the nodes keep their logs (one folder per node). Running again restarts from it.
    #[arg(long, default_value = "synod-data")]
    data_dir: PathBuf,
    /// Client port of node 1; node N > 1 listens on this + 10000 * N (2379, 22379, 32379, ...),
    /// as etcd's local-cluster examples do.
    #[arg(long, default_value_t = 2379)]
    client_port: u16,
    /// Peer port of node 1; likewise.
    #[arg(long, default_value_t = 2380)]
    peer_port: u16,
    /// The protocol every node runs: `multi` (the default) or `fast-multi` (experimental;
    /// see `synod server --help`).
    #[arg(long)]
    protocol: Option<synod_server::config::ServerProtocol>,
    /// Serve clients over TLS (client certificates required) and run mutual TLS between the
    /// nodes, with a throwaway CA and certificates written to <data-dir>/tls on first use. The
    /// etcdctl flags that use them are printed.
    #[arg(long)]
    tls: bool,
}

fn port(base: u16, i: u64) -> Result<u16> {
    let p = if i == 1 {
        base as u64
    } else {
        base as u64 + 10_000 * i
    };
    u16::try_from(p)
        .context("port out of range: use fewer --nodes or a lower --client-port/--peer-port")
}

pub fn run(args: ClusterArgs) -> Result<Outcome> {
    let exe = std::env::current_exe().context("cannot find the synod binary")?;
    let ids: Vec<u64> = (1..=args.nodes).collect();
    let mut peers = Vec::new();
    let mut clients = Vec::new();
    for &i in &ids {
        peers.push(format!("{i}=127.0.0.1:{}", port(args.peer_port, i)?));
        clients.push(format!("{i}=127.0.0.1:{}", port(args.client_port, i)?));
    }
    let (peers, clients) = (peers.join(","), clients.join(","));
    let certs = if args.tls {
        Some(crate::certs::ensure(
            &args.data_dir.join("tls"),
            args.nodes,
        )?)
    } else {
        None
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut children: Vec<(u64, Child, Vec<String>)> = Vec::new();
        for &i in &ids {
            let dir = args.data_dir.join(format!("node{i}"));
            let argv: Vec<String> = vec![
                "server".into(),
                "--id".into(),
                i.to_string(),
                "--peers".into(),
                peers.clone(),
                "--clients".into(),
                clients.clone(),
                "--listen-client".into(),
                format!("127.0.0.1:{}", port(args.client_port, i)?),
                "--listen-admin".into(),
                format!("127.0.0.1:{}", port(args.client_port + 2, i)?),
                "--data-dir".into(),
                dir.display().to_string(),
            ];
            let mut argv = argv;
            if let Some(p) = args.protocol {
                argv.push("--protocol".into());
                argv.push(p.to_string());
            }
            if let Some(c) = &certs {
                argv.extend(c.server_flags(i));
            }
            let child = Command::new(&exe)
                .args(&argv)
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("cannot start node {i}"))?;
            children.push((i, child, argv));
        }
        let scheme = if certs.is_some() { "https://" } else { "" };
        let endpoints: Vec<String> = ids
            .iter()
            .map(|&i| port(args.client_port, i).map(|p| format!("{scheme}127.0.0.1:{p}")))
            .collect::<Result<_>>()?;
        let flags = match &certs {
            Some(c) => format!("{} ", c.etcdctl_flags()),
            None => String::new(),
        };
        println!("Synod cluster of {} nodes, data in {}", ids.len(), args.data_dir.display());
        if let Some(c) = &certs {
            println!("TLS on, for clients and between nodes; certificates in {}", c.dir.display());
        }
        println!("client endpoints: {}", endpoints.join(","));
        println!("try:  etcdctl {flags}--endpoints={} put greeting hello", endpoints.join(","));
        println!("      etcdctl {flags}--endpoints={} get greeting", endpoints.join(","));
        let admin: Vec<String> = ids
            .iter()
            .map(|&i| {
                let scheme = if certs.is_some() { "https" } else { "http" };
                port(args.client_port + 2, i).map(|p| format!("{scheme}://127.0.0.1:{p}/status"))
            })
            .collect::<Result<_>>()?;
        println!("status pages: {}", admin.join(" "));
        if let Some(c) = &certs {
            let (cert, key) = c.client();
            println!(
                "      (curl --cacert {} --cert {} --key {} ...)",
                c.ca().display(),
                cert.display(),
                key.display()
            );
        }
        println!("Ctrl-C stops the cluster; running this again restarts it from disk.");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut alive = children.len();
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
        while alive > 0 {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = tick.tick() => {}
            }
            for (i, c, argv) in children.iter_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    if c.id().is_none() && argv.is_empty() {
                        continue;
                    }
                    alive -= 1;
                    // A node that dies is reported, not fatal: the others keep serving.
                    println!(
                        "node {i} exited ({status}); the others keep serving. Restart it with:\n  {} {}",
                        exe.display(),
                        argv.join(" ")
                    );
                    argv.clear();
                }
            }
        }
        for (_, c, _) in &mut children {
            if let Some(pid) = c.id() {
                // SIGTERM first so each node closes cleanly; kill whatever is left.
                let _ = std::process::Command::new("kill").arg(pid.to_string()).status();
            }
        }
        for (_, c, _) in &mut children {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), c.wait()).await;
            let _ = c.kill().await;
        }
        println!("cluster stopped");
        Ok(Outcome::Ok)
    })
}
