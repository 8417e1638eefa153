//! A Multi-Paxos replica: proposer, acceptor and learner collapsed into one process, as servers
//! are deployed. Each role's logic lives in its own file; this one routes inputs between them
//! and decides the replica's role (follower, candidate, leader).

use super::acceptor::{Acceptor, Vote};
use super::config::{Config, ConfigError};
use super::leader::{Active, Scout};
use super::learner::Learner;
use super::log::{DurableState, Entry};
use super::membership::{Membership, RejectReason};
use super::messages::{
    Command, Message, MultiEffects, Output, Persist, PromiseEntry, Slot, Snapshot, Timer, Value,
};
use super::reads::ReadId;
use super::snapshot::{Compacted, PendingSnapshot};
use super::state_machine::StateMachine;
use crate::ballot::{Ballot, NodeId};
use crate::bugs::PlantedBug;
use crate::quorum::{Quorum, QuorumSystem};
use crate::rng::SplitMix64;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

mod cheap;
mod join;
mod notice;
mod reconfig;
mod stream;
mod transfer;
pub use transfer::TransferError;

type Fx<S> = MultiEffects<<S as StateMachine>::Command, <S as StateMachine>::Output>;

// One per replica: the size of the largest variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Role<C> {
    Follower,
    Candidate(Scout<C>),
    Leader(Active<C>),
}

/// The role a replica plays right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleKind {
    /// Follows a leader (or waits for one).
    Follower,
    /// Running phase 1.
    Candidate,
    /// Won phase 1; runs phase 2 per slot.
    Leader,
}

/// One Multi-Paxos replica over state machine `S`.
pub struct Replica<S: StateMachine> {
    cfg: Config,
    rng: SplitMix64,
    acceptor: Acceptor<S::Command>,
    learner: Learner<S>,
    role: Role<S::Command>,
    /// Who we believe leads, for forwarding and redirects.
    leader_hint: Option<NodeId>,
    /// Highest ballot seen anywhere; a new candidacy starts above it.
    seen: Ballot,
    /// A leader (or a candidate we promised) showed signs of life since the election timer last
    /// fired.
    heard: bool,
    /// The latest snapshot (the log holds only slots from its `slot` on).
    snapshot: Option<Snapshot>,
    /// Reads this follower asked a leader about, with the leader asked: waiting for the read
    /// index (`None`), then for the apply point to reach it.
    remote_reads: BTreeMap<ReadId, (NodeId, Option<Slot>)>,
    /// A leader handing over to us asked us to stand once we have learned every slot below
    /// this commit point, if we still promise its ballot then.
    /// Aged by the election timer: dropped at its second firing.
    stand_at: Option<(Ballot, Slot, bool)>,
    /// The epoch of the latest configuration when this replica last looked
    /// (`follow_membership`).
    epoch_seen: u64,
    /// Waiting for a peer's snapshot to join a running cluster (replica/join.rs).
    joining: bool,
    /// A snapshot arriving in pieces (replica/stream.rs).
    incoming: Option<stream::Incoming>,
    /// A snapshot of the applied state built for a joiner when none was stored, kept so that
    /// its pieces can be asked for; dropped once a stored snapshot is as new.
    lent: Option<Snapshot>,
    /// The stored snapshot a newer one replaced, kept while receivers still ask for its pieces,
    /// with the election timeouts since the last such request (replica/stream.rs).
    replaced: Option<(Snapshot, u8)>,
    /// A joiner asked for a snapshot we had not stored, and we leave building one to the
    /// driver ([`Config::build_for_joiners`]).
    snapshot_wanted: bool,
}

impl<S: StateMachine> std::fmt::Debug for Replica<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("id", &self.cfg.id)
            .field("role", &self.role_kind())
            .field("promised", &self.acceptor.promised())
            .field("commit", &self.learner.commit())
            .field("applied", &self.learner.applied())
            .finish()
    }
}

impl<S: StateMachine> Replica<S> {
    /// A fresh replica with an empty log.
    pub fn new(cfg: Config, sm: S) -> Result<Self, ConfigError> {
        Self::recover(cfg, sm, DurableState::default())
    }

    /// A replica restarted from its durable state. `sm` must be the state machine as it was
    /// before any slot was applied: the chosen prefix of the log is replayed into it.
    pub fn recover(
        cfg: Config,
        sm: S,
        durable: DurableState<S::Command>,
    ) -> Result<Self, ConfigError> {
        let genesis = cfg.validate()?;
        let rng = SplitMix64::new(cfg.seed ^ cfg.id.rotate_left(32));
        let DurableState {
            promised,
            log,
            commit,
            snapshot,
        } = durable;
        // Only an empty disk joins: a node with any durable state has a membership already
        // (its snapshot's, or the first members' it has logged under).
        let joining = cfg.join
            && snapshot.is_none()
            && log.is_empty()
            && commit == 0
            && promised == Ballot::ZERO;
        let mut acceptor = Acceptor::new(promised, log, cfg.bug);
        let mut learner = Learner::new(sm, genesis, cfg.bug);
        if let Some(snap) = &snapshot {
            learner
                .install(snap, &mut Fx::<S>::new())
                .map_err(ConfigError::BadSnapshot)?;
            acceptor.drop_below(snap.slot);
        }
        let mut replica = Replica {
            acceptor,
            learner,
            snapshot,
            seen: promised,
            rng,
            role: Role::Follower,
            leader_hint: None,
            heard: false,
            remote_reads: BTreeMap::new(),
            stand_at: None,
            epoch_seen: 0,
            joining,
            incoming: None,
            lent: None,
            replaced: None,
            snapshot_wanted: false,
            cfg,
        };
        // Replay the committed prefix; the replay's own outputs (applied slots, a Commit record
        // equal to what is on disk) are not news to anyone.
        let mut fx = Fx::<S>::new();
        for slot in replica.learner.commit()..commit {
            assert!(
                replica.acceptor.chosen(slot).is_some(),
                "durable state says slot {slot} is committed but its value is missing"
            );
        }
        replica.learner.catch_up(replica.acceptor.log(), &mut fx);
        replica.epoch_seen = replica.learner.membership().latest().epoch();
        Ok(replica)
    }

    /// Arms the first election timer. Call once after [`Replica::new`] or [`Replica::recover`].
    pub fn start(&mut self) -> Fx<S> {
        let mut fx = Fx::<S>::new();
        if self.joining {
            self.ask_to_join(&mut fx);
        }
        self.arm_election(&mut fx);
        fx
    }

    // ----- introspection -----

    /// This replica's id.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The current role.
    pub fn role_kind(&self) -> RoleKind {
        match self.role {
            Role::Follower => RoleKind::Follower,
            Role::Candidate(_) => RoleKind::Candidate,
            Role::Leader(_) => RoleKind::Leader,
        }
    }

    /// Who this replica believes leads.
    pub fn leader_hint(&self) -> Option<NodeId> {
        self.leader_hint
    }

    /// The acceptor's promise.
    pub fn promised(&self) -> Ballot {
        self.acceptor.promised()
    }

