//! Snapshots: atomic saves, leftovers of a crash ignored, damage reported, and the whole store
//! (snapshot + log) recovered consistently.

mod common;

use common::*;
use std::path::Path;
use synod_storage::{open, Snapshot, SnapshotStore, StorageError, StorageOptions};

fn store_opts() -> StorageOptions {
    StorageOptions {
        wal: small(400),
        keep_snapshots: 2,
    }
}

#[test]
fn save_load_and_prune() {
    let dir = tempfile::tempdir().unwrap();
    let (store, removed) = SnapshotStore::open(dir.path(), 2).unwrap();
    assert!(removed.is_empty());
    assert!(store.load_latest().unwrap().snapshot.is_none());
    for i in 1..=4u64 {
        store.save(i * 10, b"ballot", &[i as u8; 100]).unwrap();
    }
    let loaded = store.load_latest().unwrap();
    assert_eq!(
        loaded.snapshot,
        Some(Snapshot {
            index: 40,
            meta: b"ballot".to_vec(),
            data: vec![4; 100]
        })
    );
    assert!(loaded.skipped.is_empty());
    let kept: Vec<u64> = store.list().unwrap().into_iter().map(|(i, _)| i).collect();
    assert_eq!(kept, vec![40, 30]);
}

#[test]
fn a_saved_file_holds_exactly_the_encoding_even_across_sync_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = SnapshotStore::open(dir.path(), 2).unwrap();
    // Larger than one 4 MiB piece, and not a multiple of it, so the checksum runs over pieces.
    let data: Vec<u8> = (0..9_000_000u32).map(|i| (i % 251) as u8).collect();
    let path = store.save(7, b"meta", &data).unwrap();
    let written = std::fs::read(&path).unwrap();
    assert!(written == synod_storage::encode_snapshot(7, b"meta", &data));
    let loaded = store.load_latest().unwrap().snapshot.unwrap();
    assert_eq!((loaded.index, loaded.meta.as_slice()), (7, &b"meta"[..]));
    assert!(loaded.data == data);
}

#[test]
fn a_leftover_temporary_file_is_ignored_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = SnapshotStore::open(dir.path(), 2).unwrap();
        store.save(10, b"", b"good state").unwrap();
    }
    // A crash in the middle of saving snapshot 20: a complete-looking but unrenamed file, and
    // a half-written one.
    let full = synod_storage::encode_snapshot(20, b"", b"newer state");
    std::fs::write(dir.path().join("00000000000000000020.snap.tmp"), &full).unwrap();
    std::fs::write(dir.path().join("00000000000000000030.snap.tmp"), &full[..9]).unwrap();
    let (store, removed) = SnapshotStore::open(dir.path(), 2).unwrap();
    assert_eq!(removed.len(), 2);
    let loaded = store.load_latest().unwrap();
    assert_eq!(loaded.snapshot.unwrap().data, b"good state");
    assert!(loaded.skipped.is_empty());
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn a_damaged_newest_snapshot_is_reported_and_the_previous_one_used() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = SnapshotStore::open(dir.path(), 2).unwrap();
    store.save(10, b"m", b"older").unwrap();
    let newest = store.save(20, b"m", b"newer").unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes[35] ^= 2;
    std::fs::write(&newest, &bytes).unwrap();
    let loaded = store.load_latest().unwrap();
    assert_eq!(loaded.snapshot.unwrap().index, 10);
    assert_eq!(loaded.skipped.len(), 1);
    assert_eq!(loaded.skipped[0].path, newest);
    assert!(
        loaded.skipped[0].reason.contains("checksum"),
        "{}",
        loaded.skipped[0].reason
    );
}

fn append(dir: &Path, records: &[&[u8]]) {
    let o = open(dir, &store_opts()).unwrap();
    let mut wal = o.wal;
    for r in records {
        wal.append(r).unwrap();
    }
    wal.sync().unwrap();
}

