//! `synod server`: one replica of a cluster.
//!
//! Configuration precedence: flags, then `SYNOD_*` environment variables, then a TOML file
//! (`--config`), then defaults.

use crate::Outcome;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use synod_server::config::{
    AcceptTargets, AutoCompactionConfig, Member, ReadProbes, ServerConfig, ServerProtocol, TlsFiles,
};

/// Options of `synod server`.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// This node's id: a positive number, listed in --peers.
    #[arg(long, env = "SYNOD_ID")]
    id: Option<u64>,
    /// Every member's peer address, this node included: `1=127.0.0.1:2380,2=127.0.0.1:22380,...`.
    #[arg(long, env = "SYNOD_PEERS")]
    peers: Option<String>,
    /// Every member's client address, for the member list: `1=127.0.0.1:2379,...` (optional).
    #[arg(long, env = "SYNOD_CLIENTS")]
    clients: Option<String>,
    /// Address for etcd API clients (gRPC). Default 127.0.0.1:2379.
    #[arg(long, env = "SYNOD_LISTEN_CLIENT")]
    listen_client: Option<SocketAddr>,
    /// Address for admin HTTP (/health, /status, /metrics). Default: the client port + 2
    /// (2381 for 2379), on the client address's host.
    #[arg(long, env = "SYNOD_LISTEN_ADMIN")]
    listen_admin: Option<SocketAddr>,
    /// Where the write-ahead log lives. Default ./synod-data/node<ID>.
    #[arg(long, env = "SYNOD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Length of a protocol tick in milliseconds. Default 10.
    #[arg(long, env = "SYNOD_TICK_MS")]
    tick_ms: Option<u64>,
    /// Leader heartbeat period, in ticks. Default 5.
    #[arg(long, env = "SYNOD_HEARTBEAT_TICKS")]
    heartbeat_ticks: Option<u64>,
    /// Election timeout: a follower that hears no leader for a random number of ticks between
    /// this and twice this stands for election. Default 30.
    #[arg(long, env = "SYNOD_ELECTION_TICKS")]
    election_ticks: Option<u64>,
    /// Slots in flight at once (pipelining). Default 2: while two slots are out, new commands
    /// queue up and share the next slot, which costs one round and one sync for all of them.
    /// Raise it when round trips are long (distant nodes).
    #[arg(long, env = "SYNOD_WINDOW")]
    window: Option<usize>,
    /// Client commands per slot at most (batching). Default 256.
    #[arg(long, env = "SYNOD_MAX_BATCH")]
    max_batch: Option<usize>,
    /// Largest client request accepted, in bytes. Default 1.5 MiB, as etcd.
    #[arg(long, env = "SYNOD_MAX_REQUEST_BYTES")]
    max_request_bytes: Option<usize>,
    /// Snapshot the store and compact the log after this many applied slots, and once the log
    /// has grown by as many bytes as the last snapshot holds (so a store that keeps all its
    /// history is not encoded ever more often for its size). Default 10000.
    #[arg(long, env = "SYNOD_SNAPSHOT_EVERY")]
    snapshot_every: Option<u64>,
    /// How many times faster than the log grows a snapshot is saved (and encoded at half
    /// that), so that its work is spread over about half the time until the next one is due
    /// rather than taken at once (at least 8 MiB/s; an `etcdctl defrag` is never paced).
    /// Lower: a smoother throughput, and more memory held while a snapshot lasts; 0: no
    /// pacing. Default 6.
    #[arg(long, env = "SYNOD_SNAPSHOT_PACE")]
    snapshot_pace: Option<u32>,
    /// How often an idle watcher that asked for progress notifications gets one, in
    /// milliseconds. Default 600000 (ten minutes, as etcd).
    #[arg(long, env = "SYNOD_WATCH_PROGRESS_MS")]
    watch_progress_ms: Option<u64>,
    /// The protocol that orders the log: `multi` (Multi-Paxos, the default) or `fast-multi`
    /// (Fast Multi-Paxos: each node proposes its clients' writes straight to the acceptors;
    /// experimental: no log compaction yet; see docs/protocol.md).
    /// `pbft` runs a Byzantine fault-tolerant replica instead: no etcd API; see
    /// docs/byzantine.md and `synod pbft --help`.
    #[arg(long, env = "SYNOD_PROTOCOL")]
    protocol: Option<ProtocolArg>,
    /// With --protocol pbft: the directory `synod keygen` wrote, holding this replica's
    /// `node<ID>.key` and every public key in `public.keys`. Default ./keys.
    #[arg(long, env = "SYNOD_KEYS")]
    keys: Option<PathBuf>,
    /// Testing only, with --protocol pbft: run a deliberately faulty replica that lies in this
    /// way (`equivocate`, `forge` or `silent`), to watch the correct ones outvote it.
    #[arg(long)]
    byzantine: Option<synod_bft::Byzantine>,
    /// TLS for clients: this server's PEM certificate (with --key-file). Clients then connect
    /// with https:// endpoints.
    #[arg(long, env = "SYNOD_CERT_FILE")]
    cert_file: Option<PathBuf>,
    /// TLS for clients: the PEM private key of --cert-file.
    #[arg(long, env = "SYNOD_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// PEM CA certificates that client certificates must chain to (with --client-cert-auth).
    #[arg(long, env = "SYNOD_TRUSTED_CA_FILE")]
    trusted_ca_file: Option<PathBuf>,
    /// Require every client to present a certificate from --trusted-ca-file.
    #[arg(long, env = "SYNOD_CLIENT_CERT_AUTH")]
    client_cert_auth: bool,
    /// Mutual TLS between members: this member's PEM certificate. It must name the member as
    /// the DNS subject alternative name node<ID>.synod (node2.synod for --id 2), and also serve
    /// as a client certificate; `synod cluster --tls` writes such certificates.
    #[arg(long, env = "SYNOD_PEER_CERT_FILE")]
    peer_cert_file: Option<PathBuf>,
    /// The PEM private key of --peer-cert-file.
    #[arg(long, env = "SYNOD_PEER_KEY_FILE")]
    peer_key_file: Option<PathBuf>,
    /// PEM CA certificates that every member's certificate must chain to.
    #[arg(long, env = "SYNOD_PEER_TRUSTED_CA_FILE")]
    peer_trusted_ca_file: Option<PathBuf>,
    /// Accepted for etcd compatibility: with peer TLS on, Synod always requires peers'
    /// certificates.
    #[arg(long, env = "SYNOD_PEER_CLIENT_CERT_AUTH")]
    peer_client_cert_auth: bool,
    /// Auth token kind, as etcd: `simple` (the default; tokens MACed with a secret the members
    /// agree on through the log, valid at every member), or
    /// `jwt,pub-key=FILE,priv-key=FILE,sign-method=ALG,ttl=5m` with ALG one of RS256/384/512,
    /// PS256/384/512, ES256/384, EdDSA, or HS256/384/512 (the secret in priv-key).
    #[arg(long, env = "SYNOD_AUTH_TOKEN")]
    auth_token: Option<String>,
    /// How long a simple auth token stays valid, in seconds. Default 300, as etcd (JWTs take
    /// theirs from the ttl option).
    #[arg(long, env = "SYNOD_AUTH_TOKEN_TTL")]
    auth_token_ttl: Option<u64>,
    /// Refuse writes and raise the NOSPACE alarm once this member's checkpoint and log hold
    /// more bytes than this, as etcd's flag; compact, `etcdctl defrag` and `etcdctl alarm
    /// disarm` to resume. 0 (the default): no quota.
    #[arg(long, env = "SYNOD_QUOTA_BACKEND_BYTES")]
    quota_backend_bytes: Option<u64>,
    /// How --auto-compaction-retention is read, as etcd's flag: `periodic` (the default) or
    /// `revision`.
    #[arg(long, env = "SYNOD_AUTO_COMPACTION_MODE", value_parser = ["periodic", "revision"])]
    auto_compaction_mode: Option<String>,
    /// Let the leader compact the key-value history on its own, as etcd's flag. In periodic
    /// mode, keep what was written in the last DURATION (`30m`, `1h`, or a bare number of
    /// hours), looking every tenth of it; in revision mode, keep the newest N revisions,
    /// looking every 5 minutes. 0 (the default): only when a client asks (`etcdctl compact`).
    #[arg(long, env = "SYNOD_AUTO_COMPACTION_RETENTION")]
    auto_compaction_retention: Option<String>,
    /// `new` (the default) starts a new cluster whose first members are --peers. `existing`
    /// joins a running cluster that added this node with `etcdctl member add` (whose output
    /// gives the id, in hex): --id is the id it was given, and --peers lists every current
    /// member, this node included (it asks them for the cluster's state, and dials the first
    /// members at these addresses). Only an empty data directory joins; once joined, the data
    /// directory holds the membership and the flag no longer matters.
    #[arg(long, env = "SYNOD_INITIAL_CLUSTER_STATE", value_parser = ["new", "existing"])]
    initial_cluster_state: Option<String>,
    /// Cheap Paxos: the ids (comma-separated) of the members in --peers that are auxiliary
    /// acceptors. They vote only while a main member does not answer; the mains alone must be
    /// a majority of all (2 mains + 1 auxiliary, 3 + 1, 3 + 2...). Give the same list to every
    /// member. A main silent for three election timeouts is made a learner through the log
    /// (the auxiliaries help choose that), and a voter again once it has caught up.
    #[arg(long, env = "SYNOD_AUXILIARIES", value_delimiter = ',')]
    auxiliaries: Vec<u64>,
    /// Run this node as an auxiliary acceptor: peers only (no client API, no store), a log of
    /// its promise and the few votes it holds. --id must be in the mains' --auxiliaries; the
    /// admin address serves /health and /metrics.
    #[arg(long, env = "SYNOD_AUXILIARY")]
    auxiliary: bool,
    /// Cheap Paxos, on the mains: a batch of commands whose encoding is at least this many
    /// bytes goes to an auxiliary as its SHA-256 (32 bytes) instead of whole; `off` sends every
    /// batch whole. An auxiliary never applies what it votes for, so the digest is all it needs.
    /// The price: a main that stands after the other main died, and hears a vote only as a
    /// digest, must wait for a main that holds the value (default: 16384).
    #[arg(long, env = "SYNOD_AUX_DIGEST_MIN", value_parser = parse_digest_min)]
    aux_digest_min: Option<DigestMin>,
    /// Whom the leader asks to confirm it still leads before it serves linearizable reads:
    /// `quorum` (the default) asks only as many members as make a quorum with it, those that
    /// answered last, which spares the others' CPU; a member that stops answering then costs
    /// reads one heartbeat. `all` asks every member and takes the first quorum of answers.
    #[arg(long, env = "SYNOD_READ_PROBES", value_enum)]
    read_probes: Option<ReadProbesArg>,
    /// Whom the leader sends each write's accept to: `quorum` (the default) sends it only to
    /// as many members as make a quorum with it, those that voted last, and the chosen value to
    /// the others, which write it without a sync of their own (one fdatasync fewer per write
    /// on 3 nodes); a member that stops voting then costs writes a heartbeat or two. `all`
    /// sends it to every member and takes the first quorum of votes.
    #[arg(long, env = "SYNOD_ACCEPT_TARGETS", value_enum)]
    accept_targets: Option<AcceptTargetsArg>,
    /// For how many ticks the leader may hold back, and then send together, what it owes a
    /// follower that nobody waits on: the values chosen without its vote, and a commit point
    /// no accept carried. A follower that forwarded a write or asked for a read index lately
    /// is told at once. Watchers at a follower hear of a write up to this many ticks later.
    /// 0: everyone at once. Default 1.
    #[arg(long, env = "SYNOD_NOTICE_TICKS")]
    notice_ticks: Option<u64>,
    /// A TOML file with any of the settings above (snake_case keys).
    #[arg(long, env = "SYNOD_CONFIG")]
    config: Option<PathBuf>,
    /// Print the resulting configuration and exit.
    #[arg(long)]
    print_config: bool,
    /// Threads of the async runtime that serves clients and peers and runs the node loop. 0
    /// (the default) runs them all on one thread, which cost about a quarter less CPU per put
    /// at 64 clients than a worker per core, side by side on 2 cores; raise it on machines with
    /// many cores and many clients. Under load the log syncs on a thread of its own either
    /// way (a lone small write at low load is synced by the node loop itself).
    #[arg(long, env = "SYNOD_RUNTIME_THREADS", default_value_t = 0)]
    runtime_threads: usize,
    /// Testing the tests only: serve linearizable reads locally without confirming leadership
    /// (stale reads under partitions). Fault-injection runs must report this build as broken.
    #[arg(long, hide = true, env = "SYNOD_UNSAFE_LOCAL_READS")]
    unsafe_local_reads: bool,
}

