//! Prometheus metrics of one node.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// The node's counters and histograms, registered in their own registry.
#[derive(Clone)]
pub struct Metrics {
    /// Where they are registered (what `/metrics` renders).
    pub registry: Registry,
    /// Client commands submitted to the log.
    pub proposals: IntCounter,
    /// Slots applied to the state machine.
    pub applied: IntCounter,
    /// Client commands per applied slot.
    pub batch_size: Histogram,
    /// From handing a batch to the group committer until it is durable.
    pub fsync_seconds: Histogram,
    /// Records per fsync.
    pub records_per_fsync: Histogram,
    /// Log batches made durable, by the thread that synced them: `loop` (a lone small batch
    /// at low load) or `flusher` (one sync there may cover several batches).
    pub log_batches: IntCounterVec,
    /// Log batches written without a sync of their own (chosen values learned from others:
    /// a member left out of thrifty accepts); a later sync makes them durable.
    pub log_unsynced_batches: IntCounter,
    /// Times this node stood for election.
    pub elections: IntCounter,
    /// Client commands handed on again at once after a change of leader.
    pub rerouted: IntCounter,
    /// Peer messages sent, by kind.
    pub sent: IntCounterVec,
    /// Peer messages received, by kind.
    pub received: IntCounterVec,
    /// Client request latency, by method.
    pub request_seconds: HistogramVec,
    /// Watchers on this node.
    pub watchers: IntGauge,
}

impl Metrics {
    /// Fresh metrics.
    pub fn new() -> Self {
        let registry = Registry::new();
        let lat = vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ];
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let hist = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let by = |label: &str, name: &str, help: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let request_seconds = HistogramVec::new(
            HistogramOpts::new("synod_client_request_seconds", "Client request latency.")
                .buckets(lat.clone()),
            &["method"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(request_seconds.clone()))
            .expect("unique metric");
        Metrics {
            proposals: counter(
                "synod_proposals_total",
                "Client commands submitted to the log.",
            ),
            applied: counter(
                "synod_applied_slots_total",
                "Log slots applied to the store.",
            ),
            batch_size: hist(
                "synod_batch_size",
                "Client commands per applied slot.",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
            ),
            fsync_seconds: hist(
                "synod_fsync_seconds",
                "From handing a batch of log records to the group committer until they are durable (the fsync and any wait for the one before it).",
                lat,
            ),
            records_per_fsync: hist(
                "synod_records_per_fsync",
                "Log records made durable by one fsync.",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0],
            ),
            log_unsynced_batches: counter(
                "synod_log_unsynced_batches_total",
                "Log batches written without a sync of their own (chosen values learned from others, as a member left out of thrifty accepts); the next sync makes them durable.",
            ),
            elections: counter(
                "synod_elections_total",
                "Times this node stood for election.",
            ),
            rerouted: counter(
                "synod_commands_rerouted_total",
                "Client commands this node handed on again at once because it now sends commands to another leader (or leads itself) than the one it sent them to, which will not answer them.",
            ),
            log_batches: by(
                "thread",
                "synod_log_batches_total",
                "Log batches made durable, by the thread that synced them: the node loop's own (a lone small batch at low load) or the flusher (where one sync may cover several batches).",
            ),
            sent: by(
                "kind",
                "synod_peer_messages_sent_total",
                "Peer messages sent, by kind.",
            ),
            received: by(
                "kind",
                "synod_peer_messages_received_total",
                "Peer messages received, by kind.",
            ),
            request_seconds,
            watchers: {
                let g = IntGauge::new("synod_watchers", "Watchers on this node.")
                    .expect("valid metric");
                registry
                    .register(Box::new(g.clone()))
                    .expect("unique metric");
                g
            },
            registry,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
