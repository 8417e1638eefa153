//! A snapshot's bytes on their way into its file: gathered into pieces, each written, made
//! durable and checksummed before the next, and written past the page cache where the file
//! system allows it.
//!
//! A snapshot is written once and read back rarely (to send to a lagging peer, or on the next
//! start), so copying it into the page cache buys nothing, and at a million keys it cost more
//! than encoding it: on the machines measured here the kernel's copy into fresh page-cache
//! pages was 35% of a follower's samples while its snapshot was saved, and the saving thread
//! spent four times as long in the kernel as in the encoder (docs/performance.md, "What a
//! snapshot's windows pay for, and a snapshot written past the page cache"). So the whole blocks of a piece go out with `O_DIRECT` from an
//! aligned buffer, and only the unaligned bytes at either end of the file's run go through the
//! page cache. A file system that refuses `O_DIRECT` (tmpfs, for one) gets every byte through
//! the page cache, as before.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// How much of a snapshot is written between two syncs: a log fsync on the same disk then waits
/// behind one piece's writeback, not a whole large snapshot's.
pub(crate) const SYNC_PIECE: usize = 4 << 20;

/// The most one direct write carries: a multiple of [`BLOCK`], so every write of a run stays
/// aligned. Three nodes syncing small log writes while three others wrote 36 MiB/s each to the
/// same disk saw a p99 sync of 2.4-3.7 ms with 4 MiB writes, 1.0-1.3 ms with 256 KiB ones, as
/// with no other writer (docs/performance.md, "A snapshot's dip against a control").
const DIRECT_WRITE: usize = 256 << 10;

/// The alignment of a direct write's buffer, offset and length: the largest logical block
/// size in common use, so that it suits disks of 512-byte blocks too.
const BLOCK: usize = 4096;

/// One block of the aligned buffer: a vector of these is a byte buffer at `BLOCK` alignment.
#[derive(Clone, Copy)]
#[repr(C, align(4096))]
struct Block([u8; BLOCK]);

/// Where the bytes go: the file through the page cache, and the same file opened `O_DIRECT`
/// when the file system allows it.
struct Sink<'a> {
    file: &'a File,
    direct: Option<File>,
    /// Bytes written past the page cache.
    #[cfg(test)]
    direct_bytes: u64,
    /// The longest single direct write.
    #[cfg(test)]
    largest_direct: usize,
    /// How many more direct writes the file system takes before it refuses one with `EINVAL`,
    /// as one that changes its answer partway through a file would (`None`: it takes all).
    /// It takes them again after that one, so a sink that tried again would be seen to.
    #[cfg(test)]
    refuse_after: Option<usize>,
}

impl Sink<'_> {
    /// Writes `bytes` at `at`: through `direct` if it is open and `bytes` is a run of whole
    /// blocks at a block boundary from an aligned buffer, through the page cache otherwise.
    /// A direct write the file system refuses (`EINVAL`) closes the direct handle and goes
    /// through the page cache instead, for this write and every later one.
    fn write_at(&mut self, bytes: &[u8], at: u64, aligned: bool) -> std::io::Result<()> {
        if let (true, Some(direct)) = (aligned, &self.direct) {
            // In writes of DIRECT_WRITE at most: each is one request on the disk's queue, and
            // a log sync on the same disk waits behind those already queued.
            let mut done = 0;
            let mut refused = false;
            for chunk in bytes.chunks(DIRECT_WRITE) {
                #[cfg(test)]
                let refuse = refuses_next(&mut self.refuse_after);
                #[cfg(not(test))]
                let refuse = false;
                let written = match refuse {
                    true => Err(std::io::Error::from_raw_os_error(libc::EINVAL)),
                    false => direct.write_all_at(chunk, at + done as u64),
                };
                match written {
                    Ok(()) => {
                        done += chunk.len();
                        #[cfg(test)]
                        {
                            self.largest_direct = self.largest_direct.max(chunk.len());
                        }
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                        refused = true;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            #[cfg(test)]
            {
                self.direct_bytes += done as u64;
            }
            if !refused {
                return Ok(());
            }
            // What is left goes through the page cache, now and from now on.
            self.direct = None;
            return self.file.write_all_at(&bytes[done..], at + done as u64);
        }
        self.file.write_all_at(bytes, at)
    }
}

/// Whether the test's file system refuses the next direct write, counting it down (see
/// `Sink::refuse_after`).
#[cfg(test)]
fn refuses_next(left: &mut Option<usize>) -> bool {
    match *left {
        Some(0) => {
            *left = None;
            true
        }
        n => {
            *left = n.map(|n| n - 1);
            false
        }
    }
}

/// The blocks as bytes.
fn as_bytes(blocks: &[Block]) -> &[u8] {
    // SAFETY: `Block` is `repr(C)` around a byte array, so it has no padding and its bytes are
    // all initialized; the slice covers exactly the blocks and borrows them for its lifetime.
    unsafe {
        std::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), std::mem::size_of_val(blocks))
    }
}

