//! Everything single-decree Paxos roles say to each other, persist, and output.

use crate::ballot::Ballot;
use crate::effects::Effects;
use serde::{Deserialize, Serialize};

/// Messages between proposers, acceptors and learners.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<V> {
    /// Phase 1a, proposer to acceptors: "promise me ballot `ballot`".
    Prepare {
        /// The ballot being prepared.
        ballot: Ballot,
    },
    /// Phase 1b, acceptor to proposer: the promise, with the acceptor's latest vote if any.
    Promise {
        /// The ballot promised.
        ballot: Ballot,
        /// The highest-ballot proposal this acceptor accepted, if any.
        accepted: Option<(Ballot, V)>,
    },
    /// Phase 2a, proposer to acceptors: "accept `value` in `ballot`".
    Accept {
        /// The proposal's ballot.
        ballot: Ballot,
        /// The value proposed.
        value: V,
    },
    /// Phase 2b, acceptor to proposer and learners: "I accepted `value` in `ballot`".
    Accepted {
        /// The ballot accepted.
        ballot: Ballot,
        /// The value accepted.
        value: V,
    },
    /// Acceptor to proposer: "`ballot` is below what I promised", so the proposer stops early.
    Nack {
        /// The ballot refused.
        ballot: Ballot,
        /// The acceptor's promise, so the proposer can jump above it.
        promised: Ballot,
    },
    /// Learner to acceptors: "tell me again what you accepted" (after lost messages).
    Query,
}

/// State a role asks to make durable before it answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Persist<V> {
    /// Proposer: the highest round it has used, so a restart never reuses a ballot.
    Round(u64),
    /// Acceptor: its promise.
    Promised(Ballot),
    /// Acceptor: its vote (which also raises its promise to `ballot`).
    Accepted(Ballot, V),
}

/// What a role reports to its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output<V> {
    /// A proposer saw its own ballot accepted by a phase-2 quorum, or a learner saw a phase-2
    /// quorum of votes in one ballot: `V` is chosen.
    Chosen(V),
}

/// Timers of the single-decree roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// Proposer: the current round took too long; start a higher one.
    Retry,
    /// Learner: nothing learned yet; ask the acceptors again.
    Query,
}

/// The effects of one single-decree Paxos step.
pub type BasicEffects<V> = Effects<Message<V>, Persist<V>, Output<V>, Timer>;
