//! A Paxos Commit leader: learns each instance's outcome from phase-2b messages, decides the
//! transaction, and, when a transaction stalls, recovers it in a ballot of its own.
//!
//! The coordinator is the first leader; every acceptor is a standby leader that acts when a
//! participant asks it for help. A leader keeps no per-transaction record: what it learned is
//! in the acceptors. It persists only the highest round it used, so that it never sends two
//! different proposals under one ballot, even across a restart.

use super::{Fx, Msg, Record, Val};
use crate::ballot::{Ballot, NodeId};
use crate::bugs::PlantedBug;
use crate::commit::{CommitTimer, Decision, Setup, TxId};
use crate::rng::SplitMix64;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
enum Round {
    Phase1 {
        ballot: Ballot,
        promises: BTreeMap<NodeId, Vec<(NodeId, Ballot, Val)>>,
    },
    Phase2,
}

#[derive(Debug, Default, Clone)]
struct Tx {
    /// Per `(inst, ballot)`: the value and the acceptors that accepted it.
    tally: BTreeMap<(NodeId, Ballot), (Val, BTreeSet<NodeId>)>,
    chosen: BTreeMap<NodeId, Val>,
    decision: Option<Decision>,
    round: Option<Round>,
}

/// A leader, for every transaction.
#[derive(Debug)]
pub struct Leader {
    id: NodeId,
    setup: Setup,
    /// The highest round this leader used or saw refused.
    round: u64,
    txs: BTreeMap<TxId, Tx>,
    rng: SplitMix64,
}

impl Leader {
    /// Restarts above every round it used before.
    pub fn recover(setup: &Setup, id: NodeId, records: &[Record]) -> Self {
        let round = records
            .iter()
            .filter_map(|r| match r {
                Record::LeaderRound(r) => Some(*r),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        Leader {
            id,
            setup: setup.clone(),
            round,
            txs: BTreeMap::new(),
            rng: SplitMix64::new(id.wrapping_mul(0x9E37_79B9).wrapping_add(round)),
        }
    }

    /// Coordinator: asks every participant to prepare `tx` (each then votes in its instance).
    pub fn begin(&mut self, tx: TxId) -> Fx {
        let mut fx = Fx::new();
        if self.txs.contains_key(&tx) {
            return fx;
        }
        self.txs.insert(tx, Tx::default());
        fx.broadcast(&self.setup.participants, Msg::Prepare { tx });
        fx.arm(CommitTimer { tx }, 2 * self.setup.timeout);
        fx
    }

    /// Phase 1b and 2b from acceptors, refusals, and participants' calls for help.
    pub fn on_message(&mut self, from: NodeId, msg: Msg) -> Fx {
        let mut fx = Fx::new();
        let from_acceptor = self.setup.acceptors.contains(&from);
        match msg {
            Msg::Phase2b { tx, ballot, values } if from_acceptor => {
                let t = self.txs.entry(tx).or_default();
                for (inst, v) in values {
                    if !self.setup.participants.contains(&inst) {
                        continue;
                    }
                    let (val, who) = t
                        .tally
                        .entry((inst, ballot))
                        .or_insert_with(|| (v, BTreeSet::new()));
                    // One ballot carries one value per instance; anything else is not from a
                    // correct acceptor and is not counted.
                    if *val == v {
                        who.insert(from);
                        if who.len() >= self.setup.acceptor_quorum() {
                            t.chosen.entry(inst).or_insert(v);
                        }
                    }
                }
                self.maybe_decide(tx, &mut fx);
            }
            Msg::Phase1b {
                tx,
                ballot,
                accepted,
            } if from_acceptor => {
                let quorum = self.setup.acceptor_quorum();
                let Some(t) = self.txs.get_mut(&tx) else {
                    return fx;
                };
                let Some(Round::Phase1 {
                    ballot: mine,
                    promises,
                }) = &mut t.round
                else {
                    return fx;
                };
                if *mine != ballot {
                    return fx;
                }
                promises.insert(from, accepted);
                if promises.len() < quorum {
                    return fx;
                }
                // Per instance, the value of the highest ballot any promiser accepted: it may
                // have been chosen. Where none accepted anything, nothing was chosen: abort it.
                let mut best: BTreeMap<NodeId, (Ballot, Val)> = BTreeMap::new();
                for &(inst, b, v) in promises.values().flatten() {
                    if best.get(&inst).is_none_or(|(bb, _)| b > *bb) {
                        best.insert(inst, (b, v));
                    }
                }
                let values: Vec<(NodeId, Val)> = self
                    .setup
                    .participants
                    .iter()
                    .map(|&p| (p, best.get(&p).map(|&(_, v)| v).unwrap_or(Val::Aborted)))
                    .map(|(p, v)| match self.setup.bug {
                        Some(PlantedBug::RecoveryIgnoresVotes) => (p, Val::Aborted),
                        _ => (p, v),
                    })
                    .collect();
                t.round = Some(Round::Phase2);
                fx.broadcast(&self.setup.acceptors, Msg::Phase2a { tx, ballot, values });
            }
            Msg::Nack { tx, promised } if from_acceptor => {
                self.round = self.round.max(promised.round);
                if let Some(t) = self.txs.get_mut(&tx) {
                    t.round = None;
                }
            }
            Msg::Help { tx } if self.setup.participants.contains(&from) => {
                let t = self.txs.entry(tx).or_default();
                match t.decision {
                    Some(decision) => fx.send(from, Msg::Outcome { tx, decision }),
                    None if t.round.is_none() => self.recover_tx(tx, &mut fx),
                    None => {}
                }
            }
            _ => {}
        }
        fx
    }

    /// A transaction still undecided: (re)start recovering it in a new ballot.
    pub fn on_timer(&mut self, tx: TxId) -> Fx {
        let mut fx = Fx::new();
        if self.txs.get(&tx).is_some_and(|t| t.decision.is_none()) {
            self.recover_tx(tx, &mut fx);
        }
        fx
    }

    /// What this leader decided on `tx`.
    pub fn decision(&self, tx: TxId) -> Option<Decision> {
        self.txs.get(&tx).and_then(|t| t.decision)
    }

    fn recover_tx(&mut self, tx: TxId, fx: &mut Fx) {
        self.round += 1;
        let ballot = Ballot::new(self.round, self.id);
        fx.persist(Record::LeaderRound(self.round));
        let t = self.txs.entry(tx).or_default();
        t.round = Some(Round::Phase1 {
            ballot,
            promises: BTreeMap::new(),
        });
        fx.broadcast_after_sync(&self.setup.acceptors, Msg::Phase1a { tx, ballot });
        let jitter = self.rng.range(0, self.setup.timeout);
        fx.arm(CommitTimer { tx }, 2 * self.setup.timeout + jitter);
    }

    fn maybe_decide(&mut self, tx: TxId, fx: &mut Fx) {
        let t = self.txs.get_mut(&tx).expect("tallied above");
        if t.decision.is_some() {
            return;
        }
        let all = &self.setup.participants;
        let decision = if t.chosen.values().any(|&v| v == Val::Aborted) {
            Decision::Abort
        } else if all.iter().all(|p| t.chosen.get(p) == Some(&Val::Prepared)) {
            Decision::Commit
        } else {
            return;
        };
        t.decision = Some(decision);
        t.round = None;
        fx.broadcast(all, Msg::Outcome { tx, decision });
    }
}
