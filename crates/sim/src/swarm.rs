//! Swarm testing: every seed draws its own mix and rates of faults.
//!
//! One fixed mix of faults explores one neighbourhood of behaviours: heavy loss hides the bugs
//! that need long quiet stretches, frequent crashes hide those that need a leader to live long.
//! Drawing, per seed, which of the allowed faults are on and how hard they hit spreads the runs
//! over many such neighbourhoods (Groce et al., "Swarm Testing", ISSTA 2012). The fault classes
//! a user allows (`--faults`) bound the draw: a class that is off stays off.

use crate::faults::Faults;
use crate::net::NetConfig;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// One seed's fault mix.
#[derive(Clone, Debug, Serialize)]
pub struct Swarm {
    /// Fault classes on in this run (a subset of those allowed).
    pub faults: Faults,
    /// Network rates.
    #[serde(skip)]
    pub net: NetConfig,
    /// Mean ticks between crashes.
    pub crash_every: u64,
    /// Mean ticks between partitions.
    pub partition_every: u64,
    /// Mean ticks between pauses.
    pub pause_every: u64,
    /// The longest pause.
    pub pause: u64,
    /// Probability that a node crashes right after handing records to its disk, before the
    /// sync (a crash aimed at the write/sync boundary).
    pub crash_at_write: f64,
    /// Probability that a node crashes right after a sync, before what waited for it is sent.
    pub crash_at_sync: f64,
    /// Probability that a node crashes right after it sends a promise or a vote (which must be
    /// durable by then).
    pub crash_after_vote: f64,
    /// Probability that a follower crashes right after it asks the leader for a read index,
    /// leaving the answer in flight to its next life.
    pub crash_after_ask: f64,
    /// Probability that the bridge of a bridged partition crashes right after it promises
    /// (a crash aimed where two leaders can each reach a quorum through one node).
    pub crash_bridge_promise: f64,
    /// Probability that a peer message reaching a crashed node waits for its restart, as the
    /// server's peer queues hold what they could not send until they reconnect.
    pub redeliver: f64,
    /// The longest wait after a restart before such held messages arrive (the reconnect).
    pub reconnect: u64,
    /// Probability that a client turns to a node that just restarted (a client balancing its
    /// calls over the endpoints that answer, as etcd's does).
    pub rejoin: f64,
    /// A node syncs within this many ticks of writing.
    pub sync_delay: u64,
    /// Probability that a sync stalls for up to `stall` ticks (a slow disk).
    pub stall_chance: f64,
    /// The longest stall.
    pub stall: u64,
    /// Snapshot once this many slots were applied since the last one.
    pub snapshot_every: u64,
    /// A crashed node restarts after a delay in this range.
    pub restart: (u64, u64),
    /// The leader's heartbeat interval.
    pub heartbeat: u64,
    /// The election timeout range.
    pub election: (u64, u64),
    /// Keys the clients share (fewer keys, more contention), at most the configured count.
    pub keys: usize,
    /// Share of operations that are reads.
    pub reads: f64,
    /// Share of reads served by ReadIndex rather than through the log.
    pub index_reads: f64,
    /// Longest pause between a client's operations.
    pub think: u64,
    /// Probability that a client sends an operation to a random node rather than the one it
    /// used last (reads at followers and deposed leaders).
    pub wander: f64,
    /// Mean ticks between operator actions (leader transfers, forced checkpoints, membership
    /// changes); 0: none.
    pub operate_every: u64,
    /// A membership change chosen in slot `i` governs from `i + alpha` (the window is 8).
    pub alpha: u64,
    /// Snapshots larger than this many bytes go in pieces: small here, so that transfers in
    /// pieces meet every fault.
    pub snapshot_chunk: usize,
}

impl Swarm {
    /// The fixed mix every seed used before swarm testing: all allowed faults at the default
    /// rates.
    pub fn fixed(allowed: Faults) -> Swarm {
        Swarm {
            faults: allowed,
            net: NetConfig::default(),
            crash_every: 350,
            partition_every: 350,
            pause_every: 350,
            pause: 200,
            crash_at_write: 0.0,
            crash_at_sync: 0.0,
            crash_after_vote: 0.0,
            crash_after_ask: 0.0,
            crash_bridge_promise: 0.0,
            redeliver: 0.0,
            reconnect: 1,
            rejoin: 0.0,
            sync_delay: 4,
            stall_chance: 0.0,
            stall: 0,
            snapshot_every: 40,
            restart: (20, 400),
            heartbeat: 10,
            election: (50, 100),
            keys: usize::MAX,
            reads: 0.4,
            index_reads: 0.6,
            think: 10,
            wander: 0.0,
            operate_every: 500,
            alpha: 16,
            snapshot_chunk: 1 << 20,
        }
    }

