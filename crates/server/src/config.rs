//! How a server is set up.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use synod_core::NodeId;

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its id (1, 2, ...).
    pub id: NodeId,
    /// Where its peers connect.
    pub peer_addr: SocketAddr,
    /// Where clients connect (for the member list).
    pub client_addr: Option<SocketAddr>,
}

/// A certificate, its key, and the CA that the other side's certificates must chain to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsFiles {
    /// PEM certificate chain, this node's first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA certificates the other side's certificates must chain to.
    pub trusted_ca: Option<PathBuf>,
    /// Require the other side to present a certificate from `trusted_ca` (always so between
    /// peers).
    pub client_cert_auth: bool,
}

/// Whom a leader probes to confirm it still leads before it serves linearizable reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadProbes {
    /// As many members as make a quorum with the leader, those that answered last (seed 002's
    /// thrifty sends): on 3 nodes one follower answers reads' probes, the other none. A member
    /// that stops answering costs reads one heartbeat before the leader turns to another.
    #[default]
    Quorum,
    /// Every member, and the first quorum of answers confirms: no heartbeat's wait when a
    /// member fails, at the price of every member's CPU.
    All,
}

/// Whom a leader sends each slot's `Accept` to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AcceptTargets {
    /// As many members as make a quorum with the leader, those that voted last (seed 002's
    /// thrifty sends); the others are sent each value once it is chosen and write it without
    /// a sync of their own: on 3 nodes one fdatasync fewer per write. A chosen member that
    /// stops voting costs writes one or two heartbeats before the leader turns to another.
    /// One client's puts: 0.82x the servers' CPU, 1.14x the puts/s (docs/performance.md).
    #[default]
    Quorum,
    /// Every member, and the first quorum of votes chooses the value: no heartbeat's wait
    /// when a member fails, at the price of every member's sync.
    All,
}

/// What the leader compacts on its own, as etcd's `--auto-compaction-mode` and
/// `--auto-compaction-retention` ([`AutoCompactionConfig::parse`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AutoCompactionConfig {
    /// Never (etcd's default).
    #[default]
    Off,
    /// Keep the newest this many revisions, looking every [`REVISION_LOOK`].
    Revisions(i64),
    /// Keep what was written in the last this long, looking every tenth of it.
    Periodic(Duration),
}

/// How often `revision` mode looks, as etcd's.
pub const REVISION_LOOK: Duration = Duration::from_secs(300);

/// A duration as operators write them: a number with units that `humantime` reads (`500ms`,
/// `90s`, `5m`, `1h30m`), or a bare number of seconds (`300`, `1.5`), as etcd's TTLs and most
/// tools' timeouts take one. Negative, non-finite or unreadable input is an error naming it.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.') {
        let secs: f64 = s
            .parse()
            .map_err(|_| format!("{s:?} is not a duration (try 10s, 500ms, 5m)"))?;
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("{s:?} is not a usable duration"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration (try 10s, 500ms, 5m): {e}"))
}

impl AutoCompactionConfig {
    /// From etcd's two flags: `mode` is `periodic` or `revision`; `retention` is a revision
    /// count in `revision` mode, and in `periodic` mode a duration (`30m`, `1h`, `90s`) or a
    /// bare number of hours, as etcd reads it. `0` turns auto-compaction off.
    pub fn parse(mode: &str, retention: &str) -> Result<Self, String> {
        let retention = retention.trim();
        match mode {
            "revision" => match retention.parse::<i64>() {
                Ok(0) => Ok(Self::Off),
                Ok(n) if n > 0 => Ok(Self::Revisions(n)),
                _ => Err(format!(
                    "--auto-compaction-retention {retention:?}: revision mode keeps a positive \
                     number of revisions (0: off)"
                )),
            },
            "periodic" => {
                let keep = match retention.parse::<u64>() {
                    Ok(hours) => Duration::from_secs(hours.saturating_mul(3600)),
                    Err(_) => humantime::parse_duration(retention).map_err(|e| {
                        format!(
                            "--auto-compaction-retention {retention:?}: periodic mode keeps a \
                             duration such as 30m or 1h, or a number of hours ({e})"
                        )
                    })?,
                };
                Ok(if keep.is_zero() {
                    Self::Off
                } else {
                    Self::Periodic(keep)
                })
            }
            _ => Err(format!(
                "--auto-compaction-mode {mode:?}: periodic or revision"
            )),
        }
    }

