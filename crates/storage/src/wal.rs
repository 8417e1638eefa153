//! The segmented write-ahead log, for one owner (`&mut self`). For many concurrent writers
//! sharing each `fdatasync`, wrap it in a [`GroupCommitter`](crate::GroupCommitter).

use crate::error::{IoContext, Result, StorageError};
use crate::fsutil;
use crate::record::{
    encode_frame, frame_head, frame_len, frame_padding, FRAME_ALIGN, MAX_INDEX, MAX_PAYLOAD_LEN,
};
use crate::recovery::{analyze, Plan};
use crate::report::RecoveryReport;
use crate::segment::{self, scan_frames, Preallocator, SEGMENT_HEADER_LEN};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Buffered frames are written to the file (not yet synced) once they reach this size, so a
/// huge batch does not sit in memory. A frame larger than this is not buffered at all: it is
/// written as it is appended, from the caller's bytes.
const WRITE_CHUNK: usize = 1 << 20;

/// How a log is laid out and opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// Bytes per segment file (preallocated with zeros). A new segment starts when the next
    /// record would not fit; a record larger than this gets a segment of its own.
    pub segment_size: u64,
    /// Index of the first record of a new, empty log. Indexes start at 1 at the lowest, so that
    /// `first_index - 1` ("nothing yet") is always a valid index.
    pub first_index: u64,
    /// Largest record accepted, in bytes.
    pub max_record_size: usize,
    /// On corruption, cut the log at the damage (reported in [`RecoveryReport::truncation`])
    /// instead of refusing to open. Discards everything after the damage, including records
    /// that were reported durable: an operator's decision, never the default.
    pub repair: bool,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: 64 << 20,
            first_index: 1,
            max_record_size: 64 << 20,
            repair: false,
        }
    }
}

impl WalOptions {
    /// Checks the options make sense together.
    pub fn validate(&self) -> Result<()> {
        let min = (SEGMENT_HEADER_LEN + frame_len(0)) as u64;
        if self.segment_size < min {
            return Err(StorageError::InvalidArgument(format!(
                "segment_size {} is below the minimum of {min} bytes",
                self.segment_size
            )));
        }
        if self.first_index == 0 || self.first_index > MAX_INDEX {
            return Err(StorageError::InvalidArgument(format!(
                "first_index must be in 1..={MAX_INDEX}"
            )));
        }
        if self.max_record_size > MAX_PAYLOAD_LEN {
            return Err(StorageError::InvalidArgument(format!(
                "max_record_size {} is above the hard limit of {MAX_PAYLOAD_LEN} bytes",
                self.max_record_size
            )));
        }
        Ok(())
    }
}

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its position in the log.
    pub index: u64,
    /// The caller's bytes.
    pub data: Vec<u8>,
}

/// What opening a log returns besides the log itself.
#[derive(Debug)]
pub struct Recovered {
    /// Every record in the log, in index order.
    pub records: Vec<Record>,
    /// What recovery found and did.
    pub report: RecoveryReport,
}

/// Counters since the log was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Records appended.
    pub records: u64,
    /// Bytes of frames appended (payload plus framing).
    pub bytes: u64,
    /// `fdatasync` calls that made records durable.
    pub syncs: u64,
    /// Segments created.
    pub segments_created: u64,
}

/// A segment of the log.
#[derive(Debug, Clone)]
struct Segment {
    first_index: u64,
    path: PathBuf,
}

/// A segmented write-ahead log of opaque records with consecutive indexes.
///
/// [`append`](Wal::append) buffers; [`sync`](Wal::sync) writes and makes durable everything
/// appended so far with one `fdatasync`. After any write or sync error the log refuses further
/// work ([`StorageError::Poisoned`]): reopen it to recover from what is really on disk.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    /// All segments in index order; the last one is the one appended to.
    segments: Vec<Segment>,
    file: File,
    /// Size of the active segment's file: past this, an append starts a new segment.
    capacity: u64,
    /// Encoded frames not yet written to the file.
    buf: Vec<u8>,
    /// File offset where `buf` belongs.
    buf_offset: u64,
    /// Frames were written to the file since the last `fdatasync`.
    dirty: bool,
    next_index: u64,
    durable_index: u64,
    prealloc: Preallocator,
    failed: Option<Arc<StorageError>>,
    stats: WalStats,
    _lock: fsutil::DirLock,
}

/// Segment files `(first_index, path)` in index order.
type Listing = Vec<(u64, PathBuf)>;

