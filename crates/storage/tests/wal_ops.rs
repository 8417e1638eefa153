//! Segment rollover, truncation, compaction, reset, repair, and the log's edge cases.

mod common;

use common::*;
use synod_storage::record::MAX_INDEX;
use synod_storage::{Record, StorageError, TruncationKind, Wal, WalOptions};

fn reopen(dir: &std::path::Path, opts: &WalOptions) -> (Wal, Vec<Record>) {
    let (wal, rec) = Wal::open(dir, opts.clone()).unwrap();
    assert!(rec.report.truncation.is_none(), "{}", rec.report);
    (wal, rec.records)
}

/// A log of `n` records in 400-byte segments, written and synced, and its segment files, of
/// which there must be at least `at_least`.
fn segmented_log(
    dir: &std::path::Path,
    n: u64,
    at_least: usize,
) -> (WalOptions, Vec<Record>, Vec<std::path::PathBuf>) {
    let opts = small(400);
    let records = write_log(dir, &opts, n);
    let segs = segments(dir);
    assert!(segs.len() >= at_least, "only {} segments", segs.len());
    (opts, records, segs)
}

#[test]
fn a_new_log_starts_at_first_index_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        first_index: 100,
        ..small(4096)
    };
    let (mut wal, rec) = Wal::open(dir.path(), opts.clone()).unwrap();
    assert!(rec.report.created);
    assert!(rec.records.is_empty());
    assert_eq!(
        (wal.first_index(), wal.last_index(), wal.next_index()),
        (100, 99, 100)
    );
    assert_eq!(wal.append(b"").unwrap(), 100);
    assert_eq!(wal.append(b"second").unwrap(), 101);
    assert_eq!(wal.durable_index(), 99);
    assert_eq!(wal.sync().unwrap(), 101);
    assert_eq!(wal.durable_index(), 101);
    drop(wal);
    let (wal, records) = reopen(dir.path(), &opts);
    assert_eq!(
        records,
        vec![
            Record {
                index: 100,
                data: vec![]
            },
            Record {
                index: 101,
                data: b"second".to_vec()
            }
        ]
    );
    assert_eq!(wal.next_index(), 102);
}

#[test]
fn segments_roll_over_and_are_named_after_their_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(512);
    let records = write_log(dir.path(), &opts, 200);
    let segs = segments(dir.path());
    assert!(segs.len() > 10, "only {} segments", segs.len());
    for (i, seg) in segs.iter().enumerate() {
        assert_eq!(std::fs::metadata(seg).unwrap().len(), 512, "preallocated");
        if i > 0 {
            assert!(first_index_of(seg) > first_index_of(&segs[i - 1]));
        }
    }
    let (mut wal, got) = reopen(dir.path(), &opts);
    assert_eq!(got, records);
    assert_eq!(wal.segment_paths(), segs);
    // Appending continues where it left off, in the last segment.
    assert_eq!(wal.append(b"more").unwrap(), 201);
    wal.sync().unwrap();
    assert!(wal.stats().syncs >= 1);
}

#[test]
fn a_record_larger_than_a_segment_gets_a_segment_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(256);
    let (mut wal, _) = Wal::open(dir.path(), opts.clone()).unwrap();
    let big = vec![7u8; 1000];
    wal.append(b"small").unwrap();
    wal.append(&big).unwrap();
    wal.append(b"after").unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, got) = reopen(dir.path(), &opts);
    let data: Vec<&[u8]> = got.iter().map(|r| &r.data[..]).collect();
    assert_eq!(data, vec![&b"small"[..], &big[..], &b"after"[..]]);
    assert_eq!(segments(dir.path()).len(), 3);
}

#[test]
fn limits_and_options_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        max_record_size: 10,
        ..small(4096)
    };
    let (mut wal, _) = Wal::open(dir.path(), opts).unwrap();
    assert!(matches!(
        wal.append(&[0; 11]),
        Err(StorageError::RecordTooLarge { len: 11, max: 10 })
    ));
    // A refused record is not a failure of the log.
    assert_eq!(wal.append(&[0; 10]).unwrap(), 1);
    for bad in [
        WalOptions {
            segment_size: 10,
            ..WalOptions::default()
        },
        WalOptions {
            first_index: 0,
            ..WalOptions::default()
        },
        WalOptions {
            max_record_size: usize::MAX,
            ..WalOptions::default()
        },
    ] {
        assert!(matches!(
            Wal::open(dir.path(), bad),
            Err(StorageError::InvalidArgument(_))
        ));
    }
}

