//! A Paxos Commit acceptor: one Paxos acceptor for every instance of every transaction, with
//! one promise per transaction covering all its instances (a leader recovers them together).

use super::{Fx, Msg, Record, Val};
use crate::ballot::{Ballot, NodeId};
use crate::commit::{Setup, TxId};
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone)]
struct Tx {
    promised: Ballot,
    accepted: BTreeMap<NodeId, (Ballot, Val)>,
}

/// The acceptor.
#[derive(Debug)]
pub struct Acceptor {
    setup: Setup,
    txs: BTreeMap<TxId, Tx>,
}

impl Acceptor {
    /// Restarts from its promises and votes.
    pub fn recover(setup: &Setup, _id: NodeId, records: &[Record]) -> Self {
        let mut a = Acceptor {
            setup: setup.clone(),
            txs: BTreeMap::new(),
        };
        for r in records {
            match r {
                Record::Promised { tx, ballot } => {
                    let t = a.txs.entry(*tx).or_default();
                    t.promised = t.promised.max(*ballot);
                }
                Record::Accepted { tx, ballot, values } => a.accept(*tx, *ballot, values),
                _ => {}
            }
        }
        a
    }

    /// Who leads `ballot`: the coordinator for the participants' own ballot 0.
    fn leader_of(&self, ballot: Ballot) -> NodeId {
        if ballot.is_zero() {
            self.setup.coordinator
        } else {
            ballot.node
        }
    }

    /// Phase 1a and 2a. Malformed requests (a ballot 0 value sent by anyone but its
    /// participant, a ballot sent by anyone but its owner, unknown instances) are ignored.
    pub fn on_message(&mut self, from: NodeId, msg: Msg) -> Fx {
        let mut fx = Fx::new();
        match msg {
            Msg::Phase1a { tx, ballot } => {
                if ballot.is_zero() || from != ballot.node {
                    return fx;
                }
                let t = self.txs.entry(tx).or_default();
                if ballot < t.promised {
                    fx.send(
                        from,
                        Msg::Nack {
                            tx,
                            promised: t.promised,
                        },
                    );
                    return fx;
                }
                if ballot > t.promised {
                    t.promised = ballot;
                    fx.persist(Record::Promised { tx, ballot });
                }
                let accepted = t.accepted.iter().map(|(&i, &(b, v))| (i, b, v)).collect();
                fx.send_after_sync(
                    from,
                    Msg::Phase1b {
                        tx,
                        ballot,
                        accepted,
                    },
                );
            }
            Msg::Phase2a { tx, ballot, values } => {
                let own_vote = ballot.is_zero()
                    && values.len() == 1
                    && values[0].0 == from
                    && self.setup.participants.contains(&from);
                let leaders = !ballot.is_zero()
                    && from == ballot.node
                    && values
                        .iter()
                        .all(|(i, _)| self.setup.participants.contains(i));
                if !own_vote && !leaders {
                    return fx;
                }
                let promised = self.txs.get(&tx).map(|t| t.promised).unwrap_or_default();
                if ballot < promised {
                    if !ballot.is_zero() {
                        fx.send(from, Msg::Nack { tx, promised });
                    }
                    return fx;
                }
                self.accept(tx, ballot, &values);
                fx.persist(Record::Accepted {
                    tx,
                    ballot,
                    values: values.clone(),
                });
                fx.send_after_sync(self.leader_of(ballot), Msg::Phase2b { tx, ballot, values });
            }
            _ => {}
        }
        fx
    }

    fn accept(&mut self, tx: TxId, ballot: Ballot, values: &[(NodeId, Val)]) {
        let t = self.txs.entry(tx).or_default();
        t.promised = t.promised.max(ballot);
        for &(inst, v) in values {
            t.accepted.insert(inst, (ballot, v));
        }
    }
}
