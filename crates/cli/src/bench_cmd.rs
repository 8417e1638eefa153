//! `synod bench`: measurements on this machine: the write-ahead log alone (`storage`), a load
//! generator over the etcd v3 API (`run`), and Synod against etcd side by side (`compare`).

use crate::Outcome;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;
use synod_bench::compare::{self, CompareConfig, CompareReport};
use synod_bench::{KeyDist, RunConfig, RunResult, Workload};
use synod_storage::bench::{bench_with_progress, BenchOptions};

/// Options of `synod bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Threads of the load generator's async runtime (`run`, `compare`). 0 (the default) runs
    /// every client on one thread: on 2 cores shared with the servers it spent about 40% less
    /// CPU per request than a worker per core, which is CPU the servers under test then get.
    /// Raise it when the load generator has cores of its own.
    #[arg(
        long,
        global = true,
        env = "SYNOD_BENCH_RUNTIME_THREADS",
        default_value_t = 0
    )]
    runtime_threads: usize,
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Subcommand)]
enum BenchWhat {
    /// The write-ahead log: records/s and MB/s with 1, 16 and 64 writers sharing fsyncs
    /// (group commit), records per fsync, and the disk's raw fdatasync rate for comparison.
    Storage {
        /// Seconds per case.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Bytes per record.
        #[arg(long, default_value_t = 256)]
        record_size: usize,
        /// Writer counts to measure, comma-separated.
        #[arg(long, default_value = "1,16,64", value_delimiter = ',')]
        writers: Vec<usize>,
        /// A directory on the disk to measure (default: the system's temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Load over the etcd v3 API against any etcd-compatible cluster (Synod or etcd): closed
    /// loop (--clients requests in flight) or open loop (--rate), HDR latency percentiles.
    Run(Box<RunArgs>),
    /// Start a 3-node Synod and a 3-member etcd on this machine, run every workload against
    /// both alternately, print the ratio table, write JSON and an SVG plot, stop both.
    Compare(CompareArgs),
    /// Write table.md and latency-throughput.svg again from a saved compare.json (and print
    /// the table and the targets, judged again from its runs), e.g. after changing how they
    /// are drawn.
    Report {
        /// The compare.json of an earlier `synod bench compare`.
        json: PathBuf,
        /// Where to write them (default: the folder of the JSON file).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Workloads, as the command line names them.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum WorkloadArg {
    /// Put a key.
    Put,
    /// Linearizable get.
    Get,
    /// Serializable get (served by the member asked, without consensus).
    GetSerializable,
    /// Linearizable gets and puts (--read-percent reads).
    Mix,
    /// Txn compare-and-set on the key's mod revision.
    Cas,
}

impl From<WorkloadArg> for Workload {
    fn from(w: WorkloadArg) -> Self {
        match w {
            WorkloadArg::Put => Workload::Put,
            WorkloadArg::Get => Workload::Get,
            WorkloadArg::GetSerializable => Workload::GetSerializable,
            WorkloadArg::Mix => Workload::Mix,
            WorkloadArg::Cas => Workload::Cas,
        }
    }
}

/// Key distributions.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum DistArg {
    /// Every key equally likely.
    Uniform,
    /// Zipfian (exponent --zipf-s): a few hot keys.
    Zipf,
}

/// Options of `synod bench run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// `etcd`: any etcd-API cluster (Synod's Paxos servers, etcd) at --endpoints. `pbft`: a
    /// PBFT cluster (`synod server --protocol pbft`) at --replicas, each client signing with
    /// its key from --key-dir and waiting for f + 1 matching replies; put, get and mix only.
    #[arg(long, value_enum, default_value = "etcd")]
    protocol: BenchProtocol,
    /// With --protocol pbft: every replica, `1=127.0.0.1:7001,...` (as the servers' --peers).
    #[arg(long)]
    replicas: Option<String>,
    /// With --protocol pbft: the directory `synod keygen` wrote; client i signs with
    /// `client<100+i>.key`, so --clients N needs `synod keygen --clients N`.
    #[arg(long, default_value = "keys")]
    key_dir: PathBuf,
    /// Client endpoints, comma-separated; every connection balances over all of them.
    #[arg(long, default_value = "127.0.0.1:2379", value_delimiter = ',')]
    endpoints: Vec<String>,
    /// What each request does.
    #[arg(long, value_enum, default_value = "put")]
    workload: WorkloadArg,
    /// Concurrent clients: in closed loop each keeps one request in flight; in open loop they
    /// are the workers that send the scheduled requests.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// gRPC connections the clients share (client i uses connection i mod K).
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Bytes per value written.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// How keys are drawn.
    #[arg(long, value_enum, default_value = "uniform")]
    dist: DistArg,
    /// Exponent of the zipfian distribution (0.99 as YCSB).
    #[arg(long, default_value_t = 0.99)]
    zipf_s: f64,
    /// Mix workload: percentage of reads.
    #[arg(long, default_value_t = 50)]
    read_percent: u8,
    /// Open loop: requests per second (all clients together); latency is measured from each
    /// request's intended send time. Without it, closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Time run but not recorded.
    #[arg(long, default_value = "2s", value_parser = synod_server::config::parse_duration)]
    warmup: Duration,
    /// Time recorded.
    #[arg(long, default_value = "10s", value_parser = synod_server::config::parse_duration)]
    duration: Duration,
    /// Seed of the key choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Do not write every key before the run.
    #[arg(long)]
    no_preload: bool,
    /// Name of the system measured, recorded in the JSON (e.g. synod, etcd).
    #[arg(long)]
    system: Option<String>,
    /// Process ids of the servers (comma-separated): their CPU time per request over the
    /// measured window is reported, with the load generator's own.
    #[arg(long, value_delimiter = ',')]
    server_pids: Vec<u32>,
    /// Write the results as JSON to this file (`-` for standard output).
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// TLS: the CA certificate (PEM) the servers' certificates chain to; give endpoints as
    /// https://HOST:PORT. Named as etcdctl names it.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// TLS: a client certificate (PEM), for servers that require one (with --key).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// TLS: the client certificate's private key (PEM).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Authenticate each connection as NAME:PASSWORD (servers with auth enabled).
    #[arg(long)]
    user: Option<String>,
    /// Also count completed requests per interval of this length (e.g. 100ms), and print the
    /// median and the lowest interval: how deep a dip a leader change or a snapshot causes.
    #[arg(long, value_parser = synod_server::config::parse_duration)]
    timeline: Option<Duration>,
}

