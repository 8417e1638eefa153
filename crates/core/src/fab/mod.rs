//! Fast Byzantine Multi-Paxos, after Martin and Alvisi's FaB Paxos: clients send their
//! requests straight to the acceptors, and a request is decided two message delays after it
//! leaves its client (the request, then the acceptors' `Accepted` broadcast), although up to
//! `f` acceptors lie.
//!
//! **Sizes** ([`crate::quorum::FastByzantineQuorum`]): `a >= 5f + 1` acceptors, so that the
//! fast path completes with `f` of them silent; a value is decided by `fast =
//! ceil((a + 3f + 1) / 2)` matching votes in one view (`4f + 1` of `5f + 1`).
//!
//! **Slots and views.** Each log slot is its own instance. In view 0 a client proposes its
//! signed request at a slot, and each acceptor votes for the first request it hears of there
//! (from the client, or inside a peer's vote) and broadcasts its signed vote to every acceptor
//! and learner. Clients that collide, or a lying acceptor that pushes another request into
//! the slot, split the votes; then the slot recovers in view 1, 2, ...
//!
//! **Recovery.** An acceptor that sees a view cannot decide (or that waited too long) enters
//! the next view and broadcasts a signed report of its latest vote. `a - f` statements about a
//! view `w` (reports entering `w`, or votes in `w - 1` or later) form a certificate. If a value `v` was
//! decided in a view `u < w`, at least `fast - f` of its voters are among any `a - f` authors,
//! at least `fast - 2f` of those are correct, and (by induction over the views after `u`) each
//! of those names `v` as its latest vote; every other value has at most
//! `(a - f) - (fast - 2f) < fast - 2f` names. So a certificate *vouches* for the value named
//! `fast - 2f` times, if any, and only that value may be voted for in `w`. In view 1 every
//! correct acceptor holding such a certificate votes for it with no leader (the seed's failure
//! chart: "correct acceptors notice the error and choose"). From view 2 on, and whenever
//! nothing is vouched for, the view's leader picks the value (the vouched one, else any) and
//! sends it with its certificate, which acceptors check: certificates of different acceptors
//! may vouch for different values when nothing was decided, and only a leader ends that split.
//! An acceptor leaves a recovery view on its timer only once it holds a certificate for it, so
//! one cut off does not climb views alone.
//!
//! **Clients** take a result on `f + 1` matching replies; if their slot went to another
//! request, `f + 1` acceptors say so and they propose again at a later slot. A request is
//! executed once, wherever it lands.
//!
//! **Not here yet:** garbage collection of decided slots' proofs (checkpoints, as in
//! [`crate::pbft`]), and a slow path for `3f + 1 <= a < 5f + 1` acceptors.

mod acceptor;
mod client;
mod durable;
mod learner;
mod messages;
mod replica;
mod rules;

pub use client::Client;
pub use durable::{Durable, SlotDisk};
pub use messages::{
    value_digest, Choice, Decided, Evidence, FabEffects, Lost, Message, Output, Persist, Reply,
    Report, Slot, Status, Timer, Value, View, Vote, NOOP,
};
pub use replica::{Replica, ReplicaConfig};
pub use rules::Rules;
