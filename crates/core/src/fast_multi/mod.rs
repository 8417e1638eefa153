//! Fast Multi-Paxos: a log of Fast Paxos instances that share one round, so that a command
//! reaches the log two message delays after its proposer sends it, without passing the leader.
//!
//! - [`Leader`] runs phase 1 once for every slot from the first one it does not know chosen,
//!   finishes the slots phase 1 found votes in with a classic round, and opens the slots above
//!   them to a fast round with `Any` (repeated as its heartbeat).
//! - [`Acceptor`] keeps one promise for all slots and a vote per slot; in the fast round each
//!   proposal takes its next free slot (Lamport's rule in *Fast Paxos*, section 4).
//! - [`Learner`] learns a slot when a fast quorum voted one entry there in a fast round, or a
//!   classic quorum in a classic round; it tells the leader of collisions and catches up from
//!   its peers.
//! - [`Server`] collapses the three and applies the log, each distinct command once.
//! - [`Client`] proposes its commands to every acceptor one at a time; [`Proposer`] keeps many
//!   in flight (a server proposing for its own clients).
//!
//! **Collisions.** Acceptors that see two proposals in different orders vote them into
//! different slots, and a lost proposal shifts every later slot of one acceptor. The leader,
//! hearing that no entry can reach a fast quorum in a slot (or that a slot stopped making
//! progress), runs phase 1 again in a new round. The promises report every vote; each voted slot
//! gets the one entry the Fast Paxos rule allows (or the most voted, or a no-op), and the fast
//! region restarts above them, where every acceptor's next free slot is the same again. A
//! command that lost every slot is proposed again by its proposer, and a command chosen twice
//! is applied once.
//!
//! **Why it is safe.** Each slot is a single-decree Fast Paxos instance ([`crate::fast`]): its
//! promise is the acceptor's one promise, its classic rounds take values by the rule, and its
//! fast round is opened only where every promise of phase 1 reported no vote, so nothing can
//! have been chosen below it there.

mod acceptor;
mod client;
mod leader;
mod learner;
mod messages;
mod proposer;
mod server;

pub use acceptor::{Acceptor, AcceptorConfig, AcceptorState};
pub use client::Client;
pub use leader::{Leader, LeaderConfig, MAX_PROMISE_SPAN};
pub use learner::Learner;
pub use messages::{Entry, EntryVote, FmEffects, Message, Output, Persist, Slot, Timer};
pub use proposer::Proposer;
pub use server::Server;
