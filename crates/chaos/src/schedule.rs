//! The nemesis's plan: which fault starts when and for how long, drawn from a seed.
//!
//! The plan is a pure function of (seed, nodes, kinds, duration), so a run can be repeated
//! with the same faults at the same offsets. Who leads is only known while the run goes on,
//! so "the leader" stays symbolic here and is resolved when the fault starts.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A family of faults, as named on the command line (`--faults kill,pause,partition,loss`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// kill -9 one node, the leader or a majority, and restart it later.
    Kill,
    /// SIGSTOP one node or the leader, and SIGCONT it later.
    Pause,
    /// Cut the network between nodes: halves, the leader alone, a bridge node, one way.
    Partition,
    /// Drop a share of the packets between nodes at random.
    Loss,
    /// An operator's `etcdctl move-leader` to another node: not a fault, but a leader change
    /// on purpose, mixed in with the faults.
    MoveLeader,
    /// An operator replaces a member as for a failed disk: `member remove`, wipe, `member
    /// add --learner` at the same address, start it empty to join, `member promote`.
    Member,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::Loss,
        FaultKind::MoveLeader,
        FaultKind::Member,
    ];

    /// Whether this kind needs a network per node (namespaces, so root).
    pub fn needs_namespaces(self) -> bool {
        matches!(self, FaultKind::Partition | FaultKind::Loss)
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::Loss => "loss",
            FaultKind::MoveLeader => "move-leader",
            FaultKind::Member => "member",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == s.trim())
            .ok_or_else(|| {
                format!("unknown fault '{s}': use kill, pause, partition, loss, move-leader")
            })
    }
}

/// Whom a process fault hits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Target {
    /// This node.
    Node(u64),
    /// Whoever leads when the fault starts.
    Leader,
    /// These nodes, a majority.
    Majority(Vec<u64>),
}

/// How the network between nodes is cut.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Split {
    /// These nodes (a minority) on one side, the rest on the other.
    Halves {
        /// The smaller side.
        minority: Vec<u64>,
    },
    /// Whoever leads when the fault starts, alone.
    LeaderAlone,
    /// `left` and `right` cannot talk; `bridge` talks to both.
    Bridge {
        /// The node that sees both sides.
        bridge: u64,
        /// One side.
        left: Vec<u64>,
        /// The other side.
        right: Vec<u64>,
    },
    /// `deaf` drop what `from` send them; `from` still hear `deaf`.
    OneWay {
        /// The nodes that hear nothing from `from`.
        deaf: Vec<u64>,
        /// The others.
        from: Vec<u64>,
    },
}

/// One fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Fault {
    /// kill -9, restarted when the fault ends.
    Kill(Target),
    /// SIGSTOP, SIGCONT when the fault ends.
    Pause(Target),
    /// A network partition between nodes.
    Partition(Split),
    /// Each node drops this percentage of the packets it receives from the other nodes.
    Loss {
        /// Percent dropped.
        percent: u32,
    },
    /// The leader is asked to hand leadership to `to` (the next node if `to` leads already).
    MoveLeader {
        /// The successor.
        to: u64,
    },
    /// The member at `node`'s place is removed, its disk wiped, and a new member added in its
    /// place, joined and promoted.
    Replace {
        /// Whose place.
        node: u64,
    },
}

impl Fault {
    /// The family it belongs to.
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Kill(_) => FaultKind::Kill,
            Fault::Pause(_) => FaultKind::Pause,
            Fault::Partition(_) => FaultKind::Partition,
            Fault::Loss { .. } => FaultKind::Loss,
            Fault::MoveLeader { .. } => FaultKind::MoveLeader,
            Fault::Replace { .. } => FaultKind::Member,
        }
    }

    /// A short name for counting faults by kind in the summary (`kill-leader`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Kill(Target::Node(_)) => "kill-node",
            Fault::Kill(Target::Leader) => "kill-leader",
            Fault::Kill(Target::Majority(_)) => "kill-majority",
            Fault::Pause(Target::Node(_)) => "pause-node",
            Fault::Pause(Target::Leader) => "pause-leader",
            Fault::Pause(Target::Majority(_)) => "pause-majority",
            Fault::Partition(Split::Halves { .. }) => "partition-halves",
            Fault::Partition(Split::LeaderAlone) => "partition-leader",
            Fault::Partition(Split::Bridge { .. }) => "partition-bridge",
            Fault::Partition(Split::OneWay { .. }) => "partition-one-way",
            Fault::Loss { .. } => "loss",
            Fault::MoveLeader { .. } => "move-leader",
            Fault::Replace { .. } => "replace-node",
        }
    }
}

