//! Fast Byzantine Paxos's messages. Acceptors sign every statement; clients sign their
//! requests; certificates are bundles of signed statements that anyone can check.

use crate::auth::{digest_of, Digest, Signed, Tagged};
use crate::ballot::NodeId;
use crate::effects::Effects;
use crate::pbft::{Request, NULL_DIGEST};
use serde::{Deserialize, Serialize};

/// A log slot (the seed's instance `I`); slot 0 is before the first.
pub type Slot = u64;
/// A view of one slot: view 0 is the fast round clients propose in directly; every later view
/// is a recovery with a leader.
pub type View = u64;

/// What a slot may hold: a client's request, or nothing (a no-op a recovery leader may fill a
/// slot with when no request is known there).
pub type Value<V> = Option<Signed<Request<V>>>;

/// The digest a vote names for `value`: its request's, or [`NULL_DIGEST`] for a no-op.
pub fn value_digest<V: Serialize>(value: &Value<V>) -> Digest {
    value.as_ref().map_or(NULL_DIGEST, |r| digest_of(&r.body))
}

/// An acceptor voted for the value with `digest` at `slot` in `view` (the seed's `Accepted`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Vote {
    /// The view.
    pub view: View,
    /// The slot.
    pub slot: Slot,
    /// The value's digest.
    pub digest: Digest,
}

impl Tagged for Vote {
    const TAG: &'static str = "fab-vote";
}

/// An acceptor entered `view` at `slot`: it will vote in no earlier view there, and the last
/// value it voted for before (view and digest) is `last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Report {
    /// The view entered (at least 1).
    pub view: View,
    /// The slot.
    pub slot: Slot,
    /// Its latest vote in an earlier view, if any.
    pub last: Option<(View, Digest)>,
}

impl Tagged for Report {
    const TAG: &'static str = "fab-report";
}

/// A recovery leader's choice for `slot` in `view`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Choice {
    /// The view it leads.
    pub view: View,
    /// The slot.
    pub slot: Slot,
    /// The value's digest.
    pub digest: Digest,
}

impl Tagged for Choice {
    const TAG: &'static str = "fab-choice";
}

/// One acceptor's word toward a certificate for view `w`: a report entering `w` (its latest
/// vote before `w`), or a vote of its in `w - 1` or later (a correct acceptor votes once per
/// view, and after a decision in an earlier view only for the decided value).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Evidence {
    /// Its report entering `w`.
    Report(Signed<Report>),
    /// Its vote in `w - 1` or later.
    Vote(Signed<Vote>),
}

impl Evidence {
    /// Who said it.
    pub fn from(&self) -> NodeId {
        match self {
            Evidence::Report(r) => r.from,
            Evidence::Vote(v) => v.from,
        }
    }

    /// The digest it names as its author's latest vote, if any.
    pub fn names(&self) -> Option<Digest> {
        match self {
            Evidence::Report(r) => r.body.last.map(|(_, d)| d),
            Evidence::Vote(v) => Some(v.body.digest),
        }
    }
}

/// Proof that a slot is decided: a fast quorum's matching votes in one view, and the value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided<V> {
    /// The votes, from distinct acceptors.
    pub votes: Vec<Signed<Vote>>,
    /// The value they name.
    pub value: Value<V>,
}

impl<V> Decided<V> {
    /// The slot it decides (0 if empty, which no check lets through).
    pub fn slot(&self) -> Slot {
        self.votes.first().map_or(0, |v| v.body.slot)
    }
}

/// How far an acceptor executed, so that peers can send what it lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Status {
    /// The last slot it executed.
    pub executed: Slot,
}

impl Tagged for Status {
    const TAG: &'static str = "fab-status";
}

/// An acceptor's answer to a client: its request executed at `slot` with `result`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reply<R> {
    /// The client.
    pub client: NodeId,
    /// The request's stamp.
    pub stamp: u64,
    /// Where it executed.
    pub slot: Slot,
    /// What executing it returned.
    pub result: R,
}

impl<R: Serialize> Tagged for Reply<R> {
    const TAG: &'static str = "fab-reply";
}

/// An acceptor tells a client that `slot` went to another value and its request did not
/// execute yet: propose again, at `next` or later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lost {
    /// The client.
    pub client: NodeId,
    /// The request's stamp.
    pub stamp: u64,
    /// The slot it lost.
    pub slot: Slot,
    /// The first slot the acceptor has not executed.
    pub next: Slot,
}

impl Tagged for Lost {
    const TAG: &'static str = "fab-lost";
}

/// Everything a Fast Byzantine process sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<V, R> {
    /// A client proposes its request at `slot` (the seed's `Accept!`).
    Propose {
        /// The slot.
        slot: Slot,
        /// The client's signed request.
        request: Signed<Request<V>>,
    },
    /// An acceptor's vote and the value it names (the seed's `Accepted` broadcast, to every
    /// acceptor and learner).
    Accepted(Signed<Vote>, Value<V>),
    /// An acceptor entered a recovery view, with the value its report names.
    Report(Signed<Report>, Value<V>),
    /// A recovery leader's choice, the `a - f` statements that justify it, and the value.
    Choice(Signed<Choice>, Vec<Evidence>, Value<V>),
    /// How far an acceptor executed.
    Status(Signed<Status>),
    /// Slots a peer missed, each with its proof.
    Decided(Vec<Decided<V>>),
    /// An answer to a client.
    Reply(Signed<Reply<R>>),
    /// A client's slot went to another value.
    Lost(Signed<Lost>),
}

/// What an acceptor keeps on disk, record by record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Persist<V> {
    /// It entered `view` at `slot`: no vote in an earlier view there, ever.
    View {
        /// The slot.
        slot: Slot,
        /// The view.
        view: View,
    },
    /// It voted for `value` at `slot` in `view`: no other vote in that view, ever.
    Vote {
        /// The slot.
        slot: Slot,
        /// The view.
        view: View,
        /// The value.
        value: Value<V>,
    },
}

/// What an acceptor or client reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output<V, R> {
    /// An acceptor executed `slot` (`request` none: a no-op).
    Executed {
        /// The slot.
        slot: Slot,
        /// The request executed there, and its result (none if it was a repeat).
        request: Option<(Request<V>, Option<R>)>,
    },
    /// An acceptor entered recovery view `view` at `slot`.
    Recovering {
        /// The slot.
        slot: Slot,
        /// The view.
        view: View,
    },
    /// A client took `result` for its request `stamp`, on `f + 1` matching replies.
    Done {
        /// The request's stamp.
        stamp: u64,
        /// The operation.
        op: V,
        /// The result.
        result: R,
    },
}

/// Timers of an acceptor or a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Timer {
    /// An acceptor's round: status to peers, resends, and recovery of slots that stalled.
    Round,
    /// A client sends its request again.
    Retry,
}

/// The effects of a Fast Byzantine step.
pub type FabEffects<V, R> = Effects<Message<V, R>, Persist<V>, Output<V, R>, Timer>;

/// The null digest, re-exported: a no-op's.
pub const NOOP: Digest = NULL_DIGEST;
