//! [`NodeCore`]: one server node's decisions, around its replica.

use crate::compactor::{AutoCompaction, Compactor};
use crate::gate::{Gate, Outgoings};
use crate::lanes::Lanes;
use crate::lease_clock::LeaseClock;
use crate::reads::ReadTable;
use crate::record::{Checkpoint, Recovered};
use crate::{ProposeError, ReadResult, Ticket};
use std::collections::BTreeMap;
use std::time::Duration;
use synod_core::multi::{
    ChangeOutcome, Compacted, Config, ConfigError, MemberOp, Message, MultiEffects, Output,
    PendingSnapshot, Persist, Replica, RoleKind, Slot, Snapshot, Timer, TransferError, Value,
};
use synod_core::quorum::QuorumSpec;
use synod_core::{NodeId, PlantedBug};
use synod_kv::{KvCommand, KvOutput, RangeRequest, Store};

type Fx = MultiEffects<KvCommand, KvOutput>;

/// How a node is set up. Times are in ticks.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node.
    pub id: NodeId,
    /// The cluster's first members, this one included (later ones are chosen in the log). With
    /// `join`, the peers to ask for the cluster's state.
    pub members: Vec<NodeId>,
    /// Join a running cluster that added this node (see `synod_core::multi::Config::join`).
    pub join: bool,
    /// Cheap Paxos: the cluster's first auxiliary acceptors (they run [`crate::AuxNode`]).
    pub auxiliaries: Vec<NodeId>,
    /// Cheap Paxos: batches of at least this many encoded bytes go to auxiliaries as their
    /// digest (see `synod_core::multi::Config::aux_digest_min`); `None`: whole.
    pub aux_digest_min: Option<usize>,
    /// Probe only a quorum's worth of members for a read's confirmation (see
    /// `synod_core::multi::Config::thrifty_reads`).
    pub thrifty_reads: bool,
    /// Send accepts only to a quorum's worth of members (see
    /// `synod_core::multi::Config::thrifty_writes`).
    pub thrifty_writes: bool,
    /// Ticks a leader may hold back notices nobody waits for (see
    /// `synod_core::multi::Config::notice_ticks`); 0: none.
    pub notice_ticks: u64,
    /// Quorum sizes.
    pub quorum: QuorumSpec,
    /// A membership change governs from this many slots after its own; at least `window`.
    pub alpha: u64,
    /// How long a tick is (lease TTLs are in seconds).
    pub tick: Duration,
    /// Leader heartbeat interval.
    pub heartbeat_ticks: u64,
    /// Election timeout range.
    pub election_ticks: (u64, u64),
    /// Slots in flight at once.
    pub window: usize,
    /// Commands per slot at most.
    pub max_batch: usize,
    /// Snapshot once this many slots were applied since the last one (and the log grew as much
    /// as the last checkpoint).
    pub snapshot_every: u64,
    /// Snapshots larger than this many bytes go to peers in pieces of this size.
    pub snapshot_chunk: usize,
    /// Mixed with the boot epoch into the replica's seed for its election timeouts.
    pub seed: u64,
    /// A bug planted on purpose, for the simulator's own tests. Never set in production.
    pub bug: Option<PlantedBug>,
    /// What the leader compacts on its own ([`AutoCompaction`]); off by default.
    pub auto_compaction: AutoCompaction,
}

impl NodeConfig {
    /// Defaults for node `id` of `members` with ticks of `tick`.
    pub fn new(id: NodeId, members: Vec<NodeId>, tick: Duration) -> Self {
        let c = Config::new(id, members.clone());
        NodeConfig {
            id,
            members,
            quorum: c.quorum,
            alpha: c.alpha,
            tick,
            heartbeat_ticks: c.heartbeat_ticks,
            election_ticks: c.election_ticks,
            window: c.window,
            max_batch: c.max_batch,
            snapshot_every: 10_000,
            snapshot_chunk: c.snapshot_chunk,
            seed: id,
            bug: None,
            join: false,
            auxiliaries: Vec::new(),
            aux_digest_min: c.aux_digest_min,
            thrifty_reads: c.thrifty_reads,
            thrifty_writes: c.thrifty_writes,
            notice_ticks: c.notice_ticks,
            auto_compaction: AutoCompaction::Off,
        }
    }