/// The settings a TOML file may hold.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    id: Option<u64>,
    peers: Option<String>,
    clients: Option<String>,
    listen_client: Option<SocketAddr>,
    listen_admin: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    tick_ms: Option<u64>,
    heartbeat_ticks: Option<u64>,
    election_ticks: Option<u64>,
    window: Option<usize>,
    max_batch: Option<usize>,
    max_request_bytes: Option<usize>,
    snapshot_every: Option<u64>,
    snapshot_pace: Option<u32>,
    watch_progress_ms: Option<u64>,
    protocol: Option<ServerProtocol>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    trusted_ca_file: Option<PathBuf>,
    client_cert_auth: Option<bool>,
    peer_cert_file: Option<PathBuf>,
    peer_key_file: Option<PathBuf>,
    peer_trusted_ca_file: Option<PathBuf>,
    peer_client_cert_auth: Option<bool>,
    auth_token: Option<String>,
    auth_token_ttl: Option<u64>,
    quota_backend_bytes: Option<u64>,
    auto_compaction_mode: Option<String>,
    auto_compaction_retention: Option<String>,
    initial_cluster_state: Option<String>,
    auxiliaries: Option<Vec<u64>>,
    auxiliary: Option<bool>,
    aux_digest_min: Option<FileDigestMin>,
    read_probes: Option<ReadProbes>,
    accept_targets: Option<AcceptTargets>,
    notice_ticks: Option<u64>,
}

