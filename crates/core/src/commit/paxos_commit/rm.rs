//! A Paxos Commit participant (resource manager): votes by proposing in its own instance, and
//! asks the leaders in turn for help when the outcome is late.

use super::{Fx, Msg, Record, Val};
use crate::ballot::{Ballot, NodeId};
use crate::commit::{CommitOutput, CommitTimer, Decision, Setup, TxId, Vote};
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, Copy)]
struct Tx {
    val: Option<Val>,
    decision: Option<Decision>,
    asked: usize,
}

/// A participant in every transaction.
#[derive(Debug)]
pub struct Rm {
    id: NodeId,
    setup: Setup,
    txs: BTreeMap<TxId, Tx>,
}

impl Rm {
    /// Restarts from its votes and decisions; undecided ones ask for help at their timer.
    pub fn recover(setup: &Setup, id: NodeId, records: &[Record]) -> (Self, Fx) {
        let mut rm = Rm {
            id,
            setup: setup.clone(),
            txs: BTreeMap::new(),
        };
        for r in records {
            match *r {
                Record::Voted { tx, val } => rm.txs.entry(tx).or_default().val = Some(val),
                Record::Decided { tx, decision } => {
                    rm.txs.entry(tx).or_default().decision = Some(decision)
                }
                _ => {}
            }
        }
        let mut fx = Fx::new();
        for (&tx, t) in &rm.txs {
            if t.val.is_some() && t.decision.is_none() {
                fx.arm(CommitTimer { tx }, rm.setup.timeout);
            }
        }
        (rm, fx)
    }

    /// Leaders to ask, in turn: the coordinator first, then each acceptor.
    fn leaders(&self) -> Vec<NodeId> {
        let mut l = vec![self.setup.coordinator];
        l.extend(&self.setup.acceptors);
        l
    }

    /// Prepares and outcomes.
    pub fn on_message(&mut self, from: NodeId, msg: Msg) -> Fx {
        let mut fx = Fx::new();
        match msg {
            Msg::Prepare { tx } if from == self.setup.coordinator => {
                let t = *self.txs.entry(tx).or_default();
                let val = match t.val {
                    Some(v) => v,
                    None if t.decision.is_some() => return fx,
                    None => {
                        let (vote, val) = match self.setup.vote_of(tx, self.id) {
                            Vote::Yes => (Vote::Yes, Val::Prepared),
                            Vote::No => (Vote::No, Val::Aborted),
                        };
                        self.txs.get_mut(&tx).expect("present").val = Some(val);
                        fx.persist(Record::Voted { tx, val });
                        fx.output(CommitOutput::Voted { tx, vote });
                        if val == Val::Aborted {
                            // Its own instance will choose Aborted: the outcome is known.
                            self.decide(tx, Decision::Abort, &mut fx);
                        } else {
                            fx.arm(CommitTimer { tx }, self.setup.timeout);
                        }
                        val
                    }
                };
                fx.broadcast_after_sync(
                    &self.setup.acceptors,
                    Msg::Phase2a {
                        tx,
                        ballot: Ballot::ZERO,
                        values: vec![(self.id, val)],
                    },
                );
            }
            Msg::Outcome { tx, decision } if self.leaders().contains(&from) => {
                let val = self.txs.get(&tx).and_then(|t| t.val);
                if decision == Decision::Commit && val != Some(Val::Prepared) {
                    return fx;
                }
                self.decide(tx, decision, &mut fx);
            }
            _ => {}
        }
        fx
    }

    /// No outcome yet: ask the next leader in turn to finish the transaction.
    pub fn on_timer(&mut self, tx: TxId) -> Fx {
        let mut fx = Fx::new();
        let leaders = self.leaders();
        if let Some(t) = self.txs.get_mut(&tx) {
            if t.val.is_some() && t.decision.is_none() {
                let to = leaders[t.asked % leaders.len()];
                t.asked += 1;
                fx.send(to, Msg::Help { tx });
                fx.arm(CommitTimer { tx }, self.setup.timeout);
            }
        }
        fx
    }

    /// The decision on `tx`, if known here.
    pub fn decision(&self, tx: TxId) -> Option<Decision> {
        self.txs.get(&tx).and_then(|t| t.decision)
    }

    fn decide(&mut self, tx: TxId, decision: Decision, fx: &mut Fx) {
        let t = self.txs.entry(tx).or_default();
        if t.decision.is_some() {
            return;
        }
        t.decision = Some(decision);
        fx.persist(Record::Decided { tx, decision });
        fx.output(CommitOutput::Decided { tx, decision });
    }
}
