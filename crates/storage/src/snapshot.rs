//! Snapshots: the caller's state machine as of a log index, written atomically.
//!
//! ```text
//! offset 0   magic     "SYNODSNP"
//! offset 8   version   u32 LE = 1
//! offset 12  meta_len  u32 LE
//! offset 16  index     u64 LE   last log index the snapshot covers
//! offset 24  data_len  u64 LE
//! offset 32  meta (meta_len bytes), then data (data_len bytes)
//! end - 4    crc32c    u32 LE   checksum of every byte before it
//! ```
//!
//! Saving writes `{index:020}.snap.tmp`, fsyncs it, renames it to `{index:020}.snap` and fsyncs
//! the directory: a snapshot file with its real name is always complete, and a crash leaves at
//! worst a `.tmp` file, which is ignored and removed on open. A draft (`crate::draft`) is
//! written as `{name:020}.snap.{n}.draft.tmp` and renamed the same way once finished.

use crate::error::{IoContext, Result, StorageError};
use crate::fsutil;
use crate::pieces::Pieces;
use crate::record::MAX_INDEX;
use crate::report::SkippedSnapshot;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"SYNODSNP";
const VERSION: u32 = 1;
pub(crate) const HEADER_LEN: usize = 32;
const SUFFIX: &str = ".snap";

/// A snapshot as loaded from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Last log index whose effect the snapshot includes.
    pub index: u64,
    /// The caller's metadata (ballot, membership, ...).
    pub meta: Vec<u8>,
    /// The caller's state.
    pub data: Vec<u8>,
}

/// Encodes a snapshot file's bytes.
pub fn encode_snapshot(index: u64, meta: &[u8], data: &[u8]) -> Vec<u8> {
    let head = encode_head(index, meta, data.len());
    let mut out = Vec::with_capacity(head.len() + data.len() + 4);
    out.extend_from_slice(&head);
    out.extend_from_slice(data);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&head), data);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The header and metadata: everything in a snapshot file before the data.
pub(crate) fn encode_head(index: u64, meta: &[u8], data_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + meta.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&(data_len as u64).to_le_bytes());
    out.extend_from_slice(meta);
    out
}

/// Decodes a snapshot file's bytes, or says what is wrong with them. Never panics.
pub fn decode_snapshot(bytes: &[u8]) -> std::result::Result<Snapshot, String> {
    let (index, meta_end, body_end) = check_snapshot(bytes)?;
    Ok(Snapshot {
        index,
        meta: bytes[HEADER_LEN..meta_end].to_vec(),
        data: bytes[meta_end..body_end].to_vec(),
    })
}

/// As [`decode_snapshot`], taking the file's bytes: the data stays where it was read rather
/// than being copied (a restart would otherwise hold a large snapshot twice).
fn decode_owned(mut bytes: Vec<u8>) -> std::result::Result<Snapshot, String> {
    let (index, meta_end, body_end) = check_snapshot(&bytes)?;
    let meta = bytes[HEADER_LEN..meta_end].to_vec();
    bytes.truncate(body_end);
    bytes.drain(..meta_end);
    Ok(Snapshot {
        index,
        meta,
        data: bytes,
    })
}

/// Checks a snapshot file's bytes; returns its index and where its metadata and data end.
fn check_snapshot(bytes: &[u8]) -> std::result::Result<(u64, usize, usize), String> {
    let (index, meta_end, body_end) = check_layout(bytes)?;
    let stored = u32::from_le_bytes([
        bytes[body_end],
        bytes[body_end + 1],
        bytes[body_end + 2],
        bytes[body_end + 3],
    ]);
    let computed = crc32c::crc32c(&bytes[..body_end]);
    if stored != computed {
        return Err(format!(
            "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
        ));
    }
    Ok((index, meta_end, body_end))
}

/// Checks a snapshot file's header against its length, reading nothing past the header (a
/// mapped file's data pages stay untouched); returns what [`check_snapshot`] does.
fn check_layout(bytes: &[u8]) -> std::result::Result<(u64, usize, usize), String> {
    let h = bytes
        .get(..HEADER_LEN)
        .ok_or_else(|| format!("{} bytes, shorter than a snapshot header", bytes.len()))?;
    if &h[..8] != MAGIC {
        return Err("not a snapshot: bad magic".into());
    }
    let u32_at = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let meta_len = u32_at(12) as u64;
    let data_len = u64_at(24);
    let expected = (HEADER_LEN as u64 + 4)
        .checked_add(meta_len)
        .and_then(|n| n.checked_add(data_len));
    if expected != Some(bytes.len() as u64) {
        return Err(format!(
            "file is {} bytes, header says {} of metadata and {} of data (incomplete or damaged)",
            bytes.len(),
            meta_len,
            data_len
        ));
    }
    let body_end = bytes.len() - 4;
    let version = u32_at(8);
    if version != VERSION {
        return Err(format!("unsupported snapshot version {version}"));
    }
    let index = u64_at(16);
    if index > MAX_INDEX {
        return Err(format!("index {index} is out of range"));
    }
    Ok((index, HEADER_LEN + meta_len as usize, body_end))
}