#[test]
fn the_store_replays_only_records_after_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(dir.path(), &store_opts()).unwrap();
    assert!(o.snapshot.is_none() && o.records.is_empty());
    let mut wal = o.wal;
    for i in 0..50u64 {
        wal.append(&payload(i)).unwrap();
    }
    wal.sync().unwrap();
    // Snapshot at 30, then compact the log below it.
    o.snapshots.save(30, b"", b"state@30").unwrap();
    let removed = wal.compact(31).unwrap();
    assert!(removed > 0);
    drop(wal);
    let o = open(dir.path(), &store_opts()).unwrap();
    assert_eq!(o.snapshot.unwrap().index, 30);
    let indexes: Vec<u64> = o.records.iter().map(|r| r.index).collect();
    assert_eq!(indexes, (31..=50).collect::<Vec<_>>());
    for r in &o.records {
        assert_eq!(r.data, payload(r.index - 1));
    }
    assert_eq!(o.report.snapshot_index, Some(30));
    assert!(o.report.log_restarted_at.is_none());
}

#[test]
fn a_log_ending_where_the_snapshot_ends_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), &[b"a", b"b"]);
    let (store, _) = SnapshotStore::open(dir.path().join("snap"), 2).unwrap();
    store.save(2, b"", b"state@2").unwrap();
    let o = open(dir.path(), &store_opts()).unwrap();
    // Nothing is missing, so the log is not started again: the next record follows it.
    assert_eq!(o.report.log_restarted_at, None);
    assert!(
        o.records.is_empty(),
        "records the snapshot covers are not replayed"
    );
    assert_eq!(o.wal.first_index(), 1);
    assert_eq!(o.wal.next_index(), 3);
}

#[test]
fn a_log_behind_the_snapshot_restarts_after_it() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), &[b"a", b"b"]);
    // A snapshot installed from a peer, far ahead of the local log.
    let (store, _) = SnapshotStore::open(dir.path().join("snap"), 2).unwrap();
    store.save(500, b"", b"peer state").unwrap();
    let o = open(dir.path(), &store_opts()).unwrap();
    assert_eq!(o.report.log_restarted_at, Some(501));
    assert!(o.records.is_empty());
    assert_eq!(o.wal.next_index(), 501);
    drop(o);
    append(dir.path(), &[b"c"]);
    let o = open(dir.path(), &store_opts()).unwrap();
    assert_eq!(o.records.len(), 1);
    assert_eq!(
        (o.records[0].index, &o.records[0].data[..]),
        (501, &b"c"[..])
    );
}

#[test]
fn a_gap_between_snapshot_and_log_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(dir.path(), &store_opts()).unwrap();
    let mut wal = o.wal;
    for i in 0..60u64 {
        wal.append(&payload(i)).unwrap();
    }
    wal.sync().unwrap();
    o.snapshots.save(10, b"", b"state@10").unwrap();
    let newest = o.snapshots.save(50, b"", b"state@50").unwrap();
    wal.compact(51).unwrap();
    let first = wal.first_index();
    assert!(first > 11);
    drop(wal);
    // The newest snapshot is lost to damage; the older one no longer meets the log.
    let mut bytes = std::fs::read(&newest).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&newest, &bytes).unwrap();
    match open(dir.path(), &store_opts()) {
        Err(StorageError::Corrupt { reason, .. }) => {
            assert!(reason.contains("missing"), "{reason}");
            assert!(reason.contains("11.."), "{reason}");
        }
        other => panic!("{:?}", other.map(|o| o.report)),
    }
}

#[test]
fn a_fresh_store_reports_nothing_odd() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(dir.path().join("new/store"), &store_opts()).unwrap();
    assert!(o.report.wal.created);
    assert!(o.report.snapshot_index.is_none());
    assert!(o.report.to_string().contains("no snapshot"), "{}", o.report);
}

#[test]
fn opening_a_directory_in_use_leaves_its_checkpoint_being_written_alone() {
    let dir = tempfile::tempdir().unwrap();
    let running = open(dir.path(), &store_opts()).unwrap();
    // The running member is writing a checkpoint under its temporary name.
    let tmp = dir
        .path()
        .join("snap")
        .join("00000000000000000009.snap.tmp");
    std::fs::write(&tmp, b"half a checkpoint").unwrap();
    let second = open(dir.path(), &store_opts());
    assert!(
        matches!(second, Err(StorageError::Locked { .. })),
        "{:?}",
        second.err()
    );
    assert!(
        tmp.exists(),
        "a second open removed the running member's file"
    );
    drop(running);
    // Once the member is gone, the leftover is removed as a crash's would be.
    let reopened = open(dir.path(), &store_opts()).unwrap();
    assert_eq!(reopened.report.removed_temp_snapshots, vec![tmp.clone()]);
    assert!(!tmp.exists());
}