    fn replica_config(&self, boot: u64) -> Config {
        let mut rc = Config::new(self.id, self.members.clone());
        rc.quorum = self.quorum;
        rc.alpha = self.alpha;
        rc.heartbeat_ticks = self.heartbeat_ticks;
        rc.election_ticks = self.election_ticks;
        rc.window = self.window;
        rc.max_batch = self.max_batch;
        rc.snapshot_chunk = self.snapshot_chunk;
        // Snapshots are encoded off the driver's loop (Action::BuildSnapshot): a joiner's
        // request for one we have not stored starts such a build instead of stalling the loop.
        rc.build_for_joiners = false;
        rc.seed = self.seed ^ boot.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        rc.bug = self.bug;
        rc.join = self.join;
        rc.auxiliaries = self.auxiliaries.clone();
        rc.aux_digest_min = self.aux_digest_min;
        rc.thrifty_reads = self.thrifty_reads;
        rc.thrifty_writes = self.thrifty_writes;
        rc.notice_ticks = self.notice_ticks;
        rc
    }
}

/// What the node asks its driver to do, in order.
#[derive(Debug)]
pub enum Action {
    /// Send `msg` to peer `to`.
    Send {
        /// The peer.
        to: NodeId,
        /// The message.
        msg: Message<KvCommand>,
    },
    /// Append `records` to the log and, with `sync`, sync them; then call
    /// [`NodeCore::synced`] with `batch`. Without `sync` the records need no sync of their
    /// own: write them in order with the others, and call [`NodeCore::synced`] with `batch`
    /// only once a later sync has made them durable (or not at all; a later batch's report
    /// covers it).
    Write {
        /// The batch number (batches are written in order).
        batch: u64,
        /// The records, in order.
        records: Vec<Persist<KvCommand>>,
        /// The batch must be synced before it is reported.
        sync: bool,
    },
    /// Answer a proposal.
    Reply {
        /// Whom.
        ticket: Ticket,
        /// The command's result, or why it did not complete.
        result: Result<KvOutput, ProposeError>,
    },
    /// Answer a linearizable read.
    ReadReply {
        /// Whom.
        ticket: Ticket,
        /// What was read.
        result: ReadResult,
    },
    /// Encode this snapshot (it may take a while: off the loop) and hand it back with
    /// [`NodeCore::snapshot_built`].
    BuildSnapshot {
        /// The state to encode.
        pending: PendingSnapshot,
        /// Someone waits for it (an operator's checkpoint, a joining member), so it should
        /// not be paced: see [`NodeCore::checkpoint_wanted`].
        wanted: bool,
    },
    /// Once every record written so far is durable, save `checkpoint` as covering the log up
    /// to record `covered`, drop the log up to there, and call [`NodeCore::checkpointed`].
    Checkpoint {
        /// Index of the last log record the checkpoint covers.
        covered: u64,
        /// The state to save.
        checkpoint: Checkpoint,
    },
    /// Log entries compacted away; freeing thousands of them takes long enough that a driver
    /// may want to drop them off its loop.
    Free(Compacted<KvCommand>),
    /// The node proposed `op` on its own (a lease's expiry, an auto-compaction), for checkers
    /// that accept in the log only what someone asked for.
    Issued(KvCommand),
    /// Slot `slot` became known chosen with `value` (for checkers and metrics).
    Chosen {
        /// The slot.
        slot: Slot,
        /// Its value.
        value: Value<KvCommand>,
    },
    /// Slot `slot` was applied to the store.
    Applied {
        /// The slot.
        slot: Slot,
        /// Its value.
        value: Value<KvCommand>,
    },
    /// Answer a membership change ([`NodeCore::change_membership`]).
    MemberReply {
        /// Whom.
        ticket: Ticket,
        /// What the change did once applied (it may have been rejected: see its outcome), or
        /// why it was not proposed or its outcome never came.
        result: Result<ChangeOutcome, ProposeError>,
    },
}

/// A batch written without a sync (chosen values learned from others) gets one after this many
/// ticks if nothing synced it meanwhile (100 ms at the server's 10 ms tick): see
/// `NodeCore::sync_old_tail`.
pub const UNSYNCED_TAIL_TICKS: u64 = 10;

/// Counters a driver may export.
#[derive(Clone, Copy, Debug, Default)]
pub struct NodeCounters {
    /// Client commands proposed.
    pub proposals: u64,
    /// Elections this node started.
    pub elections: u64,
    /// Waiting commands handed to the replica again at once because it now sends commands
    /// elsewhere than it had sent them ([`Lanes::reroute`]).
    pub rerouted: u64,
}

