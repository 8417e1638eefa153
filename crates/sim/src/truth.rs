//! Ground truth for Multi-Paxos, computed from every vote any acceptor ever persisted.
//!
//! A value is *chosen* for a slot the moment a phase-2 quorum of acceptors has voted for it in
//! one ballot, whether or not anyone has noticed yet. The simulator sees every vote as it is
//! persisted, so it knows exactly what is chosen at every instant, and holds every node's claims
//! (learned, applied, acknowledged) against that.

use crate::kv::KvOp;
use crate::report::Violation;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use synod_core::multi::{ClientId, Slot, Value};
use synod_core::{Ballot, NodeId, QuorumSystem};

/// Everything chosen so far, and the votes that chose it.
pub struct Truth {
    quorum: Box<dyn QuorumSystem>,
    votes: HashMap<(Slot, Ballot), (Value<KvOp>, BTreeSet<NodeId>)>,
    chosen: BTreeMap<Slot, Value<KvOp>>,
    /// Where each client command was first chosen.
    placed: HashMap<(ClientId, u64), Slot>,
    /// Every command any client issued, for validity.
    issued: HashMap<(ClientId, u64), KvOp>,
}

impl Truth {
    /// Ground truth for acceptors judged by `quorum`.
    pub fn new(quorum: Box<dyn QuorumSystem>) -> Self {
        Truth {
            quorum,
            votes: HashMap::new(),
            chosen: BTreeMap::new(),
            placed: HashMap::new(),
            issued: HashMap::new(),
        }
    }

    /// A client issued `op` as `(client, seq)`.
    pub fn issued(&mut self, client: ClientId, seq: u64, op: KvOp) {
        self.issued.insert((client, seq), op);
    }

    /// Acceptor `node` persisted a vote. Checks agreement and validity when it completes a quorum.
    pub fn vote(
        &mut self,
        at: u64,
        node: NodeId,
        slot: Slot,
        ballot: Ballot,
        value: &Value<KvOp>,
    ) -> Result<bool, Violation> {
        let (v, voters) = self
            .votes
            .entry((slot, ballot))
            .or_insert_with(|| (value.clone(), BTreeSet::new()));
        if v != value {
            return Err(Violation {
                check: "agreement",
                at,
                detail: format!(
                    "two values proposed for slot {slot} in one ballot {ballot}: {v:?} and {value:?}"
                ),
            });
        }
        voters.insert(node);
        if !self.quorum.is_phase2_quorum(voters) {
            return Ok(false);
        }
        match self.chosen.get(&slot) {
            Some(c) if c != value => Err(Violation {
                check: "agreement",
                at,
                detail: format!(
                    "slot {slot} chosen twice: first {c:?}, then {value:?} by a quorum {voters:?} \
                     in ballot {ballot}"
                ),
            }),
            Some(_) => Ok(false),
            None => {
                for cmd in value.commands() {
                    match self.issued.get(&(cmd.client, cmd.seq)) {
                        Some(op) if *op == cmd.op => {}
                        _ => {
                            return Err(Violation {
                                check: "validity",
                                at,
                                detail: format!(
                                    "slot {slot} chose a command no client issued: {cmd:?}"
                                ),
                            })
                        }
                    }
                    self.placed.entry((cmd.client, cmd.seq)).or_insert(slot);
                }
                self.chosen.insert(slot, value.clone());
                Ok(true)
            }
        }
    }

    /// The chosen value of `slot`, if any.
    pub fn chosen(&self, slot: Slot) -> Option<&Value<KvOp>> {
        self.chosen.get(&slot)
    }

    /// The slot where `(client, seq)` was chosen, if it was.
    pub fn placed(&self, client: ClientId, seq: u64) -> Option<Slot> {
        self.placed.get(&(client, seq)).copied()
    }

    /// Number of slots chosen.
    pub fn decisions(&self) -> u64 {
        self.chosen.len() as u64
    }

    /// Checks a node's claim that `slot` holds `value` (learned, applied or recovered).
    pub fn confirm(
        &self,
        at: u64,
        node: NodeId,
        what: &'static str,
        slot: Slot,
        value: &Value<KvOp>,
    ) -> Result<(), Violation> {
        match self.chosen.get(&slot) {
            Some(c) if c == value => Ok(()),
            Some(c) => Err(Violation {
                check: if what == "applied" {
                    "applied-prefix"
                } else {
                    "agreement"
                },
                at,
                detail: format!(
                    "node {node} {what} slot {slot} as {value:?}, but {c:?} was chosen"
                ),
            }),
            None => Err(Violation {
                check: if what == "applied" {
                    "applied-prefix"
                } else {
                    "agreement"
                },
                at,
                detail: format!(
                    "node {node} {what} slot {slot} as {value:?} before any value was chosen there"
                ),
            }),
        }
    }
}
