//! The checks every replica applies to what peers send, and the new-view computation that a new
//! primary and every backup must agree on. Nothing here trusts its input: a certificate that
//! fails a check is refused as a whole.

use super::messages::{
    Checkpoint, Committed, PrePrepare, Prepared, Request, Seq, View, ViewChange, NULL_DIGEST,
};
use crate::auth::{digest_of, Digest, Signed, Tagged, Verifier};
use crate::ballot::NodeId;
use crate::bugs::PlantedBug;
use crate::quorum::ByzantineQuorum;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A slot the new view orders: its digest and request (none for a null request).
pub type Order<V> = (Seq, Digest, Option<Signed<Request<V>>>);

/// What the checks need to know: who the replicas are, the quorum, the log window.
pub struct Rules<'a> {
    /// Checks signatures.
    pub verifier: &'a dyn Verifier,
    /// The replicas, in view order.
    pub replicas: &'a [NodeId],
    /// Certificate sizes.
    pub quorum: ByzantineQuorum,
    /// How many slots may be ordered above the stable checkpoint.
    pub window: u64,
    /// A planted bug, if any.
    pub bug: Option<PlantedBug>,
}

impl Rules<'_> {
    /// The primary of `view`.
    pub fn primary(&self, view: View) -> NodeId {
        self.replicas[(view % self.replicas.len() as u64) as usize]
    }

    /// True when a replica signed `s`.
    pub fn by_replica<T: Tagged>(&self, s: &Signed<T>) -> bool {
        self.replicas.contains(&s.from) && self.authentic(s)
    }

    /// True when `s` carries its author's signature (always, under the planted bug).
    pub fn authentic<T: Tagged>(&self, s: &Signed<T>) -> bool {
        self.bug == Some(PlantedBug::PbftUnverifiedSignature) || s.verify(self.verifier)
    }

    /// True when `request` is what `digest` orders: none for the null digest, else a request
    /// its client signed whose digest it is.
    pub fn request_matches<V: Serialize>(
        &self,
        digest: &Digest,
        request: &Option<Signed<Request<V>>>,
    ) -> bool {
        match request {
            None => *digest == NULL_DIGEST,
            Some(r) => {
                r.from == r.body.client
                    && !self.replicas.contains(&r.from)
                    && digest_of(&r.body) == *digest
                    && self.authentic(r)
            }
        }
    }

    /// True when `p` proves its slot prepared in a view below `below`.
    pub fn prepared_ok<V: Serialize>(&self, p: &Prepared<V>, below: View) -> bool {
        let pp = &p.pre_prepare;
        let PrePrepare { view, seq, digest } = pp.body;
        if view >= below || pp.from != self.primary(view) || !self.authentic(pp) {
            return false;
        }
        if !self.request_matches(&digest, &p.request) {
            return false;
        }
        let mut backups = BTreeSet::new();
        for s in &p.prepares {
            let b = s.body;
            if (b.view, b.seq, b.digest) != (view, seq, digest)
                || s.from == pp.from
                || !backups.insert(s.from)
                || !self.by_replica(s)
            {
                return false;
            }
        }
        backups.len() + 1 >= self.quorum.quorum()
    }

    /// The `(view, seq, digest)` a committed certificate proves, if it proves one.
    pub fn committed_ok<V: Serialize>(&self, c: &Committed<V>) -> Option<(View, Seq, Digest)> {
        let first = c.commits.first()?.body;
        let mut signers = BTreeSet::new();
        for s in &c.commits {
            if s.body != first || !signers.insert(s.from) || !self.by_replica(s) {
                return None;
            }
        }
        (signers.len() >= self.quorum.quorum() && self.request_matches(&first.digest, &c.request))
            .then_some((first.view, first.seq, first.digest))
    }

    /// The `(seq, state digest)` a checkpoint proof vouches for, if it does.
    pub fn checkpoint_ok(&self, proof: &[Signed<Checkpoint>]) -> Option<Checkpoint> {
        let first = proof.first()?.body;
        let mut signers = BTreeSet::new();
        for s in proof {
            if s.body != first || !signers.insert(s.from) || !self.by_replica(s) {
                return None;
            }
        }
        (signers.len() >= self.quorum.quorum()).then_some(first)
    }

    /// True when `vc` is a well-formed, signed view change for `view`.
    pub fn view_change_ok<V: Serialize>(&self, vc: &Signed<ViewChange<V>>, view: View) -> bool {
        let b = &vc.body;
        if b.view != view || !self.by_replica(vc) {
            return false;
        }
        let proven = match b.stable {
            0 => b.proof.is_empty(),
            s => self.checkpoint_ok(&b.proof).is_some_and(|c| c.seq == s),
        };
        let mut seqs = BTreeSet::new();
        proven
            && b.prepared.iter().all(|p| {
                let seq = p.pre_prepare.body.seq;
                seq > b.stable
                    && seq <= b.stable + self.window
                    && seqs.insert(seq)
                    && self.prepared_ok(p, view)
            })
    }

    /// What a new view orders, from a quorum of checked view changes: the highest stable
    /// checkpoint among them, and for each slot above it up to the highest prepared one, the
    /// request of the latest view's certificate, or a null request where none prepared.
    ///
    /// Why this is safe: a request committed at slot `n` in an earlier view was prepared by a
    /// quorum, so by at least `f + 1` correct replicas; any quorum of view changes shares a
    /// correct replica with them, which reports a certificate for `n` at least that recent, and
    /// no later certificate for `n` can name another request (by induction over the views).
    pub fn new_view_orders<V: Clone + Serialize>(
        &self,
        changes: &[Signed<ViewChange<V>>],
    ) -> (Seq, Vec<Order<V>>) {
        let low = changes.iter().map(|c| c.body.stable).max().unwrap_or(0);
        let mut best: BTreeMap<Seq, &Prepared<V>> = BTreeMap::new();
        if self.bug != Some(PlantedBug::PbftViewChangeIgnoresPrepared) {
            for p in changes.iter().flat_map(|c| &c.body.prepared) {
                let seq = p.pre_prepare.body.seq;
                if seq <= low {
                    continue;
                }
                let newer = best
                    .get(&seq)
                    .is_none_or(|b| b.pre_prepare.body.view < p.pre_prepare.body.view);
                if newer {
                    best.insert(seq, p);
                }
            }
        }
        let high = changes
            .iter()
            .flat_map(|c| &c.body.prepared)
            .map(|p| p.pre_prepare.body.seq)
            .max()
            .unwrap_or(0)
            .max(low);
        let orders = (low + 1..=high)
            .map(|seq| match best.get(&seq) {
                Some(p) => (seq, p.pre_prepare.body.digest, p.request.clone()),
                None => (seq, NULL_DIGEST, None),
            })
            .collect();
        (low, orders)
    }
}
