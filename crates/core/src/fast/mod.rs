//! Single-decree Fast Paxos (Lamport, 2006): a value can be chosen two message delays after a
//! client sends it, instead of three.
//!
//! - [`Coordinator`] (the seed's "Leader") prepares a round with a classic quorum of promises.
//!   If the rule in [`pick`] leaves the choice free, it sends `Any` and the round is **fast**:
//!   each acceptor votes for the first client proposal that reaches it. Otherwise it proposes
//!   the one safe value in a **classic** round.
//! - [`Acceptor`] promises and votes as in classic Paxos; in a fast round it votes for a client's
//!   `Propose` directly.
//! - [`Learner`] learns `v` when a fast quorum voted `v` in one fast round, or a classic quorum in
//!   a classic round, and tells the clients.
//! - [`Client`] sends its proposal to every acceptor (and coordinator) until told the decision.
//! - [`Server`] collapses the roles: an acceptor and a learner, and optionally a coordinator,
//!   in one process (the seed's "collapsed roles").
//!
//! **Collisions.** Two clients' proposals may reach the acceptors in different orders, so that
//! no value gets a fast quorum. Recovery runs in the next step of the round, which nothing can
//! come between ([`Round`]), so the round's votes serve as that step's promises:
//! - *coordinated*: the coordinator, holding votes from a classic quorum, picks by the rule and
//!   sends `Accept` for the next step, a classic round (4 message delays in all);
//! - *uncoordinated*: each acceptor, hearing its peers' votes, picks by the rule and votes in the
//!   next step itself, which is fast (3 message delays).
//!
//! **Why it is safe.** Every vote is for a value the rule allows, and the rule returns the only
//! value that may have been chosen in a lower round when there is one. That rests on the quorum
//! conditions of [`crate::quorum::FastQuorum`]: classic quorums intersect, and a classic quorum
//! meets the overlap of any two fast quorums, so at most one value looks possibly chosen.

mod acceptor;
mod client;
mod coordinator;
mod learner;
mod messages;
mod pick;
mod server;

pub use acceptor::{collision, Acceptor, AcceptorConfig, AcceptorState};
pub use client::Client;
pub use coordinator::{Coordinator, CoordinatorConfig};
pub use learner::Learner;
pub use messages::{FastEffects, Message, Output, Persist, Recovery, Round, Timer, Value, Vote};
pub use pick::{pick, Pick};
pub use server::Server;