/// Segment files in `dir` by first index, and leftover temporary files.
fn list_segments(dir: &Path) -> Result<(Listing, Vec<PathBuf>)> {
    let mut segments = Vec::new();
    let mut temps = Vec::new();
    for (name, path) in fsutil::list_files(dir)? {
        if let Some(first) = segment::parse_file_name(&name) {
            segments.push((first, path));
        } else if segment::is_temp_name(&name) {
            temps.push(path);
        }
    }
    segments.sort();
    Ok((segments, temps))
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).ctx("read", path)
}

fn open_rw(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .ctx("open", path)
}

impl Wal {
    /// Opens the log in `dir` (creating the directory and a first segment if there is none),
    /// recovers it, and returns it with every record it holds.
    ///
    /// A torn tail is cut and reported; corruption is an error naming the file and offset,
    /// unless `opts.repair` is set (the rules are in the crate documentation, "Recovery").
    pub fn open(dir: impl AsRef<Path>, opts: WalOptions) -> Result<(Wal, Recovered)> {
        opts.validate()?;
        let dir = dir.as_ref().to_path_buf();
        fsutil::create_dir(&dir)?;
        let lock = fsutil::lock_dir(&dir)?;
        let (listing, temps) = list_segments(&dir)?;
        for t in &temps {
            std::fs::remove_file(t).ctx("remove", t)?;
        }
        if !temps.is_empty() {
            fsutil::sync_dir(&dir)?;
        }
        let plan = analyze(&listing, read_file, opts.repair, opts.first_index)?;
        let mut report = RecoveryReport {
            segments: listing.len(),
            removed_temp_files: temps,
            created: listing.is_empty(),
            ..RecoveryReport::default()
        };
        let Plan {
            records,
            kept,
            data_end,
            zero_end,
            fresh_first,
            remove,
            truncation,
        } = plan;
        for path in &remove {
            fsutil::remove_durably(path)?;
        }
        let mut prealloc = Preallocator::default();
        let mut stats = WalStats::default();
        let (segments, file, next_index) = match kept.last() {
            Some((first, path)) => {
                let file = open_rw(path)?;
                let len = file.metadata().ctx("stat", path)?.len();
                let mut changed = false;
                if zero_end > data_end {
                    fsutil::write_zeros(&file, data_end, zero_end.min(len) - data_end)
                        .ctx("zero torn tail", path)?;
                    changed = true;
                }
                // A segment shorter than a full one (cut by hand, or written with a smaller
                // size) is topped up with zeros so appends overwrite instead of growing it.
                if len < opts.segment_size {
                    fsutil::write_zeros(&file, len, opts.segment_size - len)
                        .ctx("zero-fill", path)?;
                    changed = true;
                }
                if changed {
                    file.sync_data().ctx("fdatasync", path)?;
                }
                let next = records
                    .last()
                    .filter(|r| r.index >= *first)
                    .map_or(*first, |r| r.index + 1);
                let segments = kept
                    .iter()
                    .map(|(first_index, path)| Segment {
                        first_index: *first_index,
                        path: path.clone(),
                    })
                    .collect();
                (segments, file, next)
            }
            None => {
                let (file, path) =
                    segment::create(&dir, fresh_first, opts.segment_size, &mut prealloc)?;
                stats.segments_created += 1;
                let seg = Segment {
                    first_index: fresh_first,
                    path,
                };
                (vec![seg], file, fresh_first)
            }
        };
        let capacity = file
            .metadata()
            .ctx("stat", &segments[segments.len() - 1].path)?
            .len();
        let data_end = if kept.is_empty() {
            SEGMENT_HEADER_LEN as u64
        } else {
            data_end
        };
        report.first_index = segments[0].first_index;
        report.last_index = next_index - 1;
        report.records = records.len() as u64;
        report.truncation = truncation;
        let mut wal = Wal {
            dir,
            opts,
            segments,
            file,
            capacity,
            buf: Vec::with_capacity(WRITE_CHUNK),
            buf_offset: data_end,
            dirty: false,
            next_index,
            durable_index: next_index - 1,
            prealloc,
            failed: None,
            stats,
            _lock: lock,
        };
        wal.maybe_preallocate();
        Ok((wal, Recovered { records, report }))
    }

    /// Reads and checks the log in `dir` exactly as [`Wal::open`] would, but changes nothing:
    /// the report says what opening would cut or repair.
    pub fn inspect(dir: impl AsRef<Path>, opts: &WalOptions) -> Result<Recovered> {
        opts.validate()?;
        let (listing, temps) = list_segments(dir.as_ref())?;
        let plan = analyze(&listing, read_file, opts.repair, opts.first_index)?;
        let first = plan.kept.first().map_or(plan.fresh_first, |(i, _)| *i);
        let report = RecoveryReport {
            segments: listing.len(),
            records: plan.records.len() as u64,
            first_index: first,
            last_index: plan.records.last().map_or(first - 1, |r| r.index),
            truncation: plan.truncation,
            removed_temp_files: temps,
            created: listing.is_empty(),
        };
        Ok(Recovered {
            records: plan.records,
            report,
        })
    }

