//! Two-phase commit: the coordinator asks every participant to prepare and vote, then sends
//! the outcome. Votes and decisions are persisted before they are sent.
//!
//! A participant that voted yes may not decide alone: the coordinator might have decided
//! either way. When it times out it asks the coordinator and the other participants (the
//! cooperative termination protocol). A participant that has not voted yet can refuse and
//! answer abort; one that knows the outcome tells it. If every participant it can reach voted
//! yes and none knows, it blocks until the coordinator comes back.

mod coordinator;
mod participant;

pub use coordinator::Coordinator;
pub use participant::Participant;

use super::{CommitEffects, CommitNode, CommitOutput, CommitTimer, Decision, Setup, TxId, Vote};
use crate::ballot::NodeId;

/// What 2PC processes send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// Coordinator to participants: prepare `tx` and vote.
    Prepare {
        /// The transaction.
        tx: TxId,
    },
    /// Participant to coordinator.
    Vote {
        /// The transaction.
        tx: TxId,
        /// The vote.
        vote: Vote,
    },
    /// The outcome, from the coordinator or from a participant that knows it.
    Outcome {
        /// The transaction.
        tx: TxId,
        /// The decision.
        decision: Decision,
    },
    /// Participant to coordinator: the outcome is durable here.
    Ack {
        /// The transaction.
        tx: TxId,
    },
    /// An uncertain participant asks what was decided.
    Ask {
        /// The transaction.
        tx: TxId,
    },
}

/// What 2PC processes persist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// The coordinator's decision.
    Decision {
        /// The transaction.
        tx: TxId,
        /// The decision.
        decision: Decision,
    },
    /// A participant's vote (a participant that refuses before it was asked records a no).
    Voted {
        /// The transaction.
        tx: TxId,
        /// The vote.
        vote: Vote,
    },
    /// A participant's decision.
    Decided {
        /// The transaction.
        tx: TxId,
        /// The decision.
        decision: Decision,
    },
}

/// The effects of a 2PC step.
pub type Fx = CommitEffects<Msg, Record>;

/// A 2PC process.
#[derive(Debug)]
pub enum Node {
    /// The coordinator.
    Coordinator(Coordinator),
    /// A participant.
    Participant(Participant),
}

impl CommitNode for Node {
    type Msg = Msg;
    type Record = Record;
    const NAME: &'static str = "2pc";
    const USES_ACCEPTORS: bool = false;

    fn boot(setup: &Setup, id: NodeId, records: &[Record]) -> (Self, Fx) {
        if id == setup.coordinator {
            let (c, fx) = Coordinator::recover(setup, records);
            (Node::Coordinator(c), fx)
        } else {
            let (p, fx) = Participant::recover(setup, id, records);
            (Node::Participant(p), fx)
        }
    }

    fn begin(&mut self, tx: TxId) -> Fx {
        match self {
            Node::Coordinator(c) => c.begin(tx),
            Node::Participant(_) => Fx::new(),
        }
    }

    fn on_message(&mut self, from: NodeId, msg: Msg) -> Fx {
        match self {
            Node::Coordinator(c) => c.on_message(from, msg),
            Node::Participant(p) => p.on_message(from, msg),
        }
    }

    fn on_timer(&mut self, timer: CommitTimer) -> Fx {
        match self {
            Node::Coordinator(c) => c.on_timer(timer.tx),
            Node::Participant(p) => p.on_timer(timer.tx),
        }
    }

    fn label(msg: &Msg) -> String {
        match msg {
            Msg::Prepare { .. } => "Prepare".into(),
            Msg::Vote { vote, .. } => format!("Vote({vote})"),
            Msg::Outcome { decision, .. } => format!("Outcome({decision})"),
            Msg::Ack { .. } => "Ack".into(),
            Msg::Ask { .. } => "Ask".into(),
        }
    }

    fn fact(record: &Record) -> Option<CommitOutput> {
        match *record {
            Record::Voted { tx, vote } => Some(CommitOutput::Voted { tx, vote }),
            Record::Decided { tx, decision } => Some(CommitOutput::Decided { tx, decision }),
            _ => None,
        }
    }

    fn tx_of(msg: &Msg) -> TxId {
        match msg {
            Msg::Prepare { tx }
            | Msg::Vote { tx, .. }
            | Msg::Outcome { tx, .. }
            | Msg::Ack { tx }
            | Msg::Ask { tx } => *tx,
        }
    }
}
