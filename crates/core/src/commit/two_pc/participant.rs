//! A 2PC participant: votes when asked, takes the outcome from whoever knows it, and, when
//! uncertain for too long, asks everyone.

use super::{Fx, Msg, Record};
use crate::ballot::NodeId;
use crate::bugs::PlantedBug;
use crate::commit::{CommitOutput, CommitTimer, Decision, Setup, TxId, Vote};
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, Copy)]
struct Tx {
    vote: Option<Vote>,
    decision: Option<Decision>,
}

/// A participant in every transaction.
#[derive(Debug)]
pub struct Participant {
    id: NodeId,
    setup: Setup,
    txs: BTreeMap<TxId, Tx>,
}

impl Participant {
    /// Restarts from its votes and decisions; every transaction it voted yes on and has no
    /// outcome for is asked about again at its timer.
    pub fn recover(setup: &Setup, id: NodeId, records: &[Record]) -> (Self, Fx) {
        let mut p = Participant {
            id,
            setup: setup.clone(),
            txs: BTreeMap::new(),
        };
        for r in records {
            match *r {
                Record::Voted { tx, vote } => p.txs.entry(tx).or_default().vote = Some(vote),
                Record::Decided { tx, decision } => {
                    p.txs.entry(tx).or_default().decision = Some(decision)
                }
                Record::Decision { .. } => {}
            }
        }
        let mut fx = Fx::new();
        for (&tx, t) in &p.txs {
            if t.vote == Some(Vote::Yes) && t.decision.is_none() {
                fx.arm(CommitTimer { tx }, p.setup.timeout);
            }
        }
        (p, fx)
    }

    /// Prepares, outcomes, acknowledgements and questions.
    pub fn on_message(&mut self, from: NodeId, msg: Msg) -> Fx {
        let mut fx = Fx::new();
        match msg {
            Msg::Prepare { tx } if from == self.setup.coordinator => {
                let t = *self.txs.entry(tx).or_default();
                match t.vote {
                    // A repeated prepare: the vote again.
                    Some(vote) => fx.send_after_sync(from, Msg::Vote { tx, vote }),
                    None => {
                        let vote = self.setup.vote_of(tx, self.id);
                        self.vote(tx, vote, &mut fx);
                        fx.send_after_sync(from, Msg::Vote { tx, vote });
                    }
                }
            }
            Msg::Outcome { tx, decision } => {
                let voted = self.txs.get(&tx).and_then(|t| t.vote);
                // Commit needs this participant's yes: a commit for anything else is refused.
                if decision == Decision::Commit && voted != Some(Vote::Yes) {
                    return fx;
                }
                self.decide(tx, decision, &mut fx);
                if from == self.setup.coordinator {
                    fx.send_after_sync(from, Msg::Ack { tx });
                }
            }
            Msg::Ask { tx } if from != self.id => {
                let t = *self.txs.entry(tx).or_default();
                match (t.vote, t.decision) {
                    (_, Some(decision)) => fx.send(from, Msg::Outcome { tx, decision }),
                    // Not voted yet: this participant may still refuse, and so it does.
                    (None, None) => {
                        self.vote(tx, Vote::No, &mut fx);
                        fx.send_after_sync(
                            from,
                            Msg::Outcome {
                                tx,
                                decision: Decision::Abort,
                            },
                        );
                    }
                    // Voted yes, uncertain itself: nothing to tell.
                    (Some(_), None) => {}
                }
            }
            _ => {}
        }
        fx
    }

    /// Uncertain for too long: ask the coordinator and every other participant.
    pub fn on_timer(&mut self, tx: TxId) -> Fx {
        let mut fx = Fx::new();
        if let Some(t) = self.txs.get(&tx) {
            if t.vote == Some(Vote::Yes) && t.decision.is_none() {
                if self.setup.bug == Some(PlantedBug::UncertainParticipantAborts) {
                    // The bug: the coordinator may have decided commit.
                    self.decide(tx, Decision::Abort, &mut fx);
                    return fx;
                }
                fx.send(self.setup.coordinator, Msg::Ask { tx });
                let others: Vec<NodeId> = self.setup.others(self.id).copied().collect();
                fx.broadcast(&others, Msg::Ask { tx });
                fx.arm(CommitTimer { tx }, self.setup.timeout);
            }
        }
        fx
    }

    /// The decision on `tx`, if known here.
    pub fn decision(&self, tx: TxId) -> Option<Decision> {
        self.txs.get(&tx).and_then(|t| t.decision)
    }

    fn vote(&mut self, tx: TxId, vote: Vote, fx: &mut Fx) {
        let t = self.txs.entry(tx).or_default();
        assert!(t.vote.is_none(), "voting twice on {tx}");
        t.vote = Some(vote);
        fx.persist(Record::Voted { tx, vote });
        fx.output(CommitOutput::Voted { tx, vote });
        match vote {
            // A no vote decides the transaction: it can only abort.
            Vote::No => self.decide(tx, Decision::Abort, fx),
            Vote::Yes => fx.arm(CommitTimer { tx }, self.setup.timeout),
        }
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
