//! Everything the Generalized Paxos roles say, persist and output.

use super::cstruct::CStruct;
use super::relation::Command;
use crate::effects::Effects;
pub use crate::fast::Round;
use serde::{Deserialize, Serialize};

/// Messages of Generalized Paxos.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Client to acceptors and leaders: "add `cmd`".
    Propose {
        /// The command.
        cmd: Command,
    },
    /// Phase 1a.
    Prepare {
        /// The round prepared.
        round: Round,
    },
    /// Phase 1b: the promise, with the acceptor's latest vote (its round and history).
    Promise {
        /// The round promised.
        round: Round,
        /// The latest vote.
        vote: Option<(Round, CStruct)>,
    },
    /// Phase 2a: the round opens with `base`, a history proved safe; the acceptors then append
    /// proposals as they arrive.
    Phase2Start {
        /// The round.
        round: Round,
        /// Every vote in the round extends this.
        base: CStruct,
    },
    /// Phase 2b: the acceptor's history in `round` as it now stands.
    Accepted {
        /// The round.
        round: Round,
        /// The acceptor's history.
        value: CStruct,
    },
    /// `round` is below the acceptor's promise.
    Nack {
        /// The round refused.
        round: Round,
        /// The promise.
        promised: Round,
    },
    /// Learner to acceptors and peers: "tell me what you have".
    Query,
    /// Learner or leader to a learner: what it has learned.
    Learned {
        /// The learned history.
        value: CStruct,
    },
    /// Learner to client: `cmd` is learned.
    Done {
        /// The command.
        cmd: Command,
    },
}

/// Records made durable before the step's held messages leave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Persist {
    /// Leader: the highest round number used.
    Number(u64),
    /// Acceptor: its promise.
    Promised(Round),
    /// Acceptor: its history in a round (which raises its promise to that round).
    Voted(Round, CStruct),
}

/// What a role reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// A learner's learned history grew to this.
    Learned(CStruct),
    /// A client's command is learned.
    Done(Command),
}

/// Timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// Leader: commands wait; open a higher round. Client: propose again.
    Retry,
    /// Learner: ask again.
    Query,
}

/// The effects of one Generalized Paxos step.
pub type GenEffects = Effects<Message, Persist, Output, Timer>;
