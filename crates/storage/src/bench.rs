//! The storage benchmark behind `synod bench storage`: group-commit throughput at several
//! writer counts, next to the raw `fdatasync` rate of the same disk.

use crate::error::{IoContext, Result};
use crate::fsutil;
use crate::group::GroupCommitter;
use crate::wal::{Wal, WalOptions};
use serde::Serialize;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchOptions {
    /// Directory to write in (a fresh subdirectory is made and removed); the system temporary
    /// directory if `None`. Put it on the disk you care about.
    pub dir: Option<PathBuf>,
    /// Measured time per writer count (after a short warm-up).
    pub duration: Duration,
    /// Bytes per record.
    pub record_size: usize,
    /// Concurrent writer threads, one case each.
    pub writers: Vec<usize>,
    /// Segment size of the log.
    pub segment_size: u64,
    /// Measured time of each raw `fdatasync` case.
    pub raw_sync_duration: Duration,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            dir: None,
            duration: Duration::from_secs(3),
            record_size: 256,
            writers: vec![1, 16, 64],
            segment_size: 64 << 20,
            raw_sync_duration: Duration::from_secs(2),
        }
    }
}

/// Group-commit throughput with one number of writers.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// Writer threads, each with one record in flight.
    pub writers: usize,
    /// Records made durable in the measured time.
    pub records: u64,
    /// Measured time.
    pub seconds: f64,
    /// Records per second.
    pub records_per_sec: f64,
    /// Payload megabytes (10^6) per second.
    pub mb_per_sec: f64,
    /// `fdatasync` calls in the measured time.
    pub syncs: u64,
    /// Records per `fdatasync`.
    pub records_per_sync: f64,
    /// Median time from append to durable, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
}

/// Raw `fdatasync` rate: one 4 KiB write then `fdatasync`, in a loop.
#[derive(Debug, Clone, Serialize)]
pub struct SyncResult {
    /// Syncs done.
    pub syncs: u64,
    /// Syncs per second.
    pub syncs_per_sec: f64,
    /// Median write + sync, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
}

/// Everything [`bench()`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Where it ran.
    pub dir: PathBuf,
    /// Bytes per record.
    pub record_size: usize,
    /// One entry per writer count.
    pub cases: Vec<CaseResult>,
    /// 4 KiB appends to a growing file.
    pub raw_append: SyncResult,
    /// 4 KiB overwrites of a zero-filled file (what the log's preallocated segments do).
    pub raw_overwrite: SyncResult,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "storage benchmark in {} ({}-byte records, group commit)",
            self.dir.display(),
            self.record_size
        )?;
        writeln!(
            f,
            "{:>8} {:>12} {:>9} {:>12} {:>10} {:>10}",
            "writers", "records/s", "MB/s", "recs/fsync", "p50 µs", "p99 µs"
        )?;
        for c in &self.cases {
            writeln!(
                f,
                "{:>8} {:>12.0} {:>9.2} {:>12.1} {:>10.0} {:>10.0}",
                c.writers, c.records_per_sec, c.mb_per_sec, c.records_per_sync, c.p50_us, c.p99_us
            )?;
        }
        for (name, s) in [
            ("4 KiB append + fdatasync", &self.raw_append),
            (
                "4 KiB overwrite (preallocated) + fdatasync",
                &self.raw_overwrite,
            ),
        ] {
            writeln!(
                f,
                "raw {name}: {:.0} syncs/s, p50 {:.0} µs, p99 {:.0} µs",
                s.syncs_per_sec, s.p50_us, s.p99_us
            )?;
        }
        Ok(())
    }
}

/// Runs the benchmark. Takes about `writers.len() * duration * 1.1 + 2 * raw_sync_duration`.
pub fn bench(opts: &BenchOptions) -> Result<BenchReport> {
    bench_with_progress(opts, |_| {})
}

/// [`bench()`], calling `progress` with a line saying what it starts measuring next.
pub fn bench_with_progress(
    opts: &BenchOptions,
    mut progress: impl FnMut(&str),
) -> Result<BenchReport> {
    let parent = opts.dir.clone().unwrap_or_else(std::env::temp_dir);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let base = parent.join(format!(
        "synod-storage-bench-{}-{stamp}",
        std::process::id()
    ));
    fsutil::create_dir(&base)?;
    let result = run_all(opts, &base, &mut progress);
    let _ = std::fs::remove_dir_all(&base);
    result
}

