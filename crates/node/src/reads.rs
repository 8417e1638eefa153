//! Linearizable reads waiting for the replica's go-ahead (ReadIndex), by read id.
//!
//! A follower asks the leader for a read index under the read's id, and the answer may arrive
//! after the follower restarted. Read ids therefore carry the boot epoch in their high bits: an
//! answer meant for an earlier boot names an id this boot never hands out, so it cannot serve a
//! later read at an index from before writes that read must see.

use crate::Ticket;
use std::collections::BTreeMap;
use synod_core::multi::ReadId;
use synod_kv::RangeRequest;

#[derive(Debug)]
struct Pending {
    req: RangeRequest,
    ticket: Ticket,
    since: u64,
}

/// Reads in progress.
#[derive(Debug)]
pub struct ReadTable {
    next: ReadId,
    waiting: BTreeMap<ReadId, Pending>,
    /// Reads that arrived this turn, handed to the replica together at its end.
    fresh: Vec<ReadId>,
}

impl ReadTable {
    /// No reads, in boot epoch `boot`; with `reuse_ids` (a planted bug), ids start from zero
    /// at every boot.
    pub fn new(boot: u64, reuse_ids: bool) -> Self {
        let base = if reuse_ids {
            0
        } else {
            (boot & 0xFFFF_FFFF) << 32
        };
        ReadTable {
            next: base,
            waiting: BTreeMap::new(),
            fresh: Vec::new(),
        }
    }

    /// Registers a read arriving at tick `now`; returns its id.
    pub fn add(&mut self, req: RangeRequest, ticket: Ticket, now: u64) -> ReadId {
        self.next += 1;
        let id = self.next;
        self.waiting.insert(
            id,
            Pending {
                req,
                ticket,
                since: now,
            },
        );
        self.fresh.push(id);
        id
    }

    /// The reads that arrived since the last call.
    pub fn take_fresh(&mut self) -> Vec<ReadId> {
        std::mem::take(&mut self.fresh)
    }

    /// Removes read `id`, returning its request and ticket.
    pub fn remove(&mut self, id: ReadId) -> Option<(RangeRequest, Ticket)> {
        self.waiting.remove(&id).map(|p| (p.req, p.ticket))
    }

    /// Removes and returns the reads waiting since `give_up` ticks before `now`.
    pub fn expired(&mut self, now: u64, give_up: u64) -> Vec<(ReadId, Ticket)> {
        let old: Vec<ReadId> = self
            .waiting
            .iter()
            .filter(|(_, p)| now - p.since >= give_up)
            .map(|(&id, _)| id)
            .collect();
        old.into_iter()
            .filter_map(|id| self.waiting.remove(&id).map(|p| (id, p.ticket)))
            .collect()
    }

    /// Every waiting read's ticket, for a node that stops.
    pub fn drain(&mut self) -> Vec<Ticket> {
        let t = self.waiting.values().map(|p| p.ticket).collect();
        self.waiting.clear();
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_two_boots_never_meet() {
        let mut a = ReadTable::new(1, false);
        let mut b = ReadTable::new(2, false);
        let ids_a: Vec<_> = (0..100)
            .map(|t| a.add(RangeRequest::default(), t, 0))
            .collect();
        let ids_b: Vec<_> = (0..100)
            .map(|t| b.add(RangeRequest::default(), t, 0))
            .collect();
        assert!(ids_a.iter().all(|i| !ids_b.contains(i)));
        // The planted bug makes them meet.
        let mut c = ReadTable::new(1, true);
        let mut d = ReadTable::new(2, true);
        assert_eq!(
            c.add(RangeRequest::default(), 0, 0),
            d.add(RangeRequest::default(), 0, 0)
        );
    }

    #[test]
    fn reads_expire_after_the_give_up_time() {
        let mut r = ReadTable::new(1, false);
        let a = r.add(RangeRequest::default(), 7, 0);
        let b = r.add(RangeRequest::default(), 8, 5);
        assert_eq!(r.take_fresh(), vec![a, b]);
        assert_eq!(r.expired(9, 10), vec![]);
        assert_eq!(r.expired(10, 10), vec![(a, 7)]);
        assert!(r.remove(a).is_none());
        assert_eq!(r.remove(b).map(|(_, t)| t), Some(8));
    }
}
