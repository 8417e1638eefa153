//! A replica's configuration, with defaults and validation.

use super::membership::{MemberInfo, Membership, MembershipError, Role};
use crate::ballot::NodeId;
use crate::bugs::PlantedBug;
use crate::quorum::{QuorumError, QuorumSpec};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// How a Multi-Paxos replica is set up. Times are in ticks; the driver decides how long a tick is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// This replica.
    pub id: NodeId,
    /// The cluster's first voters, this one included. Later changes are chosen in the log
    /// ([`Membership`]); a snapshot carries the membership as of its slot. With `join`, the
    /// peers to ask for the cluster's state instead.
    pub members: Vec<NodeId>,
    /// This replica joins a running cluster that already added it as a member (etcd's
    /// `--initial-cluster-state existing`): it knows neither the cluster's first membership nor
    /// its changes, so it neither votes nor stands nor serves until a peer in `members` has
    /// sent it a snapshot, which carries the membership. A replica recovered with a snapshot
    /// has joined already and ignores this, as does one with any durable state.
    #[serde(default)]
    pub join: bool,
    /// Cheap Paxos: the cluster's first auxiliary acceptors (active), besides `members`. They
    /// run [`super::auxiliary::Auxiliary`], not a replica; the members alone must be a quorum.
    #[serde(default)]
    pub auxiliaries: Vec<NodeId>,
    /// Cheap Paxos: a batch whose encoding is at least this many bytes is sent to auxiliary
    /// acceptors as its digest ([`super::Value::for_auxiliary`]); `None` sends every value
    /// whole. A digest spares the auxiliary the bytes, at a price in availability: a candidate
    /// that hears such a vote only from the auxiliary must hear the value from a main (the one
    /// that proposed it, or another that voted for it) before that promise counts.
    pub aux_digest_min: Option<usize>,
    /// A leader probes for a linearizable read's confirmation only as many main members as
    /// make a quorum with it (those that answered the latest rounds), not every member: seed
    /// 002's "thrifty" sends, for the read path. The others hear a round still in flight at
    /// the next heartbeat.
    #[serde(default)]
    pub thrifty_reads: bool,
    /// A leader sends each `Accept` only to as many main members as make a quorum with it
    /// (those that voted latest), and pushes the chosen value to the others once it is chosen:
    /// seed 002's "thrifty" sends, for writes. A member left out writes what it learns without
    /// waiting for a sync of its own, so each write costs one sync fewer. A member chosen that
    /// stops voting costs a heartbeat or two: a slot in flight that long goes to everyone.
    /// Not used in a cluster with active auxiliaries (Cheap Paxos has its own rule for them).
    #[serde(default)]
    pub thrifty_writes: bool,
    /// A leader holds back for up to this many ticks what it would otherwise send a member the
    /// moment a slot is chosen: the value, to a member left out of its accept, and the commit
    /// point, when no accept carries it. Then it sends them together, one message of each per
    /// member ([`super::notices`]). A member that forwarded commands or asked for a read index
    /// lately is told at once. 0 tells everyone at once.
    #[serde(default)]
    pub notice_ticks: u64,
    /// Quorum sizes.
    pub quorum: QuorumSpec,
    /// A membership change chosen in slot `i` governs slots from `i + alpha` on. Fixed when the
    /// cluster is created; at least `window`, so that pipelining never waits on it.
    pub alpha: u64,
    /// A leader sends a heartbeat (and retransmits unacknowledged accepts) this often.
    pub heartbeat_ticks: u64,
    /// A follower that hears nothing from a leader for a random number of ticks in
    /// `[min, max)` (checked once per such period) stands for election.
    pub election_ticks: (u64, u64),
    /// Pipelining: at most this many slots proposed and not yet chosen.
    pub window: usize,
    /// Batching: at most this many client commands in one slot.
    pub max_batch: usize,
    /// At most this many chosen values in one catch-up message.
    pub catch_up_batch: usize,
    /// A snapshot whose state is larger than this many bytes is sent in pieces of this size,
    /// one in flight per transfer, so that no peer message grows with the store.
    #[serde(default = "default_snapshot_chunk")]
    pub snapshot_chunk: usize,
    /// A member with no stored snapshot that a joiner asks for one builds one of its applied
    /// state on the spot (`true`), or (`false`, for a driver that encodes snapshots off its
    /// loop) answers nothing and asks its driver for a snapshot
    /// ([`super::Replica::take_snapshot_wanted`]); the joiner's next request gets it.
    #[serde(default = "default_true")]
    pub build_for_joiners: bool,
    /// Seed for the randomized election timeouts (the core has no randomness of its own).
    pub seed: u64,
    /// A bug planted on purpose, for the simulator's own tests. Never set in production.
    pub bug: Option<PlantedBug>,
}

/// 1 MiB: a piece costs a round trip, which at this size is a small share of its transfer
/// time, and a heartbeat queued behind it on the same connection waits for little.
fn default_snapshot_chunk() -> usize {
    1 << 20
}

fn default_true() -> bool {
    true
}