fn run_all(
    opts: &BenchOptions,
    base: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<BenchReport> {
    let mut cases = Vec::new();
    for &writers in &opts.writers {
        progress(&format!("group commit, {writers} writer(s)"));
        cases.push(group_case(
            opts,
            &base.join(format!("wal-{writers}")),
            writers.max(1),
        )?);
    }
    progress("raw fdatasync, appending");
    let raw_append = raw_sync(&base.join("raw-append"), false, opts.raw_sync_duration)?;
    progress("raw fdatasync, overwriting");
    let raw_overwrite = raw_sync(&base.join("raw-overwrite"), true, opts.raw_sync_duration)?;
    Ok(BenchReport {
        dir: base.to_path_buf(),
        record_size: opts.record_size,
        cases,
        raw_append,
        raw_overwrite,
    })
}

fn group_case(opts: &BenchOptions, dir: &Path, writers: usize) -> Result<CaseResult> {
    let wal_opts = WalOptions {
        segment_size: opts.segment_size,
        max_record_size: opts.record_size.max(1 << 20),
        ..WalOptions::default()
    };
    let (wal, _) = Wal::open(dir, wal_opts)?;
    let gc = GroupCommitter::start(wal)?;
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Barrier::new(writers + 1));
    let threads: Vec<_> = (0..writers)
        .map(|t| {
            let h = gc.handle();
            let (measuring, stop, ready) = (measuring.clone(), stop.clone(), ready.clone());
            let size = opts.record_size;
            std::thread::spawn(move || -> Result<Vec<u32>> {
                let mut lat = Vec::with_capacity(1 << 16);
                ready.wait();
                while !stop.load(Ordering::Relaxed) {
                    let rec = vec![t as u8; size];
                    let t0 = Instant::now();
                    h.append_durable(rec)?;
                    if measuring.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                        lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                }
                Ok(lat)
            })
        })
        .collect();
    ready.wait();
    std::thread::sleep((opts.duration / 10).max(Duration::from_millis(200)));
    let before = gc.stats();
    measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    std::thread::sleep(opts.duration);
    stop.store(true, Ordering::Relaxed);
    let seconds = t0.elapsed().as_secs_f64();
    let after = gc.stats();
    let mut lat = Vec::new();
    for t in threads {
        lat.extend(t.join().expect("bench writer thread panicked")?);
    }
    drop(gc);
    let _ = std::fs::remove_dir_all(dir);
    let records = lat.len() as u64;
    let syncs = after.syncs - before.syncs;
    let appended = after.records - before.records;
    lat.sort_unstable();
    Ok(CaseResult {
        writers,
        records,
        seconds,
        records_per_sec: records as f64 / seconds,
        mb_per_sec: (records * opts.record_size as u64) as f64 / seconds / 1e6,
        syncs,
        records_per_sync: appended as f64 / syncs.max(1) as f64,
        p50_us: percentile(&lat, 0.50),
        p99_us: percentile(&lat, 0.99),
    })
}

fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize] as f64
}

fn raw_sync(path: &Path, overwrite: bool, duration: Duration) -> Result<SyncResult> {
    const BLOCK: u64 = 4096;
    const AREA: u64 = 64 << 20;
    let mut file: File = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .ctx("create", path)?;
    if overwrite {
        fsutil::write_zeros(&file, 0, AREA).ctx("zero-fill", path)?;
        file.sync_all().ctx("fsync", path)?;
    }
    let block = vec![0xabu8; BLOCK as usize];
    let mut lat = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < duration {
        let t = Instant::now();
        if overwrite {
            let at = (lat.len() as u64 * BLOCK) % AREA;
            file.write_all_at(&block, at).ctx("write", path)?;
        } else {
            file.write_all(&block).ctx("write", path)?;
        }
        file.sync_data().ctx("fdatasync", path)?;
        lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
    }
    let seconds = t0.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(path);
    let syncs = lat.len() as u64;
    lat.sort_unstable();
    Ok(SyncResult {
        syncs,
        syncs_per_sec: syncs as f64 / seconds,
        p50_us: percentile(&lat, 0.50),
        p99_us: percentile(&lat, 0.99),
    })
}
