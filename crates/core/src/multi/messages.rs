//! Everything Multi-Paxos replicas say to each other, persist and output.

use super::membership::{
    ChangeId, ChangeOutcome, ConfigChange, MemberOp, Membership, RejectReason,
};
use super::reads::ReadId;
use crate::ballot::{Ballot, NodeId};
use crate::effects::Effects;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A position in the replicated log.
pub type Slot = u64;

/// Identifies a client session for exactly-once application.
pub type ClientId = u64;

/// A client command with its session identity: a retry of `(client, seq)` is applied once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command<C> {
    /// The client session.
    pub client: ClientId,
    /// The client's sequence number; a client has one command in flight and numbers them up.
    pub seq: u64,
    /// The operation for the state machine.
    pub op: C,
}

/// What one slot decides: nothing (a hole filled by a new leader), a batch of commands, or a
/// membership change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value<C> {
    /// Fills a slot a new leader found empty, so later slots can be applied.
    Noop,
    /// Commands applied in order. Shared: a leader's value is persisted, kept in flight and sent
    /// to every follower, and copying each command for each of those was a good part of its CPU.
    Batch(Arc<[Command<C>]>),
    /// A membership change: it governs the slots from `α` after its own on
    /// ([`Membership::apply`]). The state machine never sees it. After the others, so that
    /// logs written before it existed still decode.
    Reconfig(Arc<ConfigChange>),
    /// Cheap Paxos: what a leader sends an auxiliary acceptor in place of a large batch
    /// ([`Value::for_auxiliary`]). Only an auxiliary votes for one; a replica never holds one,
    /// and a candidate counts an auxiliary's promise only once every digest it reports is
    /// resolved (another promise holds a value with that hash in the slot) or outranked (a
    /// chosen or higher-ballot entry there) ([`super::leader::Promises`]). Last, for the same
    /// reason.
    Digest(ValueDigest),
}

/// The SHA-256 of a value's encoding (seed 002's fourth optimisation: "the leader can send a
/// hash of v to some acceptors").
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ValueDigest(pub [u8; 32]);

impl ValueDigest {
    /// The digest of an encoding.
    fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        ValueDigest(sha2::Sha256::digest(bytes).into())
    }
}

impl std::fmt::Debug for ValueDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "digest:{}", hex::encode(&self.0[..6]))
    }
}

impl<C> Value<C> {
    /// A batch of commands.
    pub fn batch(commands: Vec<Command<C>>) -> Self {
        Value::Batch(commands.into())
    }

    /// The commands in this value (none for a no-op, a change or a digest).
    pub fn commands(&self) -> &[Command<C>] {
        match self {
            Value::Noop | Value::Reconfig(_) | Value::Digest(_) => &[],
            Value::Batch(b) => b,
        }
    }

    /// True for a digest: a value only an auxiliary may hold.
    pub fn is_digest(&self) -> bool {
        matches!(self, Value::Digest(_))
    }
}

impl<C: Serialize> Value<C> {
    /// The value's digest, and the length of its encoding (a digest is its own digest); `None`
    /// if the value does not encode.
    pub fn digest(&self) -> Option<(ValueDigest, usize)> {
        if let Value::Digest(d) = self {
            return Some((*d, 0));
        }
        let bytes = crate::encode::to_vec_exact(self).ok()?;
        Some((ValueDigest::of(&bytes), bytes.len()))
    }

    /// What a leader sends an auxiliary acceptor for this value: the digest of a batch whose
    /// encoding is at least `min` bytes, else the value itself. An auxiliary never applies a
    /// value, so a digest is all its vote needs; the price is that a candidate which learns a
    /// vote only as a digest must hear the value from a main before it may count that promise.
    pub fn for_auxiliary(&self, min: Option<usize>) -> Value<C>
    where
        C: Clone,
    {
        // Hashed only once the encoding is known to be large enough: most batches are not.
        match (min, self) {
            (Some(min), Value::Batch(_)) => match crate::encode::to_vec_exact(self) {
                Ok(bytes) if bytes.len() >= min => Value::Digest(ValueDigest::of(&bytes)),
                _ => self.clone(),
            },
            _ => self.clone(),
        }
    }
}