    /// The highest ballot this replica has heard of: its promise, a leader's ballot in a
    /// heartbeat or read probe (which raises no promise), a candidacy of its own, a refusal's.
    /// What a driver reports as the term (a follower that missed a new leader's prepare and
    /// hears only its heartbeats knows its ballot from them, not from its promise).
    pub fn highest_ballot_seen(&self) -> Ballot {
        self.seen.max(self.acceptor.promised())
    }

    /// The ballot this replica leads or stands with, if any.
    pub fn ballot(&self) -> Option<Ballot> {
        match &self.role {
            Role::Follower => None,
            Role::Candidate(s) => Some(s.ballot),
            Role::Leader(a) => Some(a.ballot),
        }
    }

    /// First slot not known chosen.
    pub fn commit_index(&self) -> Slot {
        self.learner.commit()
    }

    /// Next slot to apply.
    pub fn applied_index(&self) -> Slot {
        self.learner.applied()
    }

    /// The log (votes and chosen values).
    pub fn log(&self) -> &BTreeMap<Slot, Entry<S::Command>> {
        self.acceptor.log()
    }

    /// The state machine.
    pub fn state_machine(&self) -> &S {
        self.learner.state_machine()
    }

    /// The applied state and client sessions, encoded as a snapshot would hold them: two
    /// replicas that applied the same prefix hold the same bytes.
    pub fn applied_state(&self) -> Snapshot {
        self.learner.snapshot()
    }

    /// The latest snapshot, if any.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// As leader: the next slot for a new proposal, and the first slot not prepared under its
    /// own configuration. `next <= bound <= applied + alpha` after every step.
    pub fn proposal_range(&self) -> Option<(Slot, Slot)> {
        match &self.role {
            Role::Leader(a) => Some((a.next_slot, a.bound)),
            _ => None,
        }
    }

    /// As leader: whether it holds notices back (chosen values, a commit point) for its
    /// notice timer to send. The driver must have that timer armed (checked by the simulator):
    /// otherwise they wait for the next heartbeat, or a read's answer.
    pub fn holds_notices(&self) -> bool {
        matches!(&self.role, Role::Leader(a) if !a.notices.is_empty())
    }

    /// As leader: how many commands wait in its queue while it has room to propose them.
    /// Zero after every step (checked by the simulator): whatever frees room proposes what
    /// waits, or the queue sits until the next request, forwarded command or vote (the
    /// heartbeat does not propose).
    pub fn queued_with_room(&self) -> usize {
        match &self.role {
            Role::Leader(a) if a.has_room(self.cfg.window, a.bound) => a.queued().len(),
            _ => 0,
        }
    }

    /// Reads that could be answered (or registered) now and wait all the same: a leader's
    /// confirmed reads whose index is applied, reads it parked while no longer needing to,
    /// and a follower's reads whose index its apply point has reached. Zero after every step
    /// (checked by the simulator): they would wait for an unrelated event.
    pub fn reads_stalled(&self) -> usize {
        let applied = self.learner.applied();
        // A leader that is not quiet parks every read it holds (`settle_reads` ends each of
        // its steps), and parked is right for it: only a quiet leader can hold one for nothing.
        let (ready, parked) = match &self.role {
            Role::Leader(a) if self.quiet() => (a.reads.ready_count(applied), a.parked_reads.len()),
            _ => (0, 0),
        };
        let remote = self
            .remote_reads
            .values()
            .filter(|(_, i)| i.is_some_and(|i| i <= applied))
            .count();
        [ready, parked, remote].into_iter().sum()
    }

    /// Reads this follower asked a node for an index and still waits on, though it no longer
    /// takes that node for the leader: the one it asked may never answer (it failed, or lost
    /// the message). Zero after every step (checked by the simulator): they would wait for
    /// the driver to give up on them.
    pub fn reads_orphaned(&self) -> usize {
        let leader = self.leader_hint;
        (self.remote_reads.values())
            .filter(|(asked, index)| index.is_none() && Some(*asked) != leader)
            .count()
    }

    /// Who governs which slots, after every applied membership change.
    pub fn membership(&self) -> &Membership {
        self.learner.membership()
    }

    /// Whom a candidate asks to promise: the voters of every configuration it may need, those
    /// governing the slots from `from` up to the last one whose configuration is known.
    fn prepare_targets(&self, from: Slot) -> BTreeSet<NodeId> {
        let m = self.learner.membership();
        if self.cfg.bug == Some(PlantedBug::Phase1IgnoresNewConfig) {
            return m.voters_over(from, from + 1);
        }
        let mut voters = m.voters_over(from, self.learner.applied() + m.alpha());
        // Cheap Paxos: auxiliaries are asked only when the mains' answers are late.
        voters.retain(|&v| !self.is_auxiliary(v));
        voters
    }

    /// The first slot still in the log (everything below is in the snapshot).
    pub fn log_start(&self) -> Slot {
        self.acceptor.log_start()
    }

    /// Snapshots the applied state and compacts the log below it. The driver persists the
    /// snapshot (the step's `Persist::Snapshot`) and may then drop those log records. Does
    /// nothing if nothing new was applied since the last snapshot.
    pub fn take_snapshot(&mut self) -> Fx<S> {
        match self.begin_snapshot() {
            Some(pending) => self.finish_snapshot(pending.build()).0,
            None => Fx::<S>::new(),
        }
    }

    /// The first half of [`Replica::take_snapshot`], for a driver that encodes the state off
    /// its loop: copies the applied state now (see [`StateMachine::snapshot_later`]). `None` if
    /// nothing new was applied since the log start. The encoding is given the latest
    /// snapshot's state to build on ([`super::EncodeState::to_writer_after`]), since the
    /// applied state was reached from it; an empty one before the first snapshot, so that a
    /// machine writes even the first in the form the next can build on.
    pub fn begin_snapshot(&self) -> Option<PendingSnapshot> {
        (self.learner.applied() > self.acceptor.log_start()).then(|| {
            let mut pending = self.learner.snapshot_later();
            pending.base = Some(
                self.snapshot
                    .as_ref()
                    .map(|s| s.state.clone())
                    .unwrap_or_default(),
            );
            pending
        })
    }

    /// The second half: adopts `snap` (built from [`Replica::begin_snapshot`], however many
    /// steps ago) and compacts the log below it. Does nothing if the log start has moved past it
    /// meanwhile (a newer snapshot was taken or installed). Also returns the log entries it
    /// removed: freeing thousands of slots' commands takes long enough that a driver may want
    /// to drop them off its loop.
    pub fn finish_snapshot(&mut self, snap: Snapshot) -> (Fx<S>, Compacted<S::Command>) {
        let mut fx = Fx::<S>::new();
        assert!(
            snap.slot <= self.learner.applied(),
            "a snapshot ahead of the applied state"
        );
        let mut removed = BTreeMap::new();
        if snap.slot > self.acceptor.log_start() {
            removed = self.acceptor.compact(snap.slot);
            self.learner.compacted_below(snap.slot);
            fx.persist(Persist::Snapshot(snap.clone()));
            self.superseded_below(snap.slot);
            self.keep_replaced();
            self.snapshot = Some(snap);
        }
        (fx, Compacted(removed))
    }

