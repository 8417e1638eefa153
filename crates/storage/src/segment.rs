//! One segment file: its header, its name, the scan of its frames, and its creation.
//!
//! ```text
//! offset 0   magic        "SYNODWAL"
//! offset 8   version      u32 LE = 1
//! offset 12  reserved     u32 = 0
//! offset 16  first index  u64 LE   index of the segment's first record
//! offset 24  reserved     u32 = 0
//! offset 28  crc32c       u32 LE   checksum of bytes 0..28
//! offset 32  frames (see `record`), then zeros to the end of the file
//! ```
//!
//! A segment is named after its first index, `{first_index:020}.wal`, so that listing the
//! directory gives the log's order without opening files; the header repeats the index so a
//! renamed or swapped file is caught.
//!
//! Segments are preallocated by writing zeros, not with `fallocate`: on ext4, `fallocate`
//! leaves unwritten extents, and the first write into each block must then convert the extent,
//! a metadata change that every `fdatasync` has to journal. Measured on this kind of machine:
//! 4 KiB write + `fdatasync` p50 ~134 µs into `fallocate`d space (no better than appending to a
//! growing file), ~87 µs into zero-filled space. Zero-filling a 64 MiB segment costs ~100 ms of
//! disk time, so it is done by a background thread ahead of need.

use crate::error::{IoContext, Result, StorageError};
use crate::fsutil;
use crate::record::{decode_frame, decode_frame_if, FrameError, FRAME_ALIGN, FRAME_HEADER_LEN};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// Bytes of a segment header; the first frame starts here.
pub const SEGMENT_HEADER_LEN: usize = 32;

const MAGIC: &[u8; 8] = b"SYNODWAL";
const VERSION: u32 = 1;
const SUFFIX: &str = ".wal";
/// Where the next segment is zero-filled before it gets its header and its real name.
const PREALLOC_NAME: &str = "next-segment.wal.tmp";

/// The header of a segment starting at `first_index`.
pub fn encode_header(first_index: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&first_index.to_le_bytes());
    let crc = crc32c::crc32c(&h[..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Reads a segment header and returns the segment's first index, or what is wrong with it and
/// at which offset. Never panics, whatever the bytes.
pub fn decode_header(buf: &[u8]) -> Result<u64, (u64, String)> {
    let Some(h) = buf.get(..SEGMENT_HEADER_LEN) else {
        return Err((
            0,
            format!(
                "file is {} bytes, shorter than a segment header ({SEGMENT_HEADER_LEN})",
                buf.len()
            ),
        ));
    };
    if &h[..8] != MAGIC {
        return Err((0, "not a segment: bad magic".to_string()));
    }
    let stored = u32::from_le_bytes([h[28], h[29], h[30], h[31]]);
    let computed = crc32c::crc32c(&h[..28]);
    if stored != computed {
        return Err((
            28,
            format!("segment header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"),
        ));
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != VERSION {
        return Err((8, format!("unsupported segment version {version}")));
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&h[16..24]);
    Ok(u64::from_le_bytes(first))
}

/// The file name of the segment whose first record is `first_index`.
pub fn file_name(first_index: u64) -> String {
    format!("{first_index:020}{SUFFIX}")
}

/// The first index a segment file name stands for; `None` for any other name.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What scanning a segment's frames found.
#[derive(Debug)]
pub(crate) struct FrameScan {
    /// Offset and length of each intact frame's payload, in order; the record indexes are
    /// consecutive from the segment's first index.
    pub payloads: Vec<(usize, usize)>,
    /// Offset just past the last intact frame: where the next frame belongs.
    pub data_end: usize,
    /// Why scanning stopped at `data_end`, unless it stopped at the end of the buffer.
    pub stop: Option<Stop>,
}

/// Why the frame at `data_end` is not the next record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The bytes are not an intact frame.
    Frame(FrameError),
    /// An intact frame, but for another index (stale or misplaced data).
    WrongIndex {
        /// The index the frame carries.
        found: u64,
        /// The index that belongs here.
        expected: u64,
    },
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Frame(e) => e.fmt(f),
            Stop::WrongIndex { found, expected } => {
                write!(
                    f,
                    "intact record for index {found} where index {expected} belongs"
                )
            }
        }
    }
}

