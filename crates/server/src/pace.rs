//! Pacing a snapshot: its encoding and its save spread over about half the time until the
//! next one is due, rather than taking a core and the disk at once.
//!
//! At a million keys a node encoded about 400 MB in 2-6 s and wrote it in 1-2 s, and puts
//! fell to 28-45% of their median for those seconds (docs/performance.md, "Scale"). The work
//! itself is small against the time between snapshots (a node snapshots once its log has
//! grown by as much as its last checkpoint holds, a couple of minutes at that size); done all
//! at once it is not.
//!
//! A snapshot someone waits for (an operator's `etcdctl defrag`, a joining member) is not
//! paced, and one under way finishes at full speed once someone does, once the log has grown
//! by as much again as when it began (at least by the last checkpoint's size), or once its
//! node stops.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The slowest a paced snapshot walks or writes: a store whose log grows slowly still
/// snapshots within about two minutes per 500 MB (one pass to encode, one to save). A node
/// hurries a snapshot whose log outgrew its pace ([`overdue`], from `Node::flush`).
pub const MIN_RATE: f64 = 8.0 * 1024.0 * 1024.0;

/// How many times faster than the log grows a snapshot's save writes, unless
/// `--snapshot-pace` says otherwise; its encode goes at half that ([`encode_rate`]). A store
/// that knows how long its last snapshot was encodes in one pass (no size pass), so at six
/// times the log's rate the encode (a third of the time) and the save (a sixth) of a state of
/// the last checkpoint's size take half the time the log needs to grow by as much, which is
/// when the next snapshot is due.
pub const DEFAULT_FACTOR: u32 = 6;

/// How much slower than the save the encode goes: the encode takes a core for as long as it
/// runs (about 0.7 s of CPU per 300 MB at a million keys, `synod-kv`'s `snapshot_cost`
/// example), the save mostly waits for the disk, so the encode gets the larger share of the
/// time and takes less of the core at any moment.
pub const ENCODE_SLOWER: f64 = 2.0;

/// The pace of a snapshot's encode when its save goes at `save_rate`: [`ENCODE_SLOWER`] times
/// slower, but no slower than [`MIN_RATE`].
pub fn encode_rate(save_rate: f64) -> f64 {
    (save_rate / ENCODE_SLOWER).max(MIN_RATE)
}

/// How fast a snapshot begun now should go, in bytes per second, when the log grew by
/// `logged` bytes in `over` since the last checkpoint: `factor` times that, at least
/// [`MIN_RATE`]. `None` (as fast as it can) for a factor of 0.
pub fn snapshot_rate(factor: u32, logged: u64, over: Duration) -> Option<f64> {
    if factor == 0 {
        return None;
    }
    let secs = over.as_secs_f64().max(1e-3);
    Some((factor as f64 * logged as f64 / secs).max(MIN_RATE))
}

/// Whether a snapshot under way should finish at full speed because the log outgrew its pace:
/// the log has grown by `logged` bytes since the last checkpoint (of `checkpoint_bytes`), and
/// had grown by `logged_at_start` when the snapshot began. Its pace was set for the next
/// snapshot to be due about when it ends, so it is overdue once the log grew by as much again
/// while it ran: by the last checkpoint's size, or by what the log held when it began if that
/// was more. Measured from the checkpoint alone, a snapshot that began long after its bytes
/// were due (the first of a new node, after an empty checkpoint) was overdue at once and ran
/// at full speed on every node together.
pub fn overdue(logged: u64, logged_at_start: u64, checkpoint_bytes: u64) -> bool {
    let grown = logged.saturating_sub(logged_at_start);
    grown >= checkpoint_bytes.max(logged_at_start)
}

/// The longest one sleep of a [`Pace`] lasts before it looks at its hurry flag again.
const NAP: Duration = Duration::from_millis(50);

/// Holds work to a rate: after `done` bytes, waits until they are due, unless told to hurry.
#[derive(Clone, Debug)]
pub struct Pace {
    rate: Option<f64>,
    started: Instant,
    /// Once set, the rest goes at full speed: when someone waits for a checkpoint, when the
    /// log outgrows the pace, and when the node stops (a stopping server's runtime waits for
    /// its blocking tasks).
    hurry: Arc<AtomicBool>,
}

impl Pace {
    /// At most `rate` bytes per second from now, until `hurry` is set; `None` goes as fast
    /// as it can.
    pub fn new(rate: Option<f64>, hurry: Arc<AtomicBool>) -> Self {
        Pace {
            rate,
            started: Instant::now(),
            hurry,
        }
    }

    /// How long to wait after `done` bytes, `elapsed` after the start, to keep to `rate`.
    pub fn delay(rate: f64, done: u64, elapsed: Duration) -> Duration {
        let due = Duration::from_secs_f64(done as f64 / rate);
        due.saturating_sub(elapsed)
    }

    /// Sleeps (this thread: a blocking pool's) until `done` bytes are due.
    pub fn wait(&self, done: u64) {
        let Some(rate) = self.rate else { return };
        while !self.hurry.load(Ordering::Relaxed) {
            let wait = Self::delay(rate, done, self.started.elapsed());
            if wait.is_zero() {
                return;
            }
            std::thread::sleep(wait.min(NAP));
        }
    }
}

/// How many bytes pass through a [`PacedWrite`] between two checks of the clock.
const CHECK_EVERY: u64 = 256 * 1024;