/// One node's decisions. See the crate documentation for the driver's contract.
pub struct NodeCore {
    cfg: NodeConfig,
    replica: Replica<Store>,
    boot: u64,
    now: u64,
    timers: BTreeMap<Timer, u64>,
    /// Effects of this turn's steps not yet sorted into actions.
    pending: Fx,
    /// Where the replica sent commands when the node last looked ([`NodeCore::reroute`]).
    last_route: Option<NodeId>,
    actions: Vec<Action>,
    gate: Gate,
    /// Index of the last record handed to the log.
    appended: u64,
    lanes: Lanes,
    /// Commands taken this turn, proposed together so they can share slots.
    proposals: Vec<synod_core::multi::Command<KvCommand>>,
    reads: ReadTable,
    lease_clock: LeaseClock,
    compactor: Compactor,
    leases_granted: u64,
    resubmit_ticks: u64,
    give_up_ticks: u64,
    /// A snapshot asked for by [`Action::BuildSnapshot`] is being encoded.
    building: bool,
    /// Checkpoints asked for and not yet reported saved. An installed snapshot can start one
    /// while another is in flight, and the server saves them on separate threads.
    saving: u32,
    /// A snapshot encoded by the driver, adopted at the end of the turn.
    built: Option<Snapshot>,
    /// An operator asked for a checkpoint now ([`NodeCore::request_checkpoint`]).
    forced: bool,
    /// Ticks the newest batch has been unsynced (see [`UNSYNCED_TAIL_TICKS`]).
    tail_ticks: u64,
    /// The size of the newest checkpoint reported saved, and the log record it covers.
    checkpoint_bytes: u64,
    checkpoint_covered: u64,
    /// The log's size as last reported, and at the latest checkpoint.
    log_bytes: u64,
    log_bytes_at_checkpoint: u64,
    counters: NodeCounters,
    /// Membership changes asked at this node since it booted.
    changes_asked: u64,
    /// Changes asked by a client and not yet answered, by sequence number: the client's
    /// ticket and the tick it asked at.
    changes: BTreeMap<u64, (Ticket, u64)>,
}

impl NodeCore {
    /// A node restarted from what [`crate::record::recover`] read back. The driver must have
    /// written and synced the boot record of epoch `recovered.boot + 1` already
    /// ([`crate::record::encode_boot`]), which is the log's record number `log_index`; the log
    /// then holds `log_bytes` bytes.
    pub fn new(
        cfg: NodeConfig,
        recovered: Recovered,
        log_index: u64,
        log_bytes: u64,
    ) -> Result<NodeCore, ConfigError> {
        let boot = recovered.boot + 1;
        let replica = Replica::recover(cfg.replica_config(boot), Store::new(), recovered.durable)?;
        let election_max = cfg.election_ticks.1;
        let reuse_ids = cfg.bug == Some(PlantedBug::ReadIdsReusedAcrossBoots);
        let lane_epoch = if cfg.bug == Some(PlantedBug::BootEpochReused) {
            1
        } else {
            boot
        };
        Ok(NodeCore {
            lanes: Lanes::new(cfg.id, lane_epoch),
            reads: ReadTable::new(boot, reuse_ids),
            lease_clock: LeaseClock::new(cfg.tick, election_max * 2),
            compactor: Compactor::new(cfg.auto_compaction, 0),
            replica,
            boot,
            now: 0,
            timers: BTreeMap::new(),
            pending: Fx::new(),
            last_route: None,
            actions: Vec::new(),
            gate: Gate::default(),
            appended: log_index,
            proposals: Vec::new(),
            leases_granted: 0,
            resubmit_ticks: election_max,
            give_up_ticks: election_max * 10,
            building: false,
            saving: 0,
            built: None,
            forced: false,
            tail_ticks: 0,
            checkpoint_bytes: recovered.checkpoint_bytes,
            checkpoint_covered: 0,
            log_bytes,
            log_bytes_at_checkpoint: log_bytes,
            counters: NodeCounters::default(),
            changes_asked: 0,
            changes: BTreeMap::new(),
            cfg,
        })
    }

    /// Arms the replica's first timers. Call once, then [`NodeCore::flush`].
    pub fn start(&mut self) {
        let fx = self.replica.start();
        self.pending.extend(fx);
    }

    // ----- introspection -----

    /// The replica.
    pub fn replica(&self) -> &Replica<Store> {
        &self.replica
    }

    /// The store, as applied so far.
    pub fn store(&self) -> &Store {
        self.replica.state_machine()
    }

    /// Ticks since this boot.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// This boot's epoch.
    pub fn boot(&self) -> u64 {
        self.boot
    }

    /// Proposal lanes free.
    pub fn lanes_free(&self) -> usize {
        self.lanes.free()
    }

    /// Bytes of the latest checkpoint plus what the log gained since.
    pub fn log_bytes(&self) -> u64 {
        self.checkpoint_bytes + self.logged_since_checkpoint()
    }

    /// Whether timer `timer` is armed.
    pub fn timer_armed(&self, timer: Timer) -> bool {
        self.timers.contains_key(&timer)
    }

