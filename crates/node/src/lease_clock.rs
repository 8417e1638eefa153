//! When leases run out: soft state beside the replicated lease table.
//!
//! Every node keeps a deadline per lease, restarted whenever it sees the lease granted or a
//! keep-alive applied (the lease's `refreshes` count moved). Only the leader acts on deadlines:
//! it proposes [`synod_kv::KvCommand::LeaseExpire`] through the log, so expiry is one decision
//! every replica applies at the same point, never each replica's own clock. A node that becomes
//! leader first restarts every deadline, so a leader change never expires a live session whose
//! keep-alives the old leader was receiving.

use std::collections::HashMap;
use std::time::Duration;
use synod_kv::Store;

/// A lease id no other node and no other boot of this one can pick: the node id, the boot
/// epoch and a counter, kept positive.
pub fn fresh_lease_id(node: u64, boot: u64, counter: u64) -> i64 {
    (((node & 0x7FF) << 52) | ((boot & 0xF_FFFF) << 32) | (counter & 0xFFFF_FFFF)) as i64
}

struct Deadline {
    at: u64,
    refreshes: u64,
    /// When an expiry was last proposed (it may be lost with a leader; retried after a while).
    proposed: Option<u64>,
}

/// Lease deadlines, in node ticks.
pub struct LeaseClock {
    tick: Duration,
    deadlines: HashMap<i64, Deadline>,
    leading: bool,
    retry_ticks: u64,
}

impl LeaseClock {
    /// A clock counting in ticks of `tick`; unanswered expiries are proposed again after
    /// `retry_ticks`.
    pub fn new(tick: Duration, retry_ticks: u64) -> Self {
        LeaseClock {
            tick,
            deadlines: HashMap::new(),
            leading: false,
            retry_ticks: retry_ticks.max(1),
        }
    }

    fn ticks(&self, secs: i64) -> u64 {
        let ms = self.tick.as_millis().max(1) as u64;
        (secs.max(0) as u64).saturating_mul(1000).div_ceil(ms)
    }

    /// Follows the store's lease table; returns the leases whose expiry this node, as leader,
    /// should propose now, with the keep-alive count it decided on.
    pub fn observe(&mut self, store: &Store, leading: bool, now: u64) -> Vec<(i64, u64)> {
        let promoted = leading && !self.leading;
        self.leading = leading;
        if self.deadlines.len() > store.leases().count() {
            self.deadlines.retain(|id, _| store.lease(*id).is_some());
        }
        let mut due = Vec::new();
        for lease in store.leases() {
            let fresh = now + self.ticks(lease.ttl);
            let d = self.deadlines.entry(lease.id).or_insert(Deadline {
                at: fresh,
                refreshes: lease.refreshes,
                proposed: None,
            });
            if d.refreshes != lease.refreshes || promoted {
                d.at = fresh;
                d.refreshes = lease.refreshes;
                d.proposed = None;
            }
            let retry = d
                .proposed
                .is_none_or(|t| now.saturating_sub(t) >= self.retry_ticks);
            if leading && now >= d.at && retry {
                d.proposed = Some(now);
                due.push((lease.id, lease.refreshes));
            }
        }
        due
    }

    /// Seconds left on a lease as this node sees it (rounded up), or `None` if it does not
    /// know the lease.
    pub fn remaining_secs(&self, id: i64, now: u64) -> Option<i64> {
        let d = self.deadlines.get(&id)?;
        let ms = d.at.saturating_sub(now) * self.tick.as_millis() as u64;
        Some(ms.div_ceil(1000) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> LeaseClock {
        LeaseClock::new(Duration::from_millis(10), 50)
    }

    #[test]
    fn fresh_lease_ids_are_positive_and_differ_by_node_boot_and_counter() {
        let ids = [
            fresh_lease_id(1, 1, 1),
            fresh_lease_id(2, 1, 1),
            fresh_lease_id(1, 2, 1),
            fresh_lease_id(1, 1, 2),
            fresh_lease_id(0x7FF, 0xF_FFFF, 0xFFFF_FFFF),
        ];
        assert!(ids.iter().all(|&id| id > 0), "{ids:?}");
        let distinct: std::collections::BTreeSet<i64> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), ids.len(), "{ids:?}");
        assert_eq!(fresh_lease_id(1, 1, 1), (1 << 52) | (1 << 32) | 1);
    }

    #[test]
    fn only_the_leader_expires_and_keep_alives_restart_the_deadline() {
        let mut store = Store::new();
        store.lease_grant(7, 1).unwrap();
        let mut c = clock();
        assert!(c.observe(&store, false, 0).is_empty());
        assert!(
            c.observe(&store, false, 500).is_empty(),
            "a follower never expires"
        );
        // Becoming leader restarts the deadline: 100 ticks from 500.
        assert!(c.observe(&store, true, 501).is_empty());
        assert!(c.observe(&store, true, 600).is_empty());
        store.lease_keep_alive(7).unwrap();
        assert!(c.observe(&store, true, 601).is_empty());
        assert!(c.observe(&store, true, 700).is_empty());
        assert_eq!(c.observe(&store, true, 701), vec![(7, 1)]);
        // Not proposed again until the retry interval passed.
        assert!(c.observe(&store, true, 702).is_empty());
        assert_eq!(c.observe(&store, true, 751), vec![(7, 1)]);
        assert_eq!(c.remaining_secs(7, 751), Some(0));
    }

    #[test]
    fn a_revoked_lease_is_forgotten_so_a_new_grant_of_its_id_starts_afresh() {
        let mut store = Store::new();
        store.lease_grant(7, 1).unwrap();
        let mut c = clock();
        c.observe(&store, true, 0);
        store.lease_revoke(7).unwrap();
        assert!(c.observe(&store, true, 50).is_empty());
        assert_eq!(c.remaining_secs(7, 50), None);
        // Granted again long after the first deadline: it runs a full TTL from now.
        store.lease_grant(7, 1).unwrap();
        assert!(c.observe(&store, true, 1_000).is_empty());
        assert!(c.observe(&store, true, 1_099).is_empty());
        assert_eq!(c.observe(&store, true, 1_100), vec![(7, 0)]);
    }

    #[test]
    fn a_new_leader_extends_every_lease() {
        let mut store = Store::new();
        store.lease_grant(7, 2).unwrap();
        let mut c = clock();
        c.observe(&store, false, 0);
        assert_eq!(c.remaining_secs(7, 150), Some(1));
        c.observe(&store, false, 300);
        // Its deadline passed while following; leadership restarts it at the full TTL.
        c.observe(&store, true, 300);
        assert_eq!(c.remaining_secs(7, 300), Some(2));
        assert!(c.observe(&store, true, 499).is_empty());
        assert_eq!(c.observe(&store, true, 500), vec![(7, 0)]);
    }
}
