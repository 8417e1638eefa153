//! Paxos Commit (Gray and Lamport, "Consensus on Transaction Commit").
//!
//! Each participant's vote is not a message to a coordinator but the value of a Paxos
//! instance of its own, run on `2F+1` acceptors. The participant proposes `Prepared` or
//! `Aborted` in its instance's first ballot (ballot 0, which only it may use, so it needs no
//! phase 1). The transaction commits if and only if every instance chose `Prepared`.
//!
//! The coordinator (transaction manager) is only the first leader: it learns each instance's
//! outcome from the acceptors' phase-2b messages and tells the participants. If it dies, any
//! other leader (here every acceptor can lead) runs a higher ballot on the undecided instances,
//! finds any value that may have been chosen through phase 1, and proposes `Aborted` for the
//! instances where none can have been. Paxos makes every leader reach the same outcome, so
//! nothing blocks while `F+1` acceptors and one leader can talk.

mod acceptor;
mod leader;
mod rm;

pub use acceptor::Acceptor;
pub use leader::Leader;
pub use rm::Rm;

use super::{CommitEffects, CommitNode, CommitOutput, CommitTimer, Decision, Setup, TxId, Vote};
use crate::ballot::{Ballot, NodeId};

/// The value of one participant's instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Val {
    /// The participant voted yes.
    Prepared,
    /// The participant voted no, or a leader found it silent.
    Aborted,
}

/// What Paxos Commit processes send. `inst` names an instance by its participant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// Coordinator to participants: prepare `tx`.
    Prepare {
        /// The transaction.
        tx: TxId,
    },
    /// Phase 2a: accept these instance values in `ballot` (ballot 0: a participant's own vote).
    Phase2a {
        /// The transaction.
        tx: TxId,
        /// The ballot.
        ballot: Ballot,
        /// `(inst, value)` pairs.
        values: Vec<(NodeId, Val)>,
    },
    /// Phase 2b: an acceptor accepted these values in `ballot`.
    Phase2b {
        /// The transaction.
        tx: TxId,
        /// The ballot.
        ballot: Ballot,
        /// `(inst, value)` pairs.
        values: Vec<(NodeId, Val)>,
    },
    /// Phase 1a: a leader asks for a promise on every instance of `tx`.
    Phase1a {
        /// The transaction.
        tx: TxId,
        /// The ballot.
        ballot: Ballot,
    },
    /// Phase 1b: the promise, with every value accepted so far.
    Phase1b {
        /// The transaction.
        tx: TxId,
        /// The ballot promised.
        ballot: Ballot,
        /// `(inst, ballot, value)` triples.
        accepted: Vec<(NodeId, Ballot, Val)>,
    },
    /// An acceptor refuses a ballot below its promise.
    Nack {
        /// The transaction.
        tx: TxId,
        /// What it promised.
        promised: Ballot,
    },
    /// A leader tells the participants the outcome.
    Outcome {
        /// The transaction.
        tx: TxId,
        /// The decision.
        decision: Decision,
    },
    /// A participant that waited too long asks a leader to finish `tx`.
    Help {
        /// The transaction.
        tx: TxId,
    },
}

/// What Paxos Commit processes persist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A participant's vote.
    Voted {
        /// The transaction.
        tx: TxId,
        /// Its instance's value.
        val: Val,
    },
    /// A participant's decision.
    Decided {
        /// The transaction.
        tx: TxId,
        /// The decision.
        decision: Decision,
    },
    /// An acceptor's promise.
    Promised {
        /// The transaction.
        tx: TxId,
        /// The ballot.
        ballot: Ballot,
    },
    /// An acceptor's accepted values (also a promise of `ballot`).
    Accepted {
        /// The transaction.
        tx: TxId,
        /// The ballot.
        ballot: Ballot,
        /// `(inst, value)` pairs.
        values: Vec<(NodeId, Val)>,
    },
    /// The highest round a leader has used: it never uses a ballot twice, even across a crash.
    LeaderRound(u64),
}

/// The effects of a Paxos Commit step.
pub type Fx = CommitEffects<Msg, Record>;