/// The load generator's TLS and login from `bench run`'s flags.
fn security(a: &RunArgs) -> Result<synod_bench::Security> {
    use synod_bench::{Certificate, Identity, TlsOptions};
    let read = |p: &PathBuf, what: &str| {
        std::fs::read(p).with_context(|| format!("cannot read {what} {}", p.display()))
    };
    let tls = match (&a.cacert, &a.cert, &a.key) {
        (None, None, None) => None,
        (ca, cert, key) => {
            let mut t = TlsOptions::new();
            if let Some(ca) = ca {
                t = t.ca_certificate(Certificate::from_pem(read(ca, "--cacert")?));
            }
            match (cert, key) {
                (Some(c), Some(k)) => {
                    t = t.identity(Identity::from_pem(read(c, "--cert")?, read(k, "--key")?))
                }
                (None, None) => {}
                _ => bail!("--cert and --key go together"),
            }
            Some(t)
        }
    };
    let user = match &a.user {
        Some(u) => {
            let (name, password) = u.split_once(':').context("--user is NAME:PASSWORD")?;
            Some((name.to_string(), password.to_string()))
        }
        None => None,
    };
    Ok(synod_bench::Security { tls, user })
}

/// Options of `synod bench compare`.
#[derive(Args, Debug)]
pub struct CompareArgs {
    /// A short run: fewer cases, 1 round, 0.5 s warm-up and 2 s per run.
    #[arg(long)]
    quick: bool,
    /// Where to write compare.json, table.md, latency-throughput.svg and the members' logs.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Rounds of the whole set (the table shows medians). Default 3, or 1 with --quick.
    #[arg(long)]
    rounds: Option<usize>,
    /// Warm-up per run. Default 1s, or 0.5s with --quick.
    #[arg(long, value_parser = synod_server::config::parse_duration)]
    warmup: Option<Duration>,
    /// Measured time per run. Default 5s, or 2s with --quick.
    #[arg(long, value_parser = synod_server::config::parse_duration)]
    duration: Option<Duration>,
    /// Bytes per value.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Members per cluster.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=7))]
    nodes: u64,
    /// The etcd binary (default: `etcd` on the PATH, installed from Debian if absent).
    #[arg(long)]
    etcd: Option<PathBuf>,
    /// Do not install Debian's etcd-server when etcd is missing.
    #[arg(long)]
    no_install: bool,
    /// Folder on the disk to measure, for both clusters' data (default: the temporary folder).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Record a CPU profile (perf, cpu-clock) of Synod's leader during the 64-client put run,
    /// into OUT/profile.
    #[arg(long)]
    profile: bool,
    /// Exit with status 1 when a target of issue 7 or 18 is missed (the verdicts are printed
    /// and written into table.md either way).
    #[arg(long)]
    check_targets: bool,
    /// Start both systems with `--auto-compaction-retention KEEP` (periodic mode: a duration
    /// such as 1s or 5m, or hours), so both compact their history on their own. Default: neither
    /// compacts, and both keep every revision.
    #[arg(long, value_name = "KEEP")]
    auto_compaction_retention: Option<String>,
}

