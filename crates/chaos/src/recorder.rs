//! Turning what clients did into history entries: times, outcomes, counts.

use crate::error::{ChaosError, Result};
use serde::Serialize;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use synod_check::{Entry, Outcome};

/// The run's clock: microseconds since the run started, shared by every client, so call and
/// return times of different clients compare.
#[derive(Clone, Copy, Debug)]
pub struct Clock(Instant);

impl Clock {
    /// A clock starting now.
    pub fn start() -> Clock {
        Clock(Instant::now())
    }

    /// Microseconds since the start.
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// Operations so far by outcome, shared by the clients for progress lines.
#[derive(Debug, Default)]
pub struct Tally {
    ok: AtomicU64,
    fail: AtomicU64,
    unknown: AtomicU64,
}

/// Counts of operations by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Completed.
    pub ok: u64,
    /// Certainly did not happen.
    pub failed: u64,
    /// Timed out or lost: may or may not have happened.
    pub indeterminate: u64,
}

impl Tally {
    /// Counts one operation.
    pub fn add(&self, outcome: Outcome) {
        let c = match outcome {
            Outcome::Ok => &self.ok,
            Outcome::Fail => &self.fail,
            Outcome::Unknown => &self.unknown,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn counts(&self) -> Counts {
        Counts {
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.fail.load(Ordering::Relaxed),
            indeterminate: self.unknown.load(Ordering::Relaxed),
        }
    }
}

impl Counts {
    /// Counts of a finished history.
    pub fn of(history: &[Entry]) -> Counts {
        let mut c = Counts::default();
        for e in history {
            match e.outcome {
                Outcome::Ok => c.ok += 1,
                Outcome::Fail => c.failed += 1,
                Outcome::Unknown => c.indeterminate += 1,
            }
        }
        c
    }
}

/// What an error from the etcd client says about whether the operation happened.
///
/// Only an answer that proves the server refused the request before doing anything counts as
/// a failure: an invalid request, or a connection that was never made (nothing was sent).
/// Anything else (a timeout, `etcdserver: request timed out`, a connection lost mid-request,
/// a stopped server) may have taken effect, or may still: indeterminate.
pub fn classify(err: &etcd_client::Error) -> Outcome {
    use etcd_client::Error as E;
    use tonic::Code;
    match err {
        E::InvalidArgs(_) | E::InvalidUri(_) | E::InvalidMetadataValue(_) => Outcome::Fail,
        E::GRpcStatus(s) => match s.code() {
            Code::InvalidArgument
            | Code::OutOfRange
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::Unimplemented => Outcome::Fail,
            _ if refused(s.message()) => Outcome::Fail,
            _ => Outcome::Unknown,
        },
        other if refused(&other.to_string()) => Outcome::Fail,
        _ => Outcome::Unknown,
    }
}

/// A TCP connection that was refused carried no request.
fn refused(message: &str) -> bool {
    message.contains("Connection refused")
}

/// Writes `history` as JSON lines to `path`.
pub fn write(path: &Path, history: &[Entry]) -> Result<()> {
    let io = |source| ChaosError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::create(path).map_err(io)?;
    let mut out = BufWriter::new(f);
    synod_check::write_history(&mut out, history).map_err(io)?;
    out.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_check::Op;

    #[test]
    fn timeouts_are_indeterminate_refusals_are_failures() {
        let timed_out = etcd_client::Error::GRpcStatus(tonic::Status::unavailable(
            "etcdserver: request timed out",
        ));
        assert_eq!(classify(&timed_out), Outcome::Unknown);
        let bad = etcd_client::Error::GRpcStatus(tonic::Status::invalid_argument("too big"));
        assert_eq!(classify(&bad), Outcome::Fail);
        let refused = etcd_client::Error::GRpcStatus(tonic::Status::unavailable(
            "tcp connect error: Connection refused (os error 111)",
        ));
        assert_eq!(classify(&refused), Outcome::Fail);
        let cancelled = etcd_client::Error::GRpcStatus(tonic::Status::cancelled("h2 reset"));
        assert_eq!(classify(&cancelled), Outcome::Unknown);
    }

    #[test]
    fn tally_counts_by_outcome() {
        let t = Tally::default();
        for o in [Outcome::Ok, Outcome::Ok, Outcome::Fail, Outcome::Unknown] {
            t.add(o);
        }
        assert_eq!(
            t.counts(),
            Counts {
                ok: 2,
                failed: 1,
                indeterminate: 1
            }
        );
    }

    #[test]
    fn a_written_history_reads_back_the_same() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("history.jsonl");
        let h = vec![
            Entry {
                client: 1,
                key: "k".into(),
                op: Op::Put {
                    value: "1-1".into(),
                },
                call: 5,
                ret: Some(9),
                outcome: Outcome::Ok,
            },
            Entry {
                client: 2,
                key: "k".into(),
                op: Op::Cas {
                    expected: None,
                    value: "2-1".into(),
                    ok: false,
                },
                call: 6,
                ret: None,
                outcome: Outcome::Unknown,
            },
        ];
        write(&path, &h).expect("write");
        let f = std::fs::File::open(&path).expect("open");
        let back = synod_check::read_history(std::io::BufReader::new(f)).expect("read");
        assert_eq!(back, h);
        assert_eq!(
            Counts::of(&back),
            Counts {
                ok: 1,
                failed: 0,
                indeterminate: 1
            }
        );
    }
}
