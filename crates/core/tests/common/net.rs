//! A tiny synchronous network of replicas, driven by hand: messages are delivered in order
//! until none are left, some dropped on request; every record is durable at once.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use synod_core::multi::auxiliary::{AuxDurable, Auxiliary};
use synod_core::multi::{
    Command, Config, DurableState, Message, MultiEffects, Output, Replica, RoleKind, Timer,
};
use synod_core::{NodeId, PlantedBug};

use super::Counter;

type Fx = MultiEffects<u64, u64>;

pub struct Net {
    pub replicas: BTreeMap<NodeId, Replica<Counter>>,
    pub disks: BTreeMap<NodeId, DurableState<u64>>,
    pub queue: VecDeque<(NodeId, NodeId, Message<u64>)>,
    pub down: BTreeSet<NodeId>,
    pub replies: Vec<(NodeId, Output<u64>)>,
    pub window: usize,
    /// Changes chosen in slot `i` govern from `i + alpha`.
    pub alpha: u64,
    /// Planted in every replica.
    pub bug: Option<PlantedBug>,
    pub n: u64,
    /// Nodes started to join the running cluster (their peers to ask: 1..=n).
    pub joiners: BTreeSet<NodeId>,
    /// Snapshots larger than this go in pieces (set before the replicas boot again).
    pub snapshot_chunk: usize,
    /// `Config::build_for_joiners` (set before the replicas boot again).
    pub build_for_joiners: bool,
    /// Cheap Paxos's auxiliary acceptors, numbered after the replicas, and their disks.
    pub auxes: BTreeMap<NodeId, Auxiliary<u64>>,
    pub aux_disks: BTreeMap<NodeId, AuxDurable<u64>>,
    /// Messages delivered to each auxiliary.
    pub aux_received: BTreeMap<NodeId, usize>,
    /// `Config::aux_digest_min` (set before the replicas boot again).
    pub aux_digest_min: Option<usize>,
    /// `Config::thrifty_reads` (set before the replicas boot again).
    pub thrifty_reads: bool,
    /// `Config::thrifty_writes` (set before the replicas boot again).
    pub thrifty_writes: bool,
    /// `Config::notice_ticks` (set before the replicas boot again).
    pub notice_ticks: u64,
    /// Every timer a replica armed, in order (the net fires none by itself).
    pub armed: Vec<(NodeId, Timer)>,
}

impl Net {
    pub fn new(n: u64) -> Self {
        Self::with_window(n, 8)
    }

    pub fn with_window(n: u64, window: usize) -> Self {
        Self::with_alpha(n, window, 64)
    }

    pub fn with_alpha(n: u64, window: usize, alpha: u64) -> Self {
        Self::with_bug(n, window, alpha, None)
    }

    pub fn with_bug(n: u64, window: usize, alpha: u64, bug: Option<PlantedBug>) -> Self {
        Self::cheap(n, 0, window, alpha, bug)
    }

    /// `n` replicas (ids 1..=n) and `aux` auxiliary acceptors (ids after them).
    pub fn cheap(n: u64, aux: u64, window: usize, alpha: u64, bug: Option<PlantedBug>) -> Self {
        let mut net = Net {
            replicas: BTreeMap::new(),
            disks: BTreeMap::new(),
            queue: VecDeque::new(),
            down: BTreeSet::new(),
            replies: Vec::new(),
            window,
            alpha,
            bug,
            n,
            joiners: BTreeSet::new(),
            snapshot_chunk: Config::new(1, vec![1]).snapshot_chunk,
            build_for_joiners: true,
            auxes: BTreeMap::new(),
            aux_disks: BTreeMap::new(),
            aux_received: BTreeMap::new(),
            aux_digest_min: None,
            thrifty_reads: false,
            thrifty_writes: false,
            notice_ticks: 0,
            armed: Vec::new(),
        };
        for id in n + 1..=n + aux {
            net.aux_disks.insert(id, AuxDurable::default());
            net.boot_aux(id);
        }
        for id in 1..=n {
            net.disks.insert(id, DurableState::default());
            net.boot(id);
        }
        net
    }

    pub fn config(&self, id: NodeId) -> Config {
        let mut c = Config::new(id, (1..=self.n).collect());
        c.window = self.window;
        c.alpha = self.alpha;
        c.bug = self.bug;
        c.join = self.joiners.contains(&id);
        c.snapshot_chunk = self.snapshot_chunk;
        c.build_for_joiners = self.build_for_joiners;
        c.auxiliaries = self.aux_disks.keys().copied().collect();
        c.aux_digest_min = self.aux_digest_min;
        c.thrifty_reads = self.thrifty_reads;
        c.thrifty_writes = self.thrifty_writes;
        c.notice_ticks = self.notice_ticks;
        c
    }