    /// Points the latest snapshot's state at `state`, the same bytes held elsewhere: a driver
    /// that saved the snapshot maps the file and hands the mapping over, so that the replica's
    /// own copy (hundreds of megabytes for a large store, kept only to send to lagging peers)
    /// is freed. Every later snapshot has a higher slot, so a state of the same slot and length
    /// is the same snapshot (checked byte for byte in debug builds only: a release build would
    /// read the whole mapped file to do it). Returns whether `state` was adopted; `false` when
    /// a newer snapshot replaced that one meanwhile.
    pub fn rebase_snapshot(&mut self, slot: Slot, state: bytes::Bytes) -> bool {
        match &mut self.snapshot {
            Some(s) if s.slot == slot && s.state.len() == state.len() => {
                // A later snapshot always has a higher slot, so these are the same bytes; a
                // planted bug may break that rule, and a checker must catch it, not this.
                debug_assert!(
                    self.cfg.bug.is_some() || s.state == state,
                    "snapshot {slot} rebased onto different bytes"
                );
                s.state = state;
                true
            }
            _ => false,
        }
    }

    // ----- inputs -----

    /// A client submits `cmd` to this replica. The answer comes later as [`Output::Reply`], or
    /// at once as [`Output::NotLeader`] when no leader is known.
    pub fn on_client_request(&mut self, cmd: Command<S::Command>) -> Fx<S> {
        self.on_client_requests(std::iter::once(cmd))
    }

    /// Several client commands at once: a leader puts what fits into as few slots as its batch
    /// size allows, and a follower forwards them in one message. Each is answered as
    /// [`Replica::on_client_request`] would.
    pub fn on_client_requests(
        &mut self,
        cmds: impl IntoIterator<Item = Command<S::Command>>,
    ) -> Fx<S> {
        let mut fx = Fx::<S>::new();
        let mut forward = Vec::new();
        for cmd in cmds {
            match self.learner.applied_result(cmd.client, cmd.seq) {
                Some(Ok(result)) => {
                    fx.output(Output::Reply {
                        client: cmd.client,
                        seq: cmd.seq,
                        result,
                    });
                    continue;
                }
                Some(Err(())) => continue,
                None => {}
            }
            if self.joining {
                fx.output(Output::NotLeader {
                    client: cmd.client,
                    seq: cmd.seq,
                    leader: None,
                });
                continue;
            }
            self.learner.wait_for(cmd.client, cmd.seq);
            match &mut self.role {
                Role::Leader(a) => a.enqueue(cmd),
                Role::Candidate(s) => s.queue.push_back(cmd),
                Role::Follower => match self.leader_hint {
                    Some(l) if l != self.cfg.id => forward.push(cmd),
                    _ => {
                        self.learner.forget(cmd.client, cmd.seq);
                        fx.output(Output::NotLeader {
                            client: cmd.client,
                            seq: cmd.seq,
                            leader: None,
                        });
                    }
                },
            }
        }
        if let (false, Some(l)) = (forward.is_empty(), self.leader_hint) {
            fx.send(l, Message::Forward { commands: forward });
        }
        self.propose_queued(&mut fx);
        self.serve_reads(&mut fx);
        self.follow_membership(&mut fx);
        fx
    }

    /// A client asks for a linearizable read served without a log slot. The answer comes as
    /// [`Output::ReadReady`] (read this replica's state machine then) or [`Output::ReadFailed`]
    /// (this replica does not lead; ask `leader`). See [`super::reads`] for why it is safe.
    pub fn on_read(&mut self, id: ReadId) -> Fx<S> {
        self.on_reads([id])
    }

    /// Several reads at once ([`Replica::on_read`] for each): a leader confirms them all with
    /// one round of probes.
    ///
    /// Read ids are the driver's, and must be unique for the life of the node's data, across
    /// restarts: a follower's index request may be answered after it restarted, and that answer
    /// must not be taken for a later read's.
    pub fn on_reads(&mut self, ids: impl IntoIterator<Item = ReadId>) -> Fx<S> {
        let mut fx = Fx::<S>::new();
        for id in ids {
            match &self.role {
                Role::Leader(_) => self.register_read(id, None),
                Role::Follower if self.leader_hint.is_some_and(|l| l != self.cfg.id) => {
                    // The leader confirms and names the index; we serve from our own state.
                    let leader = self.leader_hint.expect("checked");
                    self.remote_reads.insert(id, (leader, None));
                    fx.send(leader, Message::ReadIndexRequest { id });
                }
                // A joiner is a follower that has heard of no leader: it fails them here too.
                _ => fx.output(Output::ReadFailed { id, leader: None }),
            }
        }
        self.start_read_round(&mut fx);
        self.serve_reads(&mut fx);
        self.follow_membership(&mut fx);
        fx
    }

    /// Forgets a read the driver gave up on (say, its index request was lost).
    pub fn cancel_read(&mut self, id: ReadId) {
        self.remote_reads.remove(&id);
    }

    /// As leader, registers a read (ours, or a follower's) at the current log end; it waits
    /// for the next round of probes ([`Replica::start_read_round`]).
    fn register_read(&mut self, id: ReadId, origin: Option<NodeId>) {
        if !self.quiet() {
            if let Role::Leader(active) = &mut self.role {
                active.parked_reads.push((id, origin));
            }
            return;
        }
        let Role::Leader(active) = &mut self.role else {
            return;
        };
        // Past every slot a promise reported at or above `bound`: those obligations are
        // proposed only as `bound` moves up, and one may hold a write acknowledged before this
        // read arrived. (Below `bound` they are proposed already; a vote a late promise reports
        // there was not chosen, or the promises that moved `bound` would have reported it.)
        let reported = active
            .promises
            .last_reported_from(active.bound)
            .map_or(0, |s| s + 1);
        active
            .reads
            .request(id, active.next_slot.max(reported), origin);
        if self.cfg.bug == Some(PlantedBug::UnconfirmedReads) {
            active.reads.confirm_all();
        }
    }

    fn on_read_index_request(&mut self, from: NodeId, id: ReadId, fx: &mut Fx<S>) {
        if matches!(self.role, Role::Leader(_)) {
            self.note_busy(from, fx);
            self.register_read(id, Some(from));
            self.start_read_round(fx);
        } else {
            fx.send(from, Message::ReadIndexReply { id, index: None });
        }
    }

    /// Only the leader we asked may answer, and only once: a reply from anyone else (or one
    /// meant for an earlier read under the same id, say from before a restart) could name an
    /// index from before writes this read must see. Read ids must not repeat across restarts
    /// either (see [`Replica::on_reads`]).
    fn on_read_index_reply(
        &mut self,
        from: NodeId,
        id: ReadId,
        index: Option<Slot>,
        fx: &mut Fx<S>,
    ) {
        let Some((asked, waiting @ None)) = self.remote_reads.get_mut(&id) else {
            return;
        };
        if *asked != from {
            return;
        }
        match index {
            Some(i) => *waiting = Some(i),
            None => {
                self.remote_reads.remove(&id);
                fx.output(Output::ReadFailed { id, leader: None });
            }
        }
    }

