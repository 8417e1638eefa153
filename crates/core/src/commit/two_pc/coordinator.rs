//! The 2PC coordinator: collects votes, decides, and repeats the outcome until every
//! participant acknowledged it.

use super::{Fx, Msg, Record};
use crate::ballot::NodeId;
use crate::commit::{CommitTimer, Decision, Setup, TxId, Vote};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default)]
struct Tx {
    yes: BTreeSet<NodeId>,
    decision: Option<Decision>,
    acked: BTreeSet<NodeId>,
}

/// The coordinator of every transaction.
#[derive(Debug)]
pub struct Coordinator {
    setup: Setup,
    txs: BTreeMap<TxId, Tx>,
}

impl Coordinator {
    /// Restarts from its decisions: each is sent again until acknowledged. A transaction with
    /// no decision record was never decided, so it is aborted (presumed abort).
    pub fn recover(setup: &Setup, records: &[Record]) -> (Self, Fx) {
        let mut c = Coordinator {
            setup: setup.clone(),
            txs: BTreeMap::new(),
        };
        let mut fx = Fx::new();
        for r in records {
            if let Record::Decision { tx, decision } = r {
                c.txs.entry(*tx).or_default().decision = Some(*decision);
            }
        }
        for (&tx, t) in &c.txs {
            if let Some(d) = t.decision {
                fx.broadcast(&c.setup.participants, Msg::Outcome { tx, decision: d });
                fx.arm(CommitTimer { tx }, c.setup.timeout);
            }
        }
        (c, fx)
    }

    /// Asks every participant to prepare `tx`.
    pub fn begin(&mut self, tx: TxId) -> Fx {
        let mut fx = Fx::new();
        if self.txs.contains_key(&tx) {
            return fx;
        }
        self.txs.insert(tx, Tx::default());
        fx.broadcast(&self.setup.participants, Msg::Prepare { tx });
        fx.arm(CommitTimer { tx }, self.setup.timeout);
        fx
    }

    /// Votes, acknowledgements and questions.
    pub fn on_message(&mut self, from: NodeId, msg: Msg) -> Fx {
        let mut fx = Fx::new();
        if !self.setup.participants.contains(&from) {
            return fx;
        }
        match msg {
            Msg::Vote { tx, vote } => {
                let Some(t) = self.txs.get_mut(&tx) else {
                    return fx;
                };
                if t.decision.is_some() {
                    return fx;
                }
                match vote {
                    Vote::No => self.decide(tx, Decision::Abort, &mut fx),
                    Vote::Yes => {
                        t.yes.insert(from);
                        if t.yes.len() == self.setup.participants.len() {
                            self.decide(tx, Decision::Commit, &mut fx);
                        }
                    }
                }
            }
            Msg::Ack { tx } => {
                if let Some(t) = self.txs.get_mut(&tx) {
                    t.acked.insert(from);
                }
            }
            Msg::Ask { tx } => match self.txs.get(&tx).map(|t| t.decision) {
                Some(Some(decision)) => fx.send(from, Msg::Outcome { tx, decision }),
                // Still collecting votes: the answer comes with the decision.
                Some(None) => {}
                // Never begun here, or begun before a crash that lost it undecided: it can
                // only abort, and nothing here will ever commit it.
                None => fx.send(
                    from,
                    Msg::Outcome {
                        tx,
                        decision: Decision::Abort,
                    },
                ),
            },
            Msg::Prepare { .. } | Msg::Outcome { .. } => {}
        }
        fx
    }

    /// Votes missing in time: abort. A decision not acknowledged by all: send it again.
    pub fn on_timer(&mut self, tx: TxId) -> Fx {
        let mut fx = Fx::new();
        let Some(t) = self.txs.get(&tx) else {
            return fx;
        };
        match t.decision {
            None => self.decide(tx, Decision::Abort, &mut fx),
            Some(decision) => {
                let missing: Vec<NodeId> = self
                    .setup
                    .participants
                    .iter()
                    .copied()
                    .filter(|p| !t.acked.contains(p))
                    .collect();
                if !missing.is_empty() {
                    fx.broadcast(&missing, Msg::Outcome { tx, decision });
                    fx.arm(CommitTimer { tx }, self.setup.timeout);
                }
            }
        }
        fx
    }

    /// The decision on `tx`, if made.
    pub fn decision(&self, tx: TxId) -> Option<Decision> {
        self.txs.get(&tx).and_then(|t| t.decision)
    }

    fn decide(&mut self, tx: TxId, decision: Decision, fx: &mut Fx) {
        let t = self
            .txs
            .get_mut(&tx)
            .expect("deciding a transaction begun here");
        assert!(t.decision.is_none(), "deciding {tx} twice");
        t.decision = Some(decision);
        fx.persist(Record::Decision { tx, decision });
        fx.broadcast_after_sync(&self.setup.participants, Msg::Outcome { tx, decision });
        fx.arm(CommitTimer { tx }, self.setup.timeout);
    }
}