/// One acceptor's vote for one slot, as reported in a promise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromiseEntry<C> {
    /// The slot.
    pub slot: Slot,
    /// The ballot of the vote.
    pub ballot: Ballot,
    /// The value voted for.
    pub value: Value<C>,
    /// The acceptor knows this value is chosen: the new leader may take it as decided.
    pub chosen: bool,
}

/// A replica's state after applying every slot below `slot`: what log compaction keeps in
/// place of those slots, and what a replica too far behind is sent instead of them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The first slot not covered.
    pub slot: Slot,
    /// The state machine's bytes, shared: a snapshot is cloned to persist it, to keep it and to
    /// send it, and copying a large state each time would stall the caller.
    pub state: bytes::Bytes,
    /// The session table (last result per client), encoded by the replica.
    #[serde(with = "serde_bytes")]
    pub sessions: Vec<u8>,
    /// The membership as of `slot`, with the changes already scheduled after it. `None` in a
    /// snapshot restored from a backup or written before membership changes existed: the
    /// replica's first configuration then applies.
    pub membership: Option<Membership>,
}

/// What a snapshot holds besides its state machine's bytes: sent with the first piece of a
/// snapshot sent in pieces ([`Message::SnapshotChunk`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHead {
    /// The session table, as in [`Snapshot::sessions`].
    #[serde(with = "serde_bytes")]
    pub sessions: Vec<u8>,
    /// The membership, as in [`Snapshot::membership`].
    pub membership: Option<Membership>,
}

/// A snapshot as written before it carried the membership: read from old disks, never written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotV1 {
    /// The first slot not covered.
    pub slot: Slot,
    /// The state machine's bytes.
    pub state: bytes::Bytes,
    /// The session table.
    #[serde(with = "serde_bytes")]
    pub sessions: Vec<u8>,
}

impl From<SnapshotV1> for Snapshot {
    fn from(s: SnapshotV1) -> Self {
        Snapshot {
            slot: s.slot,
            state: s.state,
            sessions: s.sessions,
            membership: None,
        }
    }
}

