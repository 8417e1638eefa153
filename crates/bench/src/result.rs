//! The outcome of one load-generator run, as written to JSON.

use crate::summary::LatencySummary;
use crate::workload::{KeyDist, Workload};
use serde::{Deserialize, Serialize};

/// How a compare-and-set run went.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CasCounts {
    /// Transactions whose compare held (the put happened).
    pub succeeded: u64,
    /// Transactions whose compare failed (another client got there first, or the revision was
    /// not known yet): the key was read instead.
    pub failed: u64,
}

/// Everything one run measured, and the settings that produced it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Which system was measured, when the caller knows (`synod`, `etcd`).
    pub system: Option<String>,
    /// The endpoints the clients used.
    pub endpoints: Vec<String>,
    /// The workload.
    pub workload: Workload,
    /// Concurrent clients (closed loop: requests in flight; open loop: workers).
    pub clients: usize,
    /// gRPC connections the clients shared.
    pub conns: usize,
    /// Bytes per value written.
    pub value_size: usize,
    /// Keys in the key space.
    pub keys: u64,
    /// How keys were drawn.
    pub dist: KeyDist,
    /// Percentage of reads (mix workload).
    pub read_percent: u8,
    /// Open loop: the target rate in requests per second; none for closed loop.
    pub rate: Option<f64>,
    /// Seconds of warm-up, not recorded.
    pub warmup_s: f64,
    /// Seconds measured.
    pub duration_s: f64,
    /// Requests completed successfully in the measured window.
    pub ops: u64,
    /// Requests that failed in the measured window.
    pub errors: u64,
    /// A few of the error messages, to say what went wrong.
    pub error_samples: Vec<String>,
    /// Completed requests per second over the measured window.
    pub throughput: f64,
    /// Latency in milliseconds: from the intended send time in open loop, from the send in
    /// closed loop.
    pub latency_ms: LatencySummary,
    /// Open loop only: latency from the actual send (service time), for comparison with
    /// `latency_ms`; the difference is time spent waiting for a free worker or a late timer.
    pub service_ms: Option<LatencySummary>,
    /// Compare-and-set outcomes (cas workload).
    pub cas: Option<CasCounts>,
    /// How much the leader's term (etcd) or ballot round (Synod) grew over the run, when the
    /// caller checked: more than zero means leadership changed during the measurement.
    #[serde(default)]
    pub term_change: Option<u64>,
    /// Server CPU time (user + system, summed over the server processes the run was given)
    /// per request completed in the measured window, in microseconds. On a machine where the
    /// load generator shares the cores, this bounds throughput more than latency does. None
    /// when no server processes were named or `/proc` could not be read.
    #[serde(default)]
    pub server_cpu_us_per_op: Option<f64>,
    /// The load generator's own CPU time per completed request, in microseconds, over the same
    /// window.
    #[serde(default)]
    pub loadgen_cpu_us_per_op: Option<f64>,
    /// Requests completed per interval over the measured window, when asked for.
    #[serde(default)]
    pub timeline: Option<Timeline>,
}

/// Throughput over time: how many measured requests completed in each interval of a run. The
/// first interval lacks the requests sent in the warm-up that completed in it (at most one per
/// client), and the last whole interval ends the timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Length of one interval, in milliseconds.
    pub interval_ms: f64,
    /// Requests completed in each interval, in order.
    pub ops: Vec<u64>,
}

impl Timeline {
    /// The median interval's count, and the lowest count with the index of its interval.
    pub fn median_and_min(&self) -> Option<(u64, (usize, u64))> {
        let mut sorted = self.ops.clone();
        sorted.sort_unstable();
        let median = *sorted.get(sorted.len() / 2)?;
        let (at, &min) = self.ops.iter().enumerate().min_by_key(|(_, &n)| n)?;
        Some((median, (at, min)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_and_the_lowest_interval() {
        let t = Timeline {
            interval_ms: 100.0,
            ops: vec![50, 52, 10, 49, 51],
        };
        assert_eq!(t.median_and_min(), Some((50, (2, 10))));
        let empty = Timeline {
            interval_ms: 100.0,
            ops: vec![],
        };
        assert_eq!(empty.median_and_min(), None);
    }
}