/// The blocks as bytes, to write into.
fn as_bytes_mut(blocks: &mut [Block]) -> &mut [u8] {
    // SAFETY: as in `as_bytes`; every bit pattern is a valid `Block`, and the slice borrows
    // the blocks mutably for its lifetime.
    unsafe {
        std::slice::from_raw_parts_mut(
            blocks.as_mut_ptr().cast::<u8>(),
            std::mem::size_of_val(blocks),
        )
    }
}

/// Opens `path` a second time for direct writes, or `None` where that is not possible.
fn open_direct(path: &Path) -> Option<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        None
    }
}

/// A snapshot's data written from `at` on in a file: gathered into pieces of [`SYNC_PIECE`]
/// bytes, each written, made durable (`fdatasync`) and checksummed before the next.
pub(crate) struct Pieces<'a> {
    sink: Sink<'a>,
    /// The checksum of every byte taken so far, following on from the one it started with.
    pub(crate) crc: u32,
    /// Bytes taken so far.
    pub(crate) written: u64,
    /// The gathering buffer, block-aligned: `buf[skew..skew + len]` are the bytes not yet
    /// written, and `buf[0]` sits at the block boundary `base` of the file.
    buf: Vec<Block>,
    base: u64,
    skew: usize,
    len: usize,
    /// A write or sync failed. Every later call fails too, so a caller that drops an error
    /// cannot go on to a file whose byte count and checksum match but whose bytes do not.
    broken: bool,
}

impl<'a> Pieces<'a> {
    /// Writes into `file` (which is at `path`) from offset `at` on, the checksum going on
    /// from `crc`.
    pub(crate) fn new(file: &'a File, path: &Path, at: u64, crc: u32) -> Self {
        Self::with_direct(file, open_direct(path), at, crc)
    }

    fn with_direct(file: &'a File, direct: Option<File>, at: u64, crc: u32) -> Self {
        let skew = (at % BLOCK as u64) as usize;
        Pieces {
            sink: Sink {
                file,
                direct,
                #[cfg(test)]
                direct_bytes: 0,
                #[cfg(test)]
                largest_direct: 0,
                #[cfg(test)]
                refuse_after: None,
            },
            crc,
            written: 0,
            // Grown as bytes come, up to a piece and the block a run may start inside: a small
            // snapshot does not zero four megabytes.
            buf: Vec::new(),
            base: at - skew as u64,
            skew,
            len: 0,
            broken: false,
        }
    }

    /// Bytes that went past the page cache.
    #[cfg(test)]
    pub(crate) fn direct_bytes(&self) -> u64 {
        self.sink.direct_bytes
    }