/// Messages between replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<C> {
    /// Phase 1a for every slot from `from` on: one prepare covers the whole log suffix.
    Prepare {
        /// The candidate's ballot.
        ballot: Ballot,
        /// The candidate's first slot not known chosen.
        from: Slot,
    },
    /// Phase 1b: the promise, with this acceptor's votes for slots at or above `from`.
    Promise {
        /// The ballot promised.
        ballot: Ballot,
        /// Votes at or above the prepare's `from`.
        entries: Vec<PromiseEntry<C>>,
        /// Slots below this were chosen and compacted into a snapshot here, so their votes are
        /// not reported: a candidate that starts below it must catch up before it may lead.
        log_start: Slot,
    },
    /// "`ballot` is below what I promised": the sender is no longer (or not yet) leader.
    Nack {
        /// The ballot refused.
        ballot: Ballot,
        /// The acceptor's promise.
        promised: Ballot,
    },
    /// Phase 2a for one slot, with the leader's commit point piggybacked.
    Accept {
        /// The leader's ballot.
        ballot: Ballot,
        /// The slot.
        slot: Slot,
        /// The value proposed.
        value: Value<C>,
        /// Every slot below this is chosen (as the leader knows).
        commit: Slot,
    },
    /// Phase 2b: a vote, sent back to the leader.
    Accepted {
        /// The ballot voted in.
        ballot: Ballot,
        /// The slot.
        slot: Slot,
    },
    /// "That slot is already chosen, and this is its value": answers an accept for a decided slot.
    Chosen {
        /// The slot.
        slot: Slot,
        /// Its chosen value.
        value: Value<C>,
    },
    /// The leader is alive; every slot below `commit` is chosen.
    Heartbeat {
        /// The leader's ballot.
        ballot: Ballot,
        /// The leader's commit point.
        commit: Slot,
    },
    /// A lagging replica asks for chosen values from `from` on.
    CatchUpRequest {
        /// First slot wanted.
        from: Slot,
    },
    /// Chosen values, answering a catch-up request.
    CatchUp {
        /// `(slot, chosen value)` pairs, ascending.
        entries: Vec<(Slot, Value<C>)>,
    },
    /// A snapshot, for a replica that asked for slots this one has compacted away.
    InstallSnapshot {
        /// The snapshot.
        snapshot: Snapshot,
    },
    /// A leader asks: do you still accept my ballot? (for linearizable reads; see
    /// [`super::reads`]).
    ReadProbe {
        /// The leader's ballot.
        ballot: Ballot,
        /// The probe round.
        round: u64,
    },
    /// "I have promised nothing above your ballot": answers a probe.
    ReadAck {
        /// The leader's ballot.
        ballot: Ballot,
        /// The probe round.
        round: u64,
    },
    /// A follower asks the leader where a linearizable read must wait for.
    ReadIndexRequest {
        /// The follower's read id.
        id: ReadId,
    },
    /// The leader's answer: serve read `id` once every slot below `index` is applied, or
    /// (`None`) ask someone else: I do not lead.
    ReadIndexReply {
        /// The follower's read id.
        id: ReadId,
        /// The read index.
        index: Option<Slot>,
    },
    /// A follower passes client commands on to the leader.
    Forward {
        /// The commands.
        commands: Vec<Command<C>>,
    },
    /// Leadership transfer: the leader of `ballot` asks its chosen successor to stand for
    /// election now, once it has learned every slot below `commit` (see
    /// [`super::Replica::transfer_leadership`]).
    StandNow {
        /// The sender's ballot: honoured only by a follower that still promises exactly it.
        ballot: Ballot,
        /// Every slot below this is chosen; the successor learns them before it stands.
        commit: Slot,
    },
    /// A follower passes an operator's membership change on to the leader, which proposes it
    /// as if asked itself; the outcome reaches the follower through the log.
    ForwardChange {
        /// The change's identity; its origin must be the sender.
        id: ChangeId,
        /// What to change.
        ops: Vec<MemberOp>,
    },
    /// A learner's answer to a heartbeat: how far it has learned the log. The leader promotes
    /// a learner only once it has heard that the learner is close to its own commit point.
    Progress {
        /// The heartbeat's ballot: only the leader of that ballot records it.
        ballot: Ballot,
        /// Every slot below this is chosen and known to the learner.
        commit: Slot,
    },
    /// The leader refuses a forwarded change that would promote a learner not caught up (etcd:
    /// "can only promote a learner member which is in sync with leader").
    PromotionRefused {
        /// The change refused; its origin is the receiver.
        id: ChangeId,
        /// The learner.
        learner: NodeId,
        /// How many slots it is behind the leader's commit point, as last heard (the whole
        /// commit point if it was not heard from lately).
        behind: u64,
    },
    /// A node started to join a running cluster asks a peer for the state it needs first:
    /// the membership and a state to build on. Any member that knows the sender answers with
    /// [`Message::InstallSnapshot`] (its latest snapshot, or one of its applied state).
    JoinRequest,
    // Sent in pieces, added after the variants above so that their encodings stay as they were.
    /// One piece of a snapshot whose state is larger than [`super::Config::snapshot_chunk`]:
    /// the receiver asks for the next with [`Message::SnapshotRequest`], so only one piece
    /// per transfer is in flight and nothing larger than a piece is ever one message.
    SnapshotChunk {
        /// The snapshot's slot, which names it.
        slot: Slot,
        /// Where `data` starts in the state's bytes.
        offset: u64,
        /// The length of the state's bytes.
        total: u64,
        /// The piece.
        data: bytes::Bytes,
        /// Sessions and membership, with the first piece (offset 0) only.
        head: Option<SnapshotHead>,
    },
    /// The receiver of a snapshot in pieces asks for the piece of snapshot `slot` at `offset`.
    /// A sender that has since replaced that snapshot starts over with its newer one.
    SnapshotRequest {
        /// The snapshot's slot.
        slot: Slot,
        /// The first byte wanted.
        offset: u64,
    },
}

