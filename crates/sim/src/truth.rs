//! Ground truth for Multi-Paxos, computed from every vote any acceptor ever persisted.
//!
//! A value is *chosen* for a slot the moment a phase-2 quorum of acceptors has voted for it in
//! one ballot, whether or not anyone has noticed yet. The simulator sees every vote as it is
//! persisted, so it knows exactly what is chosen at every instant, and holds every node's claims
//! (learned, applied, acknowledged) against that.
//!
//! "A phase-2 quorum" means one of the slot's own configuration. Truth keeps the membership the
//! way a replica does, applying each change chosen in the log (same code, its own copy), so it
//! knows `config(s)` once every slot up to `s - alpha` is chosen: never later than any correct
//! node could claim `s` chosen. Votes in slots beyond that wait and are judged then.

use crate::report::Violation;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Debug;
use synod_core::multi::{Membership, Slot, Value};
use synod_core::{Ballot, NodeId, QuorumSystem};

/// Everything chosen so far, and the votes that chose it. Commands are told apart by their
/// encoding: the simulated clients make every write unique, and the node layer picks the
/// session ids, so `(client, seq)` is not the client's to know.
pub struct Truth<C> {
    membership: Membership,
    /// The first slot not chosen.
    prefix: Slot,
    /// Votes cast in slots whose configuration is not known yet.
    waiting: BTreeSet<(Slot, Ballot)>,
    votes: HashMap<(Slot, Ballot), (Value<C>, BTreeSet<NodeId>)>,
    chosen: BTreeMap<Slot, Value<C>>,
    /// Where each command was first chosen, by its encoding.
    placed: HashMap<Vec<u8>, Slot>,
    /// Every command any client issued, by its encoding, for validity.
    issued: HashSet<Vec<u8>>,
}

/// Two votes of one slot and ballot agree: the same value, or a value and its digest.
fn same_value<C: Serialize + Eq>(a: &Value<C>, b: &Value<C>) -> bool {
    match a.is_digest() || b.is_digest() {
        true => a.digest().map(|d| d.0) == b.digest().map(|d| d.0),
        false => a == b,
    }
}

fn key<C: Serialize>(op: &C) -> Vec<u8> {
    postcard::to_stdvec(op).expect("commands serialize")
}

impl<C: Clone + Eq + Debug + Serialize> Truth<C> {
    /// Ground truth for a cluster that starts with `genesis`.
    pub fn new(genesis: Membership) -> Self {
        Truth {
            membership: genesis,
            prefix: 0,
            waiting: BTreeSet::new(),
            votes: HashMap::new(),
            chosen: BTreeMap::new(),
            placed: HashMap::new(),
            issued: HashSet::new(),
        }
    }

    /// A client issued `op`.
    pub fn issued(&mut self, op: &C) {
        self.issued.insert(key(op));
    }

    /// Acceptor `node` persisted a vote. Checks agreement and validity when it completes a quorum.
    pub fn vote(
        &mut self,
        at: u64,
        node: NodeId,
        slot: Slot,
        ballot: Ballot,
        value: &Value<C>,
    ) -> Result<bool, Violation> {
        let (v, voters) = self
            .votes
            .entry((slot, ballot))
            .or_insert_with(|| (value.clone(), BTreeSet::new()));
        if !same_value(v, value) {
            return Err(Violation {
                check: "agreement",
                at,
                detail: format!(
                    "two values proposed for slot {slot} in one ballot {ballot}: {v:?} and {value:?}"
                ),
            });
        }
        if v.is_digest() && !value.is_digest() {
            // An auxiliary's digest came first; the value behind it is what the ballot chose.
            *v = value.clone();
        }
        voters.insert(node);
        if slot >= self.prefix + self.membership.alpha() {
            self.waiting.insert((slot, ballot));
            return Ok(false);
        }
        let chosen = self.judge(at, slot, ballot)?;
        if chosen {
            self.advance(at)?;
        }
        Ok(chosen)
    }

    /// The membership as ground truth knows it.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Moves the chosen prefix on, applying the membership changes it passes, and judges the
    /// votes that were waiting for their slot's configuration.
    fn advance(&mut self, at: u64) -> Result<(), Violation> {
        loop {
            while let Some(v) = self.chosen.get(&self.prefix) {
                if let Value::Reconfig(change) = v {
                    self.membership.apply(self.prefix, change);
                }
                self.prefix += 1;
            }
            let known = self.prefix + self.membership.alpha();
            let ready: Vec<(Slot, Ballot)> = self
                .waiting
                .iter()
                .take_while(|(s, _)| *s < known)
                .copied()
                .collect();
            if ready.is_empty() {
                return Ok(());
            }
            for (slot, ballot) in ready {
                self.waiting.remove(&(slot, ballot));
                self.judge(at, slot, ballot)?;
            }
        }
    }

    /// Judges the votes of `(slot, ballot)` against the slot's configuration: true if they
    /// just chose a value.
    fn judge(&mut self, at: u64, slot: Slot, ballot: Ballot) -> Result<bool, Violation> {
        // Disjoint borrows: the votes are read while the chosen log is written, without a copy.
        let Truth {
            membership,
            votes,
            chosen,
            placed,
            issued,
            ..
        } = self;
        let (value, voters) = &votes[&(slot, ballot)];
        if !membership.at(slot).quorum().is_phase2_quorum(voters) {
            return Ok(false);
        }
        if value.is_digest() {
            // Seed 002: a value is chosen by votes for it or its hash only if one of them
            // holds the value itself; chosen by digests alone, no acceptor could tell it.
            return Err(Violation {
                check: "validity",
                at,
                detail: format!("slot {slot} chosen by digests alone, by {voters:?}"),
            });
        }
        match chosen.get(&slot) {
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
                    let k = key(&cmd.op);
                    if !issued.contains(&k) {
                        return Err(Violation {
                            check: "validity",
                            at,
                            detail: format!(
                                "slot {slot} chose a command no client issued: {cmd:?}"
                            ),
                        });
                    }
                    placed.entry(k).or_insert(slot);
                }
                chosen.insert(slot, value.clone());
                Ok(true)
            }
        }
    }

    /// The chosen value of `slot`, if any.
    pub fn chosen(&self, slot: Slot) -> Option<&Value<C>> {
        self.chosen.get(&slot)
    }

    /// The slot where `op` was first chosen, if it was.
    pub fn placed(&self, op: &C) -> Option<Slot> {
        self.placed.get(&key(op)).copied()
    }

    /// Every slot chosen so far, in order.
    pub fn chosen_log(&self) -> &BTreeMap<Slot, Value<C>> {
        &self.chosen
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
        value: &Value<C>,
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