/// `--read-probes`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ReadProbesArg {
    /// A quorum's worth of members, those that answered last.
    Quorum,
    /// Every member.
    All,
}

/// `--accept-targets`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum AcceptTargetsArg {
    /// A quorum's worth of members, those that voted last; the rest hear chosen values.
    Quorum,
    /// Every member.
    All,
}

/// `aux_digest_min` in a TOML file: a number of bytes, or the word `off`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
enum FileDigestMin {
    Bytes(usize),
    Word(String),
}

/// `--aux-digest-min`: a size in bytes, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DigestMin(Option<usize>);

/// Batches of 16 KiB or more go to auxiliaries as digests unless told otherwise: a 64 KiB
/// value always does, a batch of a few 256-byte puts does not (its bytes cost less than the
/// hash would save).
const DEFAULT_AUX_DIGEST_MIN: usize = 16 * 1024;

fn parse_digest_min(s: &str) -> Result<DigestMin, String> {
    match s.trim() {
        "off" | "none" => Ok(DigestMin(None)),
        n => n
            .parse()
            .map(|n| DigestMin(Some(n)))
            .map_err(|_| format!("'{s}' is not a size in bytes or 'off'")),
    }
}

/// TLS files from `--<prefix>cert-file` and friends: none, or a certificate with its key.
fn tls_files(
    prefix: &str,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
    client_cert_auth: bool,
) -> Result<Option<TlsFiles>> {
    match (cert, key) {
        (Some(cert), Some(key)) => {
            if client_cert_auth && ca.is_none() {
                bail!("--{prefix}client-cert-auth needs --{prefix}trusted-ca-file");
            }
            Ok(Some(TlsFiles {
                cert,
                key,
                trusted_ca: ca,
                client_cert_auth,
            }))
        }
        (None, None) if ca.is_none() && !client_cert_auth => Ok(None),
        (None, None) => bail!(
            "--{prefix}trusted-ca-file and --{prefix}client-cert-auth need --{prefix}cert-file and --{prefix}key-file"
        ),
        (Some(_), None) => bail!("--{prefix}cert-file needs --{prefix}key-file"),
        (None, Some(_)) => bail!("--{prefix}key-file needs --{prefix}cert-file"),
    }
}