#[test]
fn truncate_after_within_the_last_segment_and_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(1 << 16);
    let mut records = write_log(dir.path(), &opts, 10);
    let (mut wal, _) = reopen(dir.path(), &opts);
    wal.truncate_after(5).unwrap();
    assert_eq!((wal.last_index(), wal.durable_index()), (5, 5));
    // The replacement has exactly the length of the record it replaces: if the old tail were
    // not erased, old record 7 would follow it intact and come back from the dead.
    let replacement = vec![0xEE; records[5].data.len()];
    assert_eq!(wal.append(&replacement).unwrap(), 6);
    wal.sync().unwrap();
    drop(wal);
    records.truncate(5);
    records.push(Record {
        index: 6,
        data: replacement,
    });
    let (_, got) = reopen(dir.path(), &opts);
    assert_eq!(got, records);
}

#[test]
fn truncate_after_across_segments_removes_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (opts, records, segs) = segmented_log(dir.path(), 60, 4);
    let (mut wal, _) = reopen(dir.path(), &opts);
    // Cut in the middle of the second segment.
    let second = first_index_of(&segs[1]);
    wal.truncate_after(second + 1).unwrap();
    assert_eq!(segments(dir.path()), segs[..2]);
    assert_eq!(wal.append(b"new").unwrap(), second + 2);
    wal.sync().unwrap();
    drop(wal);
    let (mut wal, got) = reopen(dir.path(), &opts);
    assert_eq!(
        got[..(second + 1) as usize],
        records[..(second + 1) as usize]
    );
    assert_eq!(got.len() as u64, second + 2);
    assert_eq!(got.last().unwrap().data, b"new");
    // Cut exactly at a segment boundary: the segment starting right after stays, emptied.
    let third_first = second + 2;
    wal.truncate_after(second - 1).unwrap();
    assert_eq!(wal.last_index(), second - 1);
    assert_eq!(segments(dir.path()), segs[..2]);
    assert_eq!(wal.append(b"x").unwrap(), second);
    wal.sync().unwrap();
    drop(wal);
    let (_, got) = reopen(dir.path(), &opts);
    assert_eq!(got.len() as u64, second);
    assert!(third_first > second);
}

#[test]
fn truncate_everything_then_start_again() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(300);
    write_log(dir.path(), &opts, 30);
    let (mut wal, _) = reopen(dir.path(), &opts);
    wal.truncate_after(0).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (1, 0));
    assert_eq!(segments(dir.path()).len(), 1);
    wal.truncate_after(0).unwrap(); // idempotent
    wal.truncate_after(7).unwrap(); // beyond the end: nothing to do
    assert_eq!(wal.append(b"fresh").unwrap(), 1);
    wal.sync().unwrap();
    drop(wal);
    let (_, got) = reopen(dir.path(), &opts);
    assert_eq!(
        got,
        vec![Record {
            index: 1,
            data: b"fresh".to_vec()
        }]
    );
}

#[test]
fn unsynced_records_can_be_truncated_too() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(4096);
    let (mut wal, _) = Wal::open(dir.path(), opts.clone()).unwrap();
    for i in 0..5u8 {
        wal.append(&[i; 3]).unwrap();
    }
    wal.sync().unwrap();
    for i in 5..9u8 {
        wal.append(&[i; 3]).unwrap();
    }
    wal.truncate_after(6).unwrap();
    assert_eq!(wal.durable_index(), 6, "truncation syncs what it keeps");
    drop(wal);
    let (_, got) = reopen(dir.path(), &opts);
    assert_eq!(got.len(), 6);
    assert_eq!(got[5].data, vec![5; 3]);
}

#[test]
fn segments_detached_by_a_compaction_are_removed_later_and_a_crash_before_is_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let (opts, records, segs) = segmented_log(dir.path(), 80, 5);
    let (mut wal, _) = reopen(dir.path(), &opts);
    let third = first_index_of(&segs[2]);
    let detached = wal.detach_below(third + 1).unwrap();
    assert_eq!(detached.len(), 2);
    assert_eq!(wal.first_index(), third);
    // The files stay until they are removed; the log goes on meanwhile.
    assert_eq!(segments(dir.path()), segs);
    assert_eq!(wal.append(b"z").unwrap(), 81);
    wal.sync().unwrap();
    assert!(wal.detach_below(third + 1).unwrap().is_empty());
    // A crash now: the detached segments are read back as the log's start again.
    drop(wal);
    let (mut wal, got) = reopen(dir.path(), &opts);
    assert_eq!(got.len(), 81);
    assert_eq!(got[..80], records[..]);
    let detached = wal.detach_below(third + 1).unwrap();
    Wal::remove_detached(&detached).unwrap();
    assert_eq!(segments(dir.path()), segs[2..]);
    drop(wal);
    let (wal, rec) = Wal::open(dir.path(), opts.clone()).unwrap();
    // Recovery read the segments left, and only them.
    assert_eq!(rec.report.segments, segs.len() - 2, "{}", rec.report);
    assert_eq!(wal.first_index(), third);
    assert_eq!(rec.records.last().unwrap().index, 81);
}