    /// In node ticks of `tick`.
    pub fn in_ticks(self, tick: Duration) -> synod_node::AutoCompaction {
        let ticks = |d: Duration| {
            let t = d.as_nanos() / tick.as_nanos().max(1);
            u64::try_from(t).unwrap_or(u64::MAX / 4).max(1)
        };
        match self {
            Self::Off => synod_node::AutoCompaction::Off,
            Self::Revisions(keep) => synod_node::AutoCompaction::Revisions {
                keep,
                every: ticks(REVISION_LOOK),
            },
            Self::Periodic(keep) => synod_node::AutoCompaction::Window { keep: ticks(keep) },
        }
    }
}

/// Which protocol orders the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerProtocol {
    /// Multi-Paxos: a leader orders commands (batched, pipelined); the default.
    #[default]
    Multi,
    /// Fast Multi-Paxos: every node proposes its clients' commands straight to the acceptors;
    /// collisions fall back to the leader.
    FastMulti,
}

impl std::fmt::Display for ServerProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServerProtocol::Multi => "multi",
            ServerProtocol::FastMulti => "fast-multi",
        })
    }
}

impl std::str::FromStr for ServerProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "multi" => Ok(ServerProtocol::Multi),
            "fast-multi" => Ok(ServerProtocol::FastMulti),
            other => Err(format!(
                "unknown protocol '{other}'; expected multi or fast-multi"
            )),
        }
    }
}

/// A server's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerConfig {
    /// This node.
    pub id: NodeId,
    /// Every member, this one included. For a cluster's first start, its first membership;
    /// with `join`, the members to ask for the cluster's state (a running cluster's members
    /// are in its replicated membership, which also gives the addresses of those added later).
    pub members: Vec<Member>,
    /// Join a running cluster that added this node with MemberAdd (etcd's
    /// `--initial-cluster-state existing`), instead of starting a new one. Ignored once this
    /// node has joined: its data directory then holds the membership.
    #[serde(default)]
    pub join: bool,
    /// Cheap Paxos: the members (ids) that are auxiliary acceptors. They vote only while a
    /// main member does not answer, and keep no store.
    #[serde(default)]
    pub auxiliaries: Vec<NodeId>,
    /// Run this node as an auxiliary acceptor (`synod server --auxiliary`): no client API, no
    /// store; its id must be among `auxiliaries` on the main members.
    #[serde(default)]
    pub auxiliary: bool,
    /// Cheap Paxos, on a main: batches of at least this many encoded bytes go to auxiliaries
    /// as their digest (`synod_core::multi::Config::aux_digest_min`); `None`: whole.
    #[serde(default)]
    pub aux_digest_min: Option<usize>,
    /// Whom a leader asks to confirm its leadership for linearizable reads.
    #[serde(default)]
    pub read_probes: ReadProbes,
    /// Whom a leader sends its accepts to.
    #[serde(default)]
    pub accept_targets: AcceptTargets,
    /// Ticks a leader may hold back the chosen values and commit points it owes followers
    /// that nobody waits on (`synod_core::multi::Config::notice_ticks`); 0: told at once.
    #[serde(default = "default_notice_ticks")]
    pub notice_ticks: u64,
    /// The gRPC (etcd API) listen address.
    pub client_addr: SocketAddr,
    /// The admin HTTP listen address (`/health`, `/status`, `/metrics`); none if unset.
    pub admin_addr: Option<SocketAddr>,
    /// Where the log lives.
    pub data_dir: PathBuf,
    /// Length of one protocol tick.
    pub tick: Duration,
    /// Heartbeat period, in ticks.
    pub heartbeat_ticks: u64,
    /// Election timeout range, in ticks.
    pub election_ticks: (u64, u64),
    /// Slots in flight at once.
    pub window: usize,
    /// Commands per slot at most.
    pub max_batch: usize,
    /// Largest client request accepted, in bytes.
    pub max_request_bytes: usize,
    /// Snapshot the store and compact the log after this many applied slots, and once the log
    /// has grown by as many bytes as the last checkpoint holds.
    pub snapshot_every: u64,
    /// How many times faster than the log grows a snapshot is encoded and saved (0: as fast
    /// as it can); see [`crate::pace`].
    #[serde(default = "default_snapshot_pace")]
    pub snapshot_pace: u32,
    /// Deliberately unsafe, for testing the tests: serve linearizable reads from this replica's
    /// local state without confirming leadership, so a deposed or partitioned node answers with
    /// stale data. Fault-injection runs must catch this; never set it otherwise.
    #[serde(default)]
    pub unsafe_local_reads: bool,
    /// How often an idle watcher that asked for progress notifications gets one.
    #[serde(default = "default_progress_interval")]
    pub watch_progress_interval: Duration,
    /// The protocol that orders the log.
    #[serde(default)]
    pub protocol: ServerProtocol,
    /// TLS for clients; plaintext if unset.
    #[serde(default)]
    pub client_tls: Option<TlsFiles>,
    /// Mutual TLS between members; plaintext if unset.
    #[serde(default)]
    pub peer_tls: Option<TlsFiles>,
    /// How long a simple auth token is valid.
    #[serde(default = "default_token_ttl")]
    pub auth_token_ttl: Duration,
    /// The kind of auth token, as etcd's `--auth-token`: `simple`, or
    /// `jwt,pub-key=FILE,priv-key=FILE,sign-method=ALG,ttl=5m`.
    #[serde(default = "default_token_kind")]
    pub auth_token: String,
    /// Bytes of checkpoint and log above which this member refuses writes and raises the
    /// NOSPACE alarm, as etcd's `--quota-backend-bytes` (0: no quota).
    #[serde(default)]
    pub quota_backend_bytes: u64,
    /// What the leader compacts on its own.
    #[serde(default)]
    pub auto_compaction: AutoCompactionConfig,
}