/// Why a configuration was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The replica is not among the members.
    #[error("node {id} is not in the member list {members:?}")]
    NotAMember {
        /// This node.
        id: NodeId,
        /// The members given.
        members: Vec<NodeId>,
    },
    /// The quorum configuration is unsafe or malformed.
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    /// A timing or size setting is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The durable snapshot cannot be restored.
    #[error("the snapshot on disk cannot be restored: {0}")]
    BadSnapshot(String),
}

impl Config {
    /// Defaults for a replica `id` of `members`: majority quorums, heartbeat every 10 ticks,
    /// election after 50–100 quiet ticks, a window of 32 slots, batches of up to 256 commands,
    /// membership changes taking effect 64 slots after their own, snapshots sent in 1 MiB
    /// pieces.
    pub fn new(id: NodeId, members: Vec<NodeId>) -> Self {
        Config {
            id,
            members,
            quorum: QuorumSpec::Majority,
            alpha: 64,
            heartbeat_ticks: 10,
            election_ticks: (50, 100),
            window: 32,
            max_batch: 256,
            catch_up_batch: 256,
            snapshot_chunk: default_snapshot_chunk(),
            build_for_joiners: true,
            seed: id,
            bug: None,
            join: false,
            auxiliaries: Vec::new(),
            aux_digest_min: None,
            thrifty_reads: false,
            thrifty_writes: false,
            notice_ticks: 0,
        }
    }

    /// Checks the configuration and builds the cluster's first membership. A joining replica
    /// gets a stand-in over the peers it asks, which it never acts on: it waits for the real
    /// one in a snapshot.
    pub fn validate(&self) -> Result<Membership, ConfigError> {
        if self.join && !self.members.iter().any(|&m| m != self.id) {
            return Err(ConfigError::Invalid(format!(
                "node {} joins a running cluster, but no peer to ask was given",
                self.id
            )));
        }
        if !self.join && !self.members.contains(&self.id) {
            return Err(ConfigError::NotAMember {
                id: self.id,
                members: self.members.clone(),
            });
        }
        // A joiner's stand-in needs no particular quorums (it is never acted on), and the
        // cluster's own may not fit the peers it was given.
        let quorum = match self.join {
            true => QuorumSpec::Majority,
            false => self.quorum,
        };
        if self.auxiliaries.contains(&self.id) {
            return Err(ConfigError::Invalid(format!(
                "node {} is listed as an auxiliary: auxiliaries run no replica",
                self.id
            )));
        }
        let mains = self.members.iter().map(|&id| (id, Role::Voter));
        let auxes = (self.auxiliaries.iter()).map(|&id| (id, Role::Auxiliary { active: true }));
        let first = mains
            .chain(auxes)
            .map(|(id, r)| (id, r, MemberInfo::default()));
        let genesis = Membership::genesis(first, quorum, self.alpha).map_err(|e| match e {
            MembershipError::Quorum(q) => ConfigError::Quorum(q),
            other => ConfigError::Invalid(other.to_string()),
        })?;
        let (lo, hi) = self.election_ticks;
        if self.heartbeat_ticks == 0 {
            return Err(ConfigError::Invalid(
                "heartbeat_ticks must be at least 1".into(),
            ));
        }
        if lo <= 2 * self.heartbeat_ticks || hi <= lo {
            return Err(ConfigError::Invalid(format!(
                "election_ticks ({lo}, {hi}) must satisfy 2 * heartbeat_ticks ({}) < min < max, \
                 or followers would time out between heartbeats",
                self.heartbeat_ticks
            )));
        }
        for (name, v) in [
            ("window", self.window),
            ("max_batch", self.max_batch),
            ("catch_up_batch", self.catch_up_batch),
            ("snapshot_chunk", self.snapshot_chunk),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
            }
        }
        if (self.window as u64) > self.alpha {
            return Err(ConfigError::Invalid(format!(
                "window ({}) must not exceed alpha ({}): a leader proposes only in slots whose \
                 membership it knows",
                self.window, self.alpha
            )));
        }
        Ok(genesis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        assert!(Config::new(1, vec![1, 2, 3]).validate().is_ok());
    }

    #[test]
    fn errors_name_the_problem() {
        let c = Config::new(4, vec![1, 2, 3]);
        assert!(matches!(
            c.validate(),
            Err(ConfigError::NotAMember { id: 4, .. })
        ));

        let mut c = Config::new(1, vec![1, 2, 3, 4]);
        c.quorum = QuorumSpec::Flexible { q1: 2, q2: 2 };
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("must exceed N"), "{e}");

        let mut c = Config::new(1, vec![1]);
        c.election_ticks = (15, 30);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("election_ticks"));

        let mut c = Config::new(1, vec![1]);
        c.window = 65;
        assert!(c.validate().unwrap_err().to_string().contains("alpha"));
        c.alpha = 65;
        assert!(c.validate().is_ok(), "a window as large as alpha is fine");

        let mut c = Config::new(1, vec![1, 1]);
        c.alpha = 70;
        assert_eq!(
            c.validate().unwrap_err(),
            ConfigError::Quorum(QuorumError::DuplicateMember(1))
        );

        let mut c = Config::new(1, vec![1]);
        c.window = 0;
        assert_eq!(
            c.validate().unwrap_err(),
            ConfigError::Invalid("window must be at least 1".into())
        );
    }
}
