//! Watchers, owned by the node loop: each one replays the store's change feed from its next
//! revision and hands batches to its gRPC stream without ever waiting.
//!
//! Slow watchers cannot stall the node or grow its memory. A stream's buffer holds
//! [`STREAM_BUFFER`] responses; when it is full, a watcher keeps at most one batch pending and
//! stops advancing. It resumes from the store's history once its client reads again. History is
//! kept until a compaction; a watcher that a compaction overtakes is canceled with
//! `compact_revision` set, as etcd does, and the client restarts from a newer revision.

use std::collections::BTreeMap;
use synod_kv::{Event, EventKind, KeyRange, KvError, Store};
use tokio::sync::mpsc::{self, error::TrySendError};

/// Responses a watch stream may have queued before its watchers wait.
pub const STREAM_BUFFER: usize = 64;

/// Events per response at most (a revision is never split, so a response can exceed it by the
/// size of one transaction).
pub const MAX_EVENTS: usize = 1000;

/// What a watcher asked for.
#[derive(Clone, Debug)]
pub struct WatchSpec {
    /// The keys watched.
    pub range: KeyRange,
    /// First revision to report; 0 for the next one.
    pub start_revision: i64,
    /// Include the previous key-value in events.
    pub prev_kv: bool,
    /// Leave out puts.
    pub no_put: bool,
    /// Leave out deletes.
    pub no_delete: bool,
    /// Send an empty response now and then when idle, so the client learns the revision.
    pub progress_notify: bool,
}

/// What the node tells a watch stream.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchMsg {
    /// A create request was refused (etcd answers created and canceled at once, with id -1).
    Refused {
        /// Why.
        reason: String,
    },
    /// The watcher exists.
    Created {
        /// Watcher id.
        id: i64,
        /// Store revision.
        revision: i64,
    },
    /// Changes.
    Events {
        /// Watcher id.
        id: i64,
        /// Store revision.
        revision: i64,
        /// In revision order.
        events: Vec<Event>,
    },
    /// The watcher is gone.
    Canceled {
        /// Watcher id.
        id: i64,
        /// Store revision.
        revision: i64,
        /// Non-zero when history the watcher needed was compacted away.
        compact_revision: i64,
        /// Why, for the client.
        reason: String,
    },
    /// The watcher (or, with id -1, every watcher of the stream) has seen everything up to
    /// `revision`.
    Progress {
        /// Watcher id, or -1.
        id: i64,
        /// Store revision.
        revision: i64,
    },
}

struct Watcher {
    id: i64,
    spec: WatchSpec,
    /// First revision not yet handed to the stream.
    next_rev: i64,
    tx: mpsc::Sender<WatchMsg>,
    /// A response the stream had no room for.
    pending: Option<WatchMsg>,
    /// A cancel to send (compact revision, reason), then the watcher goes.
    cancel: Option<(i64, String)>,
    /// Its cancel went out or is pending: remove it once nothing is pending.
    closing: bool,
    last_sent_tick: u64,
}

enum Fate {
    Keep,
    Remove,
}

/// Every watcher of one node, keyed by (stream, watcher id).
#[derive(Default)]
pub struct WatchHub {
    watchers: BTreeMap<(u64, i64), Watcher>,
}

impl WatchHub {
    /// Registers a watcher; its creation and events are sent by the next [`WatchHub::pump`].
    pub fn create(
        &mut self,
        stream: u64,
        id: i64,
        spec: WatchSpec,
        tx: mpsc::Sender<WatchMsg>,
        store: &Store,
        now: u64,
    ) {
        let next_rev = if spec.start_revision > 0 {
            spec.start_revision
        } else {
            store.revision() + 1
        };
        let pending = Some(WatchMsg::Created {
            id,
            revision: store.revision(),
        });
        self.watchers.insert(
            (stream, id),
            Watcher {
                id,
                spec,
                next_rev,
                tx,
                pending,
                cancel: None,
                closing: false,
                last_sent_tick: now,
            },
        );
    }

    /// Cancels one watcher (its cancel response goes out with the next pump).
    pub fn cancel(&mut self, stream: u64, id: i64) {
        if let Some(w) = self.watchers.get_mut(&(stream, id)) {
            w.cancel.get_or_insert((0, String::new()));
        }
    }

