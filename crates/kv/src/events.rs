//! The change feed watchers read: the events of a span of revisions, replayed from the MVCC
//! history through a revision index, so a watcher that fell behind catches up from the store
//! itself instead of from a buffer the node would have to keep for it.

use crate::error::KvError;
use crate::range::KeyRange;
use crate::store::Store;
use crate::types::KeyValue;
use serde::{Deserialize, Serialize};

/// What an event did to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// The key was written.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change to one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// After a put, the new key-value; after a delete, the key with `mod_revision` set to the
    /// deleting revision (etcd's convention).
    pub kv: KeyValue,
    /// The key-value before the change, when the history still holds it.
    pub prev_kv: Option<KeyValue>,
}

/// A span of the change feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSpan {
    /// The events, in revision order (then in order within a revision).
    pub events: Vec<Event>,
    /// The last revision this span covers: the next span starts after it.
    pub through: i64,
}

impl Store {
    /// The events on keys in `range` at revisions `from..=to` (`to` capped at the current
    /// revision). Stops after the first revision that brings the count to `max` or more, so a
    /// revision's events are never split.
    pub fn events(
        &self,
        range: &KeyRange,
        from: i64,
        to: i64,
        max: usize,
    ) -> Result<EventSpan, KvError> {
        if from < self.compacted {
            return Err(KvError::Compacted);
        }
        let to = to.min(self.revision);
        let mut events = Vec::new();
        let mut through = to;
        if from > to {
            return Ok(EventSpan {
                events,
                through: from - 1,
            });
        }
        let first = self.by_rev.partition_point(|(r, _)| *r < from);
        let revisions = self.by_rev.range(first..).take_while(|(r, _)| *r <= to);
        for &(rev, ref keys) in revisions {
            let mut at_rev: Vec<(i64, Event)> = Vec::new();
            let mut seen: Vec<&[u8]> = Vec::new();
            for key in keys.iter().map(|k| &**k).filter(|k| range.contains(k)) {
                // A key can change twice in one revision (nested transactions): each change is
                // its own history entry and its own event, so visit each key once.
                if seen.contains(&key) {
                    continue;
                }
                seen.push(key);
                let Some(h) = self.keys.get(key) else {
                    continue;
                };
                let first = h.partition_point(|r| r.main < rev);
                for i in (first..h.len()).take_while(|&i| h[i].main == rev) {
                    let prev_kv = i
                        .checked_sub(1)
                        .and_then(|j| Some(h[j].kv.as_ref()?.to_kv(key, h[j].main)));
                    let event = match &h[i].kv {
                        Some(kv) => Event {
                            kind: EventKind::Put,
                            kv: kv.to_kv(key, rev),
                            prev_kv,
                        },
                        None => Event {
                            kind: EventKind::Delete,
                            kv: KeyValue {
                                key: key.to_vec(),
                                mod_revision: rev,
                                ..KeyValue::default()
                            },
                            prev_kv,
                        },
                    };
                    at_rev.push((h[i].sub, event));
                }
            }
            at_rev.sort_by_key(|(sub, _)| *sub);
            events.extend(at_rev.into_iter().map(|(_, e)| e));
            if events.len() >= max {
                through = rev;
                break;
            }
        }
        Ok(EventSpan { events, through })
    }

    /// Recomputes the revision index, and the count of live keys, from the key histories
    /// (after a snapshot is restored).
    /// Revisions below the compaction are left out, as compacting cuts them from the index: a
    /// history keeps the entry a read at the compacted revision sees, which may be older, but
    /// no watcher may start there.
    pub fn rebuild_index(&mut self) {
        self.recount();
        let from = self.compacted;
        let mut entries: Vec<(i64, i64, &[u8])> = self
            .keys
            .iter()
            .flat_map(|(k, h)| h.iter().map(move |r| (r.main, r.sub, k.as_slice())))
            .filter(|&(main, _, _)| main >= from)
            .collect();
        entries.sort();
        let mut runs: Vec<(i64, Vec<Box<[u8]>>)> = Vec::new();
        for (main, _, k) in entries {
            match runs.last_mut() {
                Some((at, keys)) if *at == main => keys.push(k.into()),
                _ => runs.push((main, vec![k.into()])),
            }
        }
        self.by_rev = runs
            .into_iter()
            .map(|(at, keys)| (at, keys.into_boxed_slice()))
            .collect();
    }
}
