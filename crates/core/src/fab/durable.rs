//! What a Fast Byzantine acceptor keeps on disk, rebuilt from its records.

use super::messages::{Persist, Slot, Value, View};
use std::collections::BTreeMap;

/// One slot's durable state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotDisk<V> {
    /// The view it is in.
    pub view: View,
    /// Its latest vote: view and value.
    pub vote: Option<(View, Value<V>)>,
}

/// An acceptor's durable state: per slot, its view and latest vote. A correct acceptor that
/// forgot either could vote twice in one view, or report a vote older than its latest, and
/// either could undo a decided slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durable<V> {
    /// Per slot.
    pub slots: BTreeMap<Slot, SlotDisk<V>>,
}

impl<V> Default for Durable<V> {
    fn default() -> Self {
        Durable {
            slots: BTreeMap::new(),
        }
    }
}

impl<V: Clone> Durable<V> {
    /// Applies one record.
    pub fn apply(&mut self, record: &Persist<V>) {
        match record {
            Persist::View { slot, view } => {
                let s = self.slot(*slot);
                s.view = s.view.max(*view);
            }
            Persist::Vote { slot, view, value } => {
                let s = self.slot(*slot);
                s.view = s.view.max(*view);
                if s.vote.as_ref().is_none_or(|(v, _)| *v < *view) {
                    s.vote = Some((*view, value.clone()));
                }
            }
        }
    }

    fn slot(&mut self, slot: Slot) -> &mut SlotDisk<V> {
        self.slots.entry(slot).or_insert(SlotDisk {
            view: 0,
            vote: None,
        })
    }
}
