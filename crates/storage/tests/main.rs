//! Every integration test of this crate, in one binary: one build and one link instead of
//! one per file, and the files' tests run side by side.

mod bit_flips;
mod common;
mod crash;
mod group_commit;
mod model;
mod snapshot;
mod torn_tail;
mod wal_ops;