    /// Appends a record and returns its index. Not durable until [`Wal::sync`] returns.
    pub fn append(&mut self, data: &[u8]) -> Result<u64> {
        self.check()?;
        if data.len() > self.opts.max_record_size {
            return Err(StorageError::RecordTooLarge {
                len: data.len(),
                max: self.opts.max_record_size,
            });
        }
        let end = self.write_offset() + frame_len(data.len()) as u64;
        if end > self.capacity && self.write_offset() > SEGMENT_HEADER_LEN as u64 {
            let r = self.roll();
            self.poison_on_error(r)?;
        }
        let index = self.next_index;
        if frame_len(data.len()) > WRITE_CHUNK {
            // A snapshot installed from a peer is one record as large as the store: written
            // from where it lies, it is not copied into the buffer, which would grow to its
            // size and hold that for the life of the log.
            let r = self
                .write_buffer()
                .and_then(|()| self.write_in_place(index, data));
            self.poison_on_error(r)?;
        } else {
            encode_frame(index, data, &mut self.buf);
        }
        self.next_index += 1;
        self.stats.records += 1;
        self.stats.bytes += frame_len(data.len()) as u64;
        if self.buf.len() >= WRITE_CHUNK {
            let r = self.write_buffer();
            self.poison_on_error(r)?;
        }
        self.maybe_preallocate();
        Ok(index)
    }

    /// Makes every record appended so far durable (one `fdatasync`, none if there is nothing
    /// new) and returns the last durable index.
    pub fn sync(&mut self) -> Result<u64> {
        self.check()?;
        let r = self.write_buffer().and_then(|()| self.sync_file());
        self.poison_on_error(r)?;
        Ok(self.durable_index)
    }

    /// Writes every record appended so far to the file without a sync: they survive a crash
    /// of this process, not of the machine, until the next [`Wal::sync`] (which covers them,
    /// as the file keeps their order).
    pub fn write_out(&mut self) -> Result<()> {
        self.check()?;
        let r = self.write_buffer();
        self.poison_on_error(r)
    }

    /// Removes every record after `index`, durably, before returning; the next append gets
    /// `index + 1`. For a replica that must overwrite entries it never saw committed.
    ///
    /// Later segments are removed newest first, each removal synced, and the cut segment's
    /// tail is zeroed and synced, so a crash midway leaves a prefix of the old log that is at
    /// least as long as the new one: call it again after restarting.
    pub fn truncate_after(&mut self, index: u64) -> Result<()> {
        self.check()?;
        if index >= self.last_index() {
            return Ok(());
        }
        if index < self.first_index() - 1 {
            return Err(StorageError::InvalidArgument(format!(
                "cannot truncate after index {index}: the log starts at index {} (earlier \
                 records were compacted into a snapshot)",
                self.first_index()
            )));
        }
        let r = self.truncate_inner(index);
        self.poison_on_error(r)
    }

    fn truncate_inner(&mut self, index: u64) -> Result<()> {
        self.write_buffer()?;
        let keep = self
            .segments
            .iter()
            .rposition(|s| s.first_index <= index + 1)
            .unwrap_or(0);
        let was_active = keep + 1 == self.segments.len();
        while self.segments.len() > keep + 1 {
            if let Some(seg) = self.segments.pop() {
                fsutil::remove_durably(&seg.path)?;
            }
        }
        let seg = self.segments[keep].clone();
        if !was_active {
            self.file = open_rw(&seg.path)?;
        }
        let bytes = read_file(&seg.path)?;
        let scan = scan_frames(&bytes, seg.first_index);
        let keep_records = (index + 1 - seg.first_index) as usize;
        if scan.payloads.len() < keep_records {
            return Err(StorageError::corrupt(
                &seg.path,
                scan.data_end as u64,
                format!(
                    "expected records up to index {index} while truncating, found only {} records",
                    scan.payloads.len()
                ),
            ));
        }
        let cut = match scan.payloads.get(keep_records) {
            Some(&(payload_at, _)) => payload_at - crate::record::FRAME_HEADER_LEN,
            None => scan.data_end,
        };
        if scan.data_end > cut {
            fsutil::write_zeros(&self.file, cut as u64, (scan.data_end - cut) as u64)
                .ctx("zero truncated records", &seg.path)?;
        }
        self.file.sync_data().ctx("fdatasync", &seg.path)?;
        self.capacity = self.file.metadata().ctx("stat", &seg.path)?.len();
        self.buf_offset = cut as u64;
        self.dirty = false;
        self.next_index = index + 1;
        self.durable_index = index;
        Ok(())
    }