    /// Takes `hint` for the leader (`None`: none known). The reads waiting for an index from
    /// a node that is no longer the leader fail at once: the one asked may have crashed or lost
    /// the request, and would otherwise be waited on until the driver gives up (a promise to a
    /// candidate, then the new leader's first accept, had left them waiting).
    fn follow_leader(&mut self, hint: Option<NodeId>, fx: &mut Fx<S>) {
        if self.leader_hint != hint && self.cfg.bug != Some(PlantedBug::OrphanedReadsLeft) {
            self.fail_unanswered_reads(fx);
        }
        self.leader_hint = hint;
    }

    /// Fails the reads still waiting for an index: the leader we asked may never answer.
    fn fail_unanswered_reads(&mut self, fx: &mut Fx<S>) {
        let unanswered: Vec<ReadId> = self
            .remote_reads
            .iter()
            .filter(|(_, (_, i))| i.is_none())
            .map(|(&id, _)| id)
            .collect();
        for id in unanswered {
            self.remote_reads.remove(&id);
            fx.output(Output::ReadFailed { id, leader: None });
        }
    }

    /// Starts a round of leadership probes for the reads waiting for one, if there is room
    /// for another round in flight. Our own acknowledgement counts at once.
    fn start_read_round(&mut self, fx: &mut Fx<S>) {
        let Role::Leader(active) = &mut self.role else {
            return;
        };
        let Some(round) = active.reads.next_round() else {
            return;
        };
        let (ballot, to) = (active.ballot, active.next_slot + 1);
        let commit = self.learner.commit();
        // While reads are served, one configuration governs from the commit point on.
        let quorum = self.learner.membership().at(commit).quorum();
        active.reads.ack(self.cfg.id, round, quorum);
        for m in self.read_probe_targets(commit, to) {
            fx.send(m, Message::ReadProbe { ballot, round });
        }
    }

    /// Who gets a new round's probes. Every member over the window, or with
    /// [`Config::thrifty_reads`] only as many main members as make a quorum with us: those
    /// that acknowledged the latest rounds. A member left out hears the round at the next
    /// heartbeat if it is still in flight then (its acknowledgement counts like any other), so
    /// a chosen member that stops answering costs one heartbeat, after which the one that
    /// answered the retransmission has the later round and is chosen. Before any member has
    /// acknowledged a round of this leadership, those whose promise we hold rank first: after
    /// a failover the old leader, still a member but maybe dead, ranks last. While writes are in
    /// flight, all are probed: the members are busy with accepts then, and the first quorum of
    /// answers comes sooner than one given member's (3% more mixed reads and writes per second
    /// than with a quorum's worth, docs/performance.md). While a membership change is
    /// pending, all are probed too.
    fn read_probe_targets(&self, commit: Slot, to: Slot) -> Vec<NodeId> {
        let membership = self.learner.membership();
        // Cheap Paxos with a main silent: the auxiliaries too, at once, as accepts go to them;
        // at the heartbeat only, a read would wait for one every time.
        let aux = self.aux_for_reads(commit);
        let thrifty = match (&self.role, self.cfg.thrifty_reads) {
            (Role::Leader(a), true)
                if aux.is_empty()
                    && a.in_flight().is_empty()
                    && membership.over(commit, to).nth(1).is_none() =>
            {
                let config = membership.at(commit);
                let (promised, rest): (Vec<NodeId>, Vec<NodeId>) =
                    config.mains().partition(|&m| a.promises.has(m));
                let candidates = promised.into_iter().chain(rest);
                a.reads
                    .thrifty_targets(self.cfg.id, candidates, config.quorum())
            }
            _ => None,
        };
        thrifty.unwrap_or_else(|| {
            (membership.members_over(commit, to))
                .filter(|&m| m != self.cfg.id)
                .chain(aux)
                .collect()
        })
    }

    /// Answers the reads whose round is confirmed and whose index is applied, and tells
    /// followers the index of theirs.
    fn serve_reads(&mut self, fx: &mut Fx<S>) {
        self.settle_reads(fx);
        let applied = self.learner.applied();
        if let Role::Leader(active) = &mut self.role {
            let off_by_one = self.cfg.bug == Some(PlantedBug::ReadBelowIndex);
            let ready = active.reads.ready(applied, off_by_one);
            for c in ready {
                match c.origin {
                    Some(f) => {
                        self.send_notices_to(f, fx);
                        let reply = Message::ReadIndexReply {
                            id: c.id,
                            index: Some(c.index),
                        };
                        fx.send(f, reply);
                    }
                    None => fx.output(Output::ReadReady { id: c.id }),
                }
            }
        }
        if !self.remote_reads.is_empty() {
            let applied = applied + u64::from(self.cfg.bug == Some(PlantedBug::ReadBelowIndex));
            let ready: Vec<ReadId> = self
                .remote_reads
                .iter()
                .filter(|(_, (_, i))| i.is_some_and(|i| i <= applied))
                .map(|(&id, _)| id)
                .collect();
            for id in ready {
                self.remote_reads.remove(&id);
                fx.output(Output::ReadReady { id });
            }
        }
    }

    /// Fails the reads a leader was holding when its leadership ended.
    /// A leadership ends: its reads, parked or not, fail, and so do the membership changes it
    /// had not proposed yet.
    fn fail_led_work(active: &mut Active<S::Command>, fx: &mut Fx<S>) {
        let mut reads = active.reads.drain();
        reads.append(&mut active.parked_reads);
        Self::fail_led_reads(reads, fx);
        for (id, _) in active.changes.drain(..) {
            fx.output(Output::ChangeFailed { id, leader: None });
        }
    }

    fn fail_led_reads(reads: Vec<(ReadId, Option<NodeId>)>, fx: &mut Fx<S>) {
        for (id, origin) in reads {
            match origin {
                Some(f) => fx.send(f, Message::ReadIndexReply { id, index: None }),
                None => fx.output(Output::ReadFailed { id, leader: None }),
            }
        }
    }

    fn on_read_probe(&mut self, from: NodeId, ballot: Ballot, round: u64, fx: &mut Fx<S>) {
        self.seen = self.seen.max(ballot);
        let promised = self.acceptor.promised();
        if ballot < promised {
            fx.send(from, Message::Nack { ballot, promised });
            return;
        }
        if self.ballot().is_some_and(|mine| ballot > mine) {
            self.step_down(fx);
        }
        self.follow_leader(Some(from), fx);
        self.heard = true;
        fx.send(from, Message::ReadAck { ballot, round });
    }

    fn on_read_ack(&mut self, from: NodeId, ballot: Ballot, round: u64, fx: &mut Fx<S>) {
        let Role::Leader(active) = &mut self.role else {
            return;
        };
        if active.ballot != ballot {
            return;
        }
        let quorum = self.learner.membership().at(self.learner.commit()).quorum();
        active.reads.ack(from, round, quorum);
        self.start_read_round(fx);
        self.serve_reads(fx);
    }

