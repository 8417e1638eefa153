//! Every single-bit flip anywhere in any segment file (headers, frames, and the zeroed space
//! after the last frame) is detected, and never yields wrong data.
//!
//! What is asserted, per flipped bit, for a log of three segments:
//! - in a segment header: opening fails with `Corrupt` naming that segment;
//! - in the frame of any record but the very last: opening fails with `Corrupt` naming that
//!   segment and the frame's start offset (an intact record follows, or the segment is not the
//!   last, so it cannot be a torn write);
//! - in the frame of the very last record: opening succeeds, reports a torn tail at that
//!   frame's offset, and returns every other record intact (a torn last write looks the same);
//! - in the zeroed space after the last frame of an earlier segment: `Corrupt` at that offset;
//! - in the zeroed space of the last segment: opening succeeds with every record, reporting a
//!   torn tail (garbage) at the end of the data.
//!
//! With repair enabled, every `Corrupt` case opens instead, returning exactly the records
//! before the damage and reporting a `Repaired` cut. Returned records are compared byte for
//! byte in every case. The exhaustive sweep runs through `Wal::inspect` (same analysis, no
//! writes); a sample of flips also goes through `Wal::open`, which fixes the files, and the
//! fixed log is reopened cleanly.

mod common;

use common::*;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use synod_storage::{Record, Recovered, StorageError, TruncationKind, Wal, WalOptions};

#[derive(Debug, PartialEq)]
enum Expect {
    /// Corrupt at this (path, offset); with repair, the first `keep` records remain.
    Corrupt(PathBuf, Option<u64>, usize),
    /// Opens, with a torn tail at this offset, and the first `keep` records.
    Torn(PathBuf, u64, usize),
}

struct Layout {
    path: PathBuf,
    len: usize,
    /// Index in `records` of this segment's first record.
    skip: usize,
    frames: Vec<(usize, usize)>,
}

fn layout(dir: &Path, records: &[Record]) -> Vec<Layout> {
    let segs = segments(dir);
    segs.iter()
        .enumerate()
        .map(|(i, path)| {
            let first = first_index_of(path);
            let skip = records.iter().position(|r| r.index == first).unwrap();
            let end = segs.get(i + 1).map_or(records.len(), |next| {
                records
                    .iter()
                    .position(|r| r.index == first_index_of(next))
                    .unwrap()
            });
            let lens: Vec<usize> = records[skip..end].iter().map(|r| r.data.len()).collect();
            Layout {
                path: path.clone(),
                len: std::fs::metadata(path).unwrap().len() as usize,
                skip,
                frames: frame_ranges(&lens),
            }
        })
        .collect()
}

fn expect(segs: &[Layout], s: usize, byte: usize, total: usize) -> Expect {
    let seg = &segs[s];
    let last_segment = s + 1 == segs.len();
    if byte < 32 {
        return Expect::Corrupt(seg.path.clone(), None, seg.skip);
    }
    if let Some(k) = seg.frames.iter().position(|&(a, b)| (a..b).contains(&byte)) {
        let start = seg.frames[k].0 as u64;
        return if seg.skip + k + 1 == total {
            Expect::Torn(seg.path.clone(), start, total - 1)
        } else {
            Expect::Corrupt(seg.path.clone(), Some(start), seg.skip + k)
        };
    }
    let data_end = seg.frames.last().map_or(32, |f| f.1) as u64;
    let records_through_here = seg.skip + seg.frames.len();
    if last_segment {
        Expect::Torn(seg.path.clone(), data_end, total)
    } else {
        Expect::Corrupt(seg.path.clone(), Some(data_end), records_through_here)
    }
}

fn check(
    what: &str,
    got: Result<Recovered, StorageError>,
    want: &Expect,
    repair: bool,
    records: &[Record],
) {
    match (want, got) {
        (
            Expect::Corrupt(path, offset, _),
            Err(StorageError::Corrupt {
                path: p, offset: o, ..
            }),
        ) if !repair => {
            assert_eq!(&p, path, "{what}");
            if let Some(offset) = offset {
                assert_eq!(o, *offset, "{what}");
            }
        }
        (Expect::Corrupt(path, _, keep), Ok(r)) if repair => {
            assert_eq!(r.records, records[..*keep], "{what}");
            let t = r.report.truncation.expect(what);
            assert_eq!(t.kind, TruncationKind::Repaired, "{what}");
            assert_eq!(&t.path, path, "{what}");
        }
        (Expect::Torn(path, offset, keep), Ok(r)) => {
            assert_eq!(r.records, records[..*keep], "{what}");
            let t = r.report.truncation.expect(what);
            assert_eq!(t.kind, TruncationKind::TornTail, "{what}");
            assert_eq!((&t.path, t.offset), (path, *offset), "{what}");
        }
        (want, got) => panic!("{what}: expected {want:?}, got {:?}", got.map(|r| r.report)),
    }
}