    /// Draws a mix from `allowed`, for clients sharing up to `keys` keys. At least one allowed
    /// class stays on.
    pub fn draw(rng: &mut ChaCha8Rng, allowed: Faults, keys: usize) -> Swarm {
        let mut f = Faults::NONE;
        let mut pick = |on: bool| on && rng.gen_bool(0.7);
        f.loss = pick(allowed.loss);
        f.dup = pick(allowed.dup);
        f.reorder = pick(allowed.reorder);
        f.partition = pick(allowed.partition);
        f.crash = pick(allowed.crash);
        f.pause = pick(allowed.pause);
        if !f.any() {
            f = allowed;
        }
        let net = NetConfig {
            delay: (1, rng.gen_range(2..=8)),
            loss: rng.gen_range(0.01..0.25),
            dup: rng.gen_range(0.01..0.10),
            reorder: rng.gen_range(0.02..0.30),
            reorder_delay: rng.gen_range(5..=80),
        };
        let crashes = f.crash;
        let mut swarm = Swarm {
            faults: f,
            net,
            crash_every: rng.gen_range(80..=800),
            partition_every: rng.gen_range(80..=800),
            pause_every: rng.gen_range(80..=800),
            pause: rng.gen_range(20..=400),
            crash_at_write: if crashes {
                rng.gen_range(0.0..0.02)
            } else {
                0.0
            },
            crash_at_sync: if crashes {
                rng.gen_range(0.0..0.02)
            } else {
                0.0
            },
            crash_after_vote: if crashes {
                rng.gen_range(0.0..0.02)
            } else {
                0.0
            },
            // Drawn at the end, so the draws above stay as they were for every seed.
            crash_after_ask: 0.0,
            crash_bridge_promise: 0.0,
            redeliver: 0.0,
            reconnect: 1,
            rejoin: 0.0,
            sync_delay: rng.gen_range(0..=12),
            stall_chance: rng.gen_range(0.0..0.05),
            stall: rng.gen_range(20..=200),
            snapshot_every: rng.gen_range(5..=120),
            restart: {
                let lo = rng.gen_range(2..=60);
                (lo, lo + rng.gen_range(10..=340))
            },
            heartbeat: rng.gen_range(3..=25),
            election: (0, 0),
            keys: rng.gen_range(1..=keys.max(1)),
            reads: rng.gen_range(0.2..0.8),
            index_reads: rng.gen_range(0.3..=1.0),
            think: rng.gen_range(0..=20),
            wander: rng.gen_range(0.0..0.6),
            operate_every: 0,
            alpha: 16,
            snapshot_chunk: 1 << 20,
        };
        // Elections wait at least two heartbeats (the replica's configuration demands it).
        let hb = swarm.heartbeat;
        let lo = 2 * hb + rng.gen_range(1..=3 * hb);
        swarm.election = (lo, lo + rng.gen_range(lo / 2..=2 * lo));
        if crashes {
            swarm.crash_after_ask = rng.gen_range(0.0..0.1);
            swarm.redeliver = rng.gen_range(0.0..1.0);
            // The server's peer writers back off up to a second between connection attempts.
            swarm.reconnect = rng.gen_range(1..=200);
            swarm.rejoin = rng.gen_range(0.0..0.5);
            swarm.crash_bridge_promise = rng.gen_range(0.0..1.0);
        }
        swarm.operate_every = rng.gen_range(100..=1000);
        // Small alphas cross configuration boundaries often; drawn last, so that the draws
        // above stay what they were.
        swarm.alpha = rng.gen_range(8..=32);
        // From a stream of its own, so that every draw made from `rng` after this one (by the
        // world) stays what it was for every seed.
        let mut side = rng.clone();
        side.set_stream(1);
        swarm.snapshot_chunk = [128, 512, 1 << 20][side.gen_range(0..3)];
        swarm
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn draws_stay_within_the_allowed_faults_and_vary() {
        let allowed: Faults = "loss,crash".parse().unwrap();
        let mut mixes = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let s = Swarm::draw(&mut rng, allowed, 3);
            assert!((1..=3).contains(&s.keys));
            assert!(!s.faults.dup && !s.faults.reorder && !s.faults.partition);
            assert!(s.faults.any());
            if !s.faults.crash {
                assert_eq!(s.crash_at_write, 0.0);
            }
            mixes.insert(s.faults.to_string());
        }
        assert_eq!(mixes.len(), 3, "loss, crash, and both: {mixes:?}");
    }
}