    /// Handles a timer.
    pub fn on_timer(&mut self, timer: Timer) -> Fx<S> {
        let mut fx = Fx::<S>::new();
        if self.joining {
            self.joining_on_timer(timer, &mut fx);
            return fx;
        }
        match timer {
            Timer::Election => {
                self.age_stand_request();
                self.age_incoming(&mut fx);
                self.age_replaced();
                let quiet = !std::mem::replace(&mut self.heard, false);
                match self.role {
                    Role::Leader(_) => self.age_handover(&mut fx),
                    // A learner (or a member on its way out) does not stand.
                    Role::Follower if quiet && self.may_stand() => self.stand_for_election(&mut fx),
                    // A candidate that has not won by now starts over with a higher ballot.
                    Role::Candidate(_) if self.may_stand() => self.stand_for_election(&mut fx),
                    Role::Candidate(_) => self.step_down(&mut fx),
                    Role::Follower if quiet => self.ask_around(&mut fx),
                    Role::Follower => {}
                }
                self.arm_election(&mut fx);
            }
            Timer::Heartbeat => match &self.role {
                Role::Leader(_) => {
                    self.heartbeat(&mut fx);
                    self.hand_over(&mut fx);
                    if self.cfg.bug != Some(PlantedBug::HeartbeatNotRearmed) {
                        fx.arm(Timer::Heartbeat, self.cfg.heartbeat_ticks);
                    }
                }
                Role::Candidate(s) => {
                    let msg = Message::Prepare {
                        ballot: s.ballot,
                        from: s.from,
                    };
                    // Our promise of this ballot may still be on its way to the disk.
                    let limit = self.learner.applied() + self.learner.membership().alpha();
                    let aux = self.aux_over(s.from, limit);
                    for m in self.prepare_targets(s.from).into_iter().chain(aux) {
                        if m != self.cfg.id && !s.has_promise(m) {
                            fx.send_after_sync(m, msg.clone());
                        }
                    }
                    fx.arm(Timer::Heartbeat, self.cfg.heartbeat_ticks);
                }
                Role::Follower => {}
            },
            Timer::Notices => {
                self.send_notices(&mut fx);
            }
        }
        self.serve_reads(&mut fx);
        self.follow_membership(&mut fx);
        fx
    }

    /// Handles one message from replica `from`.
    pub fn on_message(&mut self, from: NodeId, msg: Message<S::Command>) -> Fx<S> {
        if self.joining {
            return self.joining_on_message(from, msg);
        }
        let mut fx = Fx::<S>::new();
        // Our own promise and votes come back to us once durable; nothing else may.
        let own = from == self.cfg.id
            && matches!(msg, Message::Accepted { .. } | Message::Promise { .. });
        let m = self.learner.membership();
        if m.was_removed(from) {
            // A member a change we applied took out, which may not know it (it was down or cut
            // off). It may never lead again (ids are never reused): its prepare gets no
            // promise, which would only depose the leader, but what was chosen, as do its
            // catch-up requests after we forgot the configurations it was in; so it learns it
            // is out (and stops standing) however long it was away.
            match msg {
                Message::Prepare { from: slot, .. } | Message::CatchUpRequest { from: slot } => {
                    self.on_catch_up_request(from, slot, &mut fx);
                    return fx;
                }
                Message::SnapshotRequest { slot, offset } => {
                    self.on_snapshot_request(from, slot, offset, &mut fx);
                    return fx;
                }
                _ => {}
            }
        }
        if !m.knows(from) || (from == self.cfg.id && !own) {
            return fx;
        }
        match msg {
            Message::Prepare { ballot, from: slot } => self.on_prepare(from, ballot, slot, &mut fx),
            Message::Promise {
                ballot,
                entries,
                log_start,
            } => self.on_promise(from, ballot, entries, log_start, &mut fx),
            Message::InstallSnapshot { snapshot } => self.on_install_snapshot(snapshot, &mut fx),
            m @ Message::SnapshotChunk { .. } => {
                let piece = stream::Piece::of(m);
                let whole = piece.and_then(|p| self.on_snapshot_chunk(from, p, &mut fx));
                if let Some(snapshot) = whole {
                    self.on_install_snapshot(snapshot, &mut fx);
                }
            }
            Message::SnapshotRequest { slot, offset } => {
                self.on_snapshot_request(from, slot, offset, &mut fx)
            }
            Message::Nack { ballot, promised } => self.on_nack(ballot, promised, &mut fx),
            Message::Accept {
                ballot,
                slot,
                value,
                commit,
            } => self.on_accept(from, ballot, slot, value, commit, &mut fx),
            Message::Accepted { ballot, slot } => self.on_accepted(from, ballot, slot, &mut fx),
            Message::Chosen { slot, value } => {
                self.learn(slot, &value, &mut fx);
                self.learner.catch_up(self.acceptor.log(), &mut fx);
                self.propose_queued(&mut fx);
            }
            Message::Heartbeat { ballot, commit } => {
                self.on_heartbeat(from, ballot, commit, &mut fx)
            }
            Message::CatchUpRequest { from: slot } => self.on_catch_up_request(from, slot, &mut fx),
            Message::CatchUp { entries } => {
                for (slot, value) in &entries {
                    self.learn(*slot, value, &mut fx);
                }
                self.learner.catch_up(self.acceptor.log(), &mut fx);
                // Slots a leader had in flight may be among them, which frees room in its
                // window: its queue goes out now, not at the next request. (Found by the
                // simulator's check of queued commands, seeds 9804199 and 9801606.)
                self.propose_queued(&mut fx);
            }
            Message::ReadProbe { ballot, round } => {
                self.on_read_probe(from, ballot, round, &mut fx)
            }
            Message::ReadAck { ballot, round } => self.on_read_ack(from, ballot, round, &mut fx),
            Message::ReadIndexRequest { id } => self.on_read_index_request(from, id, &mut fx),
            Message::ReadIndexReply { id, index } => {
                self.on_read_index_reply(from, id, index, &mut fx)
            }
            Message::Forward { commands } => {
                self.note_busy(from, &mut fx);
                match &mut self.role {
                    Role::Leader(a) => commands.into_iter().for_each(|c| a.enqueue(c)),
                    Role::Candidate(s) => s.queue.extend(commands),
                    // Not (or no longer) leader: drop; the client's retry finds the leader.
                    Role::Follower => {}
                }
                self.propose_queued(&mut fx);
            }
            Message::StandNow { ballot, commit } => {
                self.on_stand_now(from, ballot, commit, &mut fx)
            }
            Message::ForwardChange { id, ops } => self.on_forward_change(from, id, ops, &mut fx),
            Message::Progress { ballot, commit } => self.on_progress(from, ballot, commit),
            Message::PromotionRefused {
                id,
                learner,
                behind,
            } => {
                // Only the leader answers for a change, and only to the change's origin.
                if id.origin == self.cfg.id && self.leader_hint == Some(from) {
                    let reason = RejectReason::LearnerNotReady {
                        id: learner,
                        behind,
                    };
                    fx.output(Output::ChangeRefused { id, reason });
                }
            }
            Message::JoinRequest => self.on_join_request(from, &mut fx),
        }
        self.stand_if_caught_up(&mut fx);
        self.serve_reads(&mut fx);
        self.follow_membership(&mut fx);
        fx
    }