/// A Paxos Commit process.
#[derive(Debug)]
pub enum Node {
    /// The coordinator: the first leader.
    Coordinator(Leader),
    /// A participant (resource manager).
    Participant(Rm),
    /// An acceptor, which can also lead when a participant asks it for help.
    Acceptor(Acceptor, Leader),
}

impl CommitNode for Node {
    type Msg = Msg;
    type Record = Record;
    const NAME: &'static str = "paxos-commit";
    const USES_ACCEPTORS: bool = true;

    fn boot(setup: &Setup, id: NodeId, records: &[Record]) -> (Self, Fx) {
        if id == setup.coordinator {
            (
                Node::Coordinator(Leader::recover(setup, id, records)),
                Fx::new(),
            )
        } else if setup.acceptors.contains(&id) {
            let a = Acceptor::recover(setup, id, records);
            (
                Node::Acceptor(a, Leader::recover(setup, id, records)),
                Fx::new(),
            )
        } else {
            let (rm, fx) = Rm::recover(setup, id, records);
            (Node::Participant(rm), fx)
        }
    }

    fn begin(&mut self, tx: TxId) -> Fx {
        match self {
            Node::Coordinator(l) => l.begin(tx),
            _ => Fx::new(),
        }
    }

    fn on_message(&mut self, from: NodeId, msg: Msg) -> Fx {
        match (self, &msg) {
            (Node::Participant(rm), _) => rm.on_message(from, msg),
            (Node::Acceptor(a, _), Msg::Phase1a { .. } | Msg::Phase2a { .. }) => {
                a.on_message(from, msg)
            }
            (Node::Acceptor(_, l), _) | (Node::Coordinator(l), _) => l.on_message(from, msg),
        }
    }

    fn on_timer(&mut self, timer: CommitTimer) -> Fx {
        match self {
            Node::Participant(rm) => rm.on_timer(timer.tx),
            Node::Acceptor(_, l) | Node::Coordinator(l) => l.on_timer(timer.tx),
        }
    }

    fn label(msg: &Msg) -> String {
        // Ballot 0 carries one participant's own vote; the chart's row shows who sent it.
        let vals = |v: &[(NodeId, Val)]| {
            v.iter()
                .map(|(_, v)| format!("{v:?}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        match msg {
            Msg::Prepare { .. } => "Prepare".into(),
            Msg::Phase2a { ballot, values, .. } if ballot.is_zero() => {
                format!("2a(0,{})", vals(values))
            }
            Msg::Phase2a { ballot, .. } => format!("2a({ballot})"),
            Msg::Phase2b { ballot, values, .. } if ballot.is_zero() => {
                format!("2b(0,{})", vals(values))
            }
            Msg::Phase2b { ballot, .. } => format!("2b({ballot})"),
            Msg::Phase1a { ballot, .. } => format!("1a({ballot})"),
            Msg::Phase1b { ballot, .. } => format!("1b({ballot})"),
            Msg::Nack { promised, .. } => format!("Nack({promised})"),
            Msg::Outcome { decision, .. } => format!("Outcome({decision})"),
            Msg::Help { .. } => "Help".into(),
        }
    }

    fn fact(record: &Record) -> Option<CommitOutput> {
        match *record {
            Record::Voted { tx, val } => Some(CommitOutput::Voted {
                tx,
                vote: match val {
                    Val::Prepared => Vote::Yes,
                    Val::Aborted => Vote::No,
                },
            }),
            Record::Decided { tx, decision } => Some(CommitOutput::Decided { tx, decision }),
            _ => None,
        }
    }

    fn tx_of(msg: &Msg) -> TxId {
        match msg {
            Msg::Prepare { tx }
            | Msg::Phase2a { tx, .. }
            | Msg::Phase2b { tx, .. }
            | Msg::Phase1a { tx, .. }
            | Msg::Phase1b { tx, .. }
            | Msg::Nack { tx, .. }
            | Msg::Outcome { tx, .. }
            | Msg::Help { tx } => *tx,
        }
    }
}