pub fn run(args: BenchArgs) -> Result<Outcome> {
    match args.what {
        BenchWhat::Run(a) => run_load(*a, args.runtime_threads),
        BenchWhat::Compare(a) => run_compare(a, args.runtime_threads),
        BenchWhat::Report { json, out } => {
            let text = std::fs::read_to_string(&json)
                .with_context(|| format!("cannot read {}", json.display()))?;
            let mut report: CompareReport = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a compare.json", json.display()))?;
            // Judged again from the runs, so an older file gets the targets of today.
            report.targets = compare::targets_of(&report.cases);
            let dir = out.unwrap_or_else(|| {
                json.parent()
                    .map_or_else(|| PathBuf::from("."), PathBuf::from)
            });
            let files = compare::write_views(&report, &dir)?;
            print_compare(&report);
            for f in files {
                println!("wrote {}", f.display());
            }
            Ok(Outcome::Ok)
        }
        BenchWhat::Storage {
            seconds,
            record_size,
            writers,
            dir,
            json,
        } => {
            anyhow::ensure!(seconds > 0.0, "--seconds must be positive");
            anyhow::ensure!(
                !writers.is_empty() && writers.iter().all(|&w| w > 0),
                "--writers needs positive counts"
            );
            let opts = BenchOptions {
                dir,
                duration: Duration::from_secs_f64(seconds),
                record_size,
                writers,
                ..BenchOptions::default()
            };
            let report = bench_with_progress(&opts, |what| eprintln!("measuring {what} ..."))
                .context("storage benchmark failed")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
            Ok(Outcome::Ok)
        }
    }
}

/// Runs `work` on a runtime of `threads` workers (0: the current thread); Ctrl-C or SIGTERM
/// drops it, which stops every process it started (their guards kill them on drop).
fn until_interrupted<T>(threads: usize, work: impl Future<Output = Result<T>>) -> Result<T> {
    let rt = crate::runtime::build(threads)?;
    rt.block_on(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot watch for SIGTERM")?;
        tokio::select! {
            r = work => r,
            _ = tokio::signal::ctrl_c() => bail!("interrupted; everything started was stopped"),
            _ = term.recv() => bail!("terminated; everything started was stopped"),
        }
    })
}