    // ----- election -----

    fn arm_election(&mut self, fx: &mut Fx<S>) {
        let (lo, hi) = self.cfg.election_ticks;
        fx.arm(Timer::Election, self.rng.range(lo, hi));
    }

    fn stand_for_election(&mut self, fx: &mut Fx<S>) {
        let ballot = Ballot::next_after(self.seen.max(self.acceptor.promised()), self.cfg.id);
        self.seen = ballot;
        let from = self.learner.commit();
        let queue = match std::mem::replace(&mut self.role, Role::Follower) {
            Role::Candidate(s) => s.queue,
            Role::Leader(mut a) => {
                Self::fail_led_work(&mut a, fx);
                a.into_queue()
            }
            Role::Follower => VecDeque::new(),
        };
        self.fail_unanswered_reads(fx);
        // Our own promise is persisted in this step. It counts toward phase 1 only once it is
        // durable, when it comes back to us as a message after the sync; the prepares wait for
        // that sync too. Counted at once, a candidate whose phase-1 quorum is itself alone (one
        // node, or flexible quorums with q1 = 1) would win and send accepts for a ballot that a
        // crash could take back and a restart hand out again, with a different value.
        let own = self
            .acceptor
            .prepare(ballot, from, fx)
            .expect("a fresh ballot above every promise is accepted");
        self.leader_hint = None;
        self.role = Role::Candidate(Scout::new(ballot, from, queue));
        let log_start = self.acceptor.log_start();
        fx.send_after_sync(
            self.cfg.id,
            Message::Promise {
                ballot,
                entries: own,
                log_start,
            },
        );
        let msg = Message::Prepare { ballot, from };
        for m in self.prepare_targets(from) {
            if m != self.cfg.id {
                fx.send_after_sync(m, msg.clone());
            }
        }
        fx.arm(Timer::Heartbeat, self.cfg.heartbeat_ticks);
    }

    fn on_prepare(&mut self, from: NodeId, ballot: Ballot, slot: Slot, fx: &mut Fx<S>) {
        self.seen = self.seen.max(ballot);
        match self.acceptor.prepare(ballot, slot, fx) {
            Ok(entries) => {
                if self.ballot().is_some_and(|mine| ballot > mine) {
                    self.step_down(fx);
                }
                // Give the candidate we promised time to win before standing ourselves.
                self.heard = true;
                if ballot > Ballot::ZERO && self.ballot().is_none() {
                    self.follow_leader(None, fx);
                }
                let log_start = self.acceptor.log_start();
                fx.send_after_sync(
                    from,
                    Message::Promise {
                        ballot,
                        entries,
                        log_start,
                    },
                );
            }
            Err(promised) => fx.send(from, Message::Nack { ballot, promised }),
        }
    }

    fn on_promise(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        entries: Vec<PromiseEntry<S::Command>>,
        log_start: Slot,
        fx: &mut Fx<S>,
    ) {
        match &mut self.role {
            Role::Candidate(scout) if scout.ballot == ballot => {}
            Role::Leader(active) if active.ballot == ballot => {
                // Late, but it binds its acceptor for the whole suffix all the same: it may
                // complete the phase-1 quorum of a configuration that takes effect later. Votes
                // in our own ballot (accepts that overtook the prepare) are our own proposals,
                // all below `bound`, where reports are no longer read.
                // A repeat of a promise already recorded adds nothing, and would drop the votes
                // it reported that our accepts have since replaced (a digest may rest on them).
                if log_start <= active.promises.from() && !active.promises.has(from) {
                    let entries = entries.into_iter().filter(|e| e.ballot != ballot);
                    active.promises.record(from, entries.collect());
                }
                return;
            }
            _ => return,
        }
        let aux = self.is_auxiliary(from);
        let from_slot = match &self.role {
            Role::Candidate(scout) => scout.from,
            _ => return,
        };
        if aux && log_start > from_slot {
            // An auxiliary forgot slots we still need; the mains that learned them are the
            // ones to stand. Leaving its promise out is always safe.
            return;
        }
        let entries = match self.cfg.bug {
            Some(PlantedBug::AuxVotesIgnored) if aux => Vec::new(),
            Some(PlantedBug::AuxDigestsDropped) if aux => entries
                .into_iter()
                .filter(|e| !e.value.is_digest())
                .collect(),
            _ => entries,
        };
        let Role::Candidate(scout) = &mut self.role else {
            return;
        };
        if log_start > scout.from {
            // That acceptor compacted chosen slots we do not know; its promise cannot report
            // them, and leading without them could fill them with no-ops. Catch up first.
            let from_slot = scout.from;
            self.step_down(fx);
            fx.send(from, Message::CatchUpRequest { from: from_slot });
            return;
        }
        if !scout.record(from, entries) {
            return;
        }
        // Won once the promises hold a phase-1 quorum of every configuration known from the
        // first slot prepared on: winning with fewer would have the new leader prepare again
        // at once.
        let m = self.learner.membership();
        let limit = match self.cfg.bug {
            Some(PlantedBug::Phase1IgnoresNewConfig) => scout.from + 1,
            _ => self.learner.applied() + m.alpha(),
        };
        let promises = scout.promises();
        if m.over(scout.from, limit)
            .all(|c| promises.is_quorum_of(c.quorum()))
        {
            self.become_leader(fx);
        }
    }

    fn become_leader(&mut self, fx: &mut Fx<S>) {
        let Role::Candidate(scout) = std::mem::replace(&mut self.role, Role::Follower) else {
            unreachable!("only a candidate becomes leader");
        };
        // While we stood, slots may have been learned and even compacted into a snapshot of
        // ours: everything below our commit point is chosen, and below the log start it is gone
        // from the log. New batches go after both; no obligation below the commit point needs
        // a round (the slot is decided, and below the log start there is no slot to vote in).
        let settled = self.learner.commit();
        debug_assert!(self.acceptor.log_start() <= settled);
        let (ballot, from) = (scout.ballot, scout.from);
        let (promises, queue) = scout.into_parts();
        let mut active = Active::new(ballot, settled, queue);
        active.notices.unarmed = self.cfg.bug == Some(PlantedBug::NoticesTimerUnarmed);
        active.promises = promises;
        active.bound = from;
        self.role = Role::Leader(active);
        self.leader_hint = Some(self.cfg.id);
        // The obligations, configuration by configuration, up to the last slot whose
        // configuration is known (replica/reconfig.rs).
        self.advance_bound(fx);
        self.learner.catch_up(self.acceptor.log(), fx);
        self.heartbeat(fx);
        fx.arm(Timer::Heartbeat, self.cfg.heartbeat_ticks);
        self.propose_queued(fx);
    }

    fn step_down(&mut self, fx: &mut Fx<S>) {
        if !matches!(self.role, Role::Follower) {
            self.send_held_values(fx);
            self.pass_queue_on(fx);
            // A leader not handing over drops its queued commands: their clients time out and
            // retry at the new leader (exactly-once application makes that safe). Reads fail.
            if let Role::Leader(active) = &mut self.role {
                Self::fail_led_work(active, fx);
            }
            self.role = Role::Follower;
            self.leader_hint = None;
            self.arm_election(fx);
        }
    }