/// Writes a snapshot's whole file, durably, under the temporary name `tmp`.
fn write_tmp(
    tmp: &Path,
    index: u64,
    meta: &[u8],
    data_len: u64,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .ctx("create", tmp)?;
    let head = encode_head(index, meta, data_len as usize);
    f.write_all(&head).ctx("write", tmp)?;
    let mut data = Pieces::new(&f, tmp, head.len() as u64, crc32c::crc32c(&head));
    write(&mut data).ctx("write", tmp)?;
    data.finish().ctx("write", tmp)?;
    if data.written != data_len {
        return Err(StorageError::InvalidArgument(format!(
            "snapshot {index}: {} bytes of data written where {data_len} were announced",
            data.written
        )));
    }
    let (crc, end) = (data.crc, head.len() as u64 + data.written);
    f.write_all_at(&crc.to_le_bytes(), end).ctx("write", tmp)?;
    f.sync_all().ctx("fsync", tmp)
}

/// Refuses an index a snapshot file cannot name.
pub(crate) fn check_index(index: u64) -> Result<()> {
    if index > MAX_INDEX {
        return Err(StorageError::InvalidArgument(format!(
            "snapshot index {index} is above the limit of {MAX_INDEX}"
        )));
    }
    Ok(())
}

/// Refuses metadata of `len` bytes, longer than the header can say.
pub(crate) fn check_meta_len(len: usize) -> Result<()> {
    if len as u64 > u64::from(u32::MAX) {
        return Err(StorageError::InvalidArgument(format!(
            "snapshot metadata of {len} bytes is above the limit of {} bytes",
            u32::MAX
        )));
    }
    Ok(())
}

pub(crate) fn file_name(index: u64) -> String {
    format!("{index:020}{SUFFIX}")
}

fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What [`SnapshotStore::load_latest`] found.
#[derive(Debug, Default)]
pub struct LoadedSnapshot {
    /// The newest snapshot that passed its checks.
    pub snapshot: Option<Snapshot>,
    /// Newer snapshot files that failed their checks (reported, never silently skipped).
    pub skipped: Vec<SkippedSnapshot>,
}

/// A directory of snapshots, newest kept, older ones pruned.
#[derive(Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
    keep: usize,
    /// Drafts begun (see [`SnapshotStore::draft`]): each gets a name of its own.
    pub(crate) drafts: std::sync::atomic::AtomicU64,
}

impl SnapshotStore {
    /// Opens (creating if needed) the snapshot directory, keeping the newest `keep` snapshots
    /// (at least 1) when saving. Returns the leftover temporary files it removed.
    pub fn open(dir: impl AsRef<Path>, keep: usize) -> Result<(SnapshotStore, Vec<PathBuf>)> {
        let dir = dir.as_ref().to_path_buf();
        fsutil::create_dir(&dir)?;
        let mut removed = Vec::new();
        for (name, path) in fsutil::list_files(&dir)? {
            if name.ends_with(".tmp") {
                std::fs::remove_file(&path).ctx("remove", &path)?;
                removed.push(path);
            }
        }
        if !removed.is_empty() {
            fsutil::sync_dir(&dir)?;
        }
        let store = SnapshotStore {
            dir,
            keep: keep.max(1),
            drafts: Default::default(),
        };
        Ok((store, removed))
    }

    /// Writes a snapshot covering the log up to `index`, atomically and durably, then removes
    /// snapshots beyond the newest `keep`. Returns the snapshot's path.
    pub fn save(&self, index: u64, meta: &[u8], data: &[u8]) -> Result<PathBuf> {
        self.save_streamed(index, meta, data.len() as u64, |w| w.write_all(data))
    }

