//! The replica's durable log of `Persist` records: framed, checksummed, appended, and synced
//! once per batch (group commit).
//!
//! Frame: `len: u32 LE | crc32c(payload): u32 LE | payload`. On open, a partial or corrupt frame
//! at the very end is a torn write from a crash and is cut off (and reported); a bad frame with
//! valid frames after it is corruption, and opening fails with the file and offset.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

const MAX_RECORD: u32 = 256 << 20;

/// Why the log could not be opened or written.
#[derive(Debug, Error)]
pub enum WalError {
    /// An I/O error on the log file.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// A damaged record followed by intact ones: not a torn tail, so refuse to guess.
    #[error(
        "{path}: corrupt record at offset {offset} ({why}) with valid records after it; \
         refusing to start (move the file aside or restore the node from its peers)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the bad record starts.
        offset: u64,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// An append-only log file.
pub struct Wal {
    path: PathBuf,
    file: File,
    len: u64,
    unsynced: bool,
}

/// What opening the log found.
pub struct Recovered {
    /// The intact records, in order.
    pub records: Vec<Vec<u8>>,
    /// Bytes cut off a torn tail, if any.
    pub truncated: u64,
}

fn frame_at(buf: &[u8], at: usize) -> Result<Option<(usize, &[u8])>, &'static str> {
    if at == buf.len() {
        return Ok(None);
    }
    if buf.len() - at < 8 {
        return Err("partial header");
    }
    let len = u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(buf[at + 4..at + 8].try_into().expect("4 bytes"));
    if len > MAX_RECORD {
        return Err("impossible length");
    }
    let end = at + 8 + len as usize;
    if end > buf.len() {
        return Err("partial record");
    }
    let payload = &buf[at + 8..end];
    if crc32c::crc32c(payload) != crc {
        return Err("checksum mismatch");
    }
    Ok(Some((end, payload)))
}

impl Wal {
    /// Opens (or creates) the log at `path`, returning it and the records it holds.
    pub fn open(path: &Path) -> Result<(Wal, Recovered), WalError> {
        let io = |source| WalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        if created {
            if let Some(dir) = path.parent() {
                File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
            }
        }
        let mut buf = Vec::new();
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.read_to_end(&mut buf).map_err(io)?;
        let mut records = Vec::new();
        let mut at = 0;
        let mut truncated = 0;
        loop {
            match frame_at(&buf, at) {
                Ok(Some((next, payload))) => {
                    records.push(payload.to_vec());
                    at = next;
                }
                Ok(None) => break,
                Err(why) => {
                    // Torn tail or corruption? A torn write is the last thing in the file: if
                    // any intact frame starts after the damage, it is corruption.
                    let later = (at + 1..buf.len().saturating_sub(8))
                        .any(|p| matches!(frame_at(&buf, p), Ok(Some(_))));
                    if later {
                        return Err(WalError::Corrupt {
                            path: path.to_path_buf(),
                            offset: at as u64,
                            why,
                        });
                    }
                    truncated = (buf.len() - at) as u64;
                    file.set_len(at as u64).map_err(io)?;
                    file.sync_all().map_err(io)?;
                    break;
                }
            }
        }
        let wal = Wal {
            path: path.to_path_buf(),
            file,
            len: at as u64,
            unsynced: false,
        };
        Ok((wal, Recovered { records, truncated }))
    }

    /// Appends one record (not yet durable: call [`Wal::sync`]).
    pub fn append(&mut self, payload: &[u8]) -> Result<(), WalError> {
        let mut frame = Vec::with_capacity(payload.len() + 8);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
        frame.extend_from_slice(payload);
        self.file.write_all(&frame).map_err(|source| WalError::Io {
            path: self.path.clone(),
            source,
        })?;
        self.len += frame.len() as u64;
        self.unsynced = true;
        Ok(())
    }

    /// Makes everything appended so far durable (one `fdatasync` for the whole batch).
    pub fn sync(&mut self) -> Result<(), WalError> {
        if self.unsynced {
            self.file.sync_data().map_err(|source| WalError::Io {
                path: self.path.clone(),
                source,
            })?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Replaces the whole log with `records`, atomically: they are written to a temporary file
    /// that is synced and renamed over the log, and the directory is synced. A crash leaves the
    /// old log or the new one.
    pub fn rewrite(&mut self, records: &[Vec<u8>]) -> Result<(), WalError> {
        let tmp = self.path.with_extension("rewrite");
        let io = |source| WalError::Io {
            path: tmp.clone(),
            source,
        };
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io)?;
        let mut len = 0u64;
        for payload in records {
            let mut frame = Vec::with_capacity(payload.len() + 8);
            frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            frame.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
            frame.extend_from_slice(payload);
            f.write_all(&frame).map_err(io)?;
            len += frame.len() as u64;
        }
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        self.len = len;
        self.unsynced = false;
        Ok(())
    }

    /// Bytes in the log.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the log holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_torn_tail_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        {
            let (mut w, r) = Wal::open(&path).unwrap();
            assert!(r.records.is_empty());
            for i in 0..5u8 {
                w.append(&[i; 10]).unwrap();
            }
            w.sync().unwrap();
        }
        let full = std::fs::read(&path).unwrap();
        // Every cut inside the last record loses exactly that record.
        for cut in full.len() - 17..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let (_, r) = Wal::open(&path).unwrap();
            assert_eq!(r.records.len(), 4, "cut at {cut}");
            assert_eq!(r.truncated as usize, cut - (full.len() - 18));
        }
        // A flipped bit in the middle is refused, naming the offset.
        let mut bad = full.clone();
        bad[20] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        match Wal::open(&path) {
            Err(WalError::Corrupt { offset, .. }) => assert_eq!(offset, 18),
            other => panic!("{:?}", other.map(|_| ())),
        }
    }
}
