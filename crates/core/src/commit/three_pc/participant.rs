//! A 3PC participant, and the termination protocol it runs when the coordinator falls silent.

use super::{Fx, Msg, Record};
use crate::ballot::NodeId;
use crate::commit::{CommitOutput, CommitTimer, Decision, Setup, TxId, Vote};
use std::collections::{BTreeMap, BTreeSet};

/// Where a participant is in a transaction, as reported to a termination leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// Voted yes, not pre-committed.
    Uncertain,
    /// Pre-committed: every participant voted yes.
    PreCommitted,
    /// Decided commit.
    Committed,
    /// Decided abort (or refused).
    Aborted,
}

/// A termination run led by this participant.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Leading {
    /// Collecting states until the timer fires.
    Collecting(BTreeMap<NodeId, State>),
    /// Moved the uncertain ones to pre-committed; commits when the timer fires.
    PreCommitting,
}

#[derive(Debug, Default, Clone)]
struct Tx {
    vote: Option<Vote>,
    precommitted: bool,
    decision: Option<Decision>,
    leading: Option<Leading>,
    /// Undecided when this participant restarted: the others may have finished without it
    /// (taking it for crashed), so it may not take silence for a crash in turn.
    recovered: bool,
}

impl Tx {
    fn state(&self) -> Option<State> {
        Some(match (self.decision, self.precommitted, self.vote) {
            (Some(Decision::Commit), _, _) => State::Committed,
            (Some(Decision::Abort), _, _) | (None, _, Some(Vote::No)) => State::Aborted,
            (None, true, _) => State::PreCommitted,
            (None, false, Some(Vote::Yes)) => State::Uncertain,
            (None, false, None) => return None,
        })
    }
}

/// A participant in every transaction.
#[derive(Debug)]
pub struct Participant {
    id: NodeId,
    setup: Setup,
    txs: BTreeMap<TxId, Tx>,
}

impl Participant {
    /// Restarts from its records; an undecided transaction it voted yes on is finished by the
    /// termination protocol when its timer fires (it may not decide alone).
    pub fn recover(setup: &Setup, id: NodeId, records: &[Record]) -> (Self, Fx) {
        let mut p = Participant {
            id,
            setup: setup.clone(),
            txs: BTreeMap::new(),
        };
        for r in records {
            match *r {
                Record::Voted { tx, vote } => p.txs.entry(tx).or_default().vote = Some(vote),
                Record::PreCommitted { tx } => p.txs.entry(tx).or_default().precommitted = true,
                Record::Decided { tx, decision } => {
                    p.txs.entry(tx).or_default().decision = Some(decision)
                }
                Record::CoordinatorPreCommit { .. } | Record::Decision { .. } => {}
            }
        }
        let mut fx = Fx::new();
        let undecided: Vec<TxId> = p
            .txs
            .iter()
            .filter(|(_, t)| t.vote == Some(Vote::Yes) && t.decision.is_none())
            .map(|(&tx, _)| tx)
            .collect();
        for tx in undecided {
            p.txs.get_mut(&tx).expect("present").recovered = true;
            p.arm(tx, &mut fx);
        }
        (p, fx)
    }

    /// Waits longer the later it comes in the participant list, so that the first one alive
    /// usually leads the termination alone.
    fn arm(&self, tx: TxId, fx: &mut Fx) {
        let rank = self
            .setup
            .participants
            .iter()
            .position(|&p| p == self.id)
            .unwrap_or(0) as u64;
        fx.arm(CommitTimer { tx }, self.setup.timeout * (2 + rank));
    }

    /// Every message of the protocol and of its termination.
    pub fn on_message(&mut self, from: NodeId, msg: Msg) -> Fx {
        let mut fx = Fx::new();
        let known = from == self.setup.coordinator || self.setup.participants.contains(&from);
        if !known || from == self.id {
            return fx;
        }
        match msg {
            Msg::CanCommit { tx } if from == self.setup.coordinator => {
                let t = self.txs.entry(tx).or_default().clone();
                match t.vote {
                    Some(vote) => fx.send_after_sync(from, Msg::Vote { tx, vote }),
                    None if t.decision.is_some() => {}
                    None => {
                        let vote = self.setup.vote_of(tx, self.id);
                        self.vote(tx, vote, &mut fx);
                        fx.send_after_sync(from, Msg::Vote { tx, vote });
                    }
                }
            }
            Msg::PreCommit { tx } => {
                let t = self.txs.entry(tx).or_default();
                if t.vote != Some(Vote::Yes) || t.decision.is_some() {
                    return fx;
                }
                if !t.precommitted {
                    t.precommitted = true;
                    fx.persist(Record::PreCommitted { tx });
                }
                fx.send_after_sync(from, Msg::PreAck { tx });
                self.arm(tx, &mut fx);
            }
            Msg::Outcome { tx, decision } => {
                let voted = self.txs.get(&tx).and_then(|t| t.vote);
                if decision == Decision::Commit && voted != Some(Vote::Yes) {
                    return fx;
                }
                self.decide(tx, decision, &mut fx);
                if from == self.setup.coordinator {
                    fx.send_after_sync(from, Msg::Ack { tx });
                }
            }
            Msg::StateRequest { tx } => {
                let state = match self.txs.get(&tx).and_then(Tx::state) {
                    Some(s) => s,
                    // Not voted yet: refuse, so the leader may abort.
                    None => {
                        self.vote(tx, Vote::No, &mut fx);
                        State::Aborted
                    }
                };
                fx.send_after_sync(from, Msg::StateReport { tx, state });
                // Someone leads the termination: give it time before leading one too.
                if state == State::Uncertain || state == State::PreCommitted {
                    self.arm(tx, &mut fx);
                }
            }
            Msg::StateReport { tx, state } => {
                if let Some(Tx {
                    leading: Some(Leading::Collecting(reports)),
                    ..
                }) = self.txs.get_mut(&tx)
                {
                    reports.insert(from, state);
                }
            }
            _ => {}
        }
        fx
    }