/// Which kind of cluster `bench run` loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum BenchProtocol {
    /// An etcd v3 API cluster.
    Etcd,
    /// A PBFT cluster.
    Pbft,
}

fn run_pbft(a: RunArgs, threads: usize) -> Result<RunResult> {
    let replicas = a
        .replicas
        .as_deref()
        .context("--protocol pbft needs --replicas ID=HOST:PORT,...")?;
    let replicas =
        synod_bft::parse_members(replicas).map_err(|e| anyhow::anyhow!("--replicas: {e}"))?;
    if a.rate.is_some() || a.timeline.is_some() || a.cacert.is_some() || a.user.is_some() {
        bail!("--rate, --timeline, --cacert and --user do not apply to --protocol pbft");
    }
    let dist = a.key_dist();
    let cfg = synod_bench::PbftRunConfig {
        replicas,
        key_dir: a.key_dir,
        workload: a.workload.into(),
        clients: a.clients,
        value_size: a.value_size,
        keys: a.keys,
        dist,
        read_percent: a.read_percent,
        warmup: a.warmup,
        duration: a.duration,
        seed: a.seed,
        system: a.system.or(Some("synod-pbft".into())),
        server_pids: a.server_pids,
    };
    until_interrupted(threads, async { Ok(synod_bench::run_pbft(&cfg).await?) })
}

fn write_json(r: &RunResult, path: Option<PathBuf>) -> Result<()> {
    if let Some(path) = path {
        let text = serde_json::to_string_pretty(r)?;
        if path.as_os_str() == "-" {
            println!("{text}");
        } else {
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("results written to {}", path.display());
        }
    }
    Ok(())
}

fn run_load(a: RunArgs, threads: usize) -> Result<Outcome> {
    for &pid in &a.server_pids {
        if synod_bench::procs::cpu_time(pid).is_none() {
            bail!("--server-pids: cannot read the CPU time of process {pid} (no such process, or no /proc)");
        }
    }
    if a.protocol == BenchProtocol::Pbft {
        let json = a.json.clone();
        let r = run_pbft(a, threads)?;
        print_run(&r);
        write_json(&r, json)?;
        return Ok(Outcome::Ok);
    }
    if a.replicas.is_some() {
        bail!("--replicas applies to --protocol pbft only");
    }
    let label = (!a.quiet).then(|| a.workload_label());
    let security = security(&a)?;
    let dist = a.key_dist();
    let cfg = RunConfig {
        security,
        endpoints: a.endpoints,
        workload: a.workload.into(),
        clients: a.clients,
        conns: a.conns,
        value_size: a.value_size,
        keys: a.keys,
        dist,
        read_percent: a.read_percent,
        rate: a.rate,
        warmup: a.warmup,
        duration: a.duration,
        seed: a.seed,
        preload: !a.no_preload,
        system: a.system,
        progress: label,
        server_pids: a.server_pids,
        timeline: a.timeline,
    };
    cfg.validate()?;
    let r = until_interrupted(threads, async { Ok(synod_bench::run(&cfg).await?) })?;
    print_run(&r);
    write_json(&r, a.json)?;
    Ok(Outcome::Ok)
}

impl RunArgs {
    fn key_dist(&self) -> KeyDist {
        match self.dist {
            DistArg::Uniform => KeyDist::Uniform,
            DistArg::Zipf => KeyDist::Zipf { s: self.zipf_s },
        }
    }

    fn workload_label(&self) -> String {
        format!("{:?} c={}", self.workload, self.clients).to_lowercase()
    }
}

