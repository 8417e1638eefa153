//! Every integration test of this crate, in one binary: one build and one link instead of
//! one per file, and the files' tests run side by side.

mod admin_and_hostile_input;
mod bench_cli;
mod chaos;
mod cheap;
mod common;
mod etcd_client;
mod etcdctl;
mod fast_multi_server;
mod keygen;
mod lock_and_election;
mod membership;
mod operator;
mod pbft_cluster;
mod server_config;
mod tls_and_auth;
mod watch_and_leases;