    /// The coordinator fell silent: lead the termination protocol, one stage per firing.
    pub fn on_timer(&mut self, tx: TxId) -> Fx {
        let mut fx = Fx::new();
        let Some(t) = self.txs.get(&tx).cloned() else {
            return fx;
        };
        if t.decision.is_some() || t.vote != Some(Vote::Yes) {
            return fx;
        }
        match t.leading {
            None => {
                let mut reports = BTreeMap::new();
                reports.insert(self.id, t.state().expect("voted"));
                self.txs.get_mut(&tx).expect("present").leading =
                    Some(Leading::Collecting(reports));
                let others: Vec<NodeId> = self.setup.others(self.id).copied().collect();
                fx.broadcast(&others, Msg::StateRequest { tx });
                fx.arm(CommitTimer { tx }, self.setup.timeout);
            }
            Some(Leading::Collecting(reports)) => {
                let states: BTreeSet<State> = reports.values().copied().collect();
                let settled =
                    states.contains(&State::Committed) || states.contains(&State::Aborted);
                if t.recovered && !settled && reports.len() < self.setup.participants.len() {
                    // Back from a crash: decide only from everyone's state, or adopt an
                    // outcome someone knows. Until then, ask again (3PC blocks on this after
                    // a total failure, as it must).
                    let missing: Vec<NodeId> = self
                        .setup
                        .others(self.id)
                        .filter(|p| !reports.contains_key(p))
                        .copied()
                        .collect();
                    fx.broadcast(&missing, Msg::StateRequest { tx });
                    fx.arm(CommitTimer { tx }, self.setup.timeout);
                    return fx;
                }
                if states.contains(&State::Committed) {
                    self.finish(tx, Decision::Commit, &mut fx);
                } else if states.contains(&State::Aborted) {
                    self.finish(tx, Decision::Abort, &mut fx);
                } else if states.contains(&State::PreCommitted) {
                    // Move everyone reachable to pre-committed before anyone commits, so that
                    // if this leader dies, the next one still finds a pre-committed state.
                    let t = self.txs.get_mut(&tx).expect("present");
                    t.leading = Some(Leading::PreCommitting);
                    if !t.precommitted {
                        t.precommitted = true;
                        fx.persist(Record::PreCommitted { tx });
                    }
                    let uncertain: Vec<NodeId> = reports
                        .iter()
                        .filter(|(_, s)| **s == State::Uncertain)
                        .map(|(&p, _)| p)
                        .filter(|&p| p != self.id)
                        .collect();
                    fx.broadcast_after_sync(&uncertain, Msg::PreCommit { tx });
                    fx.arm(CommitTimer { tx }, self.setup.timeout);
                } else {
                    // Everyone reachable is uncertain: nobody can have committed.
                    self.finish(tx, Decision::Abort, &mut fx);
                }
            }
            Some(Leading::PreCommitting) => self.finish(tx, Decision::Commit, &mut fx),
        }
        fx
    }

    /// The decision on `tx`, if known here.
    pub fn decision(&self, tx: TxId) -> Option<Decision> {
        self.txs.get(&tx).and_then(|t| t.decision)
    }

    fn finish(&mut self, tx: TxId, decision: Decision, fx: &mut Fx) {
        self.decide(tx, decision, fx);
        let others: Vec<NodeId> = self.setup.others(self.id).copied().collect();
        fx.broadcast_after_sync(&others, Msg::Outcome { tx, decision });
    }

    fn vote(&mut self, tx: TxId, vote: Vote, fx: &mut Fx) {
        let t = self.txs.entry(tx).or_default();
        assert!(t.vote.is_none(), "voting twice on {tx}");
        t.vote = Some(vote);
        fx.persist(Record::Voted { tx, vote });
        fx.output(CommitOutput::Voted { tx, vote });
        match vote {
            Vote::No => self.decide(tx, Decision::Abort, fx),
            Vote::Yes => self.arm(tx, fx),
        }
    }

    fn decide(&mut self, tx: TxId, decision: Decision, fx: &mut Fx) {
        let t = self.txs.entry(tx).or_default();
        if t.decision.is_some() {
            return;
        }
        t.decision = Some(decision);
        t.leading = None;
        fx.persist(Record::Decided { tx, decision });
        fx.output(CommitOutput::Decided { tx, decision });
    }
}
