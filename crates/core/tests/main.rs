//! Every integration test of this crate, in one binary: one build and one link instead of
//! one per file, and the files' tests run side by side.

mod cheap;
mod commit;
mod common;
mod durable_state;
mod effects;
mod fab;
mod fab_liar;
mod fast;
mod fast_multi;
mod generalized;
mod hostile_peers;
mod join;
mod learner;
mod membership;
mod notices;
mod pbft;
mod pbft_liar;
mod probes;
mod promotion;
mod reconfig;
mod regressions;
mod removal;
mod replica;
mod snapshot_pieces;
mod thrifty_writes;
