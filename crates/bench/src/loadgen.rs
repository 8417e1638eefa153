//! The load generator: C clients over K gRPC connections to etcd-API endpoints, closed loop
//! (each client keeps one request in flight) or open loop (requests due at a fixed rate,
//! latency charged from the intended send time).

use crate::error::{BenchError, Result};
use crate::procs;
use crate::result::{CasCounts, RunResult, Timeline};
use crate::schedule::{charged, Schedule};
use crate::summary::{new_histogram, record, LatencySummary};
use crate::workload::{key_name, value_of, KeyChooser, KeyDist, Workload};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KvClient, Txn, TxnOp, TxnOpResponse,
};
use hdrhistogram::Histogram;
use hyper_util::rt::TokioIo;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use synod_h2conn::H2Conn;
use tokio::net::TcpStream;

/// How long an open-loop run may overrun its end to send requests that were already due; past
/// that the generator stops and counts what it never sent as errors.
const OPEN_LOOP_GRACE: Duration = Duration::from_secs(5);

/// Error messages kept per run, to say what went wrong without flooding the JSON.
const ERROR_SAMPLES: usize = 5;

/// The settings of one run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// etcd-API endpoints (`127.0.0.1:2379`); every connection balances over all of them.
    pub endpoints: Vec<String>,
    /// What each request does.
    pub workload: Workload,
    /// Concurrent clients: closed loop, requests in flight; open loop, workers.
    pub clients: usize,
    /// gRPC connections shared by the clients (client i uses connection i mod K).
    pub conns: usize,
    /// Bytes per value written.
    pub value_size: usize,
    /// Keys in the key space.
    pub keys: u64,
    /// How keys are drawn.
    pub dist: KeyDist,
    /// Mix workload: the percentage of requests that are (linearizable) reads.
    pub read_percent: u8,
    /// Open loop: requests per second, all clients together. None: closed loop.
    pub rate: Option<f64>,
    /// Time run but not recorded, so connections, caches and batching settle first.
    pub warmup: Duration,
    /// Time recorded.
    pub duration: Duration,
    /// Seed of the key choices (each client derives its own from it).
    pub seed: u64,
    /// Write every key once before the run, so reads find values and the store has its size.
    pub preload: bool,
    /// The system measured, copied into the result (`synod`, `etcd`).
    pub system: Option<String>,
    /// Show a progress bar on standard error with this label; none for silence.
    pub progress: Option<String>,
    /// Server processes whose CPU time is accounted per request (`server_cpu_us_per_op`).
    pub server_pids: Vec<u32>,
    /// TLS and the user the connections log in as.
    pub security: Security,
    /// Count completed requests per interval of this length over the measured window
    /// ([`RunResult::timeline`]), to see a dip (a leader change, a snapshot) rather than its
    /// average; none: no timeline.
    pub timeline: Option<Duration>,
}

/// How the load generator's connections secure themselves.
#[derive(Clone, Debug, Default)]
pub struct Security {
    /// TLS (with `https://` endpoints): the CA to trust and, if the servers ask, a client
    /// certificate.
    pub tls: Option<etcd_client::TlsOptions>,
    /// A user and password to authenticate as, once per connection.
    pub user: Option<(String, String)>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            endpoints: vec!["127.0.0.1:2379".into()],
            workload: Workload::Put,
            clients: 1,
            conns: 1,
            value_size: 256,
            keys: 1000,
            dist: KeyDist::Uniform,
            read_percent: 50,
            rate: None,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(10),
            seed: 1,
            preload: true,
            system: None,
            progress: None,
            server_pids: Vec::new(),
            security: Security::default(),
            timeline: None,
        }
    }
}

