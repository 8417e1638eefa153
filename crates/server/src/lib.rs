//! Synod's server: a Multi-Paxos replica driven by tokio (or, with `--protocol fast-multi`, a
//! Fast Multi-Paxos server), with peers over TCP, a write-ahead log honouring the
//! persist-before-send contract with group commit, and the etcd v3 gRPC API.

pub mod admin;
pub mod auth;
pub mod auth_svc;
pub mod aux_server;
pub mod backup;
pub mod cluster_svc;
pub mod config;
pub mod convert;
pub mod election_svc;
pub mod fast_node;
pub mod genesis;
pub mod grpc;
pub mod handoff;
pub mod incoming;
pub mod jwt;
pub mod lease_svc;
pub mod lock_svc;
pub mod maintenance_svc;
pub mod metrics;
pub mod node;
pub mod pace;
pub mod peer;
pub mod proto;
pub mod recipes;
pub mod server;
pub mod tls;
pub mod watch;
pub mod watch_svc;
