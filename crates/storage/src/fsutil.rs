//! Small file-system helpers shared by the log and the snapshot store.

use crate::error::{IoContext, Result, StorageError};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Makes the directory's entries (files created, renamed or removed in it) durable. Without
/// this, a file can be fully synced and still be missing after a crash because its name was
/// never written.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("fsync directory", dir)
}

/// Creates `dir` (and its parents) if needed, syncing the parent so the new directory itself
/// survives a crash.
pub fn create_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).ctx("create directory", dir)?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// An exclusive lock on a directory, held until dropped (or the process dies: the kernel
/// releases `flock` locks with the file, so a killed process never leaves a stale lock).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Takes the exclusive lock on `dir/LOCK`, failing at once if someone holds it: two writers
/// appending to one log would interleave frames and corrupt it.
pub fn lock_dir(dir: &Path) -> Result<DirLock> {
    use std::os::fd::AsRawFd;
    let path = dir.join("LOCK");
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .ctx("open lock file", &path)?;
    // SAFETY: flock on a file descriptor we own and keep open; no memory is involved.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        let e = io::Error::last_os_error();
        return Err(if e.kind() == io::ErrorKind::WouldBlock {
            StorageError::Locked { path }
        } else {
            StorageError::io("lock", &path, e)
        });
    }
    Ok(DirLock { _file: file })
}

/// Writes `len` zero bytes at `offset`.
pub fn write_zeros(file: &File, offset: u64, len: u64) -> io::Result<()> {
    const CHUNK: usize = 1 << 20;
    let zeros = vec![0u8; CHUNK.min(len as usize)];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(CHUNK as u64) as usize;
        file.write_all_at(&zeros[..n], offset + done)?;
        done += n as u64;
    }
    Ok(())
}

/// The names of the plain files in `dir`, sorted. Names that are not UTF-8 are skipped: the
/// log never creates them.
pub fn list_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).ctx("list directory", dir)? {
        let entry = entry.ctx("list directory", dir)?;
        let is_file = entry
            .file_type()
            .map(|t| t.is_file())
            .ctx("stat", &entry.path())?;
        if let (true, Ok(name)) = (is_file, entry.file_name().into_string()) {
            out.push((name, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Removes a file and syncs its directory, so the removal is durable before anything that
/// depends on it happens.
pub fn remove_durably(path: &Path) -> Result<()> {
    fs::remove_file(path).ctx("remove", path)?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Offset just past the last non-zero byte of `bytes` (0 if all are zero). Word-at-a-time,
/// because recovery runs it over whole preallocated segments.
pub fn nonzero_len(bytes: &[u8]) -> usize {
    let mut end = bytes.len();
    while !end.is_multiple_of(8) {
        if bytes[end - 1] != 0 {
            return end;
        }
        end -= 1;
    }
    while end >= 8 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[end - 8..end]);
        if u64::from_ne_bytes(w) != 0 {
            break;
        }
        end -= 8;
    }
    while end > 0 && bytes[end - 1] == 0 {
        end -= 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::{nonzero_len, write_zeros};

    #[test]
    fn zeros_span_exactly_the_range_asked_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let (offset, len) = (4096u64, (5u64 << 19) + 3); // 2.5 MiB and 3 bytes: three chunks
        let total = offset + len + 100;
        std::fs::write(&path, vec![0xffu8; total as usize]).unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        write_zeros(&file, offset, len).unwrap();
        drop(file);
        let b = std::fs::read(&path).unwrap();
        assert_eq!(b.len() as u64, total);
        let (start, end) = (offset as usize, (offset + len) as usize);
        assert!(b[..start].iter().all(|&x| x == 0xff), "before the range");
        assert_eq!(nonzero_len(&b[start..end]), 0, "the range");
        assert!(b[end..].iter().all(|&x| x == 0xff), "after the range");
        // Zeros past the end of a file extend it.
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        write_zeros(&file, total, 10).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), total + 10);
    }

    #[test]
    fn nonzero_len_finds_the_last_nonzero_byte() {
        assert_eq!(nonzero_len(&[]), 0);
        assert_eq!(nonzero_len(&[0; 37]), 0);
        for len in 1..40 {
            for pos in 0..len {
                let mut b = vec![0u8; len];
                b[pos] = 9;
                assert_eq!(nonzero_len(&b), pos + 1, "len {len} pos {pos}");
            }
        }
    }
}
