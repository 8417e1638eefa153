//! Open-loop scheduling: request `n` is due at `start + n / rate`, whatever happened to the
//! requests before it. Latency is measured from that intended time, so a stalled server is
//! charged for every request it kept waiting (no coordinated omission), as wrk2 does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The shared timetable of an open-loop run: workers take tickets in order, each ticket due at
/// its intended send time.
pub struct Schedule {
    start: Instant,
    rate: f64,
    next: AtomicU64,
}

impl Schedule {
    /// A timetable of `rate` requests per second beginning at `start`.
    ///
    /// `rate` must be positive and finite (the CLI checks it).
    pub fn new(start: Instant, rate: f64) -> Self {
        Schedule {
            start,
            rate,
            next: AtomicU64::new(0),
        }
    }

    /// When request `n` is due, relative to the start.
    pub fn offset(rate: f64, n: u64) -> Duration {
        Duration::from_secs_f64(n as f64 / rate)
    }

    /// Takes the next ticket and returns its intended send time.
    pub fn take(&self) -> Instant {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.start + Self::offset(self.rate, n)
    }

    /// How many tickets were handed out.
    pub fn issued(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }
}

/// The latency charged to a request: from its intended send time (open loop) or from when it
/// was actually sent (closed loop, where the two coincide) to its completion.
pub fn charged(intended: Instant, done: Instant) -> Duration {
    done.saturating_duration_since(intended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_evenly_spaced() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 4000.0);
        let times: Vec<Instant> = (0..5).map(|_| s.take()).collect();
        assert_eq!(times[0], t0);
        for w in times.windows(2) {
            let gap = w[1] - w[0];
            // 1/4000 s = 250 µs, up to float rounding.
            assert!(gap.as_nanos().abs_diff(250_000) <= 1, "gap {gap:?}");
        }
        assert_eq!(s.issued(), 5);
        assert_eq!(Schedule::offset(4000.0, 4000), Duration::from_secs(1));
    }

    #[test]
    fn a_late_send_is_charged_from_the_intended_time() {
        // A server that stalls 100 ms delays the request due at t0 + 10 ms: it is charged the
        // 95 ms it waited to be sent as well as the 5 ms it took once sent.
        let t0 = Instant::now();
        let intended = t0 + Schedule::offset(100.0, 1);
        let sent = t0 + Duration::from_millis(100);
        let done = sent + Duration::from_millis(5);
        assert_eq!(charged(intended, done), Duration::from_millis(95));
        assert_eq!(charged(sent, done), Duration::from_millis(5));
        // Never negative.
        assert_eq!(charged(done, sent), Duration::ZERO);
    }
}