impl<C> Message<C> {
    /// A short name of the message kind, for metrics and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Prepare { .. } => "prepare",
            Message::Promise { .. } => "promise",
            Message::Nack { .. } => "nack",
            Message::Accept { .. } => "accept",
            Message::Accepted { .. } => "accepted",
            Message::Chosen { .. } => "chosen",
            Message::Heartbeat { .. } => "heartbeat",
            Message::CatchUpRequest { .. } => "catchup-request",
            Message::CatchUp { .. } => "catchup",
            Message::InstallSnapshot { .. } => "install-snapshot",
            Message::ReadProbe { .. } => "read-probe",
            Message::ReadAck { .. } => "read-ack",
            Message::ReadIndexRequest { .. } => "read-index-request",
            Message::ReadIndexReply { .. } => "read-index-reply",
            Message::Forward { .. } => "forward",
            Message::StandNow { .. } => "stand-now",
            Message::ForwardChange { .. } => "forward-change",
            Message::Progress { .. } => "progress",
            Message::PromotionRefused { .. } => "promotion-refused",
            Message::JoinRequest => "join-request",
            Message::SnapshotChunk { .. } => "snapshot-chunk",
            Message::SnapshotRequest { .. } => "snapshot-request",
        }
    }
}

/// State a replica asks to make durable. Replaying the records in order rebuilds
/// [`super::DurableState`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Persist<C> {
    /// The acceptor's promise (also the highest ballot this node used as a candidate).
    Promise(Ballot),
    /// A vote: the acceptor accepted `value` for `slot` in `ballot` (which raises its promise).
    Accept {
        /// The slot.
        slot: Slot,
        /// The ballot.
        ballot: Ballot,
        /// The value.
        value: Value<C>,
    },
    /// A chosen value learned from others that differs from (or is missing in) the local log.
    Chosen {
        /// The slot.
        slot: Slot,
        /// The chosen value.
        value: Value<C>,
    },
    /// Every slot below this is chosen and its chosen value is in the log. Only an optimisation:
    /// losing it costs a catch-up, never safety, so drivers may write it lazily.
    Commit(Slot),
    /// A snapshot in the format before membership changes: only ever read from old disks.
    /// (Its place in this enum is what old records name; it must stay here.)
    SnapshotV1(SnapshotV1),
    /// A snapshot that replaces every slot below `snapshot.slot`: those log entries may be
    /// discarded once it is durable.
    Snapshot(Snapshot),
    /// An auxiliary acceptor's votes below this slot are no longer needed: every main has
    /// learned those slots (Cheap Paxos, [`crate::multi::auxiliary`]). Replicas never write it.
    Forget(Slot),
}