impl RunConfig {
    /// Checks that the settings make sense together.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(BenchError::Config(m.to_string()));
        if self.endpoints.is_empty() {
            return bad("--endpoints needs at least one HOST:PORT");
        }
        if self.timeline.is_some_and(|t| t.is_zero()) {
            return bad("--timeline must be longer than zero");
        }
        if self.clients == 0 || self.conns == 0 {
            return bad("--clients and --conns must be at least 1");
        }
        if self.conns > self.clients {
            return bad("--conns cannot exceed --clients (a connection without clients is idle)");
        }
        if self.keys == 0 {
            return bad("--keys must be at least 1");
        }
        if self.read_percent > 100 {
            return bad("--read-percent must be between 0 and 100");
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return bad("--rate must be a positive number of requests per second");
            }
        }
        if self.duration.is_zero() {
            return bad("--duration must be positive");
        }
        if let KeyDist::Zipf { s } = self.dist {
            if !(s.is_finite() && s > 0.0) {
                return bad("--zipf-s must be positive");
            }
        }
        Ok(())
    }
}

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A request stuck longer than this is an error, not a hang of the whole benchmark.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens `conns` independent gRPC connections to `endpoints`.
pub async fn connect(
    endpoints: &[String],
    conns: usize,
    security: &Security,
) -> Result<Vec<KvClient>> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_timeout(REQUEST_TIMEOUT);
    if let Some(tls) = &security.tls {
        opts = opts.with_tls(tls.clone());
    }
    if let Some((name, password)) = &security.user {
        opts = opts.with_user(name, password);
    }
    let plain = plain_endpoint(endpoints, security);
    let mut out = Vec::with_capacity(conns);
    for i in 0..conns {
        let c = match plain {
            Some(addr) => connect_joined(addr, opts.clone()).await,
            None => Client::connect(endpoints, Some(opts.clone())).await,
        };
        let c = c.map_err(|e| {
            BenchError::client(
                format!("cannot connect (connection {i}) to {}", endpoints.join(",")),
                e,
            )
        })?;
        out.push(c.kv_client());
    }
    Ok(out)
}

/// The one endpoint's address when the load generator talks to a single endpoint without TLS:
/// then its connections are [`H2Conn::joined`], so that a put's request (about 300 bytes for a
/// 256-byte value, which h2 would flush on its own) leaves with the others of its turn. That
/// cost the load generator about a third of its CPU per put. Several endpoints keep the etcd
/// client's balancing, and TLS its own connector.
fn plain_endpoint<'a>(endpoints: &'a [String], security: &Security) -> Option<&'a str> {
    match endpoints {
        [one] if security.tls.is_none() => {
            let (scheme, rest) = one.split_once("://").unwrap_or(("http", one));
            scheme
                .eq_ignore_ascii_case("http")
                .then(|| rest.trim_end_matches('/'))
        }
        _ => None,
    }
}

/// An etcd client over one [`H2Conn::joined`] connection to `addr` (host:port).
async fn connect_joined(
    addr: &str,
    opts: ConnectOptions,
) -> std::result::Result<Client, etcd_client::Error> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| etcd_client::Error::InvalidArgs(format!("endpoint {addr}: {e}")))?
        .timeout(REQUEST_TIMEOUT);
    let addr = addr.to_string();
    let connector = tower::service_fn(move |_| {
        let addr = addr.clone();
        async move {
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            stream.set_nodelay(true)?;
            Ok::<_, std::io::Error>(TokioIo::new(H2Conn::joined(stream)))
        }
    });
    // tonic's error prints only "transport error"; the cause (refused, timed out) is its source.
    let channel = endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| etcd_client::Error::EndpointError(error_chain(&e)))?;
    // `from_channel` keeps `opts`' user and require-leader but not its timeouts or keep-alive:
    // the timeouts are applied above; a keep-alive added to `opts` would need the same.
    Client::from_channel(etcd_client::Channel::Tonic(channel), Some(opts)).await
}

/// `e` and its sources, joined by ": ".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Writes every key once, `parallel` requests at a time.
pub async fn preload(
    kvs: &[KvClient],
    keys: u64,
    value_size: usize,
    parallel: usize,
) -> Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let value = Arc::new(value_of(value_size));
    let mut tasks = Vec::new();
    for i in 0..parallel.max(1) {
        let mut kv = kvs[i % kvs.len()].clone();
        let (next, value) = (next.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= keys {
                    return Ok(());
                }
                kv.put(key_name(k), value.as_slice(), None)
                    .await
                    .map_err(|e| BenchError::client(format!("preloading key {k}"), e))?;
            }
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| BenchError::Config(format!("a preload task failed: {e}")))??;
    }
    Ok(())
}