#[test]
fn compaction_removes_only_segments_wholly_below() {
    let dir = tempfile::tempdir().unwrap();
    let (opts, records, segs) = segmented_log(dir.path(), 80, 5);
    let (mut wal, _) = reopen(dir.path(), &opts);
    let third = first_index_of(&segs[2]);
    // Keeping from the third segment's second record: the first two segments go.
    assert_eq!(wal.compact(third + 1).unwrap(), 2);
    assert_eq!(segments(dir.path()), segs[2..]);
    assert_eq!(wal.first_index(), third);
    assert_eq!(wal.compact(third + 1).unwrap(), 0);
    // Below the start of the log, truncation is refused.
    assert!(matches!(
        wal.truncate_after(third - 2),
        Err(StorageError::InvalidArgument(_))
    ));
    // The log is still healthy after a refused request.
    assert_eq!(wal.append(b"z").unwrap(), 81);
    wal.sync().unwrap();
    // Compacting past the end never removes the segment being written.
    let n = wal.compact(u64::MAX).unwrap();
    assert_eq!(segments(dir.path()).len(), segs.len() - 2 - n);
    assert_eq!(segments(dir.path()).len(), 1);
    drop(wal);
    let (wal, got) = reopen(dir.path(), &opts);
    assert_eq!(got.last().unwrap().index, 81);
    assert_eq!(got[0].index, wal.first_index());
    assert_eq!(
        got[..got.len() - 1],
        records[(wal.first_index() - 1) as usize..]
    );
}

#[test]
fn reset_restarts_the_log_at_a_later_index() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(400);
    write_log(dir.path(), &opts, 40);
    let (mut wal, _) = reopen(dir.path(), &opts);
    wal.reset(1000).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (1000, 999));
    assert_eq!(segments(dir.path()).len(), 1);
    assert_eq!(wal.append(b"a").unwrap(), 1000);
    wal.sync().unwrap();
    drop(wal);
    let (_, got) = reopen(dir.path(), &opts);
    assert_eq!(
        got,
        vec![Record {
            index: 1000,
            data: b"a".to_vec()
        }]
    );
}

#[test]
fn leftover_temporary_files_are_removed_and_reported_other_files_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(400);
    let records = write_log(dir.path(), &opts, 5);
    std::fs::write(dir.path().join("next-segment.wal.tmp"), b"half a segment").unwrap();
    std::fs::write(dir.path().join("README"), b"not a segment").unwrap();
    let (_, rec) = Wal::open(dir.path(), opts).unwrap();
    assert_eq!(rec.records, records);
    assert_eq!(rec.report.removed_temp_files.len(), 1);
    assert!(!dir.path().join("next-segment.wal.tmp").exists());
    assert!(dir.path().join("README").exists());
}

#[test]
fn a_missing_middle_segment_is_corruption_and_repair_cuts_there() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(400);
    let records = write_log(dir.path(), &opts, 60);
    let segs = segments(dir.path());
    std::fs::remove_file(&segs[2]).unwrap();
    match Wal::open(dir.path(), opts.clone()) {
        Err(StorageError::Corrupt { path, reason, .. }) => {
            assert_eq!(path, segs[3]);
            assert!(reason.contains("missing"), "{reason}");
        }
        other => panic!("{:?}", other.map(|(_, r)| r.report)),
    }
    let repair = WalOptions {
        repair: true,
        ..opts.clone()
    };
    let (mut wal, rec) = Wal::open(dir.path(), repair).unwrap();
    let keep = first_index_of(&segs[2]) - 1;
    assert_eq!(rec.records, records[..keep as usize]);
    let t = rec.report.truncation.unwrap();
    assert_eq!(t.kind, TruncationKind::Repaired);
    assert_eq!(t.removed_segments, segs[3..]);
    assert_eq!(segments(dir.path()), segs[..2]);
    assert_eq!(wal.append(b"on").unwrap(), keep + 1);
    wal.sync().unwrap();
    drop(wal);
    let (_, got) = reopen(dir.path(), &opts);
    assert_eq!(got.len() as u64, keep + 1);
}

#[test]
fn a_renamed_segment_is_caught_by_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(400);
    write_log(dir.path(), &opts, 30);
    let segs = segments(dir.path());
    let last = segs.last().unwrap();
    let wrong = dir.path().join("00000000000000099999.wal");
    std::fs::rename(last, &wrong).unwrap();
    match Wal::open(dir.path(), opts) {
        Err(e @ StorageError::Corrupt { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("00000000000000099999.wal"), "{msg}");
            assert!(msg.contains("repair"), "the message says what to do: {msg}");
        }
        other => panic!("{:?}", other.map(|(_, r)| r.report)),
    }
}