    fn on_nack(&mut self, ballot: Ballot, promised: Ballot, fx: &mut Fx<S>) {
        self.seen = self.seen.max(promised);
        if self.ballot() == Some(ballot) && promised > ballot {
            self.step_down(fx);
        }
    }

    // ----- phase 2 -----

    fn propose(&mut self, slot: Slot, value: Value<S::Command>, fx: &mut Fx<S>) {
        let aux = self.aux_for_accept(slot, None);
        let Role::Leader(active) = &mut self.role else {
            return;
        };
        let ballot = active.ballot;
        match self.acceptor.accept(ballot, slot, &value, fx) {
            Vote::Accepted => {}
            // Our own acceptor promised someone higher or knows the slot is chosen: either way
            // this leadership is over or this slot is settled; let the general paths handle it.
            Vote::Refused(promised) => {
                self.seen = self.seen.max(promised);
                self.step_down(fx);
                return;
            }
            Vote::AlreadyChosen(v) => {
                self.learn(slot, &v, fx);
                return;
            }
            Vote::Compacted => {
                debug_assert!(
                    false,
                    "a leader proposed slot {slot} below its own snapshot"
                );
                self.step_down(fx);
                return;
            }
        }
        // Every slot a ballot proposes in is prepared under its own configuration.
        assert!(
            slot < active.bound,
            "slot {slot} proposed at or above the prepared bound {}",
            active.bound
        );
        let config = self.learner.membership().at(slot);
        let thrifty = self.cfg.thrifty_writes
            && aux.is_empty()
            && config.active_auxiliaries().next().is_none();
        let targets = match thrifty {
            true => active.accept_targets(self.cfg.id, config.voters(), config.quorum()),
            false => None,
        };
        // Voters outside the targets hear the value once it is chosen; members that do not
        // vote (learners) get every accept, as they would without thrifty sends.
        let left_out: Vec<NodeId> = match &targets {
            Some(t) => config
                .voters()
                .iter()
                .copied()
                .filter(|m| *m != self.cfg.id && !t.contains(m))
                .collect(),
            None => Vec::new(),
        };
        let commit = self.learner.commit();
        let msg = Message::Accept {
            ballot,
            slot,
            value: value.clone(),
            commit,
        };
        for m in config.receivers() {
            if m != self.cfg.id && !left_out.contains(&m) {
                fx.send(m, msg.clone());
            }
        }
        if self.cfg.bug == Some(PlantedBug::ChosenPushedEarly) {
            for &m in &left_out {
                let value = value.clone();
                fx.send(m, Message::Chosen { slot, value });
            }
        }
        active.proposed(slot, value, left_out);
        if let Message::Accept { value, .. } = &msg {
            Self::send_to_auxiliaries(&self.cfg, &aux, (ballot, slot, commit), value, fx);
        }
        if self.cfg.bug == Some(PlantedBug::OwnVoteBeforeSync) {
            if let Some(f) = active.vote(self.cfg.id, slot, config.quorum()) {
                self.learn(slot, &f.value, fx);
            }
        } else {
            // Our own vote counts only once it is durable: it comes back to us as an Accepted,
            // which the driver delivers after the sync that covers this step. The accepts above
            // leave before that sync (our promise of this ballot is durable already), so
            // followers write their votes while we write ours.
            fx.send_after_sync(self.cfg.id, Message::Accepted { ballot, slot });
        }
    }

    fn propose_queued(&mut self, fx: &mut Fx<S>) {
        self.advance_bound(fx);
        self.propose_next_change(fx);
        loop {
            let Role::Leader(active) = &mut self.role else {
                return;
            };
            let limit = active.bound;
            let Some(batch) = active.next_batch(self.cfg.window, self.cfg.max_batch, limit) else {
                break;
            };
            let slot = active.next_slot;
            active.next_slot += 1;
            self.propose(slot, Value::batch(batch), fx);
        }
        self.fill_to_next_epoch(fx);
        self.learner.catch_up(self.acceptor.log(), fx);
    }

    fn on_accept(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        slot: Slot,
        value: Value<S::Command>,
        commit: Slot,
        fx: &mut Fx<S>,
    ) {
        if value.is_digest() {
            // Only an auxiliary votes for a digest; a replica must hold what it votes for.
            return;
        }
        self.seen = self.seen.max(ballot);
        match self.acceptor.accept(ballot, slot, &value, fx) {
            Vote::Accepted => {
                if self.ballot().is_some_and(|mine| ballot > mine) {
                    self.step_down(fx);
                }
                if self.ballot().is_none() {
                    self.follow_leader(Some(from), fx);
                    self.heard = true;
                }
                fx.send_after_sync(from, Message::Accepted { ballot, slot });
                self.learn_commit(ballot, commit, fx);
            }
            Vote::Refused(promised) => fx.send(from, Message::Nack { ballot, promised }),
            Vote::AlreadyChosen(value) => fx.send(from, Message::Chosen { slot, value }),
            // Chosen and compacted here: the sender proposes a slot it does not know is decided.
            // Send the snapshot; installing it moves the sender past that slot (a leader steps
            // down to do so), where it can make progress again.
            Vote::Compacted => {
                if let Some(snapshot) = &self.snapshot {
                    self.send_snapshot(from, snapshot, fx);
                }
            }
        }
        self.learner.catch_up(self.acceptor.log(), fx);
    }

    fn on_accepted(&mut self, from: NodeId, ballot: Ballot, slot: Slot, fx: &mut Fx<S>) {
        if self.ballot() == Some(ballot) {
            self.note_aux_vote(from, slot);
        }
        let Role::Leader(active) = &mut self.role else {
            return;
        };
        if active.ballot != ballot {
            return;
        }
        let config = self.learner.membership().at(slot);
        let with_learners = (self.cfg.bug == Some(PlantedBug::LearnerCounted))
            .then(|| Quorum::from_spec(config.quorum_spec(), &config.members().collect::<Vec<_>>()))
            .and_then(Result::ok);
        let quorum: &dyn QuorumSystem = match &with_learners {
            Some(q) => q,
            None => config.quorum(),
        };
        if let Some(f) = active.vote(from, slot, quorum) {
            let (commit, next_slot) = (self.learner.commit(), active.next_slot);
            self.learn(slot, &f.value, fx);
            let told = self.tell_left_out(slot, f, fx);
            self.learner.catch_up(self.acceptor.log(), fx);
            if self.cfg.bug != Some(PlantedBug::QueueLeftWaiting) {
                self.propose_queued(fx);
            }
            // Followers learn the commit point from the next accept. When no accept goes out
            // now, tell them at once: a client waiting at a follower would otherwise wait for
            // the next heartbeat. Those just told the value learn it from that, if it is all
            // the commit point moved by (not when earlier slots settled with it).
            let proposed = matches!(&self.role, Role::Leader(a) if a.next_slot > next_slot);
            let told = match self.learner.commit() == commit + 1 && slot == commit {
                true => told,
                false => Vec::new(),
            };
            if self.learner.commit() > commit && !proposed {
                self.commit_moved(&told, fx);
            }
            self.hand_over(fx);
        }
    }