/// What the workers share.
struct Shared {
    workload: Workload,
    read_percent: u8,
    value: Vec<u8>,
    chooser: KeyChooser,
    seed: u64,
    measure_from: Instant,
    end: Instant,
    schedule: Option<Schedule>,
    /// Requests completed so far, warm-up included (for the progress bar).
    done: AtomicU64,
    /// Requests sent so far, warm-up included (open loop: to count the due ones never sent).
    sent: AtomicU64,
    /// Length of a timeline interval, if one is kept.
    timeline: Option<Duration>,
}

/// What one worker measured.
struct WorkerOut {
    latency: Histogram<u64>,
    service: Histogram<u64>,
    ops: u64,
    errors: u64,
    samples: Vec<String>,
    cas: CasCounts,
    /// Requests completed per timeline interval, by when they completed.
    timeline: Vec<u64>,
}

/// Runs the configured load and returns what it measured.
pub async fn run(cfg: &RunConfig) -> Result<RunResult> {
    cfg.validate()?;
    let kvs = connect(&cfg.endpoints, cfg.conns, &cfg.security).await?;
    if cfg.preload {
        preload(&kvs, cfg.keys, cfg.value_size, cfg.clients.clamp(16, 64)).await?;
    }
    let start = Instant::now();
    let measure_from = start + cfg.warmup;
    let end = measure_from + cfg.duration;
    let shared = Arc::new(Shared {
        workload: cfg.workload,
        read_percent: cfg.read_percent,
        value: value_of(cfg.value_size),
        chooser: KeyChooser::new(cfg.keys, cfg.dist)?,
        seed: cfg.seed,
        measure_from,
        end,
        schedule: cfg.rate.map(|r| Schedule::new(start, r)),
        done: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        timeline: cfg.timeline,
    });
    let progress = cfg
        .progress
        .as_ref()
        .map(|label| spawn_progress(label, shared.clone(), start, cfg.warmup + cfg.duration));
    let cpu = tokio::spawn(cpu_over(cfg.server_pids.clone(), measure_from, end));
    let workers: Vec<_> = (0..cfg.clients)
        .map(|i| tokio::spawn(worker(i as u64, kvs[i % kvs.len()].clone(), shared.clone())))
        .collect();
    let mut latency = new_histogram();
    let mut service = new_histogram();
    let (mut ops, mut errors, mut samples, mut cas) = (0, 0, Vec::new(), CasCounts::default());
    let mut timeline: Vec<u64> = Vec::new();
    for w in workers {
        let out = w
            .await
            .map_err(|e| BenchError::Config(format!("a client task failed: {e}")))?;
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = latency.add(&out.latency);
        let _ = service.add(&out.service);
        ops += out.ops;
        errors += out.errors;
        cas.succeeded += out.cas.succeeded;
        cas.failed += out.cas.failed;
        samples.extend(out.samples);
        if timeline.len() < out.timeline.len() {
            timeline.resize(out.timeline.len(), 0);
        }
        for (t, n) in timeline.iter_mut().zip(&out.timeline) {
            *t += n;
        }
    }
    if let Some((bar, task)) = progress {
        task.abort();
        bar.finish_and_clear();
    }
    if let Some(rate) = cfg.rate {
        // Requests due before the end that no worker sent before the grace ran out.
        let due = (rate * (cfg.warmup + cfg.duration).as_secs_f64()).ceil() as u64;
        let never_sent = due.saturating_sub(shared.sent.load(Ordering::Relaxed));
        if never_sent > 0 {
            errors += never_sent;
            samples.push(format!(
                "{never_sent} requests never sent: the generator fell behind by more than {}s",
                OPEN_LOOP_GRACE.as_secs()
            ));
        }
    }
    samples.truncate(ERROR_SAMPLES);
    let secs = cfg.duration.as_secs_f64();
    let (server_cpu, own_cpu) = cpu.await.unwrap_or((None, None));
    let per_op = |d: Option<Duration>| {
        d.filter(|_| ops > 0)
            .map(|d| d.as_secs_f64() * 1e6 / ops as f64)
    };
    Ok(RunResult {
        system: cfg.system.clone(),
        endpoints: cfg.endpoints.clone(),
        workload: cfg.workload,
        clients: cfg.clients,
        conns: cfg.conns,
        value_size: cfg.value_size,
        keys: cfg.keys,
        dist: cfg.dist,
        read_percent: cfg.read_percent,
        rate: cfg.rate,
        warmup_s: cfg.warmup.as_secs_f64(),
        duration_s: secs,
        ops,
        errors,
        error_samples: samples,
        throughput: ops as f64 / secs,
        latency_ms: LatencySummary::of(&latency),
        service_ms: cfg.rate.map(|_| LatencySummary::of(&service)),
        cas: (cfg.workload == Workload::Cas).then_some(cas),
        term_change: None,
        server_cpu_us_per_op: per_op(server_cpu),
        loadgen_cpu_us_per_op: per_op(own_cpu),
        timeline: cfg.timeline.map(|every| {
            // Whole intervals of the window only: a request sent before the window's end that
            // completes after it counts in `ops` but falls outside (at most one per client in
            // closed loop; in open loop, a backlog at the end can be more).
            let n = (cfg.duration.as_nanos() / every.as_nanos().max(1)) as usize;
            timeline.resize(n, 0);
            Timeline {
                interval_ms: every.as_secs_f64() * 1e3,
                ops: timeline,
            }
        }),
    })
}