/// Reads consecutive frames starting at `SEGMENT_HEADER_LEN`, the first carrying `first_index`.
pub(crate) fn scan_frames(bytes: &[u8], first_index: u64) -> FrameScan {
    let mut payloads = Vec::new();
    let mut at = SEGMENT_HEADER_LEN.min(bytes.len());
    let mut expected = first_index;
    let stop = loop {
        if at == bytes.len() {
            break None;
        }
        match decode_frame(&bytes[at..]) {
            Ok(f) if f.index == expected => {
                payloads.push((at + FRAME_HEADER_LEN, f.payload.len()));
                at += f.len;
                expected = expected.wrapping_add(1);
            }
            Ok(f) => {
                break Some(Stop::WrongIndex {
                    found: f.index,
                    expected,
                })
            }
            Err(e) => break Some(Stop::Frame(e)),
        }
    };
    FrameScan {
        payloads,
        data_end: at,
        stop,
    }
}

/// What lies after the last intact frame of a segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Only zeros (or nothing) to the end of the file: the normal state.
    Clean,
    /// Some non-zero bytes.
    Garbage {
        /// Offset just past the last non-zero byte, rounded up to the frame alignment.
        nonzero_end: usize,
        /// An intact frame found after the garbage starts: its offset and index. Its presence
        /// means the damage is not a torn tail.
        intact_after: Option<(usize, u64)>,
    },
}

/// Classifies `bytes[data_end..]`. `next_index` is the index the frame at `data_end` should
/// have carried.
///
/// An intact frame counts only if its index could follow: greater or equal to `next_index`,
/// and at most one more per 16 bytes of distance (no frame is shorter than its header). That
/// bound keeps random garbage from passing for a frame, and keeps the search linear.
pub(crate) fn classify_tail(bytes: &[u8], data_end: usize, next_index: u64) -> Tail {
    let rest = bytes.get(data_end..).unwrap_or(&[]);
    let used = fsutil::nonzero_len(rest);
    if used == 0 {
        return Tail::Clean;
    }
    let nonzero_end = (data_end + used).next_multiple_of(FRAME_ALIGN);
    let mut intact_after = None;
    let mut at = data_end + FRAME_ALIGN;
    while at < data_end + used {
        let max_index = next_index.saturating_add(((at - data_end) / FRAME_HEADER_LEN) as u64);
        let want = |i: u64| i >= next_index && i <= max_index;
        if let Ok(Some(f)) = decode_frame_if(&bytes[at..], want) {
            intact_after = Some((at, f.index));
            break;
        }
        at += FRAME_ALIGN;
    }
    Tail::Garbage {
        nonzero_end: nonzero_end.min(bytes.len().max(data_end)),
        intact_after,
    }
}

/// Creates the file at `path` (which must not exist) filled with `size` zeros, synced.
fn zero_filled(path: &Path, size: u64) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .ctx("create", path)?;
    fsutil::write_zeros(&file, 0, size).ctx("zero-fill", path)?;
    file.sync_all().ctx("fsync", path)?;
    Ok(file)
}

/// Zero-fills the next segment on a background thread, so that rolling over to a new segment
/// costs a header write and three syncs, not a 64 MiB write.
#[derive(Debug, Default)]
pub(crate) struct Preallocator {
    pending: Option<(u64, JoinHandle<Result<File>>)>,
}

impl Preallocator {
    /// Starts zero-filling the next segment file (at most one at a time).
    pub fn start(&mut self, dir: &Path, size: u64) {
        if self.pending.is_some() {
            return;
        }
        let path = dir.join(PREALLOC_NAME);
        let spawned = std::thread::Builder::new()
            .name("synod-wal-prealloc".into())
            .spawn(move || zero_filled(&path, size));
        // If no thread can be spawned the segment is made synchronously when it is needed.
        if let Ok(handle) = spawned {
            self.pending = Some((size, handle));
        }
    }

