//! Generalized Paxos (Lamport, 2005), in its single-instance form: the replicas agree on one
//! ever-growing command history instead of a sequence of values, and commands that commute need
//! no agreed order.
//!
//! - [`CStruct`] is a command history: a sequence in which adjacent commands that commute may
//!   swap. Its `glb` (longest common prefix), `lub` (shortest common extension, when the two are
//!   compatible) and prefix order carry the protocol.
//! - [`Relation`] says which commands conflict: [`Registers`] is the seed's table (a write
//!   conflicts with every operation on its register), [`Keys`] the key-value one (same key).
//! - [`Leader`] prepares a round, computes from a classic quorum of promises a history proved
//!   safe ([`proved_safe`]) and opens the round with it (`Phase2Start`). The rounds are fast:
//!   each [`Acceptor`] appends every command a client proposes to its own history and reports
//!   the whole history.
//! - [`Learner`] learns, round by round, the lub over fast quorums of the glb of their
//!   histories: commuting commands that reached acceptors in different orders are learned at
//!   once. Conflicting commands in different orders leave the histories incompatible; the
//!   leader then opens the round's next step with one order for all of it (coordinated
//!   recovery), using the votes it holds as promises.
//!
//! Why it is safe: every round starts from a history that holds everything chosen below it, and
//! acceptors only extend their histories within a round, so what any quorum chose in any round
//! is a prefix of every later round's histories; the fast quorum condition makes what two
//! quorums chose in one round compatible. Learned histories are therefore always compatible and
//! only grow.

mod acceptor;
mod client;
mod cstruct;
mod leader;
mod learner;
mod messages;
mod relation;
mod safe;

pub use acceptor::{Acceptor, AcceptorConfig, AcceptorState};
pub use client::Client;
pub use cstruct::CStruct;
pub use leader::{Leader, LeaderConfig};
pub use learner::Learner;
pub use messages::{GenEffects, Message, Output, Persist, Round, Timer};
pub use relation::{Command, Keys, Op, ReadsCommuteWithWrites, Registers, Relation};
pub use safe::{chosen_in_round, proved_safe};
