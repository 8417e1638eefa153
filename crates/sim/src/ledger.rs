//! What the Byzantine simulators check, shared by PBFT and Fast Byzantine Paxos: a log of
//! client requests executed by replicas of which some lie, and clients that take results.
//!
//! Over the correct replicas only:
//! - agreement: no two execute different requests at one slot, or compute different results
//!   for one request;
//! - validity: a request executed is one a client sent;
//! - clients: a result a client took is the one correct replicas computed, and a request that
//!   finished before another began comes first in the log;
//! - liveness (with [`Ledger::finished`]): every request done, and every correct replica
//!   executed through the last of them.

use crate::report::Violation;
use std::collections::BTreeMap;
use synod_core::NodeId;

/// Client ids start above this; replicas are 1..=N.
pub const CLIENT_BASE: NodeId = 100;

/// The `k`-th request of client `id`.
pub fn command(id: NodeId, k: usize) -> String {
    format!("c{}.{}", id - CLIENT_BASE, k + 1)
}

struct Finished {
    client: NodeId,
    index: u64,
    ended: u64,
}

/// The truth the checks compare against, built from correct replicas' outputs.
pub struct Ledger {
    clients: Vec<NodeId>,
    commands: usize,
    /// What correct replicas executed at each slot (none: a no-op).
    executed: BTreeMap<u64, Option<String>>,
    /// The result correct replicas computed for each request.
    results: BTreeMap<String, u64>,
    /// The slot each correct replica executed through, since its last boot.
    pub through: BTreeMap<NodeId, u64>,
    began: BTreeMap<NodeId, u64>,
    finished: Vec<Finished>,
    /// Slots executed, and of those no-ops.
    pub slots: u64,
    /// No-ops executed.
    pub nulls: u64,
}

fn violation(check: &'static str, at: u64, detail: String) -> Result<(), Violation> {
    Err(Violation { check, at, detail })
}

impl Ledger {
    /// A ledger for `clients`, each sending `commands` requests.
    pub fn new(clients: Vec<NodeId>, commands: usize) -> Self {
        Ledger {
            began: clients.iter().map(|&c| (c, 0)).collect(),
            clients,
            commands,
            executed: BTreeMap::new(),
            results: BTreeMap::new(),
            through: BTreeMap::new(),
            finished: Vec::new(),
            slots: 0,
            nulls: 0,
        }
    }

    fn proposed(&self, value: &str) -> bool {
        self.clients
            .iter()
            .any(|&c| (0..self.commands).any(|k| command(c, k) == value))
    }

    /// Requests the clients send in all.
    pub fn total(&self) -> u64 {
        (self.clients.len() * self.commands) as u64
    }

    /// Requests clients took a result for.
    pub fn done_count(&self) -> u64 {
        self.finished.len() as u64
    }

    /// True when nothing was executed at `slot` yet.
    pub fn first_at(&self, slot: u64) -> bool {
        !self.executed.contains_key(&slot)
    }

    /// A correct replica executed `request` at `slot`, with `result` (none: a repeat).
    pub fn executed(
        &mut self,
        node: NodeId,
        slot: u64,
        request: Option<(String, Option<u64>)>,
        now: u64,
    ) -> Result<(), Violation> {
        let op = request.as_ref().map(|(op, _)| op.clone());
        match self.executed.get(&slot) {
            Some(known) if *known != op => {
                let d = format!(
                    "replica {node} executed {op:?} at slot {slot}, another correct replica {known:?}"
                );
                return violation("agreement", now, d);
            }
            Some(_) => {}
            None => {
                if let Some(op) = &op {
                    if !self.proposed(op) {
                        return violation("validity", now, format!("{op} executed, never sent"));
                    }
                }
                self.slots += 1;
                self.nulls += op.is_none() as u64;
                self.executed.insert(slot, op);
            }
        }
        if let Some((op, Some(result))) = request {
            match self.results.get(&op) {
                Some(r) if *r != result => {
                    let d = format!(
                        "replica {node} computed {result} for {op}, another correct replica {r}"
                    );
                    return violation("agreement", now, d);
                }
                Some(_) => {}
                None => {
                    self.results.insert(op, result);
                }
            }
        }
        let t = self.through.entry(node).or_default();
        *t = (*t).max(slot);
        Ok(())
    }

    /// A client took `result` for `op`: correct replicas must have computed it, and real time
    /// order must agree with the log's.
    pub fn done(
        &mut self,
        client: NodeId,
        op: &str,
        result: u64,
        now: u64,
    ) -> Result<(), Violation> {
        if self.results.get(op) != Some(&result) {
            let d = format!(
                "client {client} took {result} for {op}, but correct replicas computed {:?}",
                self.results.get(op)
            );
            return violation("client-result", now, d);
        }
        let began = self.began.insert(client, now).unwrap_or(0);
        if let Some(before) = self
            .finished
            .iter()
            .find(|f| f.ended < began && f.index > result)
        {
            let d = format!(
                "request #{} of client {} finished at t={} before client {client}'s {op} began (t>={began}), yet comes after it (#{result})",
                before.index, before.client, before.ended
            );
            return violation("linearizability", now, d);
        }
        self.finished.push(Finished {
            client,
            index: result,
            ended: now,
        });
        Ok(())
    }

    /// The last slot a request (not a no-op) executed at.
    pub fn last_request_slot(&self) -> u64 {
        self.executed
            .iter()
            .rev()
            .find(|(_, op)| op.is_some())
            .map_or(0, |(s, _)| *s)
    }

    /// True when every request is done and every one of `correct` executed through the last.
    pub fn finished(&self, correct: &[NodeId]) -> bool {
        let last = self.last_request_slot();
        self.done_count() == self.total()
            && correct
                .iter()
                .all(|r| self.through.get(r).copied().unwrap_or(0) >= last)
    }

    /// What is missing for [`Ledger::finished`].
    pub fn missing(&self, correct: &[NodeId]) -> String {
        let last = self.last_request_slot();
        let behind: Vec<String> = correct
            .iter()
            .filter(|r| self.through.get(r).copied().unwrap_or(0) < last)
            .map(|r| format!("{r} ({})", self.through.get(r).copied().unwrap_or(0)))
            .collect();
        format!(
            "{} of {} requests done; correct replicas behind slot {last}: {}",
            self.done_count(),
            self.total(),
            behind.join(", "),
        )
    }
}
