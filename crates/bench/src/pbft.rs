//! The load generator for a PBFT cluster (`synod bench run --protocol pbft`): each client is a
//! [`BftClient`] with a key of its own from `synod keygen`, in closed loop, and reads go
//! through the agreement like writes.

use crate::error::{BenchError, Result};
use crate::loadgen::cpu_over;
use crate::result::RunResult;
use crate::summary::{new_histogram, record, LatencySummary};
use crate::workload::{key_name, value_of, KeyChooser, KeyDist, Workload};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use synod_bft::keys::{client_key, load_signer, load_verifier, FIRST_CLIENT};
use synod_bft::{BftClient, ClientOptions, KvOp, Members};
use synod_core::NodeId;

/// The settings of one PBFT run.
#[derive(Clone, Debug)]
pub struct PbftRunConfig {
    /// Every replica and its address.
    pub replicas: Members,
    /// Where `synod keygen` wrote the keys; clients use `client101.key` on.
    pub key_dir: PathBuf,
    /// `put`, `get` or `mix`.
    pub workload: Workload,
    /// Clients, each with one request in flight.
    pub clients: usize,
    /// Bytes per value written.
    pub value_size: usize,
    /// Keys in the key space.
    pub keys: u64,
    /// How keys are drawn.
    pub dist: KeyDist,
    /// Mix workload: the percentage of reads.
    pub read_percent: u8,
    /// Time run but not recorded.
    pub warmup: Duration,
    /// Time recorded.
    pub duration: Duration,
    /// Seed of the key choices.
    pub seed: u64,
    /// The system measured, copied into the result.
    pub system: Option<String>,
    /// Server processes whose CPU time is accounted per request.
    pub server_pids: Vec<u32>,
}

struct Out {
    latency: Histogram<u64>,
    ops: u64,
    errors: u64,
    samples: Vec<String>,
}

/// Runs the load and returns what it measured.
pub async fn run_pbft(cfg: &PbftRunConfig) -> Result<RunResult> {
    if !matches!(cfg.workload, Workload::Put | Workload::Get | Workload::Mix) {
        return Err(BenchError::Config(format!(
            "--protocol pbft runs put, get or mix, not {}",
            cfg.workload.name()
        )));
    }
    if cfg.clients == 0 || cfg.duration.is_zero() || cfg.read_percent > 100 {
        return Err(BenchError::Config(
            "--clients and --duration must be positive, --read-percent at most 100".into(),
        ));
    }
    let ids: Vec<NodeId> = cfg.replicas.keys().copied().collect();
    let verifier = load_verifier(&cfg.key_dir, &ids).map_err(config)?;
    let chooser = Arc::new(KeyChooser::new(cfg.keys, cfg.dist)?);
    let mut clients = Vec::with_capacity(cfg.clients);
    for i in 0..cfg.clients as NodeId {
        let id = FIRST_CLIENT + i;
        let signer = load_signer(&client_key(&cfg.key_dir, id), id).map_err(|e| {
            BenchError::Config(format!(
                "{e}; {} clients need `synod keygen --clients {}`",
                cfg.clients, cfg.clients
            ))
        })?;
        let client = BftClient::connect(
            signer,
            verifier.clone(),
            ClientOptions::new(cfg.replicas.clone()),
        )
        .map_err(config)?;
        clients.push(client);
    }
    let start = Instant::now();
    let measure_from = start + cfg.warmup;
    let end = measure_from + cfg.duration;
    let cpu = tokio::spawn(cpu_over(cfg.server_pids.clone(), measure_from, end));
    let value = Arc::new(value_of(cfg.value_size));
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            let (chooser, value, cfg) = (chooser.clone(), value.clone(), cfg.clone());
            tokio::spawn(async move {
                let seed = cfg.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                worker(
                    client,
                    StdRng::seed_from_u64(seed),
                    &chooser,
                    &value,
                    &cfg,
                    measure_from,
                    end,
                )
                .await
            })
        })
        .collect();
    let mut latency = new_histogram();
    let (mut ops, mut errors, mut samples) = (0, 0, Vec::new());
    for t in tasks {
        let out = t
            .await
            .map_err(|e| BenchError::Config(format!("a client task failed: {e}")))?;
        let _ = latency.add(&out.latency);
        ops += out.ops;
        errors += out.errors;
        samples.extend(out.samples);
    }
    samples.truncate(5);
    let secs = cfg.duration.as_secs_f64();
    let (server_cpu, own_cpu) = cpu.await.unwrap_or((None, None));
    let per_op = |d: Option<Duration>| {
        d.filter(|_| ops > 0)
            .map(|d| d.as_secs_f64() * 1e6 / ops as f64)
    };
    Ok(RunResult {
        system: cfg.system.clone(),
        endpoints: cfg
            .replicas
            .iter()
            .map(|(id, a)| format!("{id}={a}"))
            .collect(),
        workload: cfg.workload,
        clients: cfg.clients,
        conns: cfg.clients * cfg.replicas.len(),
        value_size: cfg.value_size,
        keys: cfg.keys,
        dist: cfg.dist,
        read_percent: cfg.read_percent,
        rate: None,
        warmup_s: cfg.warmup.as_secs_f64(),
        duration_s: secs,
        ops,
        errors,
        error_samples: samples,
        throughput: ops as f64 / secs,
        latency_ms: LatencySummary::of(&latency),
        service_ms: None,
        cas: None,
        term_change: None,
        server_cpu_us_per_op: per_op(server_cpu),
        loadgen_cpu_us_per_op: per_op(own_cpu),
        timeline: None,
    })
}

fn config(e: impl std::fmt::Display) -> BenchError {
    BenchError::Config(e.to_string())
}

async fn worker(
    mut client: BftClient,
    mut rng: StdRng,
    chooser: &KeyChooser,
    value: &[u8],
    cfg: &PbftRunConfig,
    measure_from: Instant,
    end: Instant,
) -> Out {
    let mut out = Out {
        latency: new_histogram(),
        ops: 0,
        errors: 0,
        samples: Vec::new(),
    };
    loop {
        let sent = Instant::now();
        if sent >= end {
            return out;
        }
        let key = key_name(chooser.next(&mut rng));
        let read = match cfg.workload {
            Workload::Get => true,
            Workload::Mix => rng.gen_range(0..100u8) < cfg.read_percent,
            _ => false,
        };
        let op = if read {
            KvOp::Get { key }
        } else {
            KvOp::Put {
                key,
                value: value.to_vec(),
            }
        };
        let r = client.execute(op).await;
        if sent < measure_from {
            continue;
        }
        match r {
            Ok(_) => {
                out.ops += 1;
                record(&mut out.latency, sent.elapsed());
            }
            Err(e) => {
                out.errors += 1;
                if out.samples.len() < 5 {
                    out.samples.push(e.to_string());
                }
            }
        }
    }
}