    /// As [`SnapshotStore::save`], with the data produced by `write` as it goes to the file
    /// rather than held whole in memory first: a store's encoding can be hundreds of megabytes.
    /// `write` must write exactly `data_len` bytes; any other count, or an error from `write`,
    /// fails the save and leaves no snapshot behind.
    pub fn save_streamed(
        &self,
        index: u64,
        meta: &[u8],
        data_len: u64,
        write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<PathBuf> {
        check_index(index)?;
        check_meta_len(meta.len())?;
        let path = self.dir.join(file_name(index));
        let tmp = self.dir.join(format!("{}.tmp", file_name(index)));
        if let Err(e) = write_tmp(&tmp, index, meta, data_len, write) {
            // A failed save can leave hundreds of megabytes behind; open would remove them too.
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &path).ctx("rename", &tmp)?;
        fsutil::sync_dir(&self.dir)?;
        self.prune()?;
        Ok(path)
    }

    /// The data of the snapshot file for `index`, mapped from the file rather than read: its
    /// pages are the kernel's page cache, so a node that keeps its latest snapshot to send to
    /// lagging peers holds it without a copy of its own. Checks the header against the file's
    /// length but not the checksum, which would read every page; the file was checked when it
    /// was written or loaded.
    pub fn map_data(&self, index: u64) -> Result<bytes::Bytes> {
        let path = self.dir.join(file_name(index));
        let file = std::fs::File::open(&path).ctx("open", &path)?;
        // SAFETY: a mapping is undefined behaviour if its file changes under it. Snapshot files
        // are written whole under a temporary name and never written again once renamed; a
        // pruned file is unlinked, which keeps its pages for as long as they are mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }.ctx("mmap", &path)?;
        let changed = |reason| StorageError::SnapshotChanged {
            path: path.clone(),
            reason,
        };
        let (found, meta_end, body_end) = check_layout(&map).map_err(changed)?;
        if found != index {
            return Err(changed(format!(
                "holds index {found}, its name says {index}"
            )));
        }
        Ok(bytes::Bytes::from_owner(map).slice(meta_end..body_end))
    }

    /// Snapshot files by index, newest first.
    pub fn list(&self) -> Result<Vec<(u64, PathBuf)>> {
        let mut out: Vec<_> = fsutil::list_files(&self.dir)?
            .into_iter()
            .filter_map(|(name, path)| parse_file_name(&name).map(|i| (i, path)))
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.0));
        Ok(out)
    }

    /// Loads the newest snapshot that passes its checks; newer ones that fail are reported.
    pub fn load_latest(&self) -> Result<LoadedSnapshot> {
        let mut loaded = LoadedSnapshot::default();
        for (index, path) in self.list()? {
            let bytes = std::fs::read(&path).ctx("read", &path)?;
            match decode_owned(bytes) {
                Ok(s) if s.index == index => {
                    loaded.snapshot = Some(s);
                    break;
                }
                Ok(s) => loaded.skipped.push(SkippedSnapshot {
                    path,
                    reason: format!("holds index {}, file name says {index}", s.index),
                }),
                Err(reason) => loaded.skipped.push(SkippedSnapshot { path, reason }),
            }
        }
        Ok(loaded)
    }

    /// The snapshot directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn prune(&self) -> Result<()> {
        let all = self.list()?;
        for (_, path) in all.iter().skip(self.keep) {
            std::fs::remove_file(path).ctx("remove", path)?;
        }
        if all.len() > self.keep {
            fsutil::sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pieces::SYNC_PIECE;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn snapshots_round_trip(index in 0..=MAX_INDEX, meta in prop::collection::vec(any::<u8>(), 0..50), data in prop::collection::vec(any::<u8>(), 0..500)) {
            let bytes = encode_snapshot(index, &meta, &data);
            let s = decode_snapshot(&bytes).unwrap();
            prop_assert_eq!(&s, &Snapshot { index, meta, data });
            prop_assert_eq!(decode_owned(bytes).unwrap(), s);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_snapshot(&bytes);
            let _ = decode_owned(bytes);
        }

        #[test]
        fn any_single_bit_flip_is_detected(data in prop::collection::vec(any::<u8>(), 0..64), bit in any::<prop::sample::Index>()) {
            let mut bytes = encode_snapshot(9, b"m", &data);
            let bit = bit.index(bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(decode_snapshot(&bytes).is_err());
        }
    }

    /// Data of `n` bytes that differ from piece to piece.
    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i / 7 + i / SYNC_PIECE) as u8).collect()
    }

    #[test]
    fn a_streamed_save_writes_what_a_save_from_memory_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = SnapshotStore::open(dir.path(), 4).unwrap();
        // Around and across the piece boundary, in writes of awkward sizes.
        for (index, n) in [(1, 0), (2, 10), (3, SYNC_PIECE), (4, 2 * SYNC_PIECE + 3)] {
            let d = data(n);
            let streamed = store
                .save_streamed(index, b"meta", n as u64, |w| {
                    d.chunks(1_000_003).try_for_each(|c| w.write_all(c))
                })
                .unwrap();
            assert_eq!(
                std::fs::read(&streamed).unwrap(),
                encode_snapshot(index, b"meta", &d),
                "{n} bytes"
            );
            let whole = store.save(index + 10, b"meta", &d).unwrap();
            let loaded = decode_snapshot(&std::fs::read(&whole).unwrap()).unwrap();
            assert_eq!(loaded.data, d, "{n} bytes saved from memory");
        }
    }

    #[test]
    fn a_streamed_save_that_writes_more_or_less_than_announced_leaves_no_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = SnapshotStore::open(dir.path(), 2).unwrap();
        let short = store.save_streamed(1, b"", 10, |w| w.write_all(b"123456789"));
        assert!(
            matches!(short, Err(StorageError::InvalidArgument(_))),
            "{short:?}"
        );
        let long = store.save_streamed(2, b"", 10, |w| w.write_all(b"12345678901"));
        assert!(
            matches!(long, Err(StorageError::InvalidArgument(_))),
            "{long:?}"
        );
        let failed = store.save_streamed(3, b"", 10, |_| Err(std::io::Error::other("encoder")));
        assert!(failed.is_err());
        assert!(store.list().unwrap().is_empty());
        assert!(store.load_latest().unwrap().snapshot.is_none());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "temporary files left behind: {left:?}");
    }

    #[test]
    fn a_mapped_snapshot_is_its_data_and_outlives_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = SnapshotStore::open(dir.path(), 1).unwrap();
        let d = data(SYNC_PIECE + 5);
        store.save(7, b"meta", &d).unwrap();
        let mapped = store.map_data(7).unwrap();
        assert_eq!(&mapped[..], &d[..]);
        // Keeping one snapshot, the next save removes the mapped one's file.
        store.save(8, b"", b"newer").unwrap();
        assert!(!dir.path().join(file_name(7)).exists());
        assert_eq!(&mapped[..], &d[..]);
        assert_eq!(&store.map_data(8).unwrap()[..], b"newer");
    }

    #[test]
    fn mapping_a_missing_or_misnamed_or_cut_snapshot_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = SnapshotStore::open(dir.path(), 4).unwrap();
        assert!(matches!(store.map_data(1), Err(StorageError::Io { .. })));
        let bytes = encode_snapshot(2, b"", b"state");
        std::fs::write(dir.path().join(file_name(3)), &bytes).unwrap();
        let misnamed = store.map_data(3);
        assert!(
            matches!(misnamed, Err(StorageError::SnapshotChanged { .. })),
            "{misnamed:?}"
        );
        std::fs::write(dir.path().join(file_name(2)), &bytes[..bytes.len() - 1]).unwrap();
        let cut = store.map_data(2);
        assert!(
            matches!(cut, Err(StorageError::SnapshotChanged { .. })),
            "{cut:?}"
        );
        std::fs::write(dir.path().join(file_name(4)), b"").unwrap();
        assert!(store.map_data(4).is_err());
    }

    #[test]
    fn the_limits_of_index_and_metadata_are_refused_above_and_kept_at() {
        assert!(check_index(MAX_INDEX).is_ok());
        assert!(matches!(
            check_index(MAX_INDEX + 1),
            Err(StorageError::InvalidArgument(_))
        ));
        // The metadata's length is a u32 in the header; a slice that long is not made here.
        assert!(check_meta_len(u32::MAX as usize).is_ok());
        assert!(matches!(
            check_meta_len(u32::MAX as usize + 1),
            Err(StorageError::InvalidArgument(_))
        ));
    }

    #[test]
    fn a_save_above_the_highest_index_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = SnapshotStore::open(dir.path(), 2).unwrap();
        let e = store.save(MAX_INDEX + 1, b"m", b"state").unwrap_err();
        assert!(matches!(e, StorageError::InvalidArgument(_)), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let path = store.save(MAX_INDEX, b"m", b"state").unwrap();
        assert_eq!(
            store.load_latest().unwrap().snapshot.unwrap().index,
            MAX_INDEX
        );
        assert!(path.exists());
    }

    #[test]
    fn the_highest_index_is_read_and_one_above_it_refused() {
        let top = encode_snapshot(MAX_INDEX, b"", b"state");
        assert_eq!(decode_snapshot(&top).unwrap().index, MAX_INDEX);
        let above = encode_snapshot(MAX_INDEX + 1, b"", b"state");
        let e = decode_snapshot(&above).unwrap_err();
        assert!(e.contains("out of range"), "{e}");
    }

    #[test]
    fn every_truncation_is_detected() {
        let bytes = encode_snapshot(3, b"meta", b"some state");
        for cut in 0..bytes.len() {
            assert!(decode_snapshot(&bytes[..cut]).is_err(), "cut {cut}");
        }
    }
}