/// A writer held to a [`Pace`].
pub struct PacedWrite<'a> {
    inner: &'a mut dyn Write,
    pace: Pace,
    written: u64,
    checked: u64,
}

impl<'a> PacedWrite<'a> {
    /// Writes to `inner` at `pace`.
    pub fn new(inner: &'a mut dyn Write, pace: Pace) -> Self {
        PacedWrite {
            inner,
            pace,
            written: 0,
            checked: 0,
        }
    }
}

impl Write for PacedWrite<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        if self.written - self.checked >= CHECK_EVERY {
            self.checked = self.written;
            self.pace.wait(self.written);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_overdue_once_the_log_grew_by_as_much_again() {
        let mib = 1 << 20;
        // Steady state: begun when the log had grown by the last checkpoint's 100 MiB, overdue
        // at twice that.
        assert!(!overdue(199 * mib, 100 * mib, 100 * mib));
        assert!(overdue(200 * mib, 100 * mib, 100 * mib));
        // The first snapshot of a new node: its checkpoint is a few hundred bytes, the log had
        // grown by 26 MiB when the snapshot began. Not overdue until it grows as much again.
        assert!(!overdue(26 * mib, 26 * mib, 300));
        assert!(!overdue(51 * mib, 26 * mib, 300));
        assert!(overdue(52 * mib, 26 * mib, 300));
        // A checkpoint larger than what the log held at the start still sets the bar.
        assert!(!overdue(60 * mib, 10 * mib, 100 * mib));
        assert!(overdue(110 * mib, 10 * mib, 100 * mib));
        // A log that shrank under it (a snapshot installed meanwhile) is never overdue.
        assert!(!overdue(mib, 26 * mib, 300));
    }

    #[test]
    fn the_encode_goes_at_half_the_save_with_the_same_floor() {
        let mib = 1024.0 * 1024.0;
        assert_eq!(encode_rate(40.0 * mib), 20.0 * mib);
        assert_eq!(encode_rate(MIN_RATE), MIN_RATE);
        assert_eq!(encode_rate(MIN_RATE * 1.5), MIN_RATE);
    }

    #[test]
    fn the_rate_follows_the_log_with_a_floor() {
        let mib = 1024.0 * 1024.0;
        // 60 MiB logged in 20 s: 3 MiB/s, so 18 MiB/s at six times; at twice, 6 MiB/s is below
        // the floor.
        let r = snapshot_rate(6, 60 << 20, Duration::from_secs(20)).unwrap();
        assert!((r - 18.0 * mib).abs() < 1.0, "{r}");
        assert_eq!(
            snapshot_rate(2, 60 << 20, Duration::from_secs(20)),
            Some(MIN_RATE)
        );
        // A trickle, or nothing: the floor.
        let d = DEFAULT_FACTOR;
        assert_eq!(
            snapshot_rate(d, 1 << 20, Duration::from_secs(100)),
            Some(MIN_RATE)
        );
        assert_eq!(snapshot_rate(d, 0, Duration::ZERO), Some(MIN_RATE));
        // A log that grew in no time at all: fast, and finite.
        assert!(snapshot_rate(d, u64::MAX, Duration::ZERO)
            .unwrap()
            .is_finite());
        // Pacing off.
        assert_eq!(snapshot_rate(0, 60 << 20, Duration::from_secs(20)), None);
    }

    #[test]
    fn work_waits_until_it_is_due() {
        let rate = 1000.0;
        assert_eq!(
            Pace::delay(rate, 500, Duration::from_millis(100)),
            Duration::from_millis(400)
        );
        assert_eq!(
            Pace::delay(rate, 500, Duration::from_secs(1)),
            Duration::ZERO
        );
        assert_eq!(Pace::delay(rate, 0, Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_paced_writer_passes_every_byte_and_keeps_to_its_rate() {
        let mut out = Vec::new();
        // 2 MiB at 16 MiB/s: about 125 ms; unpaced, far less.
        let rate = 16.0 * 1024.0 * 1024.0;
        let started = Instant::now();
        {
            let mut w = PacedWrite::new(&mut out, Pace::new(Some(rate), Arc::default()));
            for i in 0..2048u32 {
                w.write_all(&[i as u8; 1024]).unwrap();
            }
        }
        let took = started.elapsed();
        assert_eq!(out.len(), 2 << 20);
        assert!(out.chunks(1024).enumerate().all(|(i, c)| c[0] == i as u8));
        // The last check is at 2 MiB exactly: the writer cannot have finished before then.
        assert!(took >= Duration::from_millis(120), "{took:?}");
    }

    #[test]
    fn a_pace_told_to_hurry_stops_waiting() {
        let hurry = Arc::new(AtomicBool::new(false));
        // 1 byte per second: 1,000 bytes would be due in a quarter of an hour.
        let pace = Pace::new(Some(1.0), hurry.clone());
        let waiter = std::thread::spawn(move || pace.wait(1_000));
        std::thread::sleep(NAP);
        assert!(!waiter.is_finished(), "it waits while not hurried");
        hurry.store(true, Ordering::Relaxed);
        waiter.join().unwrap();
    }

    #[test]
    fn an_unpaced_writer_passes_writes_through() {
        let mut out = Vec::new();
        let mut w = PacedWrite::new(&mut out, Pace::new(None, Arc::default()));
        w.write_all(&vec![1u8; 4 << 20]).unwrap();
        w.flush().unwrap();
        assert_eq!(w.written, 4 << 20);
        drop(w);
        assert_eq!(out.len(), 4 << 20);
    }
}