fn print_run(r: &RunResult) {
    let mode = match r.rate {
        Some(rate) => format!("open loop at {rate:.0}/s, {} workers", r.clients),
        None => format!("closed loop, {} clients", r.clients),
    };
    eprintln!(
        "{} {}, {} over {} conns, {}-byte values, {} keys ({})",
        r.system.as_deref().unwrap_or(""),
        r.workload,
        mode,
        r.conns,
        r.value_size,
        r.keys,
        r.dist
    );
    let l = &r.latency_ms;
    println!(
        "{:.0} ops/s ({} ops, {} errors in {:.1}s)\nlatency ms{}: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
        r.throughput,
        r.ops,
        r.errors,
        r.duration_s,
        if r.rate.is_some() { " (from intended send)" } else { "" },
        l.p50,
        l.p90,
        l.p99,
        l.p999,
        l.max
    );
    if let Some(s) = &r.service_ms {
        println!(
            "service ms (from actual send): p50 {:.3}  p99 {:.3}  max {:.3}",
            s.p50, s.p99, s.max
        );
    }
    match (r.server_cpu_us_per_op, r.loadgen_cpu_us_per_op) {
        (Some(s), Some(g)) => println!("cpu per op: servers {s:.1} us, load generator {g:.1} us"),
        (None, Some(g)) => println!("cpu per op: load generator {g:.1} us"),
        _ => {}
    }
    if let Some(c) = &r.cas {
        println!(
            "compare-and-set: {} succeeded, {} failed",
            c.succeeded, c.failed
        );
    }
    if let Some(t) = &r.timeline {
        if let Some((median, (at, min))) = t.median_and_min() {
            let per_s = |n: u64| n as f64 * 1e3 / t.interval_ms;
            println!(
                "timeline, {:.0} ms intervals: median {:.0} ops/s, lowest {:.0} ops/s ({:.0}% of the median) at {:.1}s",
                t.interval_ms,
                per_s(median),
                per_s(min),
                if median > 0 { min as f64 * 100.0 / median as f64 } else { 0.0 },
                at as f64 * t.interval_ms / 1e3
            );
        }
    }
    for e in &r.error_samples {
        println!("error: {e}");
    }
}

fn run_compare(a: CompareArgs, threads: usize) -> Result<Outcome> {
    let etcd_exe = match a.etcd {
        Some(p) => p,
        None => synod_bench::cluster::ensure_etcd(!a.no_install)?,
    };
    let synod_exe = std::env::current_exe().context("cannot find the synod binary")?;
    let cfg = CompareConfig {
        synod_exe,
        etcd_exe,
        nodes: a.nodes as usize,
        data_parent: a.data_dir,
        cases: compare::plan(a.quick),
        rounds: a.rounds.unwrap_or(if a.quick { 1 } else { 3 }),
        warmup: a
            .warmup
            .unwrap_or(Duration::from_millis(if a.quick { 500 } else { 1000 })),
        duration: a
            .duration
            .unwrap_or(Duration::from_secs(if a.quick { 2 } else { 5 })),
        value_size: a.value_size,
        keys: a.keys,
        dist: KeyDist::Uniform,
        seed: 1,
        profile_dir: a.profile.then(|| a.out.join("profile")),
        logs_dir: Some(a.out.join("logs")),
        progress: true,
        loadgen_threads: threads,
        auto_compaction: a.auto_compaction_retention,
    };
    let report = until_interrupted(threads, async { Ok(compare::run_compare(&cfg).await?) })?;
    let files = compare::write_outputs(&report, &a.out)?;
    print_compare(&report);
    for f in files {
        println!("wrote {}", f.display());
    }
    if a.check_targets && report.targets.iter().any(|t| !t.met) {
        return Ok(Outcome::Problem);
    }
    Ok(Outcome::Ok)
}

fn print_compare(r: &CompareReport) {
    println!("\n{}\n", r.setup);
    println!("{}", synod_bench::table::markdown(&r.table));
    for t in &r.targets {
        println!(
            "{} {}: {}",
            if t.met { "met   " } else { "MISSED" },
            t.target,
            t.detail
        );
    }
    for e in &r.errors {
        println!("errors: {e}");
    }
    if let Some(p) = &r.profile {
        println!("profile of Synod's leader (64-client put): {}", p.display());
    }
}
