//! `synod`: one binary for Synod's simulator, flow charts, checks and benchmarks.
//!
//! Exit codes: 0 success, 1 a check found a problem (a violation, a failed target), 2 bad usage
//! or environment.

mod bench_cmd;
mod certs;
mod chaos_cmd;
mod check_cmd;
mod cluster_cmd;
mod flow_cmd;
mod keygen_cmd;
mod pbft_cmd;
mod runtime;
mod server_cmd;
mod sim_cmd;
mod snapshot_cmd;

// The server allocates and frees several small buffers per request (gRPC frames, batches, log
// records); malloc was a tenth of a leader's profile under glibc, and mimalloc served 19-26%
// more linearizable gets at 64 clients (docs/performance.md). Large buffers that grow by
// reallocation are copied under mimalloc, so snapshots are sized up front (core::encode).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Synod: the Paxos family in Rust.
#[derive(Parser)]
#[command(name = "synod", version, about, long_about = None)]
struct Cli {
    /// Log as JSON lines instead of human-readable text (the level comes from RUST_LOG).
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the deterministic simulator over many seeds, checking safety after every step.
    Sim(sim_cmd::SimArgs),
    /// Draw a message-flow chart from a real run of the protocol code.
    Flow(flow_cmd::FlowArgs),
    /// Run one replica of a cluster that serves the etcd v3 API.
    Server(Box<server_cmd::ServerArgs>),
    /// Start a local cluster of `synod server` processes (Ctrl-C stops it).
    Cluster(cluster_cmd::ClusterArgs),
    /// Write a throwaway CA and TLS certificates for a cluster's nodes and one client.
    Certs(certs::CertsArgs),
    /// Write Ed25519 keys for PBFT replicas and clients.
    ///
    /// Writes `node<ID>.key` for replicas 1..=N and `client<ID>.key` for clients 101, 102...,
    /// each readable by its owner only, and `public.keys` with every public key. Secrets come
    /// from the operating system's random source. Existing files are never overwritten unless
    /// --force is given.
    Keygen(keygen_cmd::KeygenArgs),
    /// Put, get and delete on a PBFT cluster (`synod server --protocol pbft`), each result
    /// agreed on by f + 1 replicas.
    Pbft(pbft_cmd::PbftArgs),
    /// Check a recorded history (JSON lines) for linearizability.
    Check(check_cmd::CheckArgs),
    /// Read or restore a backup taken with `etcdctl snapshot save`.
    Snapshot(snapshot_cmd::SnapshotArgs),
    /// Benchmarks: load against etcd-API clusters (`run`, `compare`, `report`) and the WAL (`storage`).
    Bench(bench_cmd::BenchArgs),
    /// Fault-injection run against real server processes, checked for linearizability.
    Chaos(chaos_cmd::ChaosArgs),
}

/// What a command concluded.
pub enum Outcome {
    /// All good.
    Ok,
    /// A check found a problem (exit 1).
    Problem,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if cli.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    let result = match cli.command {
        Command::Sim(args) => sim_cmd::run(args),
        Command::Flow(args) => flow_cmd::run(args),
        Command::Server(args) => server_cmd::run(*args),
        Command::Cluster(args) => cluster_cmd::run(args),
        Command::Certs(args) => certs::run(args),
        Command::Keygen(args) => keygen_cmd::run(args),
        Command::Pbft(args) => pbft_cmd::run(args),
        Command::Check(args) => check_cmd::run(args),
        Command::Snapshot(args) => snapshot_cmd::run(args),
        Command::Bench(args) => bench_cmd::run(args),
        Command::Chaos(args) => chaos_cmd::run(args),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Problem) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
