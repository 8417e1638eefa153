//! How the node layer accounts for checkpoints its driver reports saved.

mod common;

use common::{put, start, Driver, TICK};
use synod_node::{NodeConfig, NodeCore};

fn node() -> NodeCore {
    start(NodeConfig::new(1, vec![1, 2, 3], TICK), 0)
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

/// A one-member node that snapshots every ten slots, leading.
fn driven() -> Driver {
    let mut cfg = NodeConfig::new(1, vec![1], TICK);
    cfg.snapshot_every = 10;
    let mut d = Driver::new(cfg, 0);
    d.elect();
    d
}

/// Puts key `i`, and ends the turn.
fn put_turn(d: &mut Driver, i: u64) {
    d.n.propose(i, put(&format!("k{i}")));
    d.turn();
}

#[test]
fn snapshots_checkpoints_and_their_pacing() {
    let mut d = driven();
    // The first snapshot is asked for as soon as ten slots are applied, not before.
    let mut i = 0;
    while d.builds.is_empty() {
        assert!(d.n.replica().applied_index() <= 10, "no snapshot asked for");
        i += 1;
        put_turn(&mut d, i);
    }
    let (pending, _) = d.builds.pop().expect("asked");
    assert_eq!(pending.slot(), 10, "asked for at ten applied slots");
    // One at a time: none while it is being built.
    for _ in 0..15 {
        i += 1;
        put_turn(&mut d, i);
    }
    assert!(d.builds.is_empty(), "a second build while one runs");
    // Built: the log is compacted under it and a checkpoint is asked for.
    d.n.snapshot_built(pending.build());
    d.turn();
    assert_eq!(d.n.replica().log_start(), 10);
    assert_eq!(d.saves.len(), 1, "a checkpoint of the new snapshot");
    // None while that checkpoint is being saved, however far the log grows.
    for _ in 0..15 {
        i += 1;
        put_turn(&mut d, i);
    }
    assert!(d.builds.is_empty(), "a build while a checkpoint is saved");
    // Saved, 300 bytes large: the next snapshot waits for the log to grow as much.
    let covered = d.saves.pop().expect("asked");
    let at_save = d.disk;
    d.n.checkpointed(covered, 300, at_save);
    while d.builds.is_empty() {
        i += 1;
        put_turn(&mut d, i);
        assert!(
            i < 100,
            "a snapshot once the log grew by the checkpoint's size"
        );
    }
    let (_, seen) = d.builds.pop().expect("asked");
    assert_eq!(
        seen - at_save,
        300,
        "asked for as soon as the log grew by 300 bytes"
    );
    assert_eq!(
        d.wanted,
        [false, false],
        "nobody waits for a snapshot that fell due"
    );
}

#[test]
fn a_requested_checkpoint_waits_for_no_threshold_and_reports_idle_once_saved() {
    let mut d = driven();
    put_turn(&mut d, 1);
    put_turn(&mut d, 2);
    assert!(d.n.checkpoint_idle());
    assert!(d.builds.is_empty(), "two slots are below every threshold");
    d.n.request_checkpoint();
    assert!(!d.n.checkpoint_idle(), "asked for, not yet taken");
    assert!(d.n.checkpoint_wanted());
    d.turn();
    assert!(!d.n.checkpoint_wanted(), "taken");
    assert_eq!(d.wanted, [true], "the operator waits for it");
    let (pending, _) = d.builds.pop().expect("a snapshot asked for at once");
    assert_eq!(pending.slot(), d.n.replica().applied_index());
    assert!(!d.n.checkpoint_idle(), "being built");
    d.n.snapshot_built(pending.build());
    d.turn();
    let covered = d.saves.pop().expect("a checkpoint of it");
    assert!(!d.n.checkpoint_idle(), "being saved");
    d.n.checkpointed(covered, 50, d.disk);
    assert!(d.n.checkpoint_idle());
    // Nothing applied since: the log alone is folded into a checkpoint, nothing is encoded.
    d.n.request_checkpoint();
    d.turn();
    assert!(d.builds.is_empty(), "no new state to encode");
    let again = d.saves.pop().expect("the log folded all the same");
    assert!(again >= covered);
    assert!(!d.n.checkpoint_idle());
    d.n.checkpointed(again, 50, d.disk);
    assert!(d.n.checkpoint_idle());
}

#[test]
fn a_checkpoint_requested_while_one_is_built_follows_it() {
    let mut d = driven();
    let mut i = 0;
    while d.builds.is_empty() {
        i += 1;
        put_turn(&mut d, i);
        assert!(i < 100, "a snapshot at ten applied slots");
    }
    let (pending, _) = d.builds.pop().expect("asked");
    d.n.request_checkpoint();
    i += 1;
    put_turn(&mut d, i);
    assert!(d.builds.is_empty(), "one build at a time");
    d.n.snapshot_built(pending.build());
    d.turn();
    let covered = d.saves.pop().expect("saved");
    d.turn();
    assert!(
        d.builds.is_empty(),
        "none while the first checkpoint is saved"
    );
    d.n.checkpointed(covered, 50, d.disk);
    d.turn();
    let (next, _) = d.builds.pop().expect("the requested one follows");
    assert_eq!(next.slot(), d.n.replica().applied_index());
    assert!(!d.n.checkpoint_idle());
}

#[test]
fn each_snapshot_is_laid_on_the_one_before_from_the_first() {
    let mut d = driven();
    let mut i = 0;
    let mut states: Vec<bytes::Bytes> = Vec::new();
    while states.len() < 3 {
        while d.builds.is_empty() {
            i += 1;
            put_turn(&mut d, i);
            assert!(i < 500, "a snapshot every ten slots");
        }
        let (pending, _) = d.builds.pop().expect("asked");
        let snapshot = pending.build();
        states.push(snapshot.state.clone());
        d.n.snapshot_built(snapshot);
        d.turn();
        let covered = d.saves.pop().expect("a checkpoint of it");
        d.n.checkpointed(covered, 0, d.disk);
    }
    // Each one holds the one before as it was, then what was put since: the first was written
    // in the form the second could be laid on.
    for pair in states.windows(2) {
        assert!(pair[1].len() > pair[0].len());
        assert!(
            pair[1].starts_with(&pair[0]),
            "a snapshot encoded whole again"
        );
    }
}
