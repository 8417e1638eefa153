//! Three-phase commit: votes, then pre-commit, then commit.
//!
//! The extra round means that no participant commits while another is still uncertain, so a
//! participant that times out can finish the transaction without the coordinator. It collects
//! the states of the participants it can reach (the termination protocol) and decides from
//! them: any committed or any aborted settles it; any pre-committed means commit (after moving
//! the uncertain ones to pre-committed); all uncertain means abort.
//!
//! That rule takes a participant that does not answer for a crashed one. Under a partition it
//! is alive on the other side, running the same rule on other states: one side commits, the
//! other aborts. The simulator shows exactly that.

mod coordinator;
mod participant;

pub use coordinator::Coordinator;
pub use participant::{Participant, State};

use super::{CommitEffects, CommitNode, CommitOutput, CommitTimer, Decision, Setup, TxId, Vote};
use crate::ballot::NodeId;

/// What 3PC processes send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// Coordinator to participants: can you commit `tx`?
    CanCommit {
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
    /// Everyone voted yes: get ready to commit (from the coordinator or a termination leader).
    PreCommit {
        /// The transaction.
        tx: TxId,
    },
    /// A participant is pre-committed.
    PreAck {
        /// The transaction.
        tx: TxId,
    },
    /// The outcome (do-commit or abort).
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
    /// A termination leader asks a participant for its state.
    StateRequest {
        /// The transaction.
        tx: TxId,
    },
    /// A participant's answer.
    StateReport {
        /// The transaction.
        tx: TxId,
        /// Its state.
        state: State,
    },
}

/// What 3PC processes persist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// The coordinator sent pre-commit.
    CoordinatorPreCommit {
        /// The transaction.
        tx: TxId,
    },
    /// The coordinator's decision.
    Decision {
        /// The transaction.
        tx: TxId,
        /// The decision.
        decision: Decision,
    },
    /// A participant's vote.
    Voted {
        /// The transaction.
        tx: TxId,
        /// The vote.
        vote: Vote,
    },
    /// A participant is pre-committed.
    PreCommitted {
        /// The transaction.
        tx: TxId,
    },
    /// A participant's decision.
    Decided {
        /// The transaction.
        tx: TxId,
        /// The decision.
        decision: Decision,
    },
}

/// The effects of a 3PC step.
pub type Fx = CommitEffects<Msg, Record>;

/// A 3PC process.
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
    const NAME: &'static str = "3pc";
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
            Msg::CanCommit { .. } => "CanCommit".into(),
            Msg::Vote { vote, .. } => format!("Vote({vote})"),
            Msg::PreCommit { .. } => "PreCommit".into(),
            Msg::PreAck { .. } => "PreAck".into(),
            Msg::Outcome { decision, .. } => format!("Outcome({decision})"),
            Msg::Ack { .. } => "Ack".into(),
            Msg::StateRequest { .. } => "StateRequest".into(),
            Msg::StateReport { state, .. } => format!("State({state:?})"),
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
            Msg::CanCommit { tx }
            | Msg::Vote { tx, .. }
            | Msg::PreCommit { tx }
            | Msg::PreAck { tx }
            | Msg::Outcome { tx, .. }
            | Msg::Ack { tx }
            | Msg::StateRequest { tx }
            | Msg::StateReport { tx, .. } => *tx,
        }
    }
}
