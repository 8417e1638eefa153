//! What a run is asked to do.

use crate::schedule::FaultKind;
use std::path::PathBuf;
use std::time::Duration;

/// Where the servers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// Each node in a network namespace of its own, joined by veth pairs to a bridge (root
    /// only). All faults are possible.
    Namespaces,
    /// All nodes on 127.0.0.1 with free ports: only kill and pause faults, since there is no
    /// per-node network to cut.
    Loopback,
}

/// A chaos run's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Cluster size.
    pub nodes: u64,
    /// How long faults are injected.
    pub fault_time: Duration,
    /// Concurrent clients.
    pub clients: u64,
    /// Keys the clients share.
    pub keys: u64,
    /// Seed of the fault schedule and of the clients' choices.
    pub seed: u64,
    /// Fault kinds to draw from (empty: a run without faults).
    pub faults: Vec<FaultKind>,
    /// Where history.jsonl, summary.json, anomaly.svg and the node logs go.
    pub out_dir: PathBuf,
    /// The `synod` binary to start as `synod server`.
    pub synod: PathBuf,
    /// Pass the testing-only `--unsafe-local-reads` switch to the servers (the teeth test).
    pub unsafe_local_reads: bool,
    /// The servers' `--protocol` (`multi` when unset).
    pub protocol: Option<String>,
    /// Namespaces or loopback.
    pub network: Network,
    /// How long a client waits for an answer before recording the operation as indeterminate.
    pub op_timeout: Duration,
    /// How long the checker may search before giving up with no verdict.
    pub check_time: Duration,
    /// Run over TLS: a directory of certificates as `synod certs` writes them (ca.pem,
    /// node<ID>.pem and node<ID>-key.pem, client.pem and client-key.pem). The servers serve
    /// clients over TLS with client certificates and talk to each other over mutual TLS.
    pub tls: Option<PathBuf>,
    /// The command line that reproduces this run (recorded in the summary).
    pub command: String,
}

impl Config {
    /// A run of `seconds` of faults with the defaults of `synod chaos`.
    pub fn new(synod: PathBuf, out_dir: PathBuf, seconds: u64, seed: u64) -> Config {
        Config {
            nodes: 3,
            fault_time: Duration::from_secs(seconds),
            clients: 6,
            keys: 4,
            seed,
            faults: FaultKind::ALL.to_vec(),
            out_dir,
            synod,
            unsafe_local_reads: false,
            protocol: None,
            network: Network::Namespaces,
            op_timeout: Duration::from_millis(1000),
            check_time: Duration::from_secs(120),
            tls: None,
            command: String::new(),
        }
    }
}