    /// The batch the newest messages held for the disk wait for, if no sync the driver was
    /// asked for covers it (see [`Gate::stranded`]). `None` after every loop turn (checked by
    /// the simulator).
    pub fn held_stranded(&self) -> Option<u64> {
        self.gate.stranded()
    }

    /// Counters for metrics.
    pub fn counters(&self) -> NodeCounters {
        self.counters
    }

    /// Seconds left on lease `id` by this node's clock (`None`: it has not seen it).
    pub fn lease_remaining(&self, id: i64) -> Option<i64> {
        self.lease_clock.remaining_secs(id, self.now)
    }

    /// The actions queued so far, in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    // ----- inputs -----

    /// A client proposes `cmd`; answered by an [`Action::Reply`] for `ticket`.
    pub fn propose(&mut self, ticket: Ticket, mut cmd: KvCommand) {
        if let KvCommand::LeaseGrant { id, .. } = cmd.inner_mut() {
            if *id == 0 {
                *id = self.fresh_lease_id();
            }
        }
        self.submit(Some(ticket), cmd);
    }

    fn submit(&mut self, ticket: Option<Ticket>, cmd: KvCommand) {
        // Refused at once: a retired node's result would come through a log it no longer
        // follows, and a joiner knows no leader until it joined (ask another member).
        let refused = match (self.replica.retired(), self.replica.joining()) {
            (true, _) => Some(ProposeError::Removed),
            (false, true) => Some(ProposeError::NotLeader),
            (false, false) => None,
        };
        if let Some(e) = refused {
            if let Some(ticket) = ticket {
                self.actions.push(Action::Reply {
                    ticket,
                    result: Err(e),
                });
            }
            return;
        }
        let own = ticket.is_none().then(|| cmd.clone());
        match self.lanes.take(cmd, ticket, self.now) {
            Some(command) => {
                self.counters.proposals += 1;
                self.proposals.push(command);
                if let Some(op) = own {
                    self.actions.push(Action::Issued(op));
                }
            }
            None => {
                if let Some(ticket) = ticket {
                    self.actions.push(Action::Reply {
                        ticket,
                        result: Err(ProposeError::Timeout),
                    });
                }
            }
        }
    }

    /// A lease id no other node and no earlier boot of this one can pick.
    fn fresh_lease_id(&mut self) -> i64 {
        self.leases_granted += 1;
        crate::lease_clock::fresh_lease_id(self.cfg.id, self.boot, self.leases_granted)
    }

    /// A client asks for a linearizable read without a log slot; answered by an
    /// [`Action::ReadReply`] for `ticket` (`Err(NotLeader)`: no leader known; order it through
    /// the log instead).
    pub fn read_index(&mut self, ticket: Ticket, req: RangeRequest) {
        if self.replica.retired() {
            self.actions.push(Action::ReadReply {
                ticket,
                result: Err(ProposeError::Removed),
            });
            return;
        }
        self.reads.add(req, ticket, self.now);
    }

    /// A message from peer `from`.
    pub fn on_peer(&mut self, from: NodeId, msg: Message<KvCommand>) {
        let fx = self.replica.on_message(from, msg);
        self.pending.extend(fx);
    }

    /// One tick of the node's clock: timers, lease deadlines, resubmits and give-ups.
    pub fn tick(&mut self) {
        self.now += 1;
        self.sync_old_tail();
        let due: Vec<Timer> = self
            .timers
            .iter()
            .filter(|(_, &at)| at <= self.now)
            .map(|(&k, _)| k)
            .collect();
        for k in due {
            self.timers.remove(&k);
            let before = self.replica.ballot();
            let fx = self.replica.on_timer(k);
            self.pending.extend(fx);
            if self.replica.role_kind() == RoleKind::Candidate && self.replica.ballot() != before {
                self.counters.elections += 1;
            }
        }
        let leading = self.replica.role_kind() == RoleKind::Leader;
        let expired = self
            .lease_clock
            .observe(self.replica.state_machine(), leading, self.now);
        for (id, refreshes) in expired {
            self.submit(None, KvCommand::LeaseExpire { id, refreshes });
        }
        let store = self.replica.state_machine();
        if let Some(cmd) = self.compactor.due(store, leading, self.now) {
            self.submit(None, cmd);
        }
        // A read whose confirmation round never completes (a leader cut off from its quorum)
        // times out like a proposal.
        for (id, ticket) in self.reads.expired(self.now, self.give_up_ticks) {
            self.replica.cancel_read(id);
            self.actions.push(Action::ReadReply {
                ticket,
                result: Err(ProposeError::Timeout),
            });
        }
        // Commands told "no leader", or stuck behind a lost forward or a dead leader, are
        // submitted again; exactly-once application makes that safe.
        let route = self.route();
        let due = self
            .lanes
            .due(self.now, self.resubmit_ticks, self.give_up_ticks, route);
        for ticket in due.gave_up.into_iter().flatten() {
            self.actions.push(Action::Reply {
                ticket,
                result: Err(ProposeError::Timeout),
            });
        }
        if !due.resubmit.is_empty() {
            let fx = self.replica.on_client_requests(due.resubmit);
            self.pending.extend(fx);
        }
        // A change passed on to a leader that lost it (or was deposed) is never answered.
        let late = self.now.saturating_sub(self.give_up_ticks);
        let actions = &mut self.actions;
        self.changes.retain(|_, &mut (ticket, at)| {
            if at < late {
                let result = Err(ProposeError::Timeout);
                actions.push(Action::MemberReply { ticket, result });
            }
            at >= late
        });
    }

