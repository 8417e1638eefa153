//! Load generation over the etcd v3 API: the same code drives etcd and Synod.
//!
//! - [`loadgen`]: closed-loop and open-loop clients, HDR histograms, JSON results.
//! - [`cluster`]: local etcd and Synod clusters on free ports, stopped when dropped.
//! - [`compare`]: both systems, every case, alternating; the ratio table, the targets and the
//!   latency-throughput plot ([`plot`]).

pub mod cluster;
pub mod compare;
pub mod error;
pub mod loadgen;
pub mod pbft;
pub mod plot;
pub mod procs;
pub mod result;
pub mod schedule;
pub mod summary;
pub mod table;
pub mod workload;

pub use error::{BenchError, Result};
/// TLS settings for [`Security`], as the etcd client takes them.
pub use etcd_client::{Certificate, Identity, TlsOptions};
pub use loadgen::{run, RunConfig, Security};
pub use pbft::{run_pbft, PbftRunConfig};
pub use result::{RunResult, Timeline};
pub use workload::{KeyDist, Workload};