fn parse_list(what: &str, s: &str) -> Result<Vec<(u64, SocketAddr)>> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (id, addr) = p
                .split_once('=')
                .with_context(|| format!("{what}: '{p}' is not ID=HOST:PORT"))?;
            let id: u64 = id
                .trim()
                .parse()
                .with_context(|| format!("{what}: '{id}' is not a node id"))?;
            let addr: SocketAddr = addr.trim().parse().with_context(|| {
                format!("{what}: '{addr}' is not HOST:PORT (use an IP address)")
            })?;
            Ok((id, addr))
        })
        .collect()
}

impl ServerArgs {
    /// Merges flags, environment, file and defaults into a server configuration.
    pub fn resolve(self) -> Result<(ServerConfig, bool)> {
        let file: FileConfig = match &self.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("{} is not a valid Synod config", p.display()))?
            }
            None => FileConfig::default(),
        };
        let id = self
            .id
            .or(file.id)
            .context("--id is required (or SYNOD_ID, or id in --config)")?;
        if id == 0 {
            bail!("--id must be a positive number");
        }
        let peers = self
            .peers
            .or(file.peers)
            .context("--peers is required: every member's ID=HOST:PORT")?;
        let peers = parse_list("--peers", &peers)?;
        let clients = match self.clients.or(file.clients) {
            Some(c) => parse_list("--clients", &c)?,
            None => Vec::new(),
        };
        let mut members: Vec<Member> = peers
            .iter()
            .map(|&(id, peer_addr)| Member {
                id,
                peer_addr,
                client_addr: clients.iter().find(|c| c.0 == id).map(|c| c.1),
            })
            .collect();
        members.sort_by_key(|m| m.id);
        if members.windows(2).any(|w| w[0].id == w[1].id) {
            bail!("--peers lists a node id twice");
        }
        if !members.iter().any(|m| m.id == id) {
            bail!("node {id} is not listed in --peers");
        }
        let listen_client = self
            .listen_client
            .or(file.listen_client)
            .or_else(|| {
                members
                    .iter()
                    .find(|m| m.id == id)
                    .and_then(|m| m.client_addr)
            })
            .unwrap_or_else(|| "127.0.0.1:2379".parse().expect("valid"));
        let election = self.election_ticks.or(file.election_ticks).unwrap_or(30);
        let heartbeat = self.heartbeat_ticks.or(file.heartbeat_ticks).unwrap_or(5);
        if election <= 2 * heartbeat {
            bail!("--election-ticks ({election}) must be more than twice --heartbeat-ticks ({heartbeat})");
        }
        let tick_ms = self.tick_ms.or(file.tick_ms).unwrap_or(10);
        if tick_ms == 0 {
            bail!("--tick-ms must be at least 1");
        }
        let admin = self.listen_admin.or(file.listen_admin).unwrap_or_else(|| {
            let mut a = listen_client;
            a.set_port(listen_client.port().wrapping_add(2));
            a
        });
        let client_tls = tls_files(
            "",
            self.cert_file.or(file.cert_file),
            self.key_file.or(file.key_file),
            self.trusted_ca_file.or(file.trusted_ca_file),
            self.client_cert_auth || file.client_cert_auth.unwrap_or(false),
        )?;
        let (peer_cert, peer_key, peer_ca) = (
            self.peer_cert_file.or(file.peer_cert_file),
            self.peer_key_file.or(file.peer_key_file),
            self.peer_trusted_ca_file.or(file.peer_trusted_ca_file),
        );
        if peer_ca.is_none() && (peer_cert.is_some() || peer_key.is_some()) {
            bail!(
                "peer TLS needs --peer-trusted-ca-file: members prove who they are with \
                 certificates from that CA"
            );
        }
        let peer_auth = peer_cert.is_some();
        let peer_tls = tls_files("peer-", peer_cert, peer_key, peer_ca, peer_auth)?;
        let peer_auth_asked =
            self.peer_client_cert_auth || file.peer_client_cert_auth.unwrap_or(false);
        if peer_auth_asked && peer_tls.is_none() {
            bail!("--peer-client-cert-auth needs --peer-cert-file, --peer-key-file and --peer-trusted-ca-file");
        }
        let join = match self
            .initial_cluster_state
            .or(file.initial_cluster_state)
            .as_deref()
        {
            None | Some("new") => false,
            Some("existing") => true,
            Some(other) => {
                bail!("initial_cluster_state: '{other}' is neither new nor existing")
            }
        };
        let auxiliaries = match self.auxiliaries.is_empty() {
            true => file.auxiliaries.unwrap_or_default(),
            false => self.auxiliaries,
        };
        let auxiliary = self.auxiliary || file.auxiliary.unwrap_or(false);
        let aux_digest_min = match (self.aux_digest_min, file.aux_digest_min) {
            (Some(d), _) => d,
            (None, Some(FileDigestMin::Bytes(n))) => DigestMin(Some(n)),
            (None, Some(FileDigestMin::Word(s))) => {
                parse_digest_min(&s).map_err(|e| anyhow::anyhow!("aux_digest_min: {e}"))?
            }
            (None, None) => DigestMin(Some(DEFAULT_AUX_DIGEST_MIN)),
        };
        if let Some(a) = auxiliaries
            .iter()
            .find(|a| !members.iter().any(|m| m.id == **a))
        {
            bail!("--auxiliaries: member {a} is not in --peers");
        }
        if auxiliary && !auxiliaries.is_empty() && !auxiliaries.contains(&id) {
            bail!("--auxiliary: this node ({id}) is not in --auxiliaries");
        }
        if !auxiliary && auxiliaries.contains(&id) {
            bail!("--auxiliaries lists this node ({id}): start it with --auxiliary");
        }
        let mains = members.len() - auxiliaries.len();
        if !auxiliaries.is_empty() && mains < members.len() / 2 + 1 {
            bail!(
                "--auxiliaries: the {mains} main member(s) alone must be a majority of all {} \
                 (add a main or drop an auxiliary)",
                members.len()
            );
        }
        if join && members.len() < 2 {
            bail!(
                "--initial-cluster-state existing: --peers must list, besides this node, the \
                 members to ask for the cluster's state"
            );
        }
        let cfg = ServerConfig {
            id,
            members,
            client_addr: listen_client,
            admin_addr: Some(admin),
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(format!("synod-data/node{id}"))),
            tick: Duration::from_millis(tick_ms),
            heartbeat_ticks: heartbeat,
            election_ticks: (election, election * 2),
            window: self.window.or(file.window).unwrap_or(2).max(1),
            max_batch: self.max_batch.or(file.max_batch).unwrap_or(256).max(1),
            max_request_bytes: self
                .max_request_bytes
                .or(file.max_request_bytes)
                .unwrap_or(1536 * 1024),
            snapshot_every: self
                .snapshot_every
                .or(file.snapshot_every)
                .unwrap_or(10_000)
                .max(1),
            snapshot_pace: self
                .snapshot_pace
                .or(file.snapshot_pace)
                .unwrap_or(synod_server::pace::DEFAULT_FACTOR),
            unsafe_local_reads: self.unsafe_local_reads,
            watch_progress_interval: Duration::from_millis(
                self.watch_progress_ms
                    .or(file.watch_progress_ms)
                    .unwrap_or(600_000)
                    .max(1),
            ),
            protocol: match self.protocol {
                Some(ProtocolArg::Paxos(p)) => Some(p),
                Some(ProtocolArg::Pbft) => bail!("--protocol pbft is not a Paxos server setting"),
                None => None,
            }
            .or(file.protocol)
            .unwrap_or_default(),
            join,
            auxiliaries,
            auxiliary,
            aux_digest_min: aux_digest_min.0,
            read_probes: match self.read_probes {
                Some(ReadProbesArg::Quorum) => ReadProbes::Quorum,
                Some(ReadProbesArg::All) => ReadProbes::All,
                None => file.read_probes.unwrap_or_default(),
            },
            accept_targets: match self.accept_targets {
                Some(AcceptTargetsArg::Quorum) => AcceptTargets::Quorum,
                Some(AcceptTargetsArg::All) => AcceptTargets::All,
                None => file.accept_targets.unwrap_or_default(),
            },
            notice_ticks: self.notice_ticks.or(file.notice_ticks).unwrap_or(1),
            client_tls,
            peer_tls,
            auth_token: self
                .auth_token
                .or(file.auth_token)
                .unwrap_or_else(|| "simple".into()),
            auth_token_ttl: Duration::from_secs(
                self.auth_token_ttl
                    .or(file.auth_token_ttl)
                    .unwrap_or(300)
                    .max(1),
            ),
            quota_backend_bytes: self
                .quota_backend_bytes
                .or(file.quota_backend_bytes)
                .unwrap_or(0),
            auto_compaction: AutoCompactionConfig::parse(
                self.auto_compaction_mode
                    .as_deref()
                    .or(file.auto_compaction_mode.as_deref())
                    .unwrap_or("periodic"),
                self.auto_compaction_retention
                    .as_deref()
                    .or(file.auto_compaction_retention.as_deref())
                    .unwrap_or("0"),
            )
            .map_err(anyhow::Error::msg)?,
        };
        if cfg.protocol == ServerProtocol::FastMulti && !cfg.auxiliaries.is_empty() {
            bail!("--auxiliaries: Cheap Paxos runs with --protocol multi");
        }
        if cfg.unsafe_local_reads {
            tracing::warn!(
                "--unsafe-local-reads: linearizable reads are served locally and may be stale"
            );
        }
        Ok((cfg, self.print_config))
    }
}