    /// Removes every segment whose records all have indexes below `keep_from` (typically the
    /// latest durable snapshot's index + 1), oldest first, and returns how many it removed. The
    /// segment being appended to is never removed, so some records below `keep_from` may stay.
    pub fn compact(&mut self, keep_from: u64) -> Result<usize> {
        let detached = self.detach_below(keep_from)?;
        let r = Wal::remove_detached(&detached);
        self.poison_on_error(r)?;
        Ok(detached.len())
    }

    /// The first half of [`Wal::compact`]: takes the segments it would remove out of the log
    /// and returns their paths, oldest first, without touching the files, for
    /// [`Wal::remove_detached`] to remove on another thread. A removal syncs the directory;
    /// several segments' worth took the log's thread 60-140 ms at a million keys, while every
    /// write waited. Until they are removed the files are what a crash during a compaction
    /// leaves: segments wholly below a checkpoint, which recovery skips.
    pub fn detach_below(&mut self, keep_from: u64) -> Result<Vec<PathBuf>> {
        self.check()?;
        let mut detached = Vec::new();
        while self.segments.len() > 1 && self.segments[1].first_index <= keep_from {
            detached.push(self.segments.remove(0).path);
        }
        Ok(detached)
    }

    /// Removes segments [`Wal::detach_below`] detached, in its order, each durably: a crash
    /// midway leaves the newest of them, never a gap.
    pub fn remove_detached(paths: &[PathBuf]) -> Result<()> {
        paths.iter().try_for_each(|p| fsutil::remove_durably(p))
    }

    /// Discards every record and restarts the log empty at `next_index` (after installing a
    /// snapshot that is ahead of the whole log). Old segments are removed newest first; a crash
    /// midway leaves a prefix of the old log or no segment at all, which
    /// [`crate::open`] repairs from the snapshot.
    pub fn reset(&mut self, next_index: u64) -> Result<()> {
        self.check()?;
        if next_index == 0 || next_index > MAX_INDEX {
            return Err(StorageError::InvalidArgument(format!(
                "reset: the next index must be in 1..={MAX_INDEX}"
            )));
        }
        let r = self.reset_inner(next_index);
        self.poison_on_error(r)
    }

    fn reset_inner(&mut self, next_index: u64) -> Result<()> {
        self.buf.clear();
        while let Some(seg) = self.segments.pop() {
            fsutil::remove_durably(&seg.path)?;
        }
        let (file, path) = segment::create(
            &self.dir,
            next_index,
            self.opts.segment_size,
            &mut self.prealloc,
        )?;
        self.stats.segments_created += 1;
        self.capacity = file.metadata().ctx("stat", &path)?.len();
        self.segments.push(Segment {
            first_index: next_index,
            path,
        });
        self.file = file;
        self.buf_offset = SEGMENT_HEADER_LEN as u64;
        self.dirty = false;
        self.next_index = next_index;
        self.durable_index = next_index - 1;
        Ok(())
    }

    /// Index of the first record the log holds (or the next one, if it is empty).
    pub fn first_index(&self) -> u64 {
        self.segments[0].first_index
    }

    /// Index of the last record appended (`first_index() - 1` if the log is empty).
    pub fn last_index(&self) -> u64 {
        self.next_index - 1
    }