    /// Syncs an unsynced tail of the log that has waited [`UNSYNCED_TAIL_TICKS`]: a member
    /// left out of thrifty accepts would otherwise never sync its log between checkpoints,
    /// and after a power loss the page cache may have written a later page of that tail and
    /// not an earlier one, which the log's recovery must refuse as corruption. Kept short, it
    /// is no worse than a batch in flight; it also bounds what a vote or promise of this member
    /// (a failover) waits for.
    fn sync_old_tail(&mut self) {
        if !self.gate.unsynced_tail() {
            self.tail_ticks = 0;
            return;
        }
        self.tail_ticks += 1;
        if self.tail_ticks >= UNSYNCED_TAIL_TICKS {
            self.tail_ticks = 0;
            let commit = Persist::Commit(self.replica.commit_index());
            self.gate.stage(vec![commit], true);
        }
    }

    /// Batch `batch` of [`Action::Write`] (and every earlier one) is durable. `log_bytes` is the
    /// log's size now.
    pub fn synced(&mut self, batch: u64, log_bytes: u64) {
        self.log_bytes = log_bytes;
        let released = self.gate.synced(batch);
        self.release(released);
    }

    /// A batch of [`Action::Write`] without `sync` was written; the log is `log_bytes` long now.
    /// (It is not durable yet: nothing waits for it.)
    pub fn written(&mut self, log_bytes: u64) {
        self.log_bytes = log_bytes;
    }

    /// An operator asks this node, which must lead, to hand leadership to `target` (etcd's
    /// MoveLeader; see [`Replica::transfer_leadership`]). Writes wait meanwhile; the driver
    /// watches the leader it reports to learn when the transfer is done.
    pub fn move_leader(&mut self, target: NodeId) -> Result<(), TransferError> {
        let fx = self.replica.transfer_leadership(target)?;
        self.pending.extend(fx);
        Ok(())
    }

    /// An operator asks for a membership change, which this node proposes if it leads and
    /// passes on to the leader otherwise (see [`Replica::propose_change`]). With a `ticket`,
    /// [`Action::MemberReply`] answers once the change is applied, or fails (no leader known,
    /// no outcome within the proposal give-up time, this node taken out).
    pub fn change_membership(&mut self, ticket: Option<Ticket>, ops: Vec<MemberOp>) {
        self.changes_asked += 1;
        // Unique across boots, as the change's identity must be.
        let seq = (self.boot << 32) | (self.changes_asked & 0xFFFF_FFFF);
        if let Some(ticket) = ticket {
            if self.replica.retired() {
                let result = Err(ProposeError::Removed);
                self.actions.push(Action::MemberReply { ticket, result });
                return;
            }
            self.changes.insert(seq, (ticket, self.now));
        }
        let fx = self.replica.propose_change(seq, ops);
        self.pending.extend(fx);
    }

    /// Answers the client waiting for change `seq`, if one is.
    fn answer_change(&mut self, seq: u64, result: Result<ChangeOutcome, ProposeError>) {
        if let Some((ticket, _)) = self.changes.remove(&seq) {
            self.actions.push(Action::MemberReply { ticket, result });
        }
    }

    /// An operator asks for a checkpoint now (etcd's defragment, which is what frees disk
    /// space): once nothing is being built or saved, the node snapshots whatever was applied
    /// since the last snapshot, however little, and folds the log into a checkpoint; with
    /// nothing applied since, it folds the log into a checkpoint of the snapshot it has.
    pub fn request_checkpoint(&mut self) {
        self.forced = true;
    }

