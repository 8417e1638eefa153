//! `synod chaos`: fault-injection runs against real server processes, checked for
//! linearizability (see the `synod-chaos` crate and docs/chaos.md).

use crate::Outcome;
use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use synod_chaos::{Config, Event, FaultKind, Judgement, Network};

/// Options of `synod chaos`.
#[derive(Args, Debug)]
pub struct ChaosArgs {
    /// Number of server processes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
    nodes: u64,
    /// Seconds of fault injection (the run takes some seconds more: start, heal, final reads,
    /// check).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=64))]
    clients: u64,
    /// Keys the clients share.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=100))]
    keys: u64,
    /// Seed of the fault schedule and the clients' choices (default: from the clock, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Fault kinds, comma-separated: kill, pause, partition, loss, move-leader (the operator's
    /// leader transfer, mixed in), member (the operator replaces a member: remove, wipe, add,
    /// join, promote); `all`, or `none` for a run without faults.
    #[arg(long, default_value = "all")]
    faults: String,
    /// Folder for history.jsonl, summary.json, anomaly.svg, and the nodes' data and logs.
    #[arg(long, default_value = "chaos-out")]
    out: PathBuf,
    /// The synod binary to run as servers (default: this one).
    #[arg(long)]
    synod: Option<PathBuf>,
    /// Start the servers with the testing-only --unsafe-local-reads switch: the run must then
    /// find stale reads (exit 1).
    #[arg(long)]
    unsafe_local_reads: bool,
    /// The protocol the servers run: `multi` (the default) or `fast-multi`.
    #[arg(long)]
    protocol: Option<synod_server::config::ServerProtocol>,
    /// Run on loopback without network namespaces, even as root (only kill and pause faults).
    #[arg(long)]
    no_netns: bool,
    /// Milliseconds a client waits before recording an operation as indeterminate.
    #[arg(long, default_value_t = 1000)]
    op_timeout_ms: u64,
    /// Seconds the linearizability checker may take before giving up.
    #[arg(long, default_value_t = 120)]
    check_seconds: u64,
    /// Run over TLS: clients with certificates, mutual TLS between the nodes (throwaway
    /// certificates written to <out>/tls).
    #[arg(long)]
    tls: bool,
}

fn parse_faults(s: &str) -> Result<Vec<FaultKind>> {
    match s.trim() {
        "all" => Ok(FaultKind::ALL.to_vec()),
        "none" | "" => Ok(Vec::new()),
        list => {
            let mut v: Vec<FaultKind> = list
                .split(',')
                .map(|k| k.parse::<FaultKind>().map_err(anyhow::Error::msg))
                .collect::<Result<_>>()?;
            v.sort_unstable();
            v.dedup();
            Ok(v)
        }
    }
}