    /// Waits for the zero-filled file, if one was started with `size` bytes and succeeded.
    fn take(&mut self, size: u64) -> Option<File> {
        let (made, handle) = self.pending.take()?;
        let file = handle.join().ok()?.ok()?;
        (made == size).then_some(file)
    }

    /// True while a zero-filled file is being made or waits to be taken.
    #[cfg(test)]
    pub(crate) fn started(&self) -> bool {
        self.pending.is_some()
    }

    /// Waits for any background work, so no file is written after the log is dropped.
    pub fn finish(&mut self) {
        if let Some((_, handle)) = self.pending.take() {
            let _ = handle.join();
        }
    }
}

/// Creates segment `first_index` in `dir`: zero-filled to `size` bytes, header written and
/// synced, then renamed into place and the directory synced, so a segment file with a real
/// name always has a durable header.
pub(crate) fn create(
    dir: &Path,
    first_index: u64,
    size: u64,
    pre: &mut Preallocator,
) -> Result<(File, PathBuf)> {
    let tmp = dir.join(PREALLOC_NAME);
    let size = size.max(SEGMENT_HEADER_LEN as u64);
    let file = match pre.take(size) {
        Some(file) => file,
        None => zero_filled(&tmp, size)?,
    };
    file.write_all_at(&encode_header(first_index), 0)
        .ctx("write segment header", &tmp)?;
    file.sync_data().ctx("fdatasync", &tmp)?;
    let path = dir.join(file_name(first_index));
    std::fs::rename(&tmp, &path).map_err(|e| StorageError::io("rename", &tmp, e))?;
    fsutil::sync_dir(dir)?;
    Ok((file, path))
}