    /// Starts auxiliary `id` from its disk.
    pub fn boot_aux(&mut self, id: NodeId) {
        let aux = Auxiliary::new(id, self.aux_disks[&id].clone());
        self.auxes.insert(id, aux);
    }

    /// Starts node `id`, with an empty disk, to join the running cluster.
    pub fn add_joiner(&mut self, id: NodeId) {
        self.joiners.insert(id);
        self.disks.insert(id, DurableState::default());
        self.boot(id);
    }

    pub fn boot(&mut self, id: NodeId) {
        let disk = self.disks[&id].clone();
        let mut r = Replica::recover(self.config(id), Counter::default(), disk).unwrap();
        let fx = r.start();
        self.replicas.insert(id, r);
        self.absorb(id, fx);
    }

    pub fn crash(&mut self, id: NodeId) {
        self.replicas.remove(&id);
        self.auxes.remove(&id);
    }

    pub fn absorb(&mut self, id: NodeId, fx: Fx) {
        self.armed.extend(fx.timers.iter().map(|t| (id, t.kind)));
        let disk = self.disks.get_mut(&id).unwrap();
        for p in &fx.persist {
            disk.apply(p);
        }
        // Records are durable at once here: every message may leave.
        for o in fx.send.into_iter().chain(fx.send_after_sync) {
            self.queue.push_back((id, o.to, o.msg));
        }
        for out in fx.output {
            if matches!(
                out,
                Output::Reply { .. }
                    | Output::NotLeader { .. }
                    | Output::ReadReady { .. }
                    | Output::ReadFailed { .. }
                    | Output::Reconfigured { .. }
                    | Output::ChangeFailed { .. }
                    | Output::ChangeRefused { .. }
                    | Output::Retired
            ) {
                self.replies.push((id, out));
            }
        }
    }

    pub fn r(&mut self, id: NodeId) -> &mut Replica<Counter> {
        self.replicas.get_mut(&id).expect("replica is up")
    }

    pub fn timer(&mut self, id: NodeId, t: Timer) {
        let fx = self.r(id).on_timer(t);
        self.absorb(id, fx);
    }

    pub fn elect(&mut self, id: NodeId) {
        // The first firing may find that a leader was heard from; the second stands.
        for _ in 0..2 {
            if self.r(id).ballot().is_none() {
                self.timer(id, Timer::Election);
            }
        }
        self.settle();
        assert_eq!(self.r(id).role_kind(), RoleKind::Leader);
    }

    pub fn request(&mut self, at: NodeId, client: u64, seq: u64, add: u64) {
        let fx = self.r(at).on_client_request(Command {
            client,
            seq,
            op: add,
        });
        self.absorb(at, fx);
    }

    pub fn read(&mut self, at: NodeId, ids: &[u64]) {
        let fx = self.r(at).on_reads(ids.iter().copied());
        self.absorb(at, fx);
    }

    /// Delivers messages until none are left, dropping those `drop` selects.
    pub fn settle_with(&mut self, mut drop: impl FnMut(NodeId, NodeId, &Message<u64>) -> bool) {
        let finished = self.settle_through(100_000, |from, to, msg| {
            (!drop(from, to, &msg)).then_some((from, msg))
        });
        assert!(finished, "message storm");
    }

    /// Delivers messages until none are left, each between nodes that are up passed first
    /// through `pass`, which drops it (`None`) or hands it on, as sent or changed (its sender
    /// too). After `limit` messages the rest are dropped and `false` returned.
    pub fn settle_through(
        &mut self,
        limit: usize,
        mut pass: impl FnMut(NodeId, NodeId, Message<u64>) -> Option<(NodeId, Message<u64>)>,
    ) -> bool {
        let mut steps = 0;
        while let Some((from, to, msg)) = self.queue.pop_front() {
            steps += 1;
            if steps >= limit {
                self.queue.clear();
                return false;
            }
            if self.down.contains(&to) || self.down.contains(&from) {
                continue;
            }
            let Some((from, msg)) = pass(from, to, msg) else {
                continue;
            };
            if let Some(aux) = self.auxes.get_mut(&to) {
                *self.aux_received.entry(to).or_insert(0) += 1;
                let fx = aux.on_message(from, msg);
                let disk = self.aux_disks.get_mut(&to).unwrap();
                fx.persist.iter().for_each(|p| disk.apply(p));
                for o in fx.send.into_iter().chain(fx.send_after_sync) {
                    self.queue.push_back((to, o.to, o.msg));
                }
                continue;
            }
            let Some(r) = self.replicas.get_mut(&to) else {
                continue;
            };
            let fx = r.on_message(from, msg);
            self.absorb(to, fx);
        }
        true
    }

    pub fn settle(&mut self) {
        self.settle_with(|_, _, _| false);
    }

    pub fn totals(&self) -> Vec<u64> {
        self.replicas
            .values()
            .map(|r| r.state_machine().0)
            .collect()
    }
}