/// The command line that repeats this run.
fn reproduce(args: &ChaosArgs, seed: u64, faults: &[FaultKind], network: Network) -> String {
    let faults = if faults.is_empty() {
        "none".to_string()
    } else {
        faults
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut cmd = format!(
        "synod chaos --nodes {} --seconds {} --clients {} --keys {} --seed {seed} --faults {faults} --out {}",
        args.nodes,
        args.seconds,
        args.clients,
        args.keys,
        args.out.display()
    );
    if args.tls {
        cmd.push_str(" --tls");
    }
    if args.op_timeout_ms != 1000 {
        cmd.push_str(&format!(" --op-timeout-ms {}", args.op_timeout_ms));
    }
    if network == Network::Loopback {
        cmd.push_str(" --no-netns");
    }
    if args.unsafe_local_reads {
        cmd.push_str(" --unsafe-local-reads");
    }
    if let Some(p) = args.protocol {
        cmd.push_str(&format!(" --protocol {p}"));
    }
    cmd
}

pub fn run(args: ChaosArgs) -> Result<Outcome> {
    let faults = parse_faults(&args.faults)?;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() ^ u64::from(d.subsec_nanos()))
            .unwrap_or(1)
    });
    let synod = match &args.synod {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("cannot find the synod binary")?,
    };
    let network = if args.no_netns {
        println!("chaos: --no-netns: loopback only, so kill and pause faults only");
        Network::Loopback
    } else {
        match synod_chaos::namespaces_available() {
            Ok(()) => Network::Namespaces,
            Err(why) => {
                println!("chaos: {why}.");
                println!(
                    "chaos: running on loopback instead: kill and pause faults only, no partitions or packet loss"
                );
                Network::Loopback
            }
        }
    };
    let command = reproduce(&args, seed, &faults, network);
    let mut cfg = Config::new(synod, args.out.clone(), args.seconds, seed);
    cfg.nodes = args.nodes;
    cfg.clients = args.clients;
    cfg.keys = args.keys;
    cfg.faults = faults;
    cfg.unsafe_local_reads = args.unsafe_local_reads;
    cfg.protocol = args.protocol.map(|p| p.to_string());
    cfg.network = network;
    cfg.op_timeout = Duration::from_millis(args.op_timeout_ms.max(1));
    cfg.check_time = Duration::from_secs(args.check_seconds.max(1));
    cfg.command = command.clone();
    if args.tls {
        cfg.tls = Some(crate::certs::ensure(&args.out.join("tls"), args.nodes)?.dir);
    }
    println!("chaos: seed {seed}; reproduce with: {command}");

    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(args.seconds);
        b.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} s  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    let events: synod_chaos::Events = {
        let bar = bar.clone();
        let last_status = std::sync::atomic::AtomicU64::new(0);
        Arc::new(move |e: Event| {
            let line = match e {
                Event::Info(s) => Some(format!("chaos: {s}")),
                Event::Fault(s) => Some(format!("fault {s}")),
                Event::Progress {
                    elapsed,
                    total,
                    ops,
                    fault,
                } => {
                    let msg = format!(
                        "{} ok {} failed {} indeterminate{}",
                        ops.ok,
                        ops.failed,
                        ops.indeterminate,
                        fault.map(|f| format!("  [{f}]")).unwrap_or_default()
                    );
                    match &bar {
                        Some(b) => {
                            b.set_position(elapsed);
                            b.set_message(msg);
                            None
                        }
                        // Without a terminal, a status line every 10 s.
                        None if elapsed % 10 == 0
                            && last_status.swap(elapsed, Ordering::Relaxed) < elapsed =>
                        {
                            Some(format!("status {elapsed}/{total} s: {msg}"))
                        }
                        None => None,
                    }
                }
            };
            if let Some(line) = line {
                match &bar {
                    Some(b) => b.println(line),
                    None => println!("{line}"),
                }
            }
        })
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = synod_chaos::run(&cfg, events) => r.map_err(anyhow::Error::from),
            // Dropping the run tears down its processes, rules and namespaces (drop guards).
            _ = tokio::signal::ctrl_c() => bail!("interrupted; servers stopped and network removed"),
            _ = term.recv() => bail!("terminated; servers stopped and network removed"),
        }
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = report.context("chaos run failed")?;
    println!("{report}");
    println!("summary: {}", args.out.join("summary.json").display());
    if report.found_problem() {
        println!("RESULT: PROBLEM FOUND (exit 1)");
        return Ok(Outcome::Problem);
    }
    if report.verdict == Judgement::Unknown {
        bail!(
            "the checker reached no verdict within --check-seconds {}",
            args.check_seconds
        );
    }
    println!("RESULT: no anomaly");
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_parse() {
        assert_eq!(parse_faults("all").ok(), Some(FaultKind::ALL.to_vec()));
        assert_eq!(parse_faults("none").ok(), Some(vec![]));
        assert_eq!(
            parse_faults("pause,kill,kill").ok(),
            Some(vec![FaultKind::Kill, FaultKind::Pause])
        );
        assert!(parse_faults("kill,netem").is_err());
    }
}