    /// Index the next append gets.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Index of the last record known durable.
    pub fn durable_index(&self) -> u64 {
        self.durable_index
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options the log was opened with.
    pub fn options(&self) -> &WalOptions {
        &self.opts
    }

    /// Paths of the segment files, oldest first.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    /// Counters since the log was opened.
    pub fn stats(&self) -> WalStats {
        self.stats
    }

    fn check(&self) -> Result<()> {
        match &self.failed {
            Some(e) => Err(StorageError::Poisoned(e.clone())),
            None => Ok(()),
        }
    }

    fn poison_on_error<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            self.failed = Some(Arc::new(e.clone()));
        }
        r
    }

    fn active_path(&self) -> &Path {
        &self.segments[self.segments.len() - 1].path
    }

    /// Starts zero-filling the next segment once the active one is half full: early enough to
    /// be ready at rollover, late enough that opening a log does not write a segment's worth
    /// of zeros it may never need.
    fn maybe_preallocate(&mut self) {
        if self.write_offset() >= self.capacity / 2 {
            self.prealloc.start(&self.dir, self.opts.segment_size);
        }
    }

    fn write_offset(&self) -> u64 {
        self.buf_offset + self.buf.len() as u64
    }

    fn write_buffer(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file
            .write_all_at(&self.buf, self.buf_offset)
            .ctx("write", &self.segments[self.segments.len() - 1].path)?;
        self.buf_offset += self.buf.len() as u64;
        self.capacity = self.capacity.max(self.buf_offset);
        self.buf.clear();
        self.dirty = true;
        Ok(())
    }

    /// Writes the frame of record `index` at the end of the file, its payload from `data`
    /// itself. The buffer must be empty (written out) first, so the frame lands in order.
    fn write_in_place(&mut self, index: u64, data: &[u8]) -> Result<()> {
        debug_assert!(self.buf.is_empty());
        let head = frame_head(index, data);
        let padding = &[0; FRAME_ALIGN][..frame_padding(data.len())];
        let mut at = self.buf_offset;
        for part in [&head[..], data, padding] {
            self.file
                .write_all_at(part, at)
                .ctx("write", &self.segments[self.segments.len() - 1].path)?;
            at += part.len() as u64;
        }
        self.buf_offset = at;
        self.capacity = self.capacity.max(at);
        self.dirty = true;
        Ok(())
    }

    fn sync_file(&mut self) -> Result<()> {
        if self.dirty {
            self.file.sync_data().ctx("fdatasync", self.active_path())?;
            self.dirty = false;
            self.stats.syncs += 1;
        }
        self.durable_index = self.next_index - 1;
        Ok(())
    }

    /// Finishes the active segment (written and synced in full: recovery relies on every
    /// segment but the last being complete) and starts the next one.
    fn roll(&mut self) -> Result<()> {
        self.write_buffer()?;
        self.sync_file()?;
        let (file, path) = segment::create(
            &self.dir,
            self.next_index,
            self.opts.segment_size,
            &mut self.prealloc,
        )?;
        self.stats.segments_created += 1;
        self.capacity = file.metadata().ctx("stat", &path)?.len();
        self.segments.push(Segment {
            first_index: self.next_index,
            path,
        });
        self.file = file;
        self.buf_offset = SEGMENT_HEADER_LEN as u64;
        Ok(())
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // Unsynced records are not flushed here: they were never reported durable, and a drop
        // must not be mistaken for a sync. Only the background zero-fill is waited for.
        self.prealloc.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_segment_is_prepared_once_the_active_one_is_half_full() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions {
            segment_size: 4096,
            ..WalOptions::default()
        };
        let (mut wal, _) = Wal::open(dir.path(), opts).unwrap();
        while wal.write_offset() + (frame_len(100) as u64) < 2048 {
            wal.append(&[1; 100]).unwrap();
            assert!(
                !wal.prealloc.started(),
                "too early, at {}",
                wal.write_offset()
            );
        }
        wal.append(&[1; 100]).unwrap();
        assert!(wal.prealloc.started(), "at {}", wal.write_offset());
    }

    #[test]
    fn a_large_record_is_written_in_place_between_small_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        // A snapshot installed from a peer is one record as large as the store. Odd lengths,
        // so the frames need padding; small records before and after, still buffered.
        let bytes = |len: usize, seed: u8| -> Vec<u8> {
            (0..len).map(|i| (i % 253) as u8 ^ seed).collect()
        };
        let records = [
            bytes(5, 1),
            bytes(8 * WRITE_CHUNK + 3, 2),
            bytes(WRITE_CHUNK - 13, 3),
            bytes(WRITE_CHUNK + 1, 4),
            bytes(11, 5),
        ];
        for (i, r) in records.iter().enumerate() {
            wal.append(r).unwrap();
            assert!(
                wal.buf.capacity() <= WRITE_CHUNK,
                "after record {i}: the buffer grew to {} bytes",
                wal.buf.capacity()
            );
            if i == 2 {
                wal.sync().unwrap();
            }
        }
        wal.sync().unwrap();
        drop(wal);
        let (_, recovered) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        assert!(recovered.report.truncation.is_none());
        let found: Vec<&Vec<u8>> = recovered.records.iter().map(|r| &r.data).collect();
        assert!(
            found == records.iter().collect::<Vec<_>>(),
            "records differ"
        );
        let indexes: Vec<u64> = recovered.records.iter().map(|r| r.index).collect();
        assert_eq!(indexes, [1, 2, 3, 4, 5]);
    }
}