/// One planned fault: it starts `at` after the workload starts and is healed `hold` later.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Start, from the beginning of the fault period.
    pub at: Duration,
    /// How long it lasts.
    pub hold: Duration,
    /// What it is.
    pub fault: Fault,
}

/// Time without faults before the first one, so the run starts from a healthy cluster.
const WARMUP: Duration = Duration::from_secs(1);
/// Fault lengths: long enough for elections (300-600 ms) and client timeouts to play out.
const HOLD_MS: (u64, u64) = (1_500, 5_000);
/// Quiet time between faults, so that the cluster recovers and heals are exercised too.
const GAP_MS: (u64, u64) = (1_000, 3_000);

/// Draws the faults of a run of `total` from `seed`, among `kinds`, over nodes `ids`.
///
/// Faults do not overlap: each is healed before the next starts, and all end by `total`.
/// Kinds that make no sense for the cluster size (partitions of fewer than 3 nodes) are left
/// out.
pub fn plan(seed: u64, ids: &[u64], kinds: &[FaultKind], total: Duration) -> Vec<Step> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let usable: Vec<FaultKind> = kinds
        .iter()
        .copied()
        .filter(|k| ids.len() >= 3 || *k != FaultKind::Partition)
        .filter(|_| !ids.is_empty())
        .collect();
    let mut steps = Vec::new();
    let mut at = WARMUP;
    while let Some(&kind) = usable.choose(&mut rng) {
        let hold = Duration::from_millis(rng.gen_range(HOLD_MS.0..=HOLD_MS.1));
        if at + hold > total {
            break;
        }
        let fault = draw(&mut rng, kind, ids);
        steps.push(Step { at, hold, fault });
        at += hold + Duration::from_millis(rng.gen_range(GAP_MS.0..=GAP_MS.1));
    }
    steps
}

/// `k` distinct nodes of `ids`, sorted.
fn pick(rng: &mut ChaCha8Rng, ids: &[u64], k: usize) -> Vec<u64> {
    let mut v: Vec<u64> = ids.choose_multiple(rng, k).copied().collect();
    v.sort_unstable();
    v
}

fn rest(ids: &[u64], taken: &[u64]) -> Vec<u64> {
    ids.iter().copied().filter(|i| !taken.contains(i)).collect()
}

fn draw(rng: &mut ChaCha8Rng, kind: FaultKind, ids: &[u64]) -> Fault {
    let n = ids.len();
    let majority = n / 2 + 1;
    let any = |rng: &mut ChaCha8Rng| ids[rng.gen_range(0..n)];
    match kind {
        FaultKind::Kill => match rng.gen_range(0..3) {
            0 => Fault::Kill(Target::Node(any(rng))),
            1 => Fault::Kill(Target::Leader),
            _ => Fault::Kill(Target::Majority(pick(rng, ids, majority))),
        },
        FaultKind::Pause => match rng.gen_range(0..2) {
            0 => Fault::Pause(Target::Node(any(rng))),
            _ => Fault::Pause(Target::Leader),
        },
        FaultKind::Partition => match rng.gen_range(0..4) {
            0 => Fault::Partition(Split::Halves {
                minority: pick(rng, ids, ((n - 1) / 2).max(1)),
            }),
            1 => Fault::Partition(Split::LeaderAlone),
            2 => {
                let mut order = ids.to_vec();
                order.shuffle(rng);
                let bridge = order[0];
                let (left, right) = order[1..].split_at((n - 1) / 2);
                let (mut left, mut right) = (left.to_vec(), right.to_vec());
                left.sort_unstable();
                right.sort_unstable();
                Fault::Partition(Split::Bridge {
                    bridge,
                    left,
                    right,
                })
            }
            _ => {
                let k = rng.gen_range(1..n);
                let deaf = pick(rng, ids, k);
                let from = rest(ids, &deaf);
                Fault::Partition(Split::OneWay { deaf, from })
            }
        },
        FaultKind::Loss => Fault::Loss {
            percent: rng.gen_range(10..=40),
        },
        FaultKind::MoveLeader => Fault::MoveLeader { to: any(rng) },
        FaultKind::Member => Fault::Replace { node: any(rng) },
    }
}