pub fn run(args: ServerArgs) -> Result<Outcome> {
    if matches!(args.protocol, Some(ProtocolArg::Pbft)) {
        return crate::pbft_cmd::serve(args.pbft_settings()?);
    }
    if args.keys.is_some() || args.byzantine.is_some() {
        bail!("--keys and --byzantine apply to --protocol pbft only");
    }
    let runtime_threads = args.runtime_threads;
    let (cfg, print) = args.resolve()?;
    if print {
        println!("{}", serde_json::to_string_pretty(&cfg)?);
        return Ok(Outcome::Ok);
    }
    // One thread serves gRPC, peers and the node loop unless asked otherwise: on this 2-core
    // machine a multi-thread runtime spent about a quarter more CPU per put, in wake-ups and
    // hand-offs between its workers (docs/performance.md). Under load the log syncs on its own
    // thread either way, and snapshots go to the blocking pool.
    let rt = crate::runtime::build(runtime_threads)?;
    rt.block_on(async move {
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("signal handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            tracing::info!("shutting down");
        };
        synod_server::server::run(cfg, shutdown).await
    })?;
    Ok(Outcome::Ok)
}

/// `--protocol`: one of the Paxos servers, or the PBFT replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolArg {
    /// A Multi-Paxos or Fast Multi-Paxos server (etcd API).
    Paxos(ServerProtocol),
    /// A PBFT replica (its own client protocol).
    Pbft,
}

