//! Single-decree ("basic") Paxos with the three classic roles in separate types.
//!
//! - [`Proposer`]: picks a ballot, gathers promises from a phase-1 quorum, proposes the value
//!   with the highest ballot among those promises (or its own if none), and retries with a higher
//!   ballot after a NACK or a timeout.
//! - [`Acceptor`]: promises never to accept below a ballot and votes for proposals at or above
//!   its promise; both are persisted before it answers.
//! - [`Learner`]: learns a value only when a phase-2 quorum of acceptors reports accepting it in
//!   the *same* ballot.
//!
//! Why it is safe: a value `v` chosen in ballot `b` was accepted by a phase-2 quorum. Any
//! proposer of a higher ballot first hears from a phase-1 quorum, which intersects that phase-2
//! quorum, so it sees `v` (or a value from a ballot in between, which by induction is `v`) as the
//! highest-ballot accepted value, and proposes `v` again.

mod acceptor;
mod learner;
mod messages;
mod proposer;

pub use acceptor::{Acceptor, AcceptorState};
pub use learner::Learner;
pub use messages::{BasicEffects, Message, Output, Persist, Timer};
pub use proposer::{Proposer, ProposerConfig};
