//! The checks an acceptor applies to what peers and clients send, and the recovery rule. None
//! trusts its input: what fails a check is refused as a whole, never asserted.

use super::messages::{value_digest, Choice, Decided, Evidence, Report, Slot, Value, View, Vote};
use crate::auth::{Digest, Signed, Tagged, Verifier};
use crate::ballot::NodeId;
use crate::bugs::PlantedBug;
use crate::quorum::FastByzantineQuorum;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What the checks need: who the acceptors are, the quorum sizes, a planted bug.
pub struct Rules<'a> {
    /// Checks signatures.
    pub verifier: &'a dyn Verifier,
    /// The acceptors, in leader order.
    pub acceptors: &'a [NodeId],
    /// Quorum sizes.
    pub quorum: FastByzantineQuorum,
    /// A planted bug, if any.
    pub bug: Option<PlantedBug>,
}

impl Rules<'_> {
    /// The leader of recovery view `view` (at least 1) at `slot`: the views of a slot rotate
    /// over the acceptors, and different slots start at different ones.
    pub fn leader(&self, slot: Slot, view: View) -> NodeId {
        let n = self.acceptors.len() as u64;
        // Reduced first: a peer may name any view, up to u64::MAX.
        self.acceptors[((slot % n + view % n) % n) as usize]
    }

    /// Matching votes in one view that decide a value.
    pub fn to_learn(&self) -> usize {
        match self.bug {
            Some(PlantedBug::FabLearnerTakesF) => self.quorum.f().max(1),
            _ => self.quorum.fast(),
        }
    }

    /// True when an acceptor signed `s`.
    pub fn by_acceptor<T: Tagged>(&self, s: &Signed<T>) -> bool {
        self.acceptors.contains(&s.from) && s.verify(self.verifier)
    }

    /// True when `value` is what `digest` names: a no-op for the null digest, else a request
    /// its client (not an acceptor) signed.
    pub fn value_matches<V: Serialize>(&self, digest: &Digest, value: &Value<V>) -> bool {
        if value_digest(value) != *digest {
            return false;
        }
        value.as_ref().is_none_or(|r| self.client_request(r))
    }

    /// True when a client signed `r` as its own.
    pub fn client_request<V: Serialize>(&self, r: &Signed<crate::pbft::Request<V>>) -> bool {
        r.from == r.body.client && !self.acceptors.contains(&r.from) && r.verify(self.verifier)
    }

    /// True for a report that could be a correct acceptor's: signed by an acceptor, entering a
    /// recovery view, naming a vote of an earlier view, with the value it names.
    pub fn report_ok<V: Serialize>(&self, r: &Signed<Report>, value: &Value<V>) -> bool {
        let b = &r.body;
        let shape = match b.last {
            None => value.is_none(),
            Some((v, d)) => v < b.view && self.value_matches(&d, value),
        };
        b.view >= 1 && shape && self.by_acceptor(r)
    }

    /// True when `evidence` is a signed statement that counts toward a certificate for `view`
    /// at `slot`: a report entering `view`, or a vote in `view - 1` or later. (Why a vote in a
    /// later view may count: if a value was decided in a view `u < view`, a correct acceptor
    /// votes for nothing else in any view after `u`; by induction over the order in which
    /// correct votes are cast, each rests on statements made before it.)
    fn evidence_ok(&self, e: &Evidence, slot: Slot, view: View) -> bool {
        match e {
            Evidence::Report(r) => {
                let lower = r.body.last.is_none_or(|(v, _)| v < view);
                r.body.slot == slot && r.body.view == view && lower && self.by_acceptor(r)
            }
            Evidence::Vote(v) => {
                v.body.slot == slot && v.body.view.saturating_add(1) >= view && self.by_acceptor(v)
            }
        }
    }

    /// The value `evidence` (exactly `a - f` statements from distinct acceptors about `view`)
    /// vouches for: the one named by at least `fast - 2f` of them. If a value was decided in an
    /// earlier view, every valid certificate vouches for it (see the module docs); at most one
    /// value reaches the count. `None`: nothing can have been decided, the choice is free.
    pub fn vouched(&self, evidence: &[Evidence]) -> Option<Digest> {
        let mut counts: BTreeMap<Digest, usize> = BTreeMap::new();
        for d in evidence.iter().filter_map(Evidence::names) {
            *counts.entry(d).or_default() += 1;
        }
        counts
            .into_iter()
            .find(|(_, c)| *c >= self.quorum.vouched())
            .map(|(d, _)| d)
    }

    /// True when `evidence` is a valid certificate for `view` at `slot`: exactly `a - f`
    /// statements, from distinct acceptors, each about `view`.
    pub fn certificate_ok(&self, evidence: &[Evidence], slot: Slot, view: View) -> bool {
        let authors: BTreeSet<NodeId> = evidence.iter().map(Evidence::from).collect();
        evidence.len() == self.quorum.reports()
            && authors.len() == evidence.len()
            && evidence.iter().all(|e| self.evidence_ok(e, slot, view))
    }

    /// True for a recovery leader's choice that a correct acceptor may vote for: from the
    /// view's leader, justified by a valid certificate, for the value it vouches for if any.
    pub fn choice_ok<V: Serialize>(
        &self,
        c: &Signed<Choice>,
        evidence: &[Evidence],
        value: &Value<V>,
    ) -> bool {
        let b = &c.body;
        b.view >= 1
            && c.from == self.leader(b.slot, b.view)
            && self.value_matches(&b.digest, value)
            && self.certificate_ok(evidence, b.slot, b.view)
            && self.vouched(evidence).is_none_or(|d| d == b.digest)
            && c.verify(self.verifier)
    }

    /// True when `d` proves its slot decided: enough matching votes from distinct acceptors in
    /// one view, and the value they name.
    pub fn decided_ok<V: Serialize>(&self, d: &Decided<V>) -> bool {
        let Some(first) = d.votes.first().map(|v| v.body) else {
            return false;
        };
        let authors: BTreeSet<NodeId> = d.votes.iter().map(|v| v.from).collect();
        authors.len() == d.votes.len()
            && d.votes.len() >= self.to_learn()
            && d.votes.iter().all(|v| v.body == first)
            && self.value_matches(&first.digest, &d.value)
            && d.votes.iter().all(|v| self.by_acceptor(v))
    }

    /// True for a vote from an acceptor, with the value it names.
    pub fn vote_ok<V: Serialize>(&self, v: &Signed<Vote>, value: &Value<V>) -> bool {
        self.value_matches(&v.body.digest, value) && self.by_acceptor(v)
    }
}