fn pristine() -> (tempfile::TempDir, WalOptions, Vec<Record>) {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(384);
    let records = write_log(dir.path(), &opts, 20);
    assert_eq!(
        segments(dir.path()).len(),
        3,
        "the test wants three segments"
    );
    (dir, opts, records)
}

#[test]
fn every_bit_flip_is_detected_or_is_a_torn_last_record() {
    let (dir, opts, records) = pristine();
    let segs = layout(dir.path(), &records);
    let repair = WalOptions {
        repair: true,
        ..opts.clone()
    };
    let mut cases = 0;
    for (s, seg) in segs.iter().enumerate() {
        let original = std::fs::read(&seg.path).unwrap();
        assert_eq!(original.len(), seg.len);
        // Flip in place (pwrite): rewriting whole files would make ext4 flush on every close.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&seg.path)
            .unwrap();
        for bit in 0..seg.len * 8 {
            let byte = original[bit / 8] ^ (1 << (bit % 8));
            file.write_all_at(&[byte], (bit / 8) as u64).unwrap();
            let want = expect(&segs, s, bit / 8, records.len());
            let what = format!("segment {s} bit {bit}");
            check(
                &what,
                Wal::inspect(dir.path(), &opts),
                &want,
                false,
                &records,
            );
            check(
                &what,
                Wal::inspect(dir.path(), &repair),
                &want,
                true,
                &records,
            );
            file.write_all_at(&original[bit / 8..bit / 8 + 1], (bit / 8) as u64)
                .unwrap();
            cases += 1;
        }
    }
    assert_eq!(cases, 3 * 384 * 8);
    // Untouched, it is all there.
    assert_eq!(Wal::inspect(dir.path(), &opts).unwrap().records, records);
}

#[test]
fn sampled_bit_flips_through_open_and_repair() {
    let (src, opts, records) = pristine();
    let segs = layout(src.path(), &records);
    for (s, seg) in segs.iter().enumerate() {
        for bit in (5..seg.len * 8).step_by(149) {
            let dir = tempfile::tempdir().unwrap();
            let mut bytes = std::fs::read(&seg.path).unwrap();
            bytes[bit / 8] ^= 1 << (bit % 8);
            let name = seg.path.file_name().unwrap().to_str().unwrap();
            copy_dir_replacing(src.path(), dir.path(), name, &bytes);
            let rebase = |p: &PathBuf| dir.path().join(p.file_name().unwrap());
            let want = match expect(&segs, s, bit / 8, records.len()) {
                Expect::Corrupt(p, o, k) => Expect::Corrupt(rebase(&p), o, k),
                Expect::Torn(p, o, k) => Expect::Torn(rebase(&p), o, k),
            };
            let what = format!("segment {s} bit {bit}");
            let repair = matches!(want, Expect::Corrupt(..));
            if repair {
                let refused = Wal::open(dir.path(), opts.clone()).map(|(_, r)| r);
                check(&what, refused, &want, false, &records);
            }
            let o = WalOptions {
                repair,
                ..opts.clone()
            };
            check(
                &what,
                Wal::open(dir.path(), o).map(|(_, r)| r),
                &want,
                repair,
                &records,
            );
            // Whatever was cut, the log is consistent now: reopens with no report, appends.
            let (mut wal, again) = Wal::open(dir.path(), opts.clone()).unwrap();
            assert!(
                again.report.truncation.is_none(),
                "{what}: {}",
                again.report
            );
            let keep = again.records.len();
            assert_eq!(again.records, records[..keep], "{what}");
            assert_eq!(wal.append(b"x").unwrap(), keep as u64 + 1, "{what}");
            wal.sync().unwrap();
        }
    }
}
