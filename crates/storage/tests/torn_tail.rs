//! A crash in the middle of an append leaves the last segment cut short, zeroed past some
//! point, or with garbage past some point. Recovery must return exactly the records whose
//! frames are fully intact, report the cut, and leave a log that appends cleanly.

mod common;

use common::*;
use std::path::Path;
use synod_storage::{Record, TruncationKind, Wal, WalOptions};

/// Three segments; the last holds several records.
fn pristine() -> (tempfile::TempDir, WalOptions, Vec<Record>) {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(768);
    let records = write_log(dir.path(), &opts, 40);
    assert!(
        segments(dir.path()).len() >= 3,
        "test needs several segments"
    );
    (dir, opts, records)
}

/// The records in the last segment and their frame ranges.
fn last_segment_layout(
    dir: &Path,
    records: &[Record],
) -> (std::path::PathBuf, usize, Vec<(usize, usize)>) {
    let last = segments(dir).pop().unwrap();
    let first = first_index_of(&last);
    let skip = records.iter().position(|r| r.index == first).unwrap();
    let lens: Vec<usize> = records[skip..].iter().map(|r| r.data.len()).collect();
    (last, skip, frame_ranges(&lens))
}

/// Damages a copy of the pristine log with `damage(bytes_of_last_segment, cut)`, opens it, and
/// checks the result against the records whose frames `damage` left byte-for-byte intact.
fn check_every_cut(damage: impl Fn(&mut Vec<u8>, usize)) {
    let (src, opts, records) = pristine();
    let (last, skip, frames) = last_segment_layout(src.path(), &records);
    let original = std::fs::read(&last).unwrap();
    let data_end = frames.last().unwrap().1;
    let mut cuts_with_report = 0;
    assert!(
        frames.len() >= 3,
        "test needs three records in the last segment"
    );
    let from = frames[frames.len() - 3].0;
    for cut in from..=data_end {
        let dir = tempfile::tempdir().unwrap();
        let name = last.file_name().unwrap().to_str().unwrap();
        let seg = dir.path().join(name);
        let mut bytes = original.clone();
        damage(&mut bytes, cut);
        copy_dir_replacing(src.path(), dir.path(), name, &bytes);

        // The oracle: leading frames of the last segment that are byte-for-byte unchanged.
        let intact = frames
            .iter()
            .take_while(|&&(s, e)| bytes.get(s..e) == Some(&original[s..e]))
            .count();
        assert!(
            intact >= frames.len() - 3,
            "the damage starts in the last three records"
        );
        let kept_end = if intact == 0 {
            frames[0].0
        } else {
            frames[intact - 1].1
        };
        let garbage = bytes
            .get(kept_end..)
            .is_some_and(|b| b.iter().any(|&x| x != 0));

        let (mut wal, rec) = Wal::open(dir.path(), opts.clone())
            .unwrap_or_else(|e| panic!("cut at {cut}: open failed: {e}"));
        assert_eq!(rec.records, records[..skip + intact], "cut at {cut}");
        // Zeroing the torn tail stays inside the segment, and a cut file is topped up.
        assert_eq!(
            std::fs::metadata(&seg).unwrap().len(),
            opts.segment_size,
            "cut at {cut}"
        );
        match &rec.report.truncation {
            Some(t) => {
                assert!(garbage, "cut at {cut}: reported a cut with nothing to cut");
                assert_eq!(t.kind, TruncationKind::TornTail, "cut at {cut}");
                assert_eq!(t.path, seg, "cut at {cut}");
                assert_eq!(t.offset as usize, kept_end, "cut at {cut}");
                cuts_with_report += 1;
            }
            None => assert!(!garbage, "cut at {cut}: garbage left unreported"),
        }

        // The cut is clean: a new record lands right after the kept ones, and survives.
        let index = wal.append(b"after recovery").unwrap();
        assert_eq!(index, records[skip + intact - 1].index + 1, "cut at {cut}");
        wal.sync().unwrap();
        drop(wal);
        let (_, again) = Wal::open(dir.path(), opts.clone()).unwrap();
        assert!(
            again.report.truncation.is_none(),
            "cut at {cut}: {}",
            again.report
        );
        assert_eq!(again.records.len(), skip + intact + 1);
        assert_eq!(again.records.last().unwrap().data, b"after recovery");
    }
    assert!(
        cuts_with_report > 0,
        "the damage never produced a torn tail"
    );
}

#[test]
fn file_cut_at_every_byte_of_the_last_records() {
    check_every_cut(|bytes, cut| bytes.truncate(cut));
}

#[test]
fn zeros_from_every_byte_of_the_last_records() {
    check_every_cut(|bytes, cut| bytes[cut..].fill(0));
}

#[test]
fn garbage_from_every_byte_of_the_last_records() {
    // A torn write: garbage (up to 40 bytes of it) where the write stopped, zeros after.
    check_every_cut(|bytes, cut| {
        bytes[cut..].fill(0);
        let mut x = cut as u64 | 1;
        let end = (cut + 40).min(bytes.len());
        for b in &mut bytes[cut..end] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    });
}

#[test]
fn a_torn_header_of_the_last_record_only_loses_that_record() {
    let (src, opts, records) = pristine();
    let (last, skip, frames) = last_segment_layout(src.path(), &records);
    let n = frames.len();
    // Only the first 6 bytes of the last frame made it (length field torn).
    let mut bytes = std::fs::read(&last).unwrap();
    bytes[frames[n - 1].0 + 6..].fill(0);
    std::fs::write(&last, &bytes).unwrap();
    let (_, rec) = Wal::open(src.path(), opts).unwrap();
    assert_eq!(rec.records, records[..skip + n - 1]);
    let t = rec.report.truncation.unwrap();
    assert_eq!(t.kind, TruncationKind::TornTail);
    assert_eq!(t.offset as usize, frames[n - 1].0);
    // Six bytes survived, cut to the frame alignment of 8.
    assert_eq!(t.bytes, 8);
}