    /// Drops every watcher of a stream that ended.
    pub fn close(&mut self, stream: u64) {
        self.watchers.retain(|(s, _), _| *s != stream);
    }

    /// Answers a progress request: if every watcher of the stream has caught up, one response
    /// with watch id -1 and the current revision (etcd's behaviour; otherwise nothing, since a
    /// lagging watcher's events will carry newer revisions anyway).
    pub fn progress(&mut self, stream: u64, tx: &mpsc::Sender<WatchMsg>, store: &Store) {
        let synced = self
            .watchers
            .range((stream, i64::MIN)..=(stream, i64::MAX))
            .all(|(_, w)| w.pending.is_none() && w.next_rev > store.revision());
        if synced {
            let _ = tx.try_send(WatchMsg::Progress {
                id: -1,
                revision: store.revision(),
            });
        }
    }

    /// Carries out what a watch stream asked for, at store time `now`.
    pub fn handle(
        &mut self,
        input: crate::node::WatchInput,
        store: &Store,
        now: u64,
        progress_every: u64,
    ) {
        use crate::node::WatchInput;
        match input {
            WatchInput::Create {
                stream,
                id,
                spec,
                access,
                tx,
            } => {
                // Checked here, on the state the watch will replay, not on what the request
                // handler saw: that may predate an `auth enable` or a revocation.
                if let Err(e) = access.check(store.auth()) {
                    let _ = tx.try_send(WatchMsg::Refused {
                        reason: e.to_string(),
                    });
                    return;
                }
                self.create(stream, id, spec, tx, store, now);
                self.pump(store, now, progress_every);
            }
            WatchInput::Cancel { stream, id } => {
                self.cancel(stream, id);
                self.pump(store, now, progress_every);
            }
            WatchInput::Progress { stream, tx } => self.progress(stream, &tx, store),
            WatchInput::Close { stream } => self.close(stream),
        }
    }

    /// Number of watchers.
    pub fn len(&self) -> usize {
        self.watchers.len()
    }

    /// True when nobody watches.
    pub fn is_empty(&self) -> bool {
        self.watchers.is_empty()
    }

    /// Moves every watcher forward as far as its stream has room; never waits. Idle watchers
    /// that asked for progress notifications get one every `progress_every` ticks.
    pub fn pump(&mut self, store: &Store, now: u64, progress_every: u64) {
        self.watchers
            .retain(|_, w| matches!(Self::pump_one(w, store, now, progress_every), Fate::Keep));
    }

    /// Tries to hand `msg` to the stream; on a full buffer it becomes the pending message.
    fn offer(w: &mut Watcher, msg: WatchMsg, now: u64) -> Result<(), Fate> {
        match w.tx.try_send(msg) {
            Ok(()) => {
                w.last_sent_tick = now;
                Ok(())
            }
            Err(TrySendError::Full(msg)) => {
                w.pending = Some(msg);
                Err(Fate::Keep)
            }
            Err(TrySendError::Closed(_)) => Err(Fate::Remove),
        }
    }

    fn pump_one(w: &mut Watcher, store: &Store, now: u64, progress_every: u64) -> Fate {
        match Self::advance(w, store, now, progress_every) {
            Ok(()) => Fate::Keep,
            Err(fate) => fate,
        }
    }