    /// True when a checkpoint is asked for (by an operator, or a joining member that needs a
    /// snapshot) and not yet begun: a driver pacing a snapshot in the background should let it
    /// finish at full speed, since the one asked for waits for it.
    pub fn checkpoint_wanted(&self) -> bool {
        self.forced
    }

    /// True when no checkpoint is asked for, being built or being saved: a driver answers the
    /// operator who asked for one once this holds again.
    pub fn checkpoint_idle(&self) -> bool {
        !self.forced && !self.building && self.saving == 0
    }

    /// The driver holds the state of the snapshot taken at `slot` elsewhere (a mapping of the
    /// checkpoint it saved or started from): the replica keeps that and frees its own copy.
    /// See [`Replica::rebase_snapshot`].
    pub fn rebase_snapshot(&mut self, slot: u64, state: bytes::Bytes) -> bool {
        self.replica.rebase_snapshot(slot, state)
    }

    /// The snapshot asked for by [`Action::BuildSnapshot`] is encoded.
    pub fn snapshot_built(&mut self, snapshot: Snapshot) {
        self.built = Some(snapshot);
    }

    /// The checkpoint asked for by [`Action::Checkpoint`] covering log record `covered` is
    /// saved (`bytes` long) and the log below it dropped, leaving `log_bytes`. A checkpoint
    /// reported after a newer one only updates the log's size: the newer one is what a restart
    /// reads, so its size is what the next snapshot is weighed against.
    pub fn checkpointed(&mut self, covered: u64, bytes: u64, log_bytes: u64) {
        self.saving = self.saving.saturating_sub(1);
        self.log_bytes = log_bytes;
        if covered >= self.checkpoint_covered {
            self.checkpoint_covered = covered;
            self.checkpoint_bytes = bytes;
            self.log_bytes_at_checkpoint = log_bytes;
        }
    }

    /// Ends a loop turn: hands the turn's proposals and reads to the replica, sorts every
    /// effect into actions (one [`Action::Write`] for the whole turn), and takes or adopts a
    /// snapshot when one is due.
    pub fn flush(&mut self) {
        if !self.proposals.is_empty() {
            let batch = std::mem::take(&mut self.proposals);
            self.lanes.sent(&batch, self.route());
            let fx = self.replica.on_client_requests(batch);
            self.pending.extend(fx);
        }
        let fresh = self.reads.take_fresh();
        if !fresh.is_empty() {
            let fx = self.replica.on_reads(fresh);
            self.pending.extend(fx);
        }
        // Own messages released at once (nothing unsynced) produce effects of their own, and
        // a change of leader hands the new one what the old one never answered.
        loop {
            while !self.pending.is_empty() {
                let step = std::mem::take(&mut self.pending);
                self.sort(step);
            }
            if !self.reroute() {
                break;
            }
        }
        if let Some((batch, records, sync)) = self.gate.cut() {
            let snapshotted = records.iter().any(|p| matches!(p, Persist::Snapshot(_)));
            self.appended += records.len() as u64;
            self.actions.push(Action::Write {
                batch,
                records,
                sync,
            });
            if snapshotted {
                // An installed snapshot: fold the log into a checkpoint once it is written.
                self.start_checkpoint();
            }
        }
        if self.replica.take_snapshot_wanted() {
            self.forced = true;
        }
        self.snapshot_step();
        debug_assert!(self.pending.is_empty());
    }

    /// Where the replica sends a command handed to it now: to itself while it leads or stands
    /// (it queues the command), to the leader it follows, or nowhere (it knows no leader, or is
    /// joining or retired, and answers "no leader").
    fn route(&self) -> Option<NodeId> {
        let r = &self.replica;
        // Both answer "no leader" to any command (and hold none of their own: a joiner takes
        // none, a retired node failed its own), so a route here would hand the replica the
        // same commands back at every pass of the turn.
        if r.joining() || r.retired() {
            return None;
        }
        match r.role_kind() {
            RoleKind::Leader | RoleKind::Candidate => Some(self.cfg.id),
            RoleKind::Follower => r.leader_hint().filter(|&l| l != self.cfg.id),
        }
    }

    /// Hands the replica again the waiting commands it sent elsewhere than where it sends
    /// commands now, and says whether there were any. A leader that crashed or was deposed, or
    /// a candidate that lost, will not answer what it was sent or queued (a follower drops a
    /// forwarded command; a deposed leader drops its queue), so this node's clients would wait
    /// an election timeout for the resubmit timer; exactly-once application makes a second
    /// copy harmless when the first is chosen after all.
    ///
    /// Only a change of route can leave a command sent elsewhere (commands are marked with the
    /// route they are handed over on, and the replica answers "no leader" only where there is
    /// no route), so the lanes are looked through only then: not on every turn, and never
    /// twice for one change, whatever the replica answers.
    fn reroute(&mut self) -> bool {
        if self.cfg.bug == Some(PlantedBug::ForwardedCommandsLeft) {
            return false;
        }
        let route = self.route();
        let changed = route != self.last_route;
        self.last_route = route;
        let (Some(route), true) = (route, changed) else {
            return false;
        };
        let cmds = self.lanes.reroute(route, self.now);
        if cmds.is_empty() {
            return false;
        }
        self.counters.rerouted += cmds.len() as u64;
        let fx = self.replica.on_client_requests(cmds);
        self.pending.extend(fx);
        true
    }

