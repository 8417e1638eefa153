//! `DurableState::apply`: what a restarted replica rebuilds from its records.

use synod_core::multi::{DurableState, Persist, Snapshot};

fn snapshot(slot: u64, tag: u8) -> Snapshot {
    Snapshot {
        slot,
        state: bytes::Bytes::from(vec![tag]),
        sessions: Vec::new(),
    }
}

#[test]
fn a_snapshot_moves_the_log_start_and_an_older_one_is_ignored() {
    let mut d: DurableState<u64> = DurableState::default();
    assert_eq!(d.log_start(), 0);
    d.apply(&Persist::Snapshot(snapshot(5, 1)));
    assert_eq!(d.log_start(), 5);
    assert_eq!(d.commit, 5);
    // An older snapshot, or the same one again, changes nothing.
    d.apply(&Persist::Snapshot(snapshot(3, 2)));
    assert_eq!(d.log_start(), 5);
    d.apply(&Persist::Snapshot(snapshot(5, 3)));
    assert_eq!(d.snapshot.as_ref().map(|s| s.state.to_vec()), Some(vec![1]));
    d.apply(&Persist::Snapshot(snapshot(9, 4)));
    assert_eq!(d.log_start(), 9);
    assert_eq!(d.commit, 9);
}
