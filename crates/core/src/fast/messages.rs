//! Rounds, votes, and everything the Fast Paxos roles say, persist and output.

use crate::ballot::NodeId;
use crate::effects::Effects;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A round: `(number, coordinator, step)`, ordered in that order.
///
/// A coordinator owns every round with its id. Step 0 is the round it prepares; a recovery from
/// a collision in step `k` runs in step `k + 1`, which is the very next round: nothing can come
/// between them. That is what lets a round's votes stand in for the next round's promises
/// (both coordinated and uncoordinated recovery rely on it).
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Round {
    /// Higher numbers win.
    pub number: u64,
    /// The coordinator that owns the round.
    pub coordinator: NodeId,
    /// Recovery steps after the prepared round.
    pub step: u32,
}

impl Round {
    /// "No round": below every real one.
    pub const ZERO: Round = Round {
        number: 0,
        coordinator: 0,
        step: 0,
    };

    /// The prepared round `number` of `coordinator`.
    pub const fn new(number: u64, coordinator: NodeId) -> Self {
        Round {
            number,
            coordinator,
            step: 0,
        }
    }

    /// The recovery round right after this one. Callers make sure there is one: a step of
    /// `u32::MAX` would take four billion recoveries of one round, and a peer's claim of one
    /// is refused before it gets here.
    pub fn next_step(self) -> Round {
        let step = self
            .step
            .checked_add(1)
            .expect("a round's recovery steps ran out");
        Round { step, ..self }
    }

    /// True when `later` is one of this prepared round's recovery steps (or itself).
    pub fn same_lineage(self, later: Round) -> bool {
        self.number == later.number && self.coordinator == later.coordinator
    }
}

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.number, self.coordinator)?;
        if self.step > 0 {
            write!(f, "+{}", self.step)?;
        }
        Ok(())
    }
}

/// How a collision in a fast round is to be resolved, announced with `Any`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Recovery {
    /// The coordinator picks a value from the colliding votes and runs a classic next step.
    Coordinated,
    /// Each acceptor picks from the votes it hears and votes in a fast next step by itself.
    Uncoordinated,
}

/// An acceptor's vote: the round, whether that round is fast, and the value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Vote<V> {
    /// The round voted in.
    pub round: Round,
    /// True when the round is fast: a fast quorum is needed to choose in it.
    pub fast: bool,
    /// The value.
    pub value: V,
}

/// Messages of single-decree Fast Paxos.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<V> {
    /// Client to acceptors (the seed's `Accept!(N,I,W)`) and to coordinators: "I propose `value`".
    Propose {
        /// The value.
        value: V,
    },
    /// Phase 1a, coordinator to acceptors.
    Prepare {
        /// The round prepared.
        round: Round,
    },
    /// Phase 1b: the promise, with the acceptor's latest vote.
    Promise {
        /// The round promised.
        round: Round,
        /// The acceptor's latest vote, if any.
        vote: Option<Vote<V>>,
    },
    /// Phase 2a of a fast round: "vote for whichever proposal reaches you first".
    Any {
        /// The fast round.
        round: Round,
        /// What to do on a collision.
        recovery: Recovery,
    },
    /// Phase 2a of a classic round: "vote for `value`".
    Accept {
        /// The classic round.
        round: Round,
        /// The value.
        value: V,
    },
    /// Phase 2b, acceptor to coordinator, learners and (uncoordinated recovery) acceptors.
    Accepted {
        /// The vote.
        vote: Vote<V>,
    },
    /// Acceptor to coordinator: `round` is below its promise.
    Nack {
        /// The round refused.
        round: Round,
        /// The acceptor's promise.
        promised: Round,
    },
    /// Learner to acceptors: "send me your vote again".
    Query,
    /// Learner to client: the decision (the seed's `Response`).
    Chosen {
        /// The value chosen.
        value: V,
    },
}

/// Records to make durable before the step's `send_after_sync` messages leave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Persist<V> {
    /// Coordinator: the highest round number it used.
    Number(u64),
    /// Acceptor: its promise.
    Promised(Round),
    /// Acceptor: its vote (which also raises its promise to the vote's round).
    Voted(Vote<V>),
}

/// What a role reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output<V> {
    /// The role knows `V` is chosen.
    Chosen(V),
}

/// Timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// Coordinator: nothing chosen yet; prepare a higher round. Client: propose again.
    Retry,
    /// Learner: nothing learned; ask the acceptors again.
    Query,
}

/// The effects of one Fast Paxos step.
pub type FastEffects<V> = Effects<Message<V>, Persist<V>, Output<V>, Timer>;

/// The values a Fast Paxos instance decides on: cloneable, comparable (ties among colliding
/// values are broken by order, so every node breaks them the same way), printable.
pub trait Value: Clone + Ord + fmt::Debug {}

impl<T: Clone + Ord + fmt::Debug> Value for T {}