fn default_notice_ticks() -> u64 {
    1
}

fn default_snapshot_pace() -> u32 {
    crate::pace::DEFAULT_FACTOR
}

fn default_token_kind() -> String {
    "simple".into()
}

fn default_progress_interval() -> Duration {
    Duration::from_secs(600)
}

fn default_token_ttl() -> Duration {
    Duration::from_secs(300)
}

impl ServerConfig {
    /// This node's member entry.
    pub fn me(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.id == self.id)
    }

    /// The shortest lease TTL granted, in seconds: one and a half of the longest election
    /// timeout, rounded up (etcd's rule), so a lease outlives a leader change.
    pub fn min_lease_ttl(&self) -> i64 {
        let ms = self.tick.as_millis() as u64 * self.election_ticks.1 * 3 / 2;
        ms.div_ceil(1000).max(1) as i64
    }
}

/// The socket address in a member URL as etcd writes them (`http://127.0.0.1:2380`,
/// `https://10.0.0.2:2380`, or a bare `127.0.0.1:2380`). Peers are reached by IP address: a
/// host name is refused, as `--peers` refuses it.
pub fn url_addr(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    let hostport = rest.strip_suffix('/').unwrap_or(rest);
    hostport.parse().map_err(|_| {
        format!("'{url}' is not a URL of the form http://IP:PORT (peers are reached by IP address)")
    })
}

#[cfg(test)]
mod tests {
    use super::{parse_duration, url_addr};
    use std::time::Duration;

    #[test]
    fn durations_read_with_units_or_as_bare_seconds() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(".5"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("ten").is_err());
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("3x").is_err());
        assert!(parse_duration("1.2.3").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn member_urls_give_their_socket_addresses() {
        for (url, addr) in [
            ("http://127.0.0.1:2380", "127.0.0.1:2380"),
            ("https://10.0.0.2:12380/", "10.0.0.2:12380"),
            ("127.0.0.1:1", "127.0.0.1:1"),
            ("http://[::1]:2380", "[::1]:2380"),
        ] {
            assert_eq!(url_addr(url), Ok(addr.parse().unwrap()), "{url}");
        }
        for bad in [
            "http://node4:2380",
            "http://127.0.0.1",
            "",
            "ftp://1.2.3.4:5",
        ] {
            let e = url_addr(bad).unwrap_err();
            assert!(e.contains("http://IP:PORT"), "{bad}: {e}");
        }
    }
}
