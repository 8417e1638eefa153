//! `synod server --protocol pbft` (a PBFT replica) and `synod pbft` (its client).

use crate::Outcome;
use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use synod_bft::keys::{load_signer, load_verifier, node_key, FIRST_CLIENT};
use synod_bft::{BftClient, Byzantine, ClientOptions, Members, ReplicaOptions};
use synod_core::NodeId;

/// What a PBFT replica is started with.
pub struct ReplicaSettings {
    /// Its id.
    pub id: NodeId,
    /// Every replica.
    pub members: Members,
    /// Its log and snapshots.
    pub data_dir: PathBuf,
    /// The key directory.
    pub keys: PathBuf,
    /// The tick.
    pub tick: Duration,
    /// Whether it lies.
    pub byzantine: Option<Byzantine>,
}

/// Runs a PBFT replica until Ctrl-C or SIGTERM.
pub fn serve(s: ReplicaSettings) -> Result<Outcome> {
    let signer = load_signer(&node_key(&s.keys, s.id), s.id)?;
    let ids: Vec<NodeId> = s.members.keys().copied().collect();
    let verifier = load_verifier(&s.keys, &ids)?;
    let mut opts = ReplicaOptions::new(s.id, s.members, s.data_dir.clone(), signer, verifier);
    opts.tick = s.tick;
    opts.byzantine = s.byzantine;
    if let Some(mode) = s.byzantine {
        tracing::warn!(
            ?mode,
            "this replica LIES on purpose (--byzantine): for tests only"
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let replica = synod_bft::start(opts, None).await?;
        tracing::info!(
            id = s.id,
            addr = %replica.addr(),
            data_dir = %s.data_dir.display(),
            "pbft replica serving"
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot handle SIGTERM")?;
        let mut check = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = check.tick() => {
                    if !replica.is_running() {
                        // A disk error stopped it: say so and exit with it.
                        replica.wait().await?;
                        anyhow::bail!("the replica stopped");
                    }
                }
            }
        }
        tracing::info!("shutting down");
        replica.stop().await?;
        anyhow::Ok(())
    })?;
    Ok(Outcome::Ok)
}

/// `synod pbft`: put, get and delete against a PBFT cluster, each result agreed on by `f + 1`
/// replicas.
#[derive(Args, Debug)]
pub struct PbftArgs {
    /// Every replica: `1=127.0.0.1:7001,2=127.0.0.1:7002,...` (as the servers' --peers).
    #[arg(long, env = "SYNOD_PBFT_REPLICAS")]
    replicas: String,
    /// The directory `synod keygen` wrote.
    #[arg(long, default_value = "keys")]
    keys: PathBuf,
    /// This client's id (its key is `client<ID>.key`). One process per id at a time.
    #[arg(long, default_value_t = FIRST_CLIENT)]
    client_id: NodeId,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    #[command(subcommand)]
    op: PbftOp,
}

#[derive(Subcommand, Debug)]
enum PbftOp {
    /// Sets KEY to VALUE; prints OK.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Prints KEY's value (nothing if it is not set).
    Get {
        /// The key.
        key: String,
    },
    /// Removes KEY; prints how many keys were removed (0 or 1), as etcdctl does.
    Delete {
        /// The key.
        key: String,
    },
}

/// Runs one `synod pbft` operation.
pub fn run(a: PbftArgs) -> Result<Outcome> {
    let members = synod_bft::parse_members(&a.replicas).map_err(|e| anyhow!("--replicas: {e}"))?;
    let ids: Vec<NodeId> = members.keys().copied().collect();
    let signer = load_signer(
        &synod_bft::keys::client_key(&a.keys, a.client_id),
        a.client_id,
    )?;
    let verifier = load_verifier(&a.keys, &ids)?;
    let mut opts = ClientOptions::new(members);
    opts.timeout = Duration::from_millis(a.timeout_ms.max(1));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let out = rt.block_on(async move {
        let mut client = BftClient::connect(signer, verifier, opts)?;
        anyhow::Ok(match a.op {
            PbftOp::Put { key, value } => {
                client.put(key.as_bytes(), value.as_bytes()).await?;
                b"OK\n".to_vec()
            }
            PbftOp::Get { key } => match client.get(key.as_bytes()).await? {
                Some(mut v) => {
                    v.push(b'\n');
                    v
                }
                None => Vec::new(),
            },
            PbftOp::Delete { key } => {
                let n = u8::from(client.delete(key.as_bytes()).await?);
                format!("{n}\n").into_bytes()
            }
        })
    })?;
    std::io::stdout().write_all(&out)?;
    Ok(Outcome::Ok)
}