    fn advance(w: &mut Watcher, store: &Store, now: u64, progress_every: u64) -> Result<(), Fate> {
        if let Some(msg) = w.pending.take() {
            Self::offer(w, msg, now)?;
        }
        if w.closing {
            // Its cancel response was the pending message, now delivered.
            return Err(Fate::Remove);
        }
        if w.cancel.is_some() {
            return Self::send_cancel(w, store, now);
        }
        while w.next_rev <= store.revision() {
            let Ok(span) = store.events(&w.spec.range, w.next_rev, store.revision(), MAX_EVENTS)
            else {
                // Only a compaction makes the feed refuse a revision.
                w.cancel = Some((store.compacted(), KvError::Compacted.to_string()));
                return Self::send_cancel(w, store, now);
            };
            w.next_rev = span.through + 1;
            let events: Vec<Event> = span
                .events
                .into_iter()
                .filter(|e| match e.kind {
                    EventKind::Put => !w.spec.no_put,
                    EventKind::Delete => !w.spec.no_delete,
                })
                .map(|mut e| {
                    if !w.spec.prev_kv {
                        e.prev_kv = None;
                    }
                    e
                })
                .collect();
            if events.is_empty() {
                continue;
            }
            let msg = WatchMsg::Events {
                id: w.id,
                revision: store.revision(),
                events,
            };
            Self::offer(w, msg, now)?;
        }
        if w.spec.progress_notify && now.saturating_sub(w.last_sent_tick) >= progress_every {
            let msg = WatchMsg::Progress {
                id: w.id,
                revision: store.revision(),
            };
            Self::offer(w, msg, now)?;
        }
        Ok(())
    }

