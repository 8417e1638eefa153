//! Playing a node's driver in tests: starting a node, ending its turns with every write
//! durable at once, and electing a one-member node.

// Each test binary uses its own part of this.
#![allow(dead_code)]

use std::time::Duration;
use synod_core::multi::{Message, PendingSnapshot, RoleKind};
use synod_core::{Ballot, PlantedBug};
use synod_kv::{KvCommand, PutRequest};
use synod_node::{Action, NodeConfig, NodeCore, Recovered};

/// The tick every test node counts in.
pub const TICK: Duration = Duration::from_millis(10);

/// Starts the node `cfg` describes, restarted from a disk whose last boot was `boot_before`.
pub fn start(cfg: NodeConfig, boot_before: u64) -> NodeCore {
    let recovered = Recovered {
        boot: boot_before,
        ..Default::default()
    };
    let mut n = NodeCore::new(cfg, recovered, 1, 0).expect("valid config");
    n.start();
    n
}

/// Node 2 of three, with `bug` planted, that heard node 1 lead.
pub fn follower(boot_before: u64, bug: Option<PlantedBug>) -> NodeCore {
    let mut cfg = NodeConfig::new(2, vec![1, 2, 3], TICK);
    cfg.bug = bug;
    let mut n = start(cfg, boot_before);
    n.on_peer(
        1,
        Message::Heartbeat {
            ballot: Ballot::new(1, 1),
            commit: 0,
        },
    );
    n.flush();
    n.take_actions();
    n
}

/// A put of `key`.
pub fn put(key: &str) -> KvCommand {
    KvCommand::Put(PutRequest {
        key: key.into(),
        value: b"v".to_vec().into(),
        ..Default::default()
    })
}

/// A node and the disk its log is on, as far as the node can tell.
pub struct Driver {
    /// The node.
    pub n: NodeCore,
    /// The log's size: every write adds 100 bytes.
    pub disk: u64,
    /// Snapshots asked for and not yet handed back, with the log's size the node last saw.
    pub builds: Vec<(PendingSnapshot, u64)>,
    /// Whether each snapshot asked for was wanted by someone waiting (in order, never popped).
    pub wanted: Vec<bool>,
    /// Checkpoints asked for and not yet reported saved: the record each covers.
    pub saves: Vec<u64>,
}

impl Driver {
    /// Starts the node `cfg` describes, restarted from a disk whose last boot was
    /// `boot_before`.
    pub fn new(cfg: NodeConfig, boot_before: u64) -> Self {
        Self::of(start(cfg, boot_before))
    }

    /// Drives node `n`, started already, whose log is empty so far.
    pub fn of(n: NodeCore) -> Self {
        Driver {
            n,
            disk: 0,
            builds: Vec::new(),
            wanted: Vec::new(),
            saves: Vec::new(),
        }
    }

    /// Ends the turn: every write is durable at once, snapshots and checkpoints asked for are
    /// kept aside. Returns the node's other actions, in order.
    pub fn turn(&mut self) -> Vec<Action> {
        let mut rest = Vec::new();
        loop {
            self.n.flush();
            let actions = self.n.take_actions();
            if actions.is_empty() {
                return rest;
            }
            // Decided at the flush, before this flush's write was synced.
            let seen = self.disk;
            for a in actions {
                match a {
                    Action::Write { batch, sync, .. } => {
                        self.disk += 100;
                        if sync {
                            self.n.synced(batch, self.disk);
                        }
                    }
                    Action::BuildSnapshot { pending, wanted } => {
                        self.builds.push((pending, seen));
                        self.wanted.push(wanted);
                    }
                    Action::Checkpoint { covered, .. } => self.saves.push(covered),
                    other => rest.push(other),
                }
            }
        }
    }

    /// Ticks a one-member node until it leads; returns how many ticks that took.
    pub fn elect(&mut self) -> u64 {
        for t in 1..=1_000 {
            self.n.tick();
            self.turn();
            if self.n.replica().role_kind() == RoleKind::Leader {
                return t;
            }
        }
        panic!("a one-member cluster elects itself");
    }
}
