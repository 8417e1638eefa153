//! PBFT's messages. Every statement a replica or client makes is [`Signed`]; certificates are
//! bundles of signed statements that any replica can check for itself.

use crate::auth::{Digest, Signed, Tagged};
use crate::ballot::NodeId;
use crate::effects::Effects;
use serde::{Deserialize, Serialize};

/// A view: who leads (replica `view % n + 1`).
pub type View = u64;
/// A sequence number, the log slot a request is ordered in; slot 0 is before the first.
pub type Seq = u64;

/// The digest that stands for a null request: a slot a new view fills with nothing.
pub const NULL_DIGEST: Digest = [0; 32];

/// The digest an order names for `request`: its body's, or [`NULL_DIGEST`] for a null request.
pub fn order_digest<V: Serialize>(request: &Option<Signed<Request<V>>>) -> Digest {
    request
        .as_ref()
        .map_or(NULL_DIGEST, |r| crate::auth::digest_of(&r.body))
}

/// A client's request: one operation, numbered by the client (each client has one outstanding
/// at a time, and a replica executes each stamp once).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Request<V> {
    /// The client.
    pub client: NodeId,
    /// The client's number for it, increasing.
    pub stamp: u64,
    /// The operation.
    pub op: V,
}

impl<V: Serialize> Tagged for Request<V> {
    const TAG: &'static str = "pbft-request";
}

/// The primary orders the request with `digest` at `seq` (the seed's `Accept!`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PrePrepare {
    /// The primary's view.
    pub view: View,
    /// The slot.
    pub seq: Seq,
    /// The request's digest, or [`NULL_DIGEST`].
    pub digest: Digest,
}

impl Tagged for PrePrepare {
    const TAG: &'static str = "pbft-pre-prepare";
}

/// A backup agrees to the primary's order (the seed's `Verify` broadcast).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Prepare {
    /// The view.
    pub view: View,
    /// The slot.
    pub seq: Seq,
    /// The digest agreed to.
    pub digest: Digest,
}

impl Tagged for Prepare {
    const TAG: &'static str = "pbft-prepare";
}

/// A replica holds a prepared certificate for the slot (the seed's `Accepted`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Commit {
    /// The view.
    pub view: View,
    /// The slot.
    pub seq: Seq,
    /// The digest.
    pub digest: Digest,
}

impl Tagged for Commit {
    const TAG: &'static str = "pbft-commit";
}

/// A replica's state after executing through `seq` has this digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last slot executed.
    pub seq: Seq,
    /// The digest of the state (service and client table).
    pub state: Digest,
}

impl Tagged for Checkpoint {
    const TAG: &'static str = "pbft-checkpoint";
}

/// A replica's answer to a client.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reply<R> {
    /// The view it executed in (tells the client who leads).
    pub view: View,
    /// The client.
    pub client: NodeId,
    /// The request's stamp.
    pub stamp: u64,
    /// What executing it returned.
    pub result: R,
}

impl<R: Serialize> Tagged for Reply<R> {
    const TAG: &'static str = "pbft-reply";
}

/// What a replica has: its view and how far it executed. Lets peers send what it lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Status {
    /// Its view.
    pub view: View,
    /// True while it waits for that view's new-view message.
    pub changing: bool,
    /// The last slot it executed.
    pub executed: Seq,
    /// Its stable checkpoint's slot.
    pub stable: Seq,
}

impl Tagged for Status {
    const TAG: &'static str = "pbft-status";
}

/// Proof that a slot was prepared in a view: the primary's pre-prepare, `quorum - 1` backups'
/// matching prepares, and the request itself (none for a null request).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Prepared<V> {
    /// The primary's order.
    pub pre_prepare: Signed<PrePrepare>,
    /// The request ordered.
    pub request: Option<Signed<Request<V>>>,
    /// Backups' prepares matching it, from distinct backups.
    pub prepares: Vec<Signed<Prepare>>,
}

/// Proof that a slot was committed: a quorum's matching commits and the request. At least
/// `f + 1` correct replicas sent those commits, each holding a prepared certificate, so every
/// later view orders the same request there; a replica that missed the slot may execute it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Committed<V> {
    /// The request (none for a null request).
    pub request: Option<Signed<Request<V>>>,
    /// Matching commits from distinct replicas.
    pub commits: Vec<Signed<Commit>>,
}

