//! Atomic commit: two-phase commit, three-phase commit and Paxos Commit, side by side.
//!
//! A transaction spans several participants (resource managers). Each votes yes (it can
//! commit) or no; the protocol must reach one decision for all of them:
//!
//! - **atomicity**: no participant commits while another aborts;
//! - **validity**: commit only if every participant voted yes;
//! - **non-blocking**: the participants that are up decide, even while some process is down.
//!
//! [`two_pc`] gets the first two but blocks when the coordinator dies after the votes.
//! [`three_pc`] does not block on a crash, but its termination protocol takes silence for a
//! crash, so a partition lets the two sides decide differently. [`paxos_commit`] decides each
//! participant's vote with its own Paxos instance on `2F+1` acceptors, and gets all three as
//! long as `F+1` acceptors can talk.
//!
//! Every process handles every transaction it takes part in: per-transaction state lives in
//! maps inside each role, timers are per transaction ([`CommitTimer`]), and a process restarts
//! from its own records ([`CommitNode::boot`]).

pub mod paxos_commit;
pub mod three_pc;
pub mod two_pc;

use crate::ballot::NodeId;
use crate::bugs::PlantedBug;
use crate::effects::Effects;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// Identifies a transaction.
pub type TxId = u64;

/// A participant's vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Vote {
    /// It can commit (and has made its part durable).
    Yes,
    /// It cannot; the transaction must abort.
    No,
}

/// The outcome of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Decision {
    /// Every participant makes it permanent.
    Commit,
    /// Every participant undoes it.
    Abort,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Commit => "commit",
            Decision::Abort => "abort",
        })
    }
}

impl fmt::Display for Vote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Vote::Yes => "yes",
            Vote::No => "no",
        })
    }
}

/// What a commit process reports to its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitOutput {
    /// A participant's vote is durable.
    Voted {
        /// The transaction.
        tx: TxId,
        /// The vote.
        vote: Vote,
    },
    /// A participant decided (durably). It never decides a transaction twice.
    Decided {
        /// The transaction.
        tx: TxId,
        /// The decision.
        decision: Decision,
    },
}

/// A process's one timer per transaction: "nothing decisive heard in time". Arming it again
/// replaces the earlier deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitTimer {
    /// The transaction.
    pub tx: TxId,
}

/// The effects of one step of a commit process.
pub type CommitEffects<M, R> = Effects<M, R, CommitOutput, CommitTimer>;

/// Who takes part, and what each participant will vote. The same for every process of a run.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The coordinator (transaction manager): it begins every transaction.
    pub coordinator: NodeId,
    /// The participants (resource managers), in every transaction.
    pub participants: Vec<NodeId>,
    /// Paxos Commit's acceptors (`2F+1`); empty for the other protocols.
    pub acceptors: Vec<NodeId>,
    /// `(tx, participant)` pairs that vote no: the participant's local reason to refuse (a
    /// constraint, a lock timeout), fixed in advance so that a run is a function of its seed.
    pub refuse: BTreeSet<(TxId, NodeId)>,
    /// Ticks a process waits for the next step of a transaction before acting on its own.
    pub timeout: u64,
    /// A bug planted on purpose (simulator only).
    pub bug: Option<PlantedBug>,
}

impl Setup {
    /// What participant `id` votes on `tx`.
    pub fn vote_of(&self, tx: TxId, id: NodeId) -> Vote {
        if self.refuse.contains(&(tx, id)) {
            Vote::No
        } else {
            Vote::Yes
        }
    }

    /// The participants other than `id`.
    pub fn others(&self, id: NodeId) -> impl Iterator<Item = &NodeId> {
        self.participants.iter().filter(move |&&p| p != id)
    }

    /// Acceptors a decision needs: a majority of `2F+1`.
    pub fn acceptor_quorum(&self) -> usize {
        self.acceptors.len() / 2 + 1
    }
}

/// One process of an atomic-commit protocol, over every transaction it takes part in. The
/// simulator and the flow charts drive every protocol through this one interface.
pub trait CommitNode: Sized {
    /// What processes send each other.
    type Msg: Clone + fmt::Debug;
    /// What a process persists; replayed in order at restart.
    type Record: Clone + fmt::Debug;

    /// The protocol's name on the command line.
    const NAME: &'static str;
    /// Whether the protocol runs acceptors (`Setup::acceptors`).
    const USES_ACCEPTORS: bool;

    /// Process `id` (re)started from its durable `records`, with what it does first.
    fn boot(
        setup: &Setup,
        id: NodeId,
        records: &[Self::Record],
    ) -> (Self, CommitEffects<Self::Msg, Self::Record>);

    /// The coordinator starts committing `tx`; any other process ignores this.
    fn begin(&mut self, tx: TxId) -> CommitEffects<Self::Msg, Self::Record>;

    /// A message from `from`.
    fn on_message(
        &mut self,
        from: NodeId,
        msg: Self::Msg,
    ) -> CommitEffects<Self::Msg, Self::Record>;

    /// The timer of `timer.tx` fired.
    fn on_timer(&mut self, timer: CommitTimer) -> CommitEffects<Self::Msg, Self::Record>;

    /// A short label for traces and charts, e.g. `Prepare` or `Vote(yes)`.
    fn label(msg: &Self::Msg) -> String;

    /// The transaction a message is about.
    fn tx_of(msg: &Self::Msg) -> TxId;

    /// What a participant's durable record establishes: its vote or its decision. Checkers read
    /// these from the disk, so a crash between a record's write and the step's end still counts.
    fn fact(record: &Self::Record) -> Option<CommitOutput>;
}