/// CPU time the servers `pids` (summed; none if any cannot be read, or none is named) and
/// this process used between `from` and `to`.
pub(crate) async fn cpu_over(
    pids: Vec<u32>,
    from: Instant,
    to: Instant,
) -> (Option<Duration>, Option<Duration>) {
    let sample = |pids: &[u32]| {
        let servers = if pids.is_empty() {
            None
        } else {
            pids.iter()
                .map(|&p| procs::cpu_time(p))
                .sum::<Option<Duration>>()
        };
        (servers, procs::cpu_time(std::process::id()))
    };
    tokio::time::sleep_until(from.into()).await;
    let (s0, o0) = sample(&pids);
    tokio::time::sleep_until(to.into()).await;
    let (s1, o1) = sample(&pids);
    let diff = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
    (diff(s0, s1), diff(o0, o1))
}

async fn worker(id: u64, mut kv: KvClient, sh: Arc<Shared>) -> WorkerOut {
    // Distinct, reproducible streams per client.
    let mut rng = StdRng::seed_from_u64(sh.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut revs: HashMap<u64, i64> = HashMap::new();
    let mut out = WorkerOut {
        latency: new_histogram(),
        service: new_histogram(),
        ops: 0,
        errors: 0,
        samples: Vec::new(),
        cas: CasCounts::default(),
        timeline: Vec::new(),
    };
    loop {
        let intended = match &sh.schedule {
            Some(s) => {
                let due = s.take();
                if due >= sh.end || Instant::now() >= sh.end + OPEN_LOOP_GRACE {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                due
            }
            None => {
                let now = Instant::now();
                if now >= sh.end {
                    break;
                }
                now
            }
        };
        let k = sh.chooser.next(&mut rng);
        let read = rng.gen_range(0..100u8) < sh.read_percent;
        let sent = Instant::now();
        sh.sent.fetch_add(1, Ordering::Relaxed);
        let r = one_request(&mut kv, &sh, k, read, &mut revs).await;
        let done = Instant::now();
        sh.done.fetch_add(1, Ordering::Relaxed);
        let measured = intended >= sh.measure_from && intended < sh.end;
        match r {
            Ok(cas) if measured => {
                out.ops += 1;
                match cas {
                    Some(true) => out.cas.succeeded += 1,
                    Some(false) => out.cas.failed += 1,
                    None => {}
                }
                record(&mut out.latency, charged(intended, done));
                record(&mut out.service, charged(sent, done));
                if let (Some(every), Some(since)) =
                    (sh.timeline, done.checked_duration_since(sh.measure_from))
                {
                    let i = (since.as_nanos() / every.as_nanos().max(1)) as usize;
                    if out.timeline.len() <= i {
                        out.timeline.resize(i + 1, 0);
                    }
                    out.timeline[i] += 1;
                }
            }
            Ok(_) => {}
            Err(e) => {
                if measured {
                    out.errors += 1;
                    if out.samples.len() < ERROR_SAMPLES {
                        out.samples.push(e.to_string());
                    }
                }
                if sh.schedule.is_none() {
                    // A closed-loop client retrying at once would spin against a dead server.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    out
}

async fn one_request(
    kv: &mut KvClient,
    sh: &Shared,
    k: u64,
    read: bool,
    revs: &mut HashMap<u64, i64>,
) -> Result<Option<bool>, etcd_client::Error> {
    let key = key_name(k);
    match sh.workload {
        Workload::Put => kv.put(key, sh.value.as_slice(), None).await.map(|_| None),
        Workload::Get => kv.get(key, None).await.map(|_| None),
        Workload::GetSerializable => kv
            .get(key, Some(GetOptions::new().with_serializable()))
            .await
            .map(|_| None),
        Workload::Mix if read => kv.get(key, None).await.map(|_| None),
        Workload::Mix => kv.put(key, sh.value.as_slice(), None).await.map(|_| None),
        Workload::Cas => {
            // Put only if nobody wrote the key since this client last saw it; otherwise read
            // it, which tells the revision to compare against next time.
            let seen = revs.get(&k).copied().unwrap_or(0);
            let txn = Txn::new()
                .when([Compare::mod_revision(key.clone(), CompareOp::Equal, seen)])
                .and_then([TxnOp::put(key.clone(), sh.value.as_slice(), None)])
                .or_else([TxnOp::get(key, None)]);
            let resp = kv.txn(txn).await?;
            if resp.succeeded() {
                if let Some(h) = resp.header() {
                    revs.insert(k, h.revision());
                }
            } else {
                for op in resp.op_responses() {
                    if let TxnOpResponse::Get(g) = op {
                        let rev = g.kvs().first().map_or(0, |kv| kv.mod_revision());
                        revs.insert(k, rev);
                    }
                }
            }
            Ok(Some(resp.succeeded()))
        }
    }
}

fn spawn_progress(
    label: &str,
    sh: Arc<Shared>,
    start: Instant,
    total: Duration,
) -> (ProgressBar, tokio::task::JoinHandle<()>) {
    let bar = ProgressBar::new(total.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>28} [{bar:30}] {elapsed:>4} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    let b = bar.clone();
    let task = tokio::spawn(async move {
        let mut last = (Instant::now(), 0u64);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let now = Instant::now();
            let done = sh.done.load(Ordering::Relaxed);
            let rate = (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
            last = (now, done);
            let phase = if now < sh.measure_from {
                "warm-up"
            } else {
                "measuring"
            };
            b.set_position(now.duration_since(start).as_millis() as u64);
            b.set_message(format!("{phase}, {rate:.0} ops/s"));
        }
    });
    (bar, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_plain_endpoint_gets_joined_connections() {
        let plain = Security::default();
        let one = |e: &str| vec![e.to_string()];
        assert_eq!(
            plain_endpoint(&one("127.0.0.1:2379"), &plain),
            Some("127.0.0.1:2379")
        );
        assert_eq!(plain_endpoint(&one("http://h:1"), &plain), Some("h:1"));
        assert_eq!(plain_endpoint(&one("HTTP://h:1/"), &plain), Some("h:1"));
        assert_eq!(plain_endpoint(&one("HTTPS://h:1"), &plain), None);
        assert_eq!(plain_endpoint(&one("https://h:1"), &plain), None);
        let two = vec!["a:1".to_string(), "b:2".to_string()];
        assert_eq!(
            plain_endpoint(&two, &plain),
            None,
            "several keep the balancing"
        );
        let tls = Security {
            tls: Some(etcd_client::TlsOptions::new()),
            user: None,
        };
        assert_eq!(plain_endpoint(&one("h:1"), &tls), None);
    }

    #[tokio::test]
    async fn a_refused_connection_says_why() {
        // A port just freed: nothing listens there.
        let port = crate::procs::free_ports(1).expect("a free port")[0];
        let Err(e) = connect_joined(&format!("127.0.0.1:{port}"), ConnectOptions::new()).await
        else {
            panic!("connected to a port nothing listens on");
        };
        assert!(e.to_string().contains("refused"), "{e}");
    }
}