    /// Sends the watcher's cancel response; it is removed once that is delivered.
    fn send_cancel(w: &mut Watcher, store: &Store, now: u64) -> Result<(), Fate> {
        let (compact_revision, reason) = w.cancel.take().unwrap_or_default();
        w.closing = true;
        let msg = WatchMsg::Canceled {
            id: w.id,
            revision: store.revision(),
            compact_revision,
            reason,
        };
        Self::offer(w, msg, now)?;
        Err(Fate::Remove)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_kv::{CompactionRequest, DeleteRangeRequest, PutRequest};

    fn put(s: &mut Store, k: &str, v: &str) {
        s.put(&PutRequest {
            key: k.into(),
            value: v.to_string().into(),
            ..Default::default()
        })
        .unwrap();
    }

    fn spec(start_revision: i64) -> WatchSpec {
        WatchSpec {
            range: KeyRange::new(b"k", &KeyRange::prefix_end(b"k")),
            start_revision,
            prev_kv: false,
            no_put: false,
            no_delete: false,
            progress_notify: false,
        }
    }

    fn drain(rx: &mut mpsc::Receiver<WatchMsg>) -> Vec<WatchMsg> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    fn event_revisions(msgs: &[WatchMsg]) -> Vec<i64> {
        msgs.iter()
            .flat_map(|m| match m {
                WatchMsg::Events { events, .. } => {
                    events.iter().map(|e| e.kv.mod_revision).collect()
                }
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn a_watch_is_checked_against_the_store_it_is_created_on() {
        let store = crate::auth::tests::store_with_root(&[1]);
        let mut hub = WatchHub::default();
        let create = |user: Option<&str>, tx| crate::node::WatchInput::Create {
            stream: 1,
            id: 0,
            spec: spec(0),
            access: crate::auth::ReadAccess {
                user: user.map(String::from),
                key: b"k".to_vec(),
                range_end: KeyRange::prefix_end(b"k"),
            },
            tx,
        };
        // No user: the request handler may have thought auth was off; the store knows better.
        let (tx, mut rx) = mpsc::channel(4);
        hub.handle(create(None, tx), &store, 0, 100);
        assert!(
            matches!(&drain(&mut rx)[..], [WatchMsg::Refused { reason }] if reason.contains("user name is empty"))
        );
        assert_eq!(hub.len(), 0);
        let (tx, mut rx) = mpsc::channel(4);
        hub.handle(create(Some("root"), tx), &store, 0, 100);
        assert!(matches!(drain(&mut rx)[..], [WatchMsg::Created { .. }]));
        assert_eq!(hub.len(), 1);
    }

    #[test]
    fn a_slow_stream_holds_the_watcher_back_without_losing_events() {
        let mut store = Store::new();
        let mut hub = WatchHub::default();
        let (tx, mut rx) = mpsc::channel(2);
        hub.create(1, 0, spec(0), tx, &store, 0);
        for i in 0..10 {
            put(&mut store, "k", &i.to_string());
            hub.pump(&store, 0, 100);
        }
        // Room for two responses: created and the first event; one more waits as pending.
        let first = drain(&mut rx);
        assert!(matches!(first[0], WatchMsg::Created { id: 0, .. }));
        assert_eq!(event_revisions(&first), vec![2]);
        // Once the client reads, the watcher catches up from the store, in order.
        let mut seen = Vec::new();
        for _ in 0..20 {
            hub.pump(&store, 0, 100);
            seen.extend(event_revisions(&drain(&mut rx)));
        }
        assert_eq!(seen, (3..=11).collect::<Vec<i64>>());
    }

    #[test]
    fn a_compaction_that_overtakes_a_watcher_cancels_it_with_the_compact_revision() {
        let mut store = Store::new();
        let mut hub = WatchHub::default();
        let (tx, mut rx) = mpsc::channel(1);
        hub.create(1, 5, spec(0), tx, &store, 0);
        hub.pump(&store, 0, 100);
        for i in 0..5 {
            put(&mut store, "k", &i.to_string());
        }
        // The stream is full (created unread): revisions 2..=6 wait as the pending batch, and the
        // watcher's next revision is 7.
        hub.pump(&store, 0, 100);
        for i in 5..10 {
            put(&mut store, "k", &i.to_string());
        }
        store.compact(&CompactionRequest { revision: 9 }).unwrap();
        let mut msgs = Vec::new();
        for _ in 0..5 {
            msgs.extend(drain(&mut rx));
            hub.pump(&store, 0, 100);
        }
        msgs.extend(drain(&mut rx));
        assert!(matches!(msgs[0], WatchMsg::Created { .. }));
        // The batch computed before the compaction goes out; revisions 7 and 8 are gone, so
        // then comes the cancel.
        assert_eq!(event_revisions(&msgs), vec![2, 3, 4, 5, 6]);
        assert!(
            matches!(
                msgs.last(),
                Some(WatchMsg::Canceled {
                    id: 5,
                    compact_revision: 9,
                    ..
                })
            ),
            "{msgs:?}"
        );
        assert!(hub.is_empty());
    }

    #[test]
    fn filters_start_revisions_and_ranges_select_events() {
        let mut store = Store::new();
        put(&mut store, "k1", "a"); // 2
        put(&mut store, "other", "a"); // 3
        store
            .delete_range(&DeleteRangeRequest {
                key: "k1".into(),
                ..Default::default()
            })
            .unwrap(); // 4
        let mut hub = WatchHub::default();
        let (tx, mut rx) = mpsc::channel(16);
        let mut no_delete = spec(2);
        no_delete.no_delete = true;
        let mut no_put = spec(2);
        no_put.no_put = true;
        hub.create(1, 0, no_delete, tx.clone(), &store, 0);
        hub.create(1, 1, no_put, tx, &store, 0);
        hub.pump(&store, 0, 100);
        let msgs = drain(&mut rx);
        let by_watcher = |w: i64| -> Vec<(i64, EventKind)> {
            msgs.iter()
                .flat_map(|m| match m {
                    WatchMsg::Events { id, events, .. } if *id == w => {
                        events.iter().map(|e| (e.kv.mod_revision, e.kind)).collect()
                    }
                    _ => Vec::new(),
                })
                .collect()
        };
        assert_eq!(by_watcher(0), vec![(2, EventKind::Put)]);
        assert_eq!(by_watcher(1), vec![(4, EventKind::Delete)]);
    }

    #[test]
    fn idle_watchers_get_progress_and_closed_streams_are_dropped() {
        let store = Store::new();
        let mut hub = WatchHub::default();
        let (tx, mut rx) = mpsc::channel(16);
        let mut s = spec(0);
        s.progress_notify = true;
        hub.create(1, 0, s, tx.clone(), &store, 0);
        hub.pump(&store, 10, 100);
        assert_eq!(drain(&mut rx).len(), 1, "only the creation so far");
        hub.pump(&store, 111, 100);
        assert_eq!(
            drain(&mut rx),
            vec![WatchMsg::Progress { id: 0, revision: 1 }]
        );
        hub.progress(1, &tx, &store);
        assert_eq!(
            drain(&mut rx),
            vec![WatchMsg::Progress {
                id: -1,
                revision: 1
            }]
        );
        drop((tx, rx));
        hub.pump(&store, 500, 100);
        assert!(hub.is_empty(), "a watcher whose stream is gone is dropped");
    }
}