    /// Writes out what is gathered and syncs it. Unless `last`, a partial block at the end
    /// stays behind for the next piece to complete, so that every direct write starts at a
    /// block boundary; `last` writes it too, through the page cache.
    fn emit(&mut self, last: bool) -> std::io::Result<()> {
        self.check()?;
        let done = self
            .write_out(last)
            .and_then(|()| self.sink.file.sync_data());
        self.broken = done.is_err();
        done
    }

    fn write_out(&mut self, last: bool) -> std::io::Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        let (sink, base) = (&mut self.sink, self.base);
        let buf = as_bytes(&self.buf);
        let end = self.skew + self.len;
        let whole = end / BLOCK * BLOCK;
        let mut from = self.skew;
        // A first block the run starts inside (the bytes before `skew` are whatever precedes
        // the run in the file): through the page cache.
        if from > 0 {
            let upto = end.min(BLOCK);
            sink.write_at(&buf[from..upto], base + from as u64, false)?;
            from = upto;
        }
        if whole > from {
            sink.write_at(&buf[from..whole], base + from as u64, true)?;
            from = whole;
        }
        if last && end > from {
            sink.write_at(&buf[from..end], base + from as u64, false)?;
            from = end;
        }
        // What is left (less than a block, and only when not `last`) moves to the front.
        let keep_from = from - from % BLOCK;
        as_bytes_mut(&mut self.buf).copy_within(from..end, from - keep_from);
        self.base += keep_from as u64;
        self.skew = from - keep_from;
        self.len = end - from;
        Ok(())
    }

    /// Writes out everything taken, to the last byte, and syncs it: the end of the run.
    pub(crate) fn finish(&mut self) -> std::io::Result<()> {
        self.emit(true)
    }

    fn check(&self) -> std::io::Result<()> {
        if self.broken {
            return Err(std::io::Error::other(
                "an earlier write of this snapshot failed",
            ));
        }
        Ok(())
    }
}

