//! Latency histograms and the figures taken from them.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A latency histogram in microseconds, 3 significant digits, up to one minute.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts, so this cannot fail.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant histogram bounds are valid")
}

/// Records `d` in `h`, clamped to the histogram's range (a request slower than a minute counts
/// as a minute).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
    h.saturating_record(us);
}

/// The figures of one latency histogram, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Requests recorded.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest.
    pub max: f64,
}

impl LatencySummary {
    /// The figures of `h` (recorded in microseconds).
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        LatencySummary {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_histogram() {
        let mut h = new_histogram();
        // 1..=1000 µs, once each.
        for us in 1..=1000u64 {
            record(&mut h, Duration::from_micros(us));
        }
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 1000);
        assert!((s.p50 - 0.5).abs() < 0.002, "p50 {}", s.p50);
        assert!((s.p90 - 0.9).abs() < 0.002, "p90 {}", s.p90);
        assert!((s.p99 - 0.99).abs() < 0.002, "p99 {}", s.p99);
        assert!((s.max - 1.0).abs() < 0.002, "max {}", s.max);
        assert!((s.mean - 0.5005).abs() < 0.002, "mean {}", s.mean);
    }

    #[test]
    fn empty_and_huge_values() {
        assert_eq!(LatencySummary::of(&new_histogram()).count, 0);
        let mut h = new_histogram();
        record(&mut h, Duration::from_secs(3600));
        record(&mut h, Duration::ZERO);
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 2);
        assert!(s.max >= 59_000.0);
    }
}
