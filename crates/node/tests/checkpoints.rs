//! How the node layer accounts for checkpoints its driver reports saved.

use std::time::Duration;
use synod_node::{NodeConfig, NodeCore, Recovered};

fn node() -> NodeCore {
    let cfg = NodeConfig::new(1, vec![1, 2, 3], Duration::from_millis(10));
    let mut n = NodeCore::new(cfg, Recovered::default(), 1, 0).expect("valid config");
    n.start();
    n
}

#[test]
fn a_checkpoint_reported_after_a_newer_one_does_not_replace_its_size() {
    let mut n = node();
    // The server saves checkpoints on separate threads, so they can finish out of order.
    n.checkpointed(40, 9_000, 100);
    n.checkpointed(20, 300, 100);
    assert_eq!(
        n.log_bytes(),
        9_000,
        "the newer checkpoint is what a restart reads"
    );
    n.checkpointed(60, 500, 100);
    assert_eq!(n.log_bytes(), 500);
}

#[test]
fn the_log_grown_since_the_newest_checkpoint_counts() {
    let mut n = node();
    n.checkpointed(40, 9_000, 100);
    n.checkpointed(20, 300, 250);
    assert_eq!(n.log_bytes(), 9_000 + 150);
}