impl Write for Pieces<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.check()?;
        // At most what completes the current piece, so each piece is exactly SYNC_PIECE long.
        let n = bytes.len().min(SYNC_PIECE - self.len);
        let at = self.skew + self.len;
        let blocks = (at + n).div_ceil(BLOCK);
        if self.buf.len() < blocks {
            self.buf.resize(blocks, Block([0; BLOCK]));
        }
        as_bytes_mut(&mut self.buf)[at..at + n].copy_from_slice(&bytes[..n]);
        self.crc = crc32c::crc32c_append(self.crc, &bytes[..n]);
        self.len += n;
        self.written += n as u64;
        if self.len == SYNC_PIECE {
            self.emit(false)?;
        }
        Ok(n)
    }

    /// Pieces go out when full and the rest when the run ends: a flush has nothing to do.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Bytes that differ from their neighbours and from one run to the next.
    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i / 251) as u8 ^ seed)
            .collect()
    }

    /// Writes `len` bytes at `at` in chunks of `chunk` into a file whose first `at` bytes are
    /// already there, and checks the file, the count and the checksum.
    fn round_trip(at: u64, len: usize, chunk: usize, direct: bool) -> u64 {
        round_trip_refused(at, len, chunk, direct, None)
    }

    /// As [`round_trip`], with the file system refusing the direct write after `refuse_after`
    /// of them.
    fn round_trip_refused(
        at: u64,
        len: usize,
        chunk: usize,
        direct: bool,
        refuse_after: Option<usize>,
    ) -> u64 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run");
        let before = vec![0xA5; at as usize];
        std::fs::write(&path, &before).unwrap();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let handle = if direct { open_direct(&path) } else { None };
        let mut pieces = Pieces::with_direct(&file, handle, at, 7);
        pieces.sink.refuse_after = refuse_after;
        let d = data(len, len as u8);
        for part in d.chunks(chunk) {
            pieces.write_all(part).unwrap();
        }
        pieces.finish().unwrap();
        let ctx = format!(
            "at {at}, {len} bytes in chunks of {chunk}, direct {direct}, refused after \
             {refuse_after:?}"
        );
        assert_eq!(pieces.written, len as u64, "{ctx}");
        assert_eq!(pieces.crc, crc32c::crc32c_append(7, &d), "{ctx}");
        let direct_bytes = pieces.direct_bytes();
        assert!(pieces.sink.largest_direct <= DIRECT_WRITE, "{ctx}");
        drop(pieces);
        let mut found = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut found).unwrap();
        assert_eq!(found.len(), at as usize + len, "{ctx}");
        assert!(
            found[..at as usize] == before[..],
            "{ctx}: the bytes before the run changed"
        );
        assert!(
            found[at as usize..] == d[..],
            "{ctx}: the run's bytes differ"
        );
        direct_bytes
    }

    #[test]
    fn every_byte_lands_where_it_belongs_whatever_the_offset_and_the_chunks() {
        for direct in [false, true] {
            for at in [0, 1, 100, 4095, 4096, 4097, 12_345] {
                for len in [
                    0,
                    1,
                    4095,
                    4096,
                    4097,
                    SYNC_PIECE - 1,
                    SYNC_PIECE,
                    SYNC_PIECE + 1,
                ] {
                    round_trip(at, len, 65_536 + 3, direct);
                }
            }
            // More than two pieces, in chunks small, odd and larger than a piece.
            for chunk in [1_000, (1 << 20) + 7, SYNC_PIECE + 11] {
                round_trip(4_000, 2 * SYNC_PIECE + 12_345, chunk, direct);
            }
        }
    }

    #[test]
    fn whole_blocks_go_past_the_page_cache_where_the_file_system_allows_it() {
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe");
        std::fs::write(&probe, b"").unwrap();
        let len = 3 * SYNC_PIECE;
        if open_direct(&probe).is_none() {
            // tmpfs and others: everything goes through the page cache, and still arrives.
            assert_eq!(round_trip(100, len, 1 << 16, true), 0);
            eprintln!(
                "no O_DIRECT under {}: only the fallback was checked",
                dir.path().display()
            );
            return;
        }
        let direct = round_trip(100, len, 1 << 16, true);
        // All but the partial blocks at the two ends of the run.
        assert_eq!(
            direct,
            (len as u64 + 100) / BLOCK as u64 * BLOCK as u64 - BLOCK as u64
        );
        assert_eq!(round_trip(100, len, 1 << 16, false), 0);
    }

    #[test]
    fn a_direct_write_refused_partway_sends_the_rest_through_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe");
        std::fs::write(&probe, b"").unwrap();
        if open_direct(&probe).is_none() {
            eprintln!(
                "no O_DIRECT under {}: nothing to refuse",
                dir.path().display()
            );
            return;
        }
        // Two pieces and a bit, so a refusal can fall in the first piece's run, between
        // runs, or in the second, and every later run must then avoid the direct handle.
        // At a block boundary, so each piece is whole direct writes of DIRECT_WRITE.
        let len = 2 * SYNC_PIECE + 12_345;
        let per_piece = SYNC_PIECE / DIRECT_WRITE;
        for after in [0, 1, per_piece - 1, per_piece, per_piece + 2] {
            let direct = round_trip_refused(BLOCK as u64, len, 1 << 16, true, Some(after));
            assert_eq!(
                direct,
                (after * DIRECT_WRITE) as u64,
                "refused after {after} direct writes"
            );
        }
    }

    #[test]
    fn after_a_failed_write_every_later_write_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("read-only");
        std::fs::write(&path, b"").unwrap();
        // Opened for reading only: every write to it fails.
        let file = File::open(&path).unwrap();
        let mut pieces = Pieces::with_direct(&file, None, 0, 0);
        assert!(pieces.write_all(&data(SYNC_PIECE, 1)).is_err());
        // A caller that ignored that error gets no further.
        assert!(pieces.write(b"more").is_err());
        assert!(pieces.finish().is_err());
    }
}
