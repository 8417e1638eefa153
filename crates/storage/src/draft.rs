//! A snapshot file written in two steps: the bulk of its data first, as a caller's encoder
//! makes it, then the bytes on either side of it once they are known.
//!
//! A node's checkpoint is its store's encoding (hundreds of megabytes at a million keys) with a
//! few bytes before it that count the records and give the encoding's length, and the log's
//! records after it, which are known only once the snapshot is folded into the log. Encoding the
//! store into memory and copying it into the file afterwards held it whole for as long as the
//! snapshot took, in fresh pages the kernel zeroes one by one. A draft takes the encoding
//! straight into the file, leaves room of a fixed length before it for the head, and appends
//! the tail at [`SnapshotStore::finish_draft`]. The file is the one
//! [`SnapshotStore::save_streamed`] writes, byte for byte the same layout.
//!
//! The body's checksum is taken as it is written and combined with the head's and the tail's
//! at the end, so the body is never read back. Until it is finished a draft lives under a
//! temporary name (removed when it is dropped, and by [`SnapshotStore::open`] after a crash),
//! so a snapshot file with its real name is still always complete.

use crate::error::{IoContext, Result, StorageError};
use crate::fsutil;
use crate::pieces::Pieces;
use crate::snapshot::{
    check_index, check_meta_len, encode_head, file_name, SnapshotStore, HEADER_LEN,
};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// A snapshot file whose data's body is written and durable, waiting for its head and tail.
#[derive(Debug)]
pub struct SnapshotDraft {
    tmp: PathBuf,
    file: File,
    meta: Vec<u8>,
    head_len: usize,
    body_len: u64,
    body_crc: u32,
    /// Renamed into place: the temporary file is no longer ours to remove.
    finished: bool,
}

impl SnapshotDraft {
    /// Where the body starts in the file.
    fn body_offset(&self) -> u64 {
        (HEADER_LEN + self.meta.len() + self.head_len) as u64
    }

    /// How many bytes the body holds.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// The body, mapped from the file: its pages are the kernel's page cache, touched only
    /// when read. The mapping outlives the draft, its temporary file and the finished file.
    pub fn map_body(&self) -> Result<bytes::Bytes> {
        if self.body_len == 0 {
            return Ok(bytes::Bytes::new());
        }
        let len = usize::try_from(self.body_len).map_err(|_| {
            StorageError::InvalidArgument(format!("a body of {} bytes", self.body_len))
        })?;
        // SAFETY: a mapping is undefined behaviour if the bytes under it change. The body is
        // written once, before this; finishing writes only before and after it, and a finished
        // file is renamed and never written again.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(self.body_offset())
                .len(len)
                .map(&self.file)
        }
        .ctx("mmap", &self.tmp)?;
        Ok(bytes::Bytes::from_owner(map))
    }

    /// The body, read into memory: for a system where [`SnapshotDraft::map_body`] fails.
    pub fn read_body(&self) -> Result<bytes::Bytes> {
        let len = usize::try_from(self.body_len).map_err(|_| {
            StorageError::InvalidArgument(format!("a body of {} bytes", self.body_len))
        })?;
        let mut body = vec![0; len];
        self.file
            .read_exact_at(&mut body, self.body_offset())
            .ctx("read", &self.tmp)?;
        Ok(body.into())
    }
}