    /// Waiting commands last sent elsewhere than where the replica sends commands now: none
    /// once a turn ends ([`NodeCore::reroute`]). For the simulator's checks.
    pub fn misrouted(&self) -> usize {
        self.route().map_or(0, |r| self.lanes.misrouted(r))
    }

    /// Sorts one step's effects: records to this turn's batch, timers armed, messages sent or
    /// held for the sync, outputs answered.
    fn sort(&mut self, fx: Fx) {
        let me = self.cfg.id;
        // Messages to ourselves wait for the disk like gated ones (the core sends none at once).
        let gated = !fx.send_after_sync.is_empty() || fx.send.iter().any(|o| o.to == me);
        let mut persist = fx.persist;
        let bug = self.cfg.bug == Some(PlantedBug::HeldOnUnsyncedTail);
        if gated && persist.is_empty() && self.gate.unsynced_tail() && !bug {
            // These messages may rest on what the newest batch, written without a sync, holds
            // (a Progress reports the commit point its chosen values make): sync it now.
            persist.push(Persist::Commit(self.replica.commit_index()));
        }
        self.gate.stage(persist, gated);
        for t in fx.timers {
            self.timers.insert(t.kind, self.now + t.after);
        }
        // Messages to ourselves are local steps: they always wait.
        let (mut late, early): (Outgoings, Outgoings) =
            fx.send.into_iter().partition(|o| o.to == me);
        for o in early {
            self.actions.push(Action::Send {
                to: o.to,
                msg: o.msg,
            });
        }
        if self.cfg.bug == Some(PlantedBug::SendBeforeSync) {
            // The planted bug: gated messages to peers leave with their records unwritten.
            let (own, out): (Outgoings, Outgoings) =
                fx.send_after_sync.into_iter().partition(|o| o.to == me);
            late.extend(own);
            self.release(out);
        } else {
            late.extend(fx.send_after_sync);
        }
        if !late.is_empty() {
            if self.gate.unsynced() {
                self.gate.hold(late);
            } else {
                self.release(late);
            }
        }
        for out in fx.output {
            self.on_output(out);
        }
    }

    /// Sends messages whose records are durable; our own go back into the replica.
    fn release(&mut self, msgs: Outgoings) {
        let me = self.cfg.id;
        for o in msgs {
            if o.to == me {
                let fx = self.replica.on_message(me, o.msg);
                self.pending.extend(fx);
            } else {
                self.actions.push(Action::Send {
                    to: o.to,
                    msg: o.msg,
                });
            }
        }
    }

    /// Acts on a replica output. Outputs need not wait for a sync: they rest on values chosen
    /// by durable votes (see `synod_core::effects`).
    fn on_output(&mut self, out: Output<KvOutput>) {
        match out {
            Output::Reply {
                client,
                seq,
                result,
            } => {
                if let Some(Some(ticket)) = self.lanes.complete(client, seq) {
                    self.actions.push(Action::Reply {
                        ticket,
                        result: Ok(result),
                    });
                }
            }
            Output::NotLeader { client, seq, .. } => self.lanes.retry_later(client, seq),
            Output::Chosen { slot } | Output::Applied { slot } => {
                let Some(value) = self.replica.log().get(&slot).map(|e| e.value.clone()) else {
                    return;
                };
                self.actions.push(match out {
                    Output::Chosen { .. } => Action::Chosen { slot, value },
                    _ => Action::Applied { slot, value },
                });
            }
            Output::ReadReady { id } => {
                if let Some((req, ticket)) = self.reads.remove(id) {
                    let store = self.replica.state_machine();
                    let result = Ok((store.revision(), store.range(&req)));
                    self.actions.push(Action::ReadReply { ticket, result });
                }
            }
            Output::ReadFailed { id, .. } => {
                if let Some((_, ticket)) = self.reads.remove(id) {
                    self.actions.push(Action::ReadReply {
                        ticket,
                        result: Err(ProposeError::NotLeader),
                    });
                }
            }
            // Every replica reports every change it applies; the one it was asked at answers.
            Output::Reconfigured { id, outcome, .. } if id.origin == self.cfg.id => {
                self.answer_change(id.seq, Ok(outcome))
            }
            Output::Reconfigured { .. } => {}
            // A leader also reports the changes it was passed and could not propose.
            Output::ChangeFailed { id, .. } if id.origin == self.cfg.id => {
                self.answer_change(id.seq, Err(ProposeError::NotLeader))
            }
            Output::ChangeFailed { .. } => {}
            // The leader would not propose it (a promotion of a learner not caught up). Only
            // the node a change was asked at hears of its refusal.
            Output::ChangeRefused { id, reason } => {
                self.answer_change(id.seq, Ok(ChangeOutcome::Rejected(reason)))
            }
            Output::Retired => {
                for (ticket, _) in std::mem::take(&mut self.changes).into_values() {
                    let result = Err(ProposeError::Removed);
                    self.actions.push(Action::MemberReply { ticket, result });
                }
                for ticket in self.lanes.drain() {
                    let result = Err(ProposeError::Removed);
                    self.actions.push(Action::Reply { ticket, result });
                }
                for ticket in self.reads.drain() {
                    let result = Err(ProposeError::Removed);
                    self.actions.push(Action::ReadReply { ticket, result });
                }
            }
        }
    }

