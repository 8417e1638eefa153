//! The simulated network: delays, loss, duplication, reordering and partitions.

use crate::faults::Faults;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use synod_core::NodeId;

/// Probabilities and delays of the network model, in ticks.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Normal one-way delay range `[lo, hi]`.
    pub delay: (u64, u64),
    /// Probability that a message is lost (when loss is on).
    pub loss: f64,
    /// Probability that a message is delivered twice (when dup is on).
    pub dup: f64,
    /// Probability that a message is held back by up to `reorder_delay` extra ticks.
    pub reorder: f64,
    /// The largest extra hold-back of a reordered message.
    pub reorder_delay: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            delay: (1, 4),
            loss: 0.05,
            dup: 0.03,
            reorder: 0.10,
            reorder_delay: 40,
        }
    }
}

/// Who cannot hear whom right now. A cut `(a, b)` drops messages from `a` to `b` only, so
/// one-way partitions are just unmatched cuts.
#[derive(Clone, Debug, Default)]
pub struct Partition {
    cuts: BTreeSet<(NodeId, NodeId)>,
    /// A short description for traces and reports.
    pub label: String,
    /// The node that hears both sides, when there is one: both sides may elect leaders
    /// through it, so it is where a forgotten promise does harm.
    pub bridge: Option<NodeId>,
}

impl Partition {
    /// No cuts.
    pub fn none() -> Self {
        Partition::default()
    }

    /// Splits `nodes` into `side` and the rest; nothing crosses in either direction.
    pub fn split(nodes: &[NodeId], side: &BTreeSet<NodeId>, label: String) -> Self {
        let mut cuts = BTreeSet::new();
        for &a in nodes {
            for &b in nodes {
                if side.contains(&a) != side.contains(&b) {
                    cuts.insert((a, b));
                }
            }
        }
        Partition {
            cuts,
            label,
            bridge: None,
        }
    }

    /// Messages from `from` to every node in `to` are dropped (but not the other way).
    pub fn one_way(from: NodeId, to: &[NodeId], label: String) -> Self {
        let cuts = to
            .iter()
            .filter(|&&t| t != from)
            .map(|&t| (from, t))
            .collect();
        Partition {
            cuts,
            label,
            bridge: None,
        }
    }

    /// The same cuts, except that `node` hears and is heard by everyone (a bridge).
    pub fn without_node(mut self, node: NodeId) -> Self {
        self.cuts.retain(|&(a, b)| a != node && b != node);
        self.bridge = Some(node);
        self
    }

    /// True when a message from `from` to `to` gets through.
    pub fn allows(&self, from: NodeId, to: NodeId) -> bool {
        !self.cuts.contains(&(from, to))
    }

    /// True when there are no cuts.
    pub fn is_whole(&self) -> bool {
        self.cuts.is_empty()
    }
}

/// What happens to one message sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Dropped (lost or cut off).
    Dropped(&'static str),
    /// Delivered after each of these delays (two for a duplicate).
    Delivered(Vec<u64>),
}

/// Decides each message's fate from the fault switches, the partition and the seeded RNG.
pub fn fate(
    rng: &mut ChaCha8Rng,
    cfg: &NetConfig,
    faults: Faults,
    partition: &Partition,
    from: NodeId,
    to: NodeId,
) -> Fate {
    if !partition.allows(from, to) {
        return Fate::Dropped("partition");
    }
    if faults.loss && rng.gen_bool(cfg.loss) {
        return Fate::Dropped("loss");
    }
    let one = |rng: &mut ChaCha8Rng| {
        let mut d = rng.gen_range(cfg.delay.0..=cfg.delay.1);
        if faults.reorder && rng.gen_bool(cfg.reorder) {
            d += rng.gen_range(1..=cfg.reorder_delay);
        }
        d
    };
    let mut delays = vec![one(rng)];
    if faults.dup && rng.gen_bool(cfg.dup) {
        delays.push(one(rng));
    }
    Fate::Delivered(delays)
}

/// Hands one message to the network: decides its fate and schedules its delivery (or
/// deliveries) as events built by `wrap`. Returns why it was dropped, if it was.
#[allow(clippy::too_many_arguments)]
pub fn transmit<M: Clone, E>(
    rng: &mut ChaCha8Rng,
    cfg: &NetConfig,
    faults: Faults,
    partition: &Partition,
    queue: &mut crate::queue::EventQueue<E>,
    now: u64,
    from: NodeId,
    to: NodeId,
    msg: M,
    wrap: impl Fn(M) -> E,
) -> Option<&'static str> {
    match fate(rng, cfg, faults, partition, from, to) {
        Fate::Dropped(reason) => Some(reason),
        Fate::Delivered(delays) => {
            let (last, rest) = delays.split_last().expect("at least one delay");
            for d in rest {
                queue.push(now + d, wrap(msg.clone()));
            }
            queue.push(now + last, wrap(msg));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn split_cuts_both_ways_and_one_way_only_one() {
        let nodes = [1, 2, 3];
        let side: BTreeSet<_> = [1].into_iter().collect();
        let p = Partition::split(&nodes, &side, "1 | 2 3".into());
        assert!(!p.allows(1, 2) && !p.allows(2, 1) && p.allows(2, 3));
        let p = Partition::one_way(1, &nodes, "1 ->x".into());
        assert!(!p.allows(1, 2) && p.allows(2, 1));
    }

    #[test]
    fn no_faults_means_every_message_arrives_in_the_delay_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let cfg = NetConfig::default();
        for _ in 0..1000 {
            match fate(&mut rng, &cfg, Faults::NONE, &Partition::none(), 1, 2) {
                Fate::Delivered(d) => {
                    assert_eq!(d.len(), 1);
                    assert!((1..=4).contains(&d[0]));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn all_faults_lose_duplicate_and_delay_some() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let cfg = NetConfig::default();
        let (mut lost, mut dups, mut late) = (0, 0, 0);
        for _ in 0..10_000 {
            match fate(&mut rng, &cfg, Faults::ALL, &Partition::none(), 1, 2) {
                Fate::Dropped(_) => lost += 1,
                Fate::Delivered(d) => {
                    dups += (d.len() == 2) as u32;
                    late += d.iter().filter(|&&x| x > 4).count();
                }
            }
        }
        assert!(
            lost > 300 && dups > 150 && late > 500,
            "{lost} {dups} {late}"
        );
    }
}