/// A replica moves to `view`: its stable checkpoint with proof, and its prepared certificates
/// above it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ViewChange<V> {
    /// The view it moves to.
    pub view: View,
    /// Its last stable checkpoint's slot (0: none).
    pub stable: Seq,
    /// A quorum's matching checkpoint messages for `stable` (empty when it is 0).
    pub proof: Vec<Signed<Checkpoint>>,
    /// For each slot above `stable` that it prepared, its latest view's certificate.
    pub prepared: Vec<Prepared<V>>,
}

impl<V: Serialize> Tagged for ViewChange<V> {
    const TAG: &'static str = "pbft-view-change";
}

/// The new primary starts `view`: a quorum's view changes, and its pre-prepares for every slot
/// between the highest stable checkpoint among them and the highest prepared slot, which any
/// replica recomputes from the view changes to check.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NewView<V> {
    /// The view.
    pub view: View,
    /// A quorum's view changes for it.
    pub changes: Vec<Signed<ViewChange<V>>>,
    /// The orders it re-issues, in slot order.
    pub pre_prepares: Vec<Signed<PrePrepare>>,
}

impl<V: Serialize> Tagged for NewView<V> {
    const TAG: &'static str = "pbft-new-view";
}

/// Everything a PBFT replica or client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<V, R> {
    /// A client's request (to every replica).
    Request(Signed<Request<V>>),
    /// An order, with the request it orders.
    PrePrepare(Signed<PrePrepare>, Option<Signed<Request<V>>>),
    /// A backup's agreement.
    Prepare(Signed<Prepare>),
    /// A replica's commit.
    Commit(Signed<Commit>),
    /// A replica's checkpoint.
    Checkpoint(Signed<Checkpoint>),
    /// A replica moving to a new view.
    ViewChange(Signed<ViewChange<V>>),
    /// A new primary starting its view.
    NewView(Signed<NewView<V>>),
    /// A replica's answer to a client.
    Reply(Signed<Reply<R>>),
    /// A replica's progress, for peers to fill its gaps.
    Status(Signed<Status>),
    /// Slots a peer missed: each proven committed.
    Committed(Vec<Committed<V>>),
    /// A stable checkpoint's state, for a peer that fell below it: the proof and the encoded
    /// state (service and client table).
    State {
        /// A quorum's matching checkpoints.
        proof: Vec<Signed<Checkpoint>>,
        /// The state they vouch for.
        #[serde(with = "serde_bytes")]
        state: Vec<u8>,
    },
}

/// What a replica keeps on disk, record by record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Persist<V> {
    /// It entered `view` (`changing`: it still waits for the view's new-view message).
    View {
        /// The view.
        view: View,
        /// Waiting for the new-view message.
        changing: bool,
    },
    /// It took the primary's order for a slot, and the request ordered: it will not agree to
    /// another in that view, and can still prepare and execute this one after a restart.
    Accepted(Signed<PrePrepare>, Option<Signed<Request<V>>>),
    /// It holds a prepared certificate (before it sends its commit, so that a view change
    /// after a restart still reports it).
    Prepared(Prepared<V>),
    /// A new view started above this replica's stable checkpoint, at a checkpoint it could not
    /// adopt (it lacks that state): it must take no order at or below `seq`, before or after a
    /// restart, since the new view re-issues none there and the slots are decided.
    Floor {
        /// The new view's low-water mark.
        seq: Seq,
    },
    /// A checkpoint became stable: its proof and state; everything at or below it may go.
    Stable {
        /// A quorum's matching checkpoints.
        proof: Vec<Signed<Checkpoint>>,
        /// The state at that slot.
        #[serde(with = "serde_bytes")]
        state: Vec<u8>,
    },
}

/// What a replica or client reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output<V, R> {
    /// A replica executed `seq` (`request` none: a null request).
    Executed {
        /// The slot.
        seq: Seq,
        /// The request executed there, and its result (none if it was a repeat).
        request: Option<(Request<V>, Option<R>)>,
    },
    /// A replica installed a peer's state at `seq`, skipping the slots below.
    Installed {
        /// The slot.
        seq: Seq,
    },
    /// A replica entered `view` (its new-view message checked).
    ViewStarted {
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

/// Timers of a replica or a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Timer {
    /// A replica waited too long for a request (or a new view) and moves on.
    ViewChange,
    /// A replica tells its peers how far it is.
    Status,
    /// A client sends its request again.
    Retry,
}

/// The effects of a PBFT step.
pub type PbftEffects<V, R> = Effects<Message<V, R>, Persist<V>, Output<V, R>, Timer>;
