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
//! worst a `.tmp` file, which is ignored and removed on open.

use crate::error::{IoContext, Result, StorageError};
use crate::fsutil;
use crate::record::MAX_INDEX;
use crate::report::SkippedSnapshot;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"SYNODSNP";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 32;
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
fn encode_head(index: u64, meta: &[u8], data_len: usize) -> Vec<u8> {
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
    let version = u32_at(8);
    if version != VERSION {
        return Err(format!("unsupported snapshot version {version}"));
    }
    let index = u64_at(16);
    if index > MAX_INDEX {
        return Err(format!("index {index} is out of range"));
    }
    let meta_end = HEADER_LEN + meta_len as usize;
    Ok(Snapshot {
        index,
        meta: bytes[HEADER_LEN..meta_end].to_vec(),
        data: bytes[meta_end..body_end].to_vec(),
    })
}

fn file_name(index: u64) -> String {
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
        };
        Ok((store, removed))
    }

    /// Writes a snapshot covering the log up to `index`, atomically and durably, then removes
    /// snapshots beyond the newest `keep`. Returns the snapshot's path.
    pub fn save(&self, index: u64, meta: &[u8], data: &[u8]) -> Result<PathBuf> {
        const SYNC_PIECE: usize = 4 << 20;
        if index > MAX_INDEX {
            return Err(StorageError::InvalidArgument(format!(
                "snapshot index {index} is above the limit of {MAX_INDEX}"
            )));
        }
        if meta.len() > u32::MAX as usize {
            return Err(StorageError::InvalidArgument(format!(
                "snapshot metadata of {} bytes is above the limit of {} bytes",
                meta.len(),
                u32::MAX
            )));
        }
        let path = self.dir.join(file_name(index));
        let tmp = self.dir.join(format!("{}.tmp", file_name(index)));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .ctx("create", &tmp)?;
        // Written from the caller's buffer as it is, not copied into one holding the whole
        // file: the data can be hundreds of megabytes.
        let head = encode_head(index, meta, data.len());
        let mut crc = crc32c::crc32c(&head);
        f.write_all(&head).ctx("write", &tmp)?;
        // In pieces, each made durable before the next: a log fsync on the same disk then waits
        // behind one piece's writeback, not a whole large snapshot's.
        for piece in data.chunks(SYNC_PIECE) {
            crc = crc32c::crc32c_append(crc, piece);
            f.write_all(piece).ctx("write", &tmp)?;
            f.sync_data().ctx("fsync", &tmp)?;
        }
        f.write_all(&crc.to_le_bytes()).ctx("write", &tmp)?;
        f.sync_all().ctx("fsync", &tmp)?;
        drop(f);
        std::fs::rename(&tmp, &path).ctx("rename", &tmp)?;
        fsutil::sync_dir(&self.dir)?;
        self.prune()?;
        Ok(path)
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
            match decode_snapshot(&bytes) {
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

    fn prune(&self) -> Result<()> {
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
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn snapshots_round_trip(index in 0..=MAX_INDEX, meta in prop::collection::vec(any::<u8>(), 0..50), data in prop::collection::vec(any::<u8>(), 0..500)) {
            let bytes = encode_snapshot(index, &meta, &data);
            let s = decode_snapshot(&bytes).unwrap();
            prop_assert_eq!(s, Snapshot { index, meta, data });
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_snapshot(&bytes);
        }

        #[test]
        fn any_single_bit_flip_is_detected(data in prop::collection::vec(any::<u8>(), 0..64), bit in any::<prop::sample::Index>()) {
            let mut bytes = encode_snapshot(9, b"m", &data);
            let bit = bit.index(bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(decode_snapshot(&bytes).is_err());
        }
    }

    #[test]
    fn every_truncation_is_detected() {
        let bytes = encode_snapshot(3, b"meta", b"some state");
        for cut in 0..bytes.len() {
            assert!(decode_snapshot(&bytes[..cut]).is_err(), "cut {cut}");
        }
    }
}
