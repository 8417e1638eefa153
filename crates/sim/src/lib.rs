//! Synod's deterministic simulator.
//!
//! It drives the very protocol code of `synod-core`, and the server's own node layer
//! (`synod-node`) over the real store, through lost, duplicated, reordered and delayed
//! messages, partitions, crash-restarts aimed at write and sync boundaries and slow disks, in
//! virtual time, with every run a pure function of its seed. After every step the checkers compare what nodes claim (learned,
//! applied, acknowledged to a client) with ground truth computed from every vote ever persisted.

pub mod basic;
pub mod cast;
pub mod commit;
pub mod fab;
pub mod fast;
pub mod fast_multi;
pub mod faults;
pub mod flow;
pub mod generalized;
pub mod history;
pub mod kv;
pub mod latency;
pub mod ledger;
pub mod liars;
pub mod multi;
pub mod net;
pub mod pbft;
pub mod queue;
pub mod report;
pub mod runner;
pub mod swarm;
pub mod trace;
pub mod truth;
pub mod world;

pub use basic::{BasicSim, BasicSimConfig};
pub use fab::{FabSim, FabSimConfig};
pub use fast::{FastSim, FastSimConfig};
pub use fast_multi::{FastMultiSim, FastMultiSimConfig};
pub use faults::Faults;
pub use multi::{MultiSim, MultiSimConfig};
pub use pbft::{PbftSim, PbftSimConfig};
pub use report::{RunReport, Stats, Violation};
pub use runner::{run_many, Protocol, SimOptions, Summary};