/// What a replica reports to its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output<R> {
    /// The command `(client, seq)` that this replica received has been applied; `result` is what
    /// the state machine returned (the first time it was applied, for a retried command).
    Reply {
        /// The client.
        client: ClientId,
        /// The command's sequence number.
        seq: u64,
        /// The state machine's result.
        result: R,
    },
    /// This replica cannot take the command now; try `leader` if known, else another replica.
    NotLeader {
        /// The client.
        client: ClientId,
        /// The command's sequence number.
        seq: u64,
        /// Who this replica believes leads, if anyone.
        leader: Option<NodeId>,
    },
    /// This replica now knows `slot` is chosen (it is in its log).
    Chosen {
        /// The slot.
        slot: Slot,
    },
    /// This replica applied `slot` to its state machine.
    Applied {
        /// The slot.
        slot: Slot,
    },
    /// The read may be served from this replica's state machine now, and is linearizable.
    ReadReady {
        /// The driver's read id.
        id: ReadId,
    },
    /// This replica cannot serve the read (not leader, or it stopped leading meanwhile).
    ReadFailed {
        /// The driver's read id.
        id: ReadId,
        /// Who this replica believes leads, if anyone.
        leader: Option<NodeId>,
    },
    /// A membership change asked here was not proposed: this replica does not lead, or
    /// stopped leading before proposing it. Try `leader` if known.
    ChangeFailed {
        /// The change.
        id: ChangeId,
        /// Who this replica believes leads, if anyone.
        leader: Option<NodeId>,
    },
    /// The leader refused a membership change asked here without proposing it: the change
    /// would promote a learner that has not caught up. Reported only by the node the change
    /// was asked at.
    ChangeRefused {
        /// The change.
        id: ChangeId,
        /// Why ([`RejectReason::LearnerNotReady`]).
        reason: RejectReason,
    },
    /// This replica applied the membership change chosen in `slot`.
    Reconfigured {
        /// The slot.
        slot: Slot,
        /// The change's identity: the node it names as origin answers its requester.
        id: ChangeId,
        /// What it did.
        outcome: ChangeOutcome,
    },
    /// A change this replica applied took it out of the cluster: it will never vote, lead or
    /// learn new slots again (ids are never reused). Its driver should fail the clients
    /// waiting on it and refuse new ones, as an etcd member removed does.
    Retired,
}

/// Timers of a replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// Randomized: if nothing was heard from a leader since the last firing, stand for election.
    Election,
    /// Leader: heartbeat and retransmit accepts. Candidate: retransmit prepares.
    Heartbeat,
    /// Leader: send the notices held back ([`super::notices`]).
    Notices,
}

/// The effects of one Multi-Paxos step.
pub type MultiEffects<C, R> = Effects<Message<C>, Persist<C>, Output<R>, Timer>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_kind_has_its_own_name() {
        let b = Ballot::new(1, 1);
        let msgs: Vec<Message<u32>> = vec![
            Message::Prepare { ballot: b, from: 0 },
            Message::Promise {
                ballot: b,
                entries: vec![],
                log_start: 0,
            },
            Message::Nack {
                ballot: b,
                promised: b,
            },
            Message::Accept {
                ballot: b,
                slot: 0,
                value: Value::Noop,
                commit: 0,
            },
            Message::Accepted { ballot: b, slot: 0 },
            Message::Chosen {
                slot: 0,
                value: Value::Noop,
            },
            Message::Heartbeat {
                ballot: b,
                commit: 0,
            },
            Message::CatchUpRequest { from: 0 },
            Message::CatchUp { entries: vec![] },
            Message::InstallSnapshot {
                snapshot: Snapshot {
                    slot: 0,
                    state: bytes::Bytes::new(),
                    sessions: vec![],
                    membership: None,
                },
            },
            Message::ReadProbe {
                ballot: b,
                round: 0,
            },
            Message::ReadAck {
                ballot: b,
                round: 0,
            },
            Message::ReadIndexRequest { id: 0 },
            Message::ReadIndexReply { id: 0, index: None },
            Message::Forward { commands: vec![] },
            Message::StandNow {
                ballot: b,
                commit: 0,
            },
            Message::ForwardChange {
                id: ChangeId { origin: 1, seq: 1 },
                ops: vec![],
            },
            Message::Progress {
                ballot: b,
                commit: 0,
            },
            Message::PromotionRefused {
                id: ChangeId { origin: 1, seq: 1 },
                learner: 2,
                behind: 0,
            },
            Message::JoinRequest,
            Message::SnapshotChunk {
                slot: 0,
                offset: 0,
                total: 0,
                data: bytes::Bytes::new(),
                head: None,
            },
            Message::SnapshotRequest { slot: 0, offset: 0 },
        ];
        let names: std::collections::BTreeSet<&str> = msgs.iter().map(|m| m.kind()).collect();
        assert_eq!(names.len(), msgs.len(), "{names:?}");
        assert!(names.contains("stand-now") && names.contains("prepare"));
    }
}