impl Drop for SnapshotDraft {
    fn drop(&mut self) {
        if !self.finished {
            // Hundreds of megabytes otherwise, until the next start; a mapping keeps its pages.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl SnapshotStore {
    /// Begins a snapshot file under a temporary name made from `name`: `meta` (see
    /// [`SnapshotStore::save`]), then room for `head_len` bytes of data, then the data's body
    /// as `write_body` writes it, made durable a few megabytes at a time as it goes (as
    /// [`SnapshotStore::save_streamed`] does). Returns the draft and what `write_body`
    /// returned. An error from `write_body` or the disk removes the file.
    pub fn draft<T>(
        &self,
        name: u64,
        meta: &[u8],
        head_len: usize,
        write_body: impl FnOnce(&mut dyn Write) -> std::io::Result<T>,
    ) -> Result<(SnapshotDraft, T)> {
        check_meta_len(meta.len())?;
        // A name no other draft of this store had: a draft still mapped (a snapshot a replica
        // holds) must never be truncated, nor removed by another's drop.
        let n = self
            .drafts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self
            .dir()
            .join(format!("{}.{n}.draft.tmp", file_name(name)));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .ctx("create", &tmp)?;
        let mut draft = SnapshotDraft {
            tmp,
            file,
            meta: meta.to_vec(),
            head_len,
            body_len: 0,
            body_crc: 0,
            finished: false,
        };
        // The header, the metadata and the head are written when the draft is finished.
        let tmp = draft.tmp.clone();
        let mut body = Pieces::new(&draft.file, &tmp, draft.body_offset(), 0);
        let wrote = write_body(&mut body).ctx("write", &tmp)?;
        body.finish().ctx("write", &tmp)?;
        (draft.body_len, draft.body_crc) = (body.written, body.crc);
        Ok((draft, wrote))
    }

    /// Completes `draft` as the snapshot covering the log up to `index`: `head` (exactly the
    /// room left for it) before the body, what `write_tail` writes after it, the header and
    /// the checksum; then syncs it, renames it into place and prunes as
    /// [`SnapshotStore::save`] does. Returns its path and the length of its data (head, body
    /// and tail). On an error the draft's file is removed and no snapshot is left behind.
    pub fn finish_draft(
        &self,
        mut draft: SnapshotDraft,
        index: u64,
        head: &[u8],
        write_tail: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(PathBuf, u64)> {
        check_index(index)?;
        if head.len() != draft.head_len {
            return Err(StorageError::InvalidArgument(format!(
                "a head of {} bytes for room of {}",
                head.len(),
                draft.head_len
            )));
        }
        let tmp = draft.tmp.clone();
        let end = draft.body_offset() + draft.body_len;
        let mut tail = Pieces::new(&draft.file, &tmp, end, 0);
        write_tail(&mut tail).ctx("write", &tmp)?;
        tail.finish().ctx("write", &tmp)?;
        let (tail_len, tail_crc) = (tail.written, tail.crc);
        let data_len = head.len() as u64 + draft.body_len + tail_len;
        let mut front = encode_head(index, &draft.meta, data_len as usize);
        front.extend_from_slice(head);
        draft.file.write_all_at(&front, 0).ctx("write", &tmp)?;
        let crc = crc32c::crc32c_combine(
            crc32c::crc32c_combine(
                crc32c::crc32c(&front),
                draft.body_crc,
                draft.body_len as usize,
            ),
            tail_crc,
            tail_len as usize,
        );
        draft
            .file
            .write_all_at(&crc.to_le_bytes(), end + tail_len)
            .ctx("write", &tmp)?;
        draft.file.sync_all().ctx("fsync", &tmp)?;
        let path = self.dir().join(file_name(index));
        std::fs::rename(&tmp, &path).ctx("rename", &tmp)?;
        draft.finished = true;
        fsutil::sync_dir(self.dir())?;
        self.prune()?;
        Ok((path, data_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{decode_snapshot, encode_snapshot};

    fn body(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i / 5 + i / 4099) as u8).collect()
    }

    #[test]
    fn a_finished_draft_is_the_file_a_save_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = SnapshotStore::open(dir.path(), 8).unwrap();
        for (i, (meta, head, n, tail)) in [
            (&b""[..], &b"HEAD"[..], 0, &b""[..]),
            (b"m", b"", 10, b"tail"),
            (b"meta", b"0123456789", (4 << 20) + 77, b"the tail"),
            (b"", b"h", 9 << 20, b""),
        ]
        .into_iter()
        .enumerate()
        {
            let b = body(n);
            let (draft, ()) = store
                .draft(100, meta, head.len(), |w| {
                    b.chunks(300_007).try_for_each(|c| w.write_all(c))
                })
                .unwrap();
            assert_eq!(draft.body_len(), n as u64);
            let mapped = draft.map_body().unwrap();
            assert_eq!(draft.read_body().unwrap(), mapped);
            let index = 10 + i as u64;
            let (path, len) = store
                .finish_draft(draft, index, head, |w| w.write_all(tail))
                .unwrap();
            let data: Vec<u8> = [head, &b[..], tail].concat();
            assert_eq!(len, data.len() as u64);
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(bytes, encode_snapshot(index, meta, &data), "case {i}");
            assert_eq!(decode_snapshot(&bytes).unwrap().data, data);
            assert_eq!(&mapped[..], &b[..], "the mapping outlives the draft");
            assert_eq!(&store.map_data(index).unwrap()[..], &data[..]);
        }
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_draft_dropped_or_failed_leaves_nothing_and_a_wrong_head_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = SnapshotStore::open(dir.path(), 2).unwrap();
        let count = || std::fs::read_dir(dir.path()).unwrap().count();
        let (draft, ()) = store.draft(1, b"", 4, |w| w.write_all(b"body")).unwrap();
        let mapped = draft.map_body().unwrap();
        // Another of the same name is a file of its own.
        let (same, ()) = store.draft(1, b"", 4, |w| w.write_all(b"other")).unwrap();
        assert_eq!(count(), 2);
        drop(draft);
        assert_eq!(count(), 1);
        assert_eq!(&mapped[..], b"body");
        assert_eq!(&same.map_body().unwrap()[..], b"other");
        drop(same);
        assert_eq!(count(), 0);
        let failed = store.draft(2, b"", 4, |w| -> std::io::Result<()> {
            w.write_all(b"part")?;
            Err(std::io::ErrorKind::StorageFull.into())
        });
        assert!(failed.is_err());
        assert_eq!(count(), 0);
        let (draft, ()) = store.draft(3, b"", 4, |w| w.write_all(b"body")).unwrap();
        assert!(store
            .finish_draft(draft, 3, b"long head", |_| Ok(()))
            .is_err());
        assert_eq!(count(), 0);
        let (draft, ()) = store.draft(4, b"", 0, |w| w.write_all(b"body")).unwrap();
        let failed = store.finish_draft(draft, 4, b"", |_| {
            Err(std::io::ErrorKind::StorageFull.into())
        });
        assert!(failed.is_err());
        assert_eq!(count(), 0);
        assert!(store.load_latest().unwrap().snapshot.is_none());
    }

    #[test]
    fn a_draft_left_by_a_crash_is_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = SnapshotStore::open(dir.path(), 2).unwrap();
        let (draft, ()) = store.draft(5, b"", 0, |w| w.write_all(b"body")).unwrap();
        // A crash: the process is gone without dropping anything.
        std::mem::forget(draft);
        let (store, removed) = SnapshotStore::open(dir.path(), 2).unwrap();
        assert_eq!(removed.len(), 1);
        assert!(store.load_latest().unwrap().snapshot.is_none());
    }
}
