//! The 3PC coordinator: votes, then pre-commit, then commit.

use super::{Fx, Msg, Record};
use crate::ballot::NodeId;
use crate::commit::{CommitNode, CommitTimer, Decision, Setup, TxId, Vote};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Voting(BTreeSet<NodeId>),
    PreCommitting(BTreeSet<NodeId>),
    /// Pre-commit persisted before a crash: the participants finish it among themselves.
    Unknown,
    Decided(Decision, BTreeSet<NodeId>),
}

/// The coordinator of every transaction.
#[derive(Debug)]
pub struct Coordinator {
    setup: Setup,
    txs: BTreeMap<TxId, Phase>,
}

impl Coordinator {
    /// Restarts from its records: decisions are sent again. A transaction it had pre-committed
    /// but not decided is left to the participants' termination protocol, which may have
    /// aborted it meanwhile; one with no record at all was never decided here.
    pub fn recover(setup: &Setup, records: &[Record]) -> (Self, Fx) {
        let mut c = Coordinator {
            setup: setup.clone(),
            txs: BTreeMap::new(),
        };
        for r in records {
            match *r {
                Record::CoordinatorPreCommit { tx } => {
                    c.txs.insert(tx, Phase::Unknown);
                }
                Record::Decision { tx, decision } => {
                    c.txs.insert(tx, Phase::Decided(decision, BTreeSet::new()));
                }
                _ => {}
            }
        }
        let mut fx = Fx::new();
        for (&tx, phase) in &c.txs {
            if let Phase::Decided(decision, _) = phase {
                let decision = *decision;
                fx.broadcast(&c.setup.participants, Msg::Outcome { tx, decision });
                fx.arm(CommitTimer { tx }, c.setup.timeout);
            }
        }
        (c, fx)
    }

    /// Asks every participant whether it can commit `tx`.
    pub fn begin(&mut self, tx: TxId) -> Fx {
        let mut fx = Fx::new();
        if self.txs.contains_key(&tx) {
            return fx;
        }
        self.txs.insert(tx, Phase::Voting(BTreeSet::new()));
        fx.broadcast(&self.setup.participants, Msg::CanCommit { tx });
        fx.arm(CommitTimer { tx }, self.setup.timeout);
        fx
    }

    /// Votes, pre-commit acknowledgements and outcome acknowledgements. (Termination leaders ask
    /// only participants: the coordinator is the one presumed gone.)
    pub fn on_message(&mut self, from: NodeId, msg: Msg) -> Fx {
        let mut fx = Fx::new();
        if !self.setup.participants.contains(&from) {
            return fx;
        }
        let n = self.setup.participants.len();
        let tx = <super::Node as CommitNode>::tx_of(&msg);
        if !self.txs.contains_key(&tx) {
            return fx;
        }
        let phase = self.txs.get_mut(&tx).expect("checked above");
        match (msg, phase) {
            (Msg::Vote { vote: Vote::No, .. }, Phase::Voting(_)) => {
                self.decide(tx, Decision::Abort, &mut fx)
            }
            (
                Msg::Vote {
                    vote: Vote::Yes, ..
                },
                Phase::Voting(yes),
            ) => {
                yes.insert(from);
                if yes.len() == n {
                    *self.txs.get_mut(&tx).expect("present") =
                        Phase::PreCommitting(BTreeSet::new());
                    fx.persist(Record::CoordinatorPreCommit { tx });
                    fx.broadcast_after_sync(&self.setup.participants, Msg::PreCommit { tx });
                    fx.arm(CommitTimer { tx }, self.setup.timeout);
                }
            }
            (Msg::PreAck { .. }, Phase::PreCommitting(acks)) => {
                acks.insert(from);
                if acks.len() == n {
                    self.decide(tx, Decision::Commit, &mut fx);
                }
            }
            (Msg::Ack { .. }, Phase::Decided(_, acked)) => {
                acked.insert(from);
            }
            _ => {}
        }
        fx
    }

    /// Votes missing: abort. Pre-commit acknowledgements missing: commit anyway, since every
    /// participant voted yes and the silent ones are taken for crashed (3PC's assumption).
    /// Outcome acknowledgements missing: send the outcome again.
    pub fn on_timer(&mut self, tx: TxId) -> Fx {
        let mut fx = Fx::new();
        match self.txs.get(&tx) {
            Some(Phase::Voting(_)) => self.decide(tx, Decision::Abort, &mut fx),
            Some(Phase::PreCommitting(_)) => self.decide(tx, Decision::Commit, &mut fx),
            Some(Phase::Decided(decision, acked)) => {
                let missing: Vec<NodeId> = self
                    .setup
                    .participants
                    .iter()
                    .copied()
                    .filter(|p| !acked.contains(p))
                    .collect();
                if !missing.is_empty() {
                    fx.broadcast(
                        &missing,
                        Msg::Outcome {
                            tx,
                            decision: *decision,
                        },
                    );
                    fx.arm(CommitTimer { tx }, self.setup.timeout);
                }
            }
            Some(Phase::Unknown) | None => {}
        }
        fx
    }

    fn decide(&mut self, tx: TxId, decision: Decision, fx: &mut Fx) {
        self.txs
            .insert(tx, Phase::Decided(decision, BTreeSet::new()));
        fx.persist(Record::Decision { tx, decision });
        fx.broadcast_after_sync(&self.setup.participants, Msg::Outcome { tx, decision });
        fx.arm(CommitTimer { tx }, self.setup.timeout);
    }
}
