//! The log's boundaries: options at their limits, records that exactly fill a segment, what
//! waits in memory before a write, damage found while truncating, and a reset's limits.

mod common;

use common::*;
use synod_storage::record::{frame_len, MAX_INDEX, MAX_PAYLOAD_LEN};
use synod_storage::segment::SEGMENT_HEADER_LEN;
use synod_storage::{StorageError, Wal, WalOptions};

#[test]
fn options_are_accepted_up_to_their_limits_and_no_further() {
    let min = (SEGMENT_HEADER_LEN + frame_len(0)) as u64;
    let ok = |o: WalOptions| o.validate().is_ok();
    assert!(ok(small(min)), "a segment with room for one empty record");
    assert!(!ok(small(min - 1)));
    let max_record = |max_record_size| WalOptions {
        max_record_size,
        ..WalOptions::default()
    };
    assert!(ok(max_record(MAX_PAYLOAD_LEN)));
    assert!(!ok(max_record(MAX_PAYLOAD_LEN + 1)));
    let first = |first_index| WalOptions {
        first_index,
        ..WalOptions::default()
    };
    assert!(ok(first(1)) && ok(first(MAX_INDEX)));
    assert!(!ok(first(0)) && !ok(first(MAX_INDEX + 1)));
}

#[test]
fn a_record_that_exactly_fills_a_segment_stays_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(4096);
    let room = opts.segment_size as usize - SEGMENT_HEADER_LEN - frame_len(1);
    let len = (0..room).rev().find(|&n| frame_len(n) == room).unwrap();
    let (mut wal, _) = Wal::open(dir.path(), opts.clone()).unwrap();
    wal.append(b"1").unwrap();
    wal.append(&vec![7; len]).unwrap();
    wal.sync().unwrap();
    assert_eq!(segments(dir.path()).len(), 1, "it fits: no rollover");
    wal.append(b"next").unwrap();
    wal.sync().unwrap();
    assert_eq!(segments(dir.path()).len(), 2);
    drop(wal);
    let (_, rec) = Wal::open(dir.path(), opts).unwrap();
    assert_eq!(rec.records.len(), 3);
    assert_eq!(rec.records[1].data.len(), len);
}

#[test]
fn a_first_record_larger_than_a_segment_leaves_no_empty_segment_behind() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(4096);
    let (mut wal, _) = Wal::open(dir.path(), opts.clone()).unwrap();
    let big = vec![9; 10_000];
    assert_eq!(wal.append(&big).unwrap(), 1);
    wal.sync().unwrap();
    assert_eq!(
        segments(dir.path()).len(),
        1,
        "the empty first segment grows"
    );
    assert_eq!(wal.stats().segments_created, 1);
    drop(wal);
    let (_, rec) = Wal::open(dir.path(), opts).unwrap();
    assert_eq!(rec.records.len(), 1);
    assert_eq!(rec.records[0].data, big);
}

#[test]
fn appends_wait_in_memory_until_a_write_or_a_mebibyte() {
    // One write per batch is what group commit relies on; a huge batch must not sit in memory.
    let dir = tempfile::tempdir().unwrap();
    let opts = small(8 << 20);
    let in_file = || Wal::inspect(dir.path(), &opts).unwrap().records.len();
    let (mut wal, _) = Wal::open(dir.path(), opts.clone()).unwrap();
    wal.append(&[1; 100]).unwrap();
    assert_eq!(in_file(), 0, "a small append is buffered");
    wal.write_out().unwrap();
    assert_eq!(in_file(), 1);
    let record = vec![2; 64 << 10];
    for _ in 0..17 {
        wal.append(&record).unwrap();
    }
    // Sixteen 64 KiB frames pass a mebibyte (they carry headers) and are written then, after
    // the record already written out; the seventeenth waits.
    assert_eq!(
        in_file(),
        1 + 16,
        "a mebibyte of frames is written without a sync"
    );
}

/// A synced log of `n` records of 100 bytes in one segment of `segment_size` bytes, left
/// open, its segment, and the records' frames.
fn open_log(
    dir: &std::path::Path,
    segment_size: u64,
    n: usize,
) -> (Wal, std::path::PathBuf, Vec<(usize, usize)>) {
    let (mut wal, _) = Wal::open(dir, small(segment_size)).unwrap();
    for i in 0..n {
        wal.append(&[i as u8; 100]).unwrap();
    }
    wal.sync().unwrap();
    let segs = segments(dir);
    assert_eq!(segs.len(), 1, "the records fit one segment");
    (wal, segs[0].clone(), frame_ranges(&vec![100; n]))
}

/// Zeroes the segment's bytes from `from` on, as damage would while the log is open.
fn zero_from(seg: &std::path::Path, from: usize) {
    let mut bytes = std::fs::read(seg).unwrap();
    bytes[from..].fill(0);
    std::fs::write(seg, &bytes).unwrap();
}

#[test]
fn truncating_away_damaged_records_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, seg, frames) = open_log(dir.path(), 1 << 16, 10);
    zero_from(&seg, frames[8].0);
    wal.truncate_after(8).unwrap();
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), 1 << 16);
    drop(wal);
    let (_, rec) = Wal::open(dir.path(), small(1 << 16)).unwrap();
    assert_eq!(rec.records.len(), 8);
    assert!(rec.report.truncation.is_none(), "{}", rec.report);
}

#[test]
fn damage_before_the_cut_is_corruption_and_the_log_refuses_further_use() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, seg, frames) = open_log(dir.path(), 1 << 16, 10);
    zero_from(&seg, frames[2].0);
    let e = wal.truncate_after(8).unwrap_err();
    assert!(e.is_corruption(), "{e}");
    assert!(matches!(wal.append(b"x"), Err(StorageError::Poisoned(_))));
    assert!(matches!(wal.sync(), Err(StorageError::Poisoned(_))));
}

#[test]
fn truncation_zeroes_only_inside_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(4096);
    let (mut wal, seg, _) = open_log(dir.path(), opts.segment_size, 28);
    wal.truncate_after(20).unwrap();
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), opts.segment_size);
    drop(wal);
    let (_, rec) = Wal::open(dir.path(), opts).unwrap();
    assert_eq!(rec.records.len(), 20);
}

#[test]
fn reset_checks_its_index_and_counts_the_segment_it_makes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), small(4096)).unwrap();
    wal.append(b"old").unwrap();
    wal.sync().unwrap();
    for bad in [0, MAX_INDEX + 1] {
        assert!(matches!(
            wal.reset(bad),
            Err(StorageError::InvalidArgument(_))
        ));
    }
    // A refused reset changes nothing and does not poison the log.
    assert_eq!((wal.first_index(), wal.last_index()), (1, 1));
    wal.reset(MAX_INDEX).unwrap();
    assert_eq!(wal.first_index(), MAX_INDEX);
    assert_eq!(wal.durable_index(), MAX_INDEX - 1);
    assert_eq!(
        wal.stats().segments_created,
        2,
        "the first, and the reset's"
    );
    wal.reset(50).unwrap();
    assert_eq!((wal.durable_index(), wal.next_index()), (49, 50));
    assert_eq!(wal.stats().segments_created, 3);
}