/// Which directed links `(to, from)` a partition cuts: `to` drops packets from `from`.
/// `leader` stands in for [`Split::LeaderAlone`].
pub fn cut_links(split: &Split, ids: &[u64], leader: u64) -> Vec<(u64, u64)> {
    let both = |a: &[u64], b: &[u64]| {
        let mut v = Vec::new();
        for &x in a {
            for &y in b {
                v.push((x, y));
                v.push((y, x));
            }
        }
        v
    };
    match split {
        Split::Halves { minority } => both(minority, &rest(ids, minority)),
        Split::LeaderAlone => both(&[leader], &rest(ids, &[leader])),
        Split::Bridge { left, right, .. } => both(left, right),
        Split::OneWay { deaf, from } => deaf
            .iter()
            .flat_map(|&d| from.iter().map(move |&f| (d, f)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: [u64; 3] = [1, 2, 3];

    #[test]
    fn same_seed_same_plan_other_seed_other_plan() {
        let a = plan(7, &IDS, &FaultKind::ALL, Duration::from_secs(60));
        let b = plan(7, &IDS, &FaultKind::ALL, Duration::from_secs(60));
        let c = plan(8, &IDS, &FaultKind::ALL, Duration::from_secs(60));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.len() >= 8, "60 s should hold several faults: {}", a.len());
    }

    #[test]
    fn faults_do_not_overlap_and_end_in_time() {
        for seed in 0..200 {
            let total = Duration::from_secs(30);
            let steps = plan(seed, &IDS, &FaultKind::ALL, total);
            for w in steps.windows(2) {
                assert!(w[0].at + w[0].hold < w[1].at, "seed {seed}: overlap");
            }
            for s in &steps {
                assert!(s.at + s.hold <= total, "seed {seed}: ends after the run");
            }
        }
    }

    #[test]
    fn only_the_kinds_asked_for() {
        for seed in 0..100 {
            let steps = plan(
                seed,
                &IDS,
                &[FaultKind::Kill, FaultKind::Pause],
                Duration::from_secs(40),
            );
            assert!(steps
                .iter()
                .all(|s| matches!(s.fault.kind(), FaultKind::Kill | FaultKind::Pause)));
        }
        assert!(plan(1, &IDS, &[], Duration::from_secs(40)).is_empty());
        assert!(plan(1, &[1, 2], &[FaultKind::Partition], Duration::from_secs(40)).is_empty());
    }

    #[test]
    fn every_fault_shape_is_drawn_and_well_formed() {
        let ids = [1, 2, 3, 4, 5];
        let mut names = std::collections::BTreeSet::new();
        for seed in 0..50 {
            for s in plan(seed, &ids, &FaultKind::ALL, Duration::from_secs(60)) {
                names.insert(s.fault.name());
                match &s.fault {
                    Fault::Kill(Target::Majority(m)) => assert_eq!(m.len(), 3),
                    Fault::Partition(Split::Halves { minority }) => assert_eq!(minority.len(), 2),
                    Fault::Partition(Split::Bridge {
                        bridge,
                        left,
                        right,
                    }) => {
                        assert!(!left.is_empty() && !right.is_empty());
                        assert!(!left.contains(bridge) && !right.contains(bridge));
                        assert_eq!(left.len() + right.len() + 1, ids.len());
                    }
                    Fault::Partition(Split::OneWay { deaf, from }) => {
                        assert!(!deaf.is_empty() && !from.is_empty());
                        assert_eq!(deaf.len() + from.len(), ids.len());
                    }
                    Fault::Loss { percent } => assert!((10..=40).contains(percent)),
                    Fault::MoveLeader { to } | Fault::Replace { node: to } => {
                        assert!(ids.contains(to))
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(names.len(), 12, "{names:?}");
    }

    #[test]
    fn links_cut_by_each_split() {
        let halves = Split::Halves { minority: vec![2] };
        let mut l = cut_links(&halves, &IDS, 1);
        l.sort_unstable();
        assert_eq!(l, vec![(1, 2), (2, 1), (2, 3), (3, 2)]);
        let mut l = cut_links(&Split::LeaderAlone, &IDS, 3);
        l.sort_unstable();
        assert_eq!(l, vec![(1, 3), (2, 3), (3, 1), (3, 2)]);
        let bridge = Split::Bridge {
            bridge: 2,
            left: vec![1],
            right: vec![3],
        };
        let mut l = cut_links(&bridge, &IDS, 1);
        l.sort_unstable();
        assert_eq!(l, vec![(1, 3), (3, 1)]);
        let one_way = Split::OneWay {
            deaf: vec![1],
            from: vec![2, 3],
        };
        assert_eq!(cut_links(&one_way, &IDS, 1), vec![(1, 2), (1, 3)]);
    }

    #[test]
    fn kinds_parse_by_name() {
        assert_eq!("loss".parse::<FaultKind>(), Ok(FaultKind::Loss));
        assert!("netem".parse::<FaultKind>().is_err());
    }
}
