//! What a PBFT replica keeps on disk, rebuilt from its records.

use super::messages::{Checkpoint, Persist, PrePrepare, Prepared, Request, Seq, View};
use crate::auth::Signed;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An order a replica took, with the request it orders (none: a null request).
pub type Accepted<V> = (Signed<PrePrepare>, Option<Signed<Request<V>>>);

/// A replica's durable state: everything a restart must not forget, since a correct replica
/// that forgot an order it agreed to, or a certificate it reported, could be led to contradict
/// itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durable<V> {
    /// Its view.
    pub view: View,
    /// Whether it was still waiting for that view's new-view message.
    pub changing: bool,
    /// Per slot, the latest order it took and its request.
    pub accepted: BTreeMap<Seq, Accepted<V>>,
    /// Per slot, its latest prepared certificate.
    pub prepared: BTreeMap<Seq, Prepared<V>>,
    /// Its last stable checkpoint: proof and state.
    pub stable: Option<(Vec<Signed<Checkpoint>>, Vec<u8>)>,
    /// No order is taken at or below this slot (see [`Persist::Floor`]).
    pub floor: Seq,
}

impl<V> Default for Durable<V> {
    fn default() -> Self {
        Durable {
            view: 0,
            changing: false,
            accepted: BTreeMap::new(),
            prepared: BTreeMap::new(),
            stable: None,
            floor: 0,
        }
    }
}

impl<V: Clone> Durable<V> {
    /// The stable checkpoint's slot (0: none).
    pub fn stable_seq(&self) -> Seq {
        self.stable
            .as_ref()
            .and_then(|(p, _)| p.first())
            .map_or(0, |c| c.body.seq)
    }

    /// Applies one record.
    pub fn apply(&mut self, record: &Persist<V>) {
        match record {
            Persist::View { view, changing } => {
                self.view = *view;
                self.changing = *changing;
            }
            Persist::Accepted(pp, request) => {
                let later = self
                    .accepted
                    .get(&pp.body.seq)
                    .is_none_or(|(a, _)| a.body.view <= pp.body.view);
                if later {
                    self.accepted
                        .insert(pp.body.seq, (pp.clone(), request.clone()));
                }
            }
            Persist::Prepared(p) => {
                let seq = p.pre_prepare.body.seq;
                let later = self
                    .prepared
                    .get(&seq)
                    .is_none_or(|a| a.pre_prepare.body.view <= p.pre_prepare.body.view);
                if later {
                    self.prepared.insert(seq, p.clone());
                }
            }
            Persist::Floor { seq } => self.floor = self.floor.max(*seq),
            Persist::Stable { proof, state } => {
                let seq = proof.first().map_or(0, |c| c.body.seq);
                if seq > self.stable_seq() {
                    self.stable = Some((proof.clone(), state.clone()));
                    self.accepted = self.accepted.split_off(&(seq + 1));
                    self.prepared = self.prepared.split_off(&(seq + 1));
                }
            }
        }
    }
}