    /// Sends the commit point to every other member but `told`.
    fn announce_commit(&self, told: &[NodeId], fx: &mut Fx<S>) {
        self.announce_commit_to(|_, m| !told.contains(&m), fx);
    }

    /// Sends the commit point to every other member that `to` selects (given the leader's
    /// state and the member).
    fn announce_commit_to(&self, to: impl Fn(&Active<S::Command>, NodeId) -> bool, fx: &mut Fx<S>) {
        let Role::Leader(active) = &self.role else {
            return;
        };
        let (ballot, commit) = (active.ballot, self.learner.commit());
        for m in self
            .learner
            .membership()
            .members_over(commit, active.next_slot + 1)
        {
            if m != self.cfg.id && to(active, m) {
                fx.send(m, Message::Heartbeat { ballot, commit });
            }
        }
    }

    /// Records that `slot` is chosen with `value`, from whatever source. A leader that learns a
    /// value other than the one it proposed in its ballot has been overtaken by a higher ballot:
    /// it steps down before it could advertise a commit point covering its own stale proposal.
    fn learn(&mut self, slot: Slot, value: &Value<S::Command>, fx: &mut Fx<S>) {
        if value.is_digest() {
            // No correct peer says a digest is chosen: only auxiliaries hold one.
            return;
        }
        let withdrawn = match &mut self.role {
            Role::Leader(active) => active.withdraw(slot),
            _ => None,
        };
        if let Some(f) = withdrawn {
            if f.value != *value {
                self.step_down(fx);
            } else {
                // Settled otherwise than by votes (an acceptor knew it chosen).
                self.tell_left_out(slot, f, fx);
            }
        }
        if self.acceptor.learn(slot, value, fx) {
            fx.output(Output::Chosen { slot });
        }
    }

    /// A leader with `ballot` says every slot below `commit` is chosen. A vote of ours cast in
    /// that same ballot holds the value the leader proposed, which (by [`Replica::learn`]'s
    /// step-down rule) is the chosen one.
    fn learn_commit(&mut self, ballot: Ballot, commit: Slot, fx: &mut Fx<S>) {
        let mut slot = self.learner.commit();
        while slot < commit {
            if self.acceptor.chosen(slot).is_none() {
                let Some(v) = self.acceptor.vote_in(slot, ballot).cloned() else {
                    break;
                };
                self.learn(slot, &v, fx);
            }
            slot += 1;
        }
    }

    fn heartbeat(&mut self, fx: &mut Fx<S>) {
        let Role::Leader(active) = &mut self.role else {
            return;
        };
        active.beats += 1;
        let ballot = active.ballot;
        let commit = self.learner.commit();
        // Held values first, so that no member asks for what is on its way.
        if !self.send_notices(fx) {
            self.announce_commit(&[], fx);
        }
        let Role::Leader(active) = &self.role else {
            return;
        };
        // Retransmit the read probe and accepts that some member has not acknowledged
        // (messages get lost).
        let membership = self.learner.membership();
        if let Some((round, acks)) = active.reads.in_flight() {
            let aux = self.aux_for_reads(commit);
            for m in membership
                .members_over(commit, active.next_slot + 1)
                .chain(aux)
            {
                if m != self.cfg.id && !acks.contains(&m) {
                    fx.send(m, Message::ReadProbe { ballot, round });
                }
            }
        }
        for (&slot, f) in active.in_flight() {
            let msg = Message::Accept {
                ballot,
                slot,
                value: f.value.clone(),
                commit,
            };
            // A member left out of a thrifty accept gets it once the slot has been in flight
            // a whole heartbeat round: a chosen member is down or slow.
            let stale = f.beat + 1 < active.beats;
            for m in membership.at(slot).receivers() {
                let spared = !stale && f.left_out.contains(&m);
                if m != self.cfg.id && !f.acks.contains(&m) && !spared {
                    fx.send(m, msg.clone());
                }
            }
            let mut aux = self.aux_for_accept(slot, Some(f.beat));
            aux.retain(|m| !f.acks.contains(m));
            Self::send_to_auxiliaries(&self.cfg, &aux, (ballot, slot, commit), &f.value, fx);
        }
        self.cheap_beat(fx);
    }

    fn on_heartbeat(&mut self, from: NodeId, ballot: Ballot, commit: Slot, fx: &mut Fx<S>) {
        self.seen = self.seen.max(ballot);
        let promised = self.acceptor.promised();
        if ballot < promised {
            fx.send(from, Message::Nack { ballot, promised });
            return;
        }
        if self.ballot().is_some_and(|mine| ballot > mine) {
            self.step_down(fx);
        }
        self.follow_leader(Some(from), fx);
        self.heard = true;
        self.learn_commit(ballot, commit, fx);
        self.learner.catch_up(self.acceptor.log(), fx);
        if self.learner.commit() < commit && !self.receiving() {
            fx.send(
                from,
                Message::CatchUpRequest {
                    from: self.learner.commit(),
                },
            );
        }
        if self.reports_progress() {
            let commit = self.learner.commit();
            // After the sync: a Cheap Paxos leader tells auxiliaries to forget what every
            // main reports learned, so what is reported must survive a restart (the node
            // layer writes the commit point with any step whose messages wait for the disk).
            fx.send_after_sync(from, Message::Progress { ballot, commit });
        }
    }

    fn on_catch_up_request(&mut self, to: NodeId, from: Slot, fx: &mut Fx<S>) {
        if from < self.acceptor.log_start() {
            if let Some(snapshot) = &self.snapshot {
                self.send_snapshot(to, snapshot, fx);
            }
            return;
        }
        let entries: Vec<_> = if self.cfg.bug == Some(PlantedBug::CatchUpUnchosen) {
            let log = self.acceptor.log().range(from..);
            let votes = log.map(|(&s, e)| (s, e.value.clone()));
            votes.take(self.cfg.catch_up_batch).collect()
        } else {
            (from..self.learner.commit())
                .take(self.cfg.catch_up_batch)
                .filter_map(|s| self.acceptor.chosen(s).map(|v| (s, v.clone())))
                .collect()
        };
        if !entries.is_empty() {
            fx.send(to, Message::CatchUp { entries });
        }
    }

    fn on_install_snapshot(&mut self, snapshot: Snapshot, fx: &mut Fx<S>) {
        let stale_ok = self.cfg.bug == Some(PlantedBug::StaleSnapshotInstall);
        if snapshot.slot <= self.learner.applied() && !(stale_ok && snapshot.slot > 0) {
            return;
        }
        // A leader or candidate this far behind has been overtaken; it must not keep proposing
        // slots the snapshot already decided.
        self.step_down(fx);
        if self.learner.install(&snapshot, fx).is_err() {
            // A snapshot that does not decode changes nothing; catch-up will be retried.
            return;
        }
        self.acceptor.drop_below(snapshot.slot);
        fx.persist(Persist::Snapshot(snapshot.clone()));
        self.superseded_below(snapshot.slot);
        self.snapshot = Some(snapshot);
        self.learner.catch_up(self.acceptor.log(), fx);
    }
}
