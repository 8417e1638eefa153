//! Byzantine Multi-Paxos in the form Castro and Liskov gave it (PBFT): `n = 3f + 1` replicas
//! agree on a log of client requests although up to `f` of them lie, collude, forge what they
//! can, or fall silent.
//!
//! **Normal case.** The primary of view `v` (replica `v mod n`) orders a request at slot `n`
//! with a signed `PrePrepare` (the seed's `Accept!`). Each backup that takes the order
//! broadcasts a `Prepare` (the seed's extra `Verify` broadcast). The order and `2f` matching
//! prepares make a *prepared certificate*: a quorum of `2f + 1` replicas agreed to one request
//! at `(v, n)`, and since two quorums share a correct replica, which agrees to one order per
//! slot and view, no certificate for another request at `(v, n)` can exist. A replica that
//! holds one persists it and broadcasts a `Commit` (the seed's `Accepted`); `2f + 1` matching
//! commits make the slot committed, and replicas execute committed slots in order and reply to
//! the client, which takes a result on `f + 1` matching replies.
//!
//! **View change.** A backup holding a request that does not execute in time moves to the next
//! view with its prepared certificates; see `view_change.rs` for why the new view re-issues
//! every order that may have committed. **Checkpoints** (`checkpoint.rs`) bound the log and let
//! a replica that fell behind install a peer's state, proven by `2f + 1` signed digests.
//!
//! Every statement is signed ([`crate::auth`]), certificates are checked signature by
//! signature ([`Rules`]), and what a peer sends is refused, never asserted, when it does not
//! check out.

mod checkpoint;
mod client;
mod durable;
mod messages;
mod replica;
mod rules;
mod service;
mod view_change;

pub use client::Client;
pub use durable::{Accepted, Durable};
pub use messages::order_digest;
pub use messages::{
    Checkpoint, Commit, Committed, Message, NewView, Output, PbftEffects, Persist, PrePrepare,
    Prepare, Prepared, Reply, Request, Seq, Status, Timer, View, ViewChange, NULL_DIGEST,
};
pub use replica::{RecoverError, Replica, ReplicaConfig};
pub use rules::{Order, Rules};
pub use service::{OpLog, Service};