#[test]
fn corruption_in_the_middle_refuses_to_open_and_repair_cuts_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(1 << 14);
    let records = write_log(dir.path(), &opts, 20);
    let seg = segments(dir.path()).pop().unwrap();
    let lens: Vec<usize> = records.iter().map(|r| r.data.len()).collect();
    let frames = frame_ranges(&lens);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[frames[9].0 + 20] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap();
    let err = Wal::open(dir.path(), opts.clone()).unwrap_err();
    match &err {
        StorageError::Corrupt { path, offset, .. } => {
            assert_eq!(path, &seg);
            assert_eq!(*offset as usize, frames[9].0);
        }
        other => panic!("{other}"),
    }
    assert!(err.is_corruption());
    // Refusing changed nothing on disk.
    assert_eq!(std::fs::read(&seg).unwrap(), bytes);
    let repair = WalOptions {
        repair: true,
        ..opts.clone()
    };
    let (wal, rec) = Wal::open(dir.path(), repair).unwrap();
    assert_eq!(rec.records, records[..9]);
    let t = rec.report.truncation.clone().unwrap();
    assert_eq!(
        (t.kind, t.offset as usize),
        (TruncationKind::Repaired, frames[9].0)
    );
    // Cut: from the damaged record to the end of the last one written.
    assert_eq!(t.bytes as usize, frames[19].1 - frames[9].0);
    assert!(
        rec.report.to_string().contains("REPAIRED"),
        "{}",
        rec.report
    );
    assert_eq!(wal.next_index(), 10);
    drop(wal);
    let (_, got) = reopen(dir.path(), &opts);
    assert_eq!(got, records[..9]);
}

#[test]
fn inspect_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(1 << 12);
    let records = write_log(dir.path(), &opts, 10);
    let seg = segments(dir.path()).pop().unwrap();
    let lens: Vec<usize> = records.iter().map(|r| r.data.len()).collect();
    let end = frame_ranges(&lens).last().unwrap().1;
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[end - 3] ^= 1; // tear the last record
    std::fs::write(&seg, &bytes).unwrap();
    let r = Wal::inspect(dir.path(), &opts).unwrap();
    assert_eq!(r.records, records[..9]);
    assert_eq!((r.report.first_index, r.report.last_index), (1, 9));
    assert_eq!(r.report.truncation.unwrap().kind, TruncationKind::TornTail);
    assert_eq!(std::fs::read(&seg).unwrap(), bytes);
}

#[test]
fn a_log_can_be_open_only_once_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(4096);
    let (wal, _) = Wal::open(dir.path(), opts.clone()).unwrap();
    match Wal::open(dir.path(), opts.clone()) {
        Err(StorageError::Locked { path }) => assert_eq!(path, dir.path().join("LOCK")),
        other => panic!("{:?}", other.map(|(_, r)| r.report)),
    }
    drop(wal);
    Wal::open(dir.path(), opts).unwrap();
}

#[test]
fn a_log_may_start_at_the_highest_index() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        first_index: MAX_INDEX,
        ..small(4096)
    };
    let (wal, rec) = Wal::open(dir.path(), opts.clone()).unwrap();
    assert!(rec.report.created);
    assert_eq!(wal.first_index(), MAX_INDEX);
    drop(wal);
    // Its segment's header names MAX_INDEX, which recovery must accept.
    let (wal, rec) = Wal::open(dir.path(), opts).unwrap();
    assert!(!rec.report.created, "{}", rec.report);
    assert_eq!(wal.first_index(), MAX_INDEX);
}

#[test]
fn a_short_last_segment_is_topped_up_to_full_size() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(4096);
    let (wal, _) = Wal::open(dir.path(), opts.clone()).unwrap();
    assert_eq!(
        wal.stats().segments_created,
        1,
        "a new log makes its first segment"
    );
    drop(wal);
    let empty = Wal::inspect(dir.path(), &opts).unwrap().report;
    assert_eq!((empty.first_index, empty.last_index), (1, 0), "{empty}");
    let records = write_log(dir.path(), &opts, 3);
    let seg = segments(dir.path()).pop().unwrap();
    // Cut by hand after the records (or written with a smaller segment size).
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(1000).unwrap();
    drop(f);
    let (wal, rec) = Wal::open(dir.path(), opts).unwrap();
    assert_eq!(rec.records, records);
    let r = &rec.report;
    assert_eq!((r.first_index, r.last_index, r.records), (1, 3, 3), "{r}");
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), 4096);
    assert_eq!(wal.stats().segments_created, 0, "reopened, none made");
}