    /// Every client still waiting, for a node that stops: their tickets.
    pub fn stop(&mut self) -> Vec<Ticket> {
        let mut t = self.lanes.drain();
        t.extend(self.reads.drain());
        t
    }

    // ----- snapshots and checkpoints -----

    /// Begins a snapshot when enough was applied since the last one, or adopts one encoded by
    /// the driver. Encoding a large store takes long enough to stall a loop (and, on the
    /// leader, to let followers time out), so only the copy of the state happens here.
    fn snapshot_step(&mut self) {
        if let Some(snapshot) = self.built.take() {
            // After every record of this turn is handed to the log, so the checkpoint covers
            // exactly the records appended so far. The log still holds every slot the snapshot
            // covers until that checkpoint is saved, so the snapshot is not written to the log.
            let (fx, removed) = self.replica.finish_snapshot(snapshot);
            self.actions.push(Action::Free(removed));
            self.building = false;
            // Empty when a snapshot installed meanwhile already moved the log start past it.
            if !fx.persist.is_empty() {
                self.start_checkpoint();
            }
            return;
        }
        if self.building || self.saving > 0 {
            return;
        }
        // Encoding costs the whole state. Waiting until the log has grown by as much as the
        // last checkpoint keeps that cost within the bytes logged since; otherwise a store
        // keeping all its history is encoded as often when large as when small.
        let due = self.replica.applied_index()
            >= self.replica.log_start() + self.cfg.snapshot_every
            && self.logged_since_checkpoint() >= self.checkpoint_bytes;
        let forced = std::mem::take(&mut self.forced);
        if !due && !forced {
            return;
        }
        let Some(pending) = self.replica.begin_snapshot() else {
            if forced {
                self.start_checkpoint();
            }
            return;
        };
        self.building = true;
        self.actions.push(Action::BuildSnapshot {
            pending,
            wanted: forced,
        });
    }

    /// The size of the last checkpoint saved (0 before the first): the next snapshot waits
    /// for the log to grow by as much.
    pub fn checkpoint_bytes(&self) -> u64 {
        self.checkpoint_bytes
    }

    /// Bytes the log has grown by since the last checkpoint was saved.
    pub fn logged_since_checkpoint(&self) -> u64 {
        self.log_bytes.saturating_sub(self.log_bytes_at_checkpoint)
    }

    /// Folds the durable state into a checkpoint: boot epoch, snapshot, promise, the log from
    /// the snapshot on, and the commit point. It covers every record handed to the log so far.
    fn start_checkpoint(&mut self) {
        let r = &self.replica;
        let mut records: Vec<Persist<KvCommand>> = Vec::new();
        if let Some(s) = r.snapshot() {
            records.push(Persist::Snapshot(s.clone()));
        }
        records.push(Persist::Promise(r.promised()));
        for (&slot, e) in r.log() {
            records.push(if e.chosen {
                Persist::Chosen {
                    slot,
                    value: e.value.clone(),
                }
            } else {
                Persist::Accept {
                    slot,
                    ballot: e.ballot,
                    value: e.value.clone(),
                }
            });
        }
        records.push(Persist::Commit(r.commit_index()));
        self.saving += 1;
        self.actions.push(Action::Checkpoint {
            covered: self.appended,
            checkpoint: Checkpoint {
                boot: self.boot,
                records,
            },
        });
    }
}