/// True for a leftover temporary file that [`create`] or a snapshot write did not finish.
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.ends_with(".tmp")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::encode_frame;
    use proptest::prelude::*;

    #[test]
    fn headers_round_trip_and_every_bit_is_checked() {
        let h = encode_header(42);
        assert_eq!(decode_header(&h), Ok(42));
        for bit in 0..SEGMENT_HEADER_LEN * 8 {
            let mut bad = h;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_header(&bad).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn names_round_trip_and_others_are_ignored() {
        assert_eq!(parse_file_name(&file_name(1)), Some(1));
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(file_name(7), "00000000000000000007.wal");
        for other in [
            "7.wal",
            "0000000000000000000x.wal",
            "00000000000000000007.wal.tmp",
            "x",
        ] {
            assert_eq!(parse_file_name(other), None, "{other}");
        }
    }

    fn segment(first: u64, payloads: &[&[u8]], size: usize) -> Vec<u8> {
        let mut b = encode_header(first).to_vec();
        for (i, p) in payloads.iter().enumerate() {
            encode_frame(first + i as u64, p, &mut b);
        }
        b.resize(size, 0);
        b
    }

    #[test]
    fn scan_stops_at_zeros_and_tail_is_clean() {
        let b = segment(5, &[b"a", b"bb", b"ccc"], 256);
        let s = scan_frames(&b, 5);
        assert_eq!(s.payloads.len(), 3);
        assert_eq!(s.stop, Some(Stop::Frame(FrameError::Unwritten)));
        assert_eq!(classify_tail(&b, s.data_end, 8), Tail::Clean);
    }

    #[test]
    fn damage_followed_by_an_intact_frame_is_found() {
        let mut b = segment(5, &[b"a", b"bb", b"ccc"], 256);
        b[SEGMENT_HEADER_LEN + 20] ^= 4; // inside the first payload's frame
        let s = scan_frames(&b, 5);
        assert_eq!(s.data_end, SEGMENT_HEADER_LEN);
        match classify_tail(&b, s.data_end, 5) {
            Tail::Garbage {
                intact_after: Some((at, 6)),
                ..
            } => assert_eq!(at, SEGMENT_HEADER_LEN + 24),
            other => panic!("{other:?}"),
        }
    }

    /// A segment's header and records 5 and 6, nothing after.
    fn records_5_and_6() -> Vec<u8> {
        let mut b = encode_header(5).to_vec();
        encode_frame(5, b"a", &mut b);
        encode_frame(6, b"bb", &mut b);
        b
    }

    #[test]
    fn an_intact_frame_out_of_sequence_ends_the_scan() {
        // Stale data: an intact frame of another index right after the last record.
        for stale in [9, 6, 5] {
            let mut b = records_5_and_6();
            encode_frame(stale, b"old", &mut b);
            b.resize(256, 0);
            let s = scan_frames(&b, 5);
            assert_eq!(s.payloads.len(), 2, "stale index {stale}");
            let stop = s.stop.unwrap();
            assert_eq!(
                stop,
                Stop::WrongIndex {
                    found: stale,
                    expected: 7
                }
            );
            assert!(
                stop.to_string().contains(&format!("index {stale}")),
                "{stop}"
            );
        }
    }

    /// Records 5 and 6, then 5 bytes of garbage; and where the records end.
    fn records_then_garbage() -> (Vec<u8>, usize) {
        let mut b = records_5_and_6();
        let data_end = b.len();
        b.extend_from_slice(&[0x5a; 5]);
        (b, data_end)
    }

    /// [`records_then_garbage`], then at 32 bytes past the garbage's start an intact frame of
    /// index `after`.
    fn garbage_then(after: u64) -> (Vec<u8>, usize) {
        let (mut b, data_end) = records_then_garbage();
        b.resize(data_end + 32, 0);
        encode_frame(after, b"zz", &mut b);
        b.resize(512, 0);
        (b, data_end)
    }

    #[test]
    fn garbage_ends_at_its_last_non_zero_byte_rounded_to_a_frame() {
        let (mut b, data_end) = records_then_garbage();
        b.resize(256, 0);
        assert_eq!(
            classify_tail(&b, data_end, 7),
            Tail::Garbage {
                nonzero_end: data_end + FRAME_ALIGN,
                intact_after: None
            }
        );
    }

    #[test]
    fn an_intact_frame_after_garbage_counts_only_if_its_index_could_follow() {
        // 32 bytes on, at most two frames (16 bytes each at least) can lie between: indexes 7
        // to 9 could follow records 5 and 6.
        for (after, counts) in [(7, true), (9, true), (10, false), (6, false), (2, false)] {
            let (b, data_end) = garbage_then(after);
            let found = match classify_tail(&b, data_end, 7) {
                Tail::Garbage { intact_after, .. } => intact_after,
                Tail::Clean => panic!("garbage not seen"),
            };
            let expected = counts.then_some((data_end + 32, after));
            assert_eq!(found, expected, "a frame of index {after}");
        }
    }

    #[test]
    fn the_preallocated_file_is_the_next_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut pre = Preallocator::default();
        pre.start(dir.path(), 4096);
        let file = pre.take(4096).expect("the file started in the background");
        assert_eq!(file.metadata().unwrap().len(), 4096);
        assert!(dir.path().join(PREALLOC_NAME).exists());
        // One of another size is not taken: segments are all of one size.
        pre.start(dir.path(), 4096);
        assert!(pre.take(8192).is_none());
        // A log that closes waits for the thread, so nothing writes after it.
        pre.start(dir.path(), 4096);
        pre.finish();
        assert!(!pre.started());
        let (_, path) = create(dir.path(), 7, 4096, &mut pre).unwrap();
        assert_eq!(path, dir.path().join(file_name(7)));
        assert_eq!(decode_header(&std::fs::read(&path).unwrap()), Ok(7));
    }

    proptest! {
        #[test]
        fn scanning_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600), first in any::<u64>()) {
            let _ = decode_header(&bytes);
            let s = scan_frames(&bytes, first);
            prop_assert!(s.data_end <= bytes.len());
            let _ = classify_tail(&bytes, s.data_end, first);
            let _ = classify_tail(&bytes, bytes.len() + 3, first);
        }
    }
}
