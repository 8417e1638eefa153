//! Leases as replicated state: which leases exist, their granted TTLs and the keys attached.
//!
//! Time is not part of this state. When a lease expires is decided by the leader's clock in
//! the server, which then proposes [`crate::KvCommand::LeaseExpire`] through the log; every
//! replica applies the expiry at the same point of the log, so they agree on what was deleted.

use crate::error::KvError;
use crate::store::Store;
use crate::types::DeleteRangeRequest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Largest TTL a lease may be granted, in seconds (etcd's limit).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// One lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Its id.
    pub id: i64,
    /// The TTL it was granted, in seconds.
    pub ttl: i64,
    /// Keys currently attached.
    pub keys: BTreeSet<Vec<u8>>,
    /// How many keep-alives were applied: an expiry decided before the latest keep-alive was
    /// ordered is stale, and [`Store::lease_expire`] ignores it.
    pub refreshes: u64,
}

/// What [`Store::lease_expire`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expiry {
    /// The lease and its keys are gone.
    Expired,
    /// A keep-alive was applied after the expiry was decided, so the lease lives on.
    Refreshed,
    /// No such lease (already revoked or expired).
    Absent,
}

impl Store {
    /// Creates a lease with a caller-chosen id (the proposing server picks one, so that every
    /// replica applies the same id).
    pub fn lease_grant(&mut self, id: i64, ttl: i64) -> Result<(), KvError> {
        if id <= 0 {
            return Err(KvError::LeaseNotFound);
        }
        if ttl > MAX_LEASE_TTL {
            return Err(KvError::LeaseTtlTooLarge);
        }
        if self.leases.contains_key(&id) {
            return Err(KvError::LeaseExists);
        }
        self.leases.insert(
            id,
            Lease {
                id,
                ttl,
                keys: BTreeSet::new(),
                refreshes: 0,
            },
        );
        Ok(())
    }

    /// Deletes a lease and, in one revision, every key attached to it.
    pub fn lease_revoke(&mut self, id: i64) -> Result<(), KvError> {
        let lease = self.leases.remove(&id).ok_or(KvError::LeaseNotFound)?;
        let mut w = self.begin();
        let mut result = Ok(());
        for key in &lease.keys {
            let req = DeleteRangeRequest {
                key: key.clone(),
                range_end: Vec::new(),
                prev_kv: false,
            };
            if let Err(e) = self.delete_in(&mut w, &req) {
                result = Err(e);
                break;
            }
        }
        self.finish(w, result)
    }

    /// Records a keep-alive; returns the lease's granted TTL.
    pub fn lease_keep_alive(&mut self, id: i64) -> Result<i64, KvError> {
        let lease = self.leases.get_mut(&id).ok_or(KvError::LeaseNotFound)?;
        lease.refreshes += 1;
        Ok(lease.ttl)
    }

    /// Revokes a lease whose time ran out, unless it was kept alive after the leader saw
    /// `refreshes` keep-alives.
    pub fn lease_expire(&mut self, id: i64, refreshes: u64) -> Result<Expiry, KvError> {
        match self.leases.get(&id) {
            None => Ok(Expiry::Absent),
            Some(l) if l.refreshes != refreshes => Ok(Expiry::Refreshed),
            Some(_) => self.lease_revoke(id).map(|()| Expiry::Expired),
        }
    }

    /// One lease.
    pub fn lease(&self, id: i64) -> Option<&Lease> {
        self.leases.get(&id)
    }

    /// Every lease, by id.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }

    /// After a write at `main` touched `key`, moves the key from the lease it was attached to
    /// before (if any) to the one it is attached to now (if any).
    pub(crate) fn move_lease_attachment(&mut self, key: &[u8], main: i64) {
        if self.leases.is_empty() {
            // No key can be attached to a lease that does not exist, nor be attached to one
            // now (a put names only a lease that exists), so nothing moves.
            return;
        }
        let Some(h) = self.keys.get(key) else {
            return;
        };
        // The write's own entries are the newest, at the end.
        let first = h.len() - h.iter().rev().take_while(|r| r.main >= main).count();
        let before = first
            .checked_sub(1)
            .and_then(|i| h[i].kv.as_ref())
            .map_or(0, |kv| kv.lease);
        let after = h
            .last()
            .and_then(|r| r.kv.as_ref())
            .map_or(0, |kv| kv.lease);
        if before == after {
            return;
        }
        if let Some(l) = self.leases.get_mut(&before) {
            l.keys.remove(key);
        }
        if let Some(l) = self.leases.get_mut(&after) {
            l.keys.insert(key.to_vec());
        }
    }
}
