//! `DurableState::apply`: what a restarted replica rebuilds from its records.

use synod_core::multi::{DurableState, Persist, Snapshot};

fn snapshot(slot: u64, tag: u8) -> Snapshot {
    Snapshot {
        slot,
        state: bytes::Bytes::from(vec![tag]),
        sessions: Vec::new(),
        membership: None,
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

#[test]
fn a_snapshot_record_written_before_membership_changes_still_reads_back() {
    // The bytes the previous format wrote for `Persist::Snapshot(Snapshot { slot: 7,
    // state: [0xAB], sessions: [] })`: variant 4, then the three fields.
    let old = [4u8, 7, 1, 0xAB, 0];
    let record: Persist<u64> = postcard::from_bytes(&old).expect("old record decodes");
    let mut d: DurableState<u64> = DurableState::default();
    d.apply(&record);
    let s = d.snapshot.expect("a snapshot");
    assert_eq!((s.slot, s.state.to_vec()), (7, vec![0xAB]));
    assert_eq!(s.membership, None, "the first configuration applies");
    // And what is written now reads back as written.
    let new = Persist::<u64>::Snapshot(snapshot(9, 1));
    let bytes = postcard::to_stdvec(&new).unwrap();
    assert_eq!(postcard::from_bytes::<Persist<u64>>(&bytes).unwrap(), new);
}