impl std::str::FromStr for ProtocolArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pbft" => Ok(ProtocolArg::Pbft),
            _ => s
                .parse()
                .map(ProtocolArg::Paxos)
                .map_err(|e| format!("{e}, or pbft")),
        }
    }
}

impl ServerArgs {
    /// The settings of a PBFT replica, refusing the flags that do not apply to one.
    fn pbft_settings(self) -> Result<crate::pbft_cmd::ReplicaSettings> {
        let unused = [
            ("--clients", self.clients.is_some()),
            ("--listen-client", self.listen_client.is_some()),
            ("--listen-admin", self.listen_admin.is_some()),
            ("--heartbeat-ticks", self.heartbeat_ticks.is_some()),
            ("--election-ticks", self.election_ticks.is_some()),
            ("--window", self.window.is_some()),
            ("--max-batch", self.max_batch.is_some()),
            ("--snapshot-every", self.snapshot_every.is_some()),
            ("--snapshot-pace", self.snapshot_pace.is_some()),
            ("--cert-file", self.cert_file.is_some()),
            ("--peer-cert-file", self.peer_cert_file.is_some()),
            ("--auth-token", self.auth_token.is_some()),
            ("--auxiliaries", !self.auxiliaries.is_empty()),
            ("--auxiliary", self.auxiliary),
            ("--aux-digest-min", self.aux_digest_min.is_some()),
            ("--read-probes", self.read_probes.is_some()),
            ("--accept-targets", self.accept_targets.is_some()),
            ("--notice-ticks", self.notice_ticks.is_some()),
            (
                "--auto-compaction-mode",
                self.auto_compaction_mode.is_some(),
            ),
            (
                "--auto-compaction-retention",
                self.auto_compaction_retention.is_some(),
            ),
            ("--config", self.config.is_some()),
            ("--print-config", self.print_config),
            (
                "--initial-cluster-state",
                self.initial_cluster_state.is_some(),
            ),
            ("--runtime-threads", self.runtime_threads != 0),
        ];
        if let Some((flag, _)) = unused.iter().find(|(_, set)| *set) {
            bail!("{flag} does not apply to --protocol pbft (it takes --id, --peers, --keys, --data-dir, --tick-ms and --byzantine)");
        }
        let id = self.id.context("--id is required")?;
        let peers = self
            .peers
            .context("--peers is required: every replica, ID=HOST:PORT,...")?;
        let members =
            synod_bft::parse_members(&peers).map_err(|e| anyhow::anyhow!("--peers: {e}"))?;
        Ok(crate::pbft_cmd::ReplicaSettings {
            id,
            members,
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from(format!("synod-data/pbft{id}"))),
            keys: self.keys.unwrap_or_else(|| PathBuf::from("keys")),
            tick: Duration::from_millis(self.tick_ms.unwrap_or(10).max(1)),
            byzantine: self.byzantine,
        })
    }
}
