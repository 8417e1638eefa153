//! A snapshot in layers: the last snapshot's bytes as they were, then what changed since.
//!
//! A store that keeps its history until a compaction grows with every write, and a snapshot
//! of it encoded every key's whole history again each time: by the third round of a
//! benchmark some 300 MB a node, encoded while the node served, though all but the newest
//! third was in the last snapshot already (docs/performance.md, "Why the later rounds read
//! lower"). As long as nothing was compacted, every change since a snapshot at revision R is
//! an entry above R in some key's history; the rest of the store (leases, auth, alarms) is
//! small. So a new snapshot is the last one's bytes, copied, and a layer holding those newer
//! entries and the small parts whole. After a compaction, or once a snapshot has
//! [`MAX_FRAMES`] frames, the next one is encoded whole again: a layer cannot say what a
//! compaction dropped, and the frames bound what a restore replays.
//!
//! The bytes: [`MAGIC`], then frames, each its payload followed by a footer of the payload's
//! length, the revision it brings the store to and the compacted revision (three
//! little-endian 64-bit numbers). The first frame's payload is a whole snapshot as
//! [`Store::snapshot`] encodes it, each later one a [`LayerOut`]. A footer at the end lets a
//! writer read the last revision without decoding anything. A snapshot without the magic is
//! a whole one, as every snapshot was before layers.

use crate::auth::AuthState;
use crate::detached::Detached;
use crate::history::{History, Rev};
use crate::lease::Lease;
use crate::maintenance::Alarm;
use crate::store::{MapKey, Store};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;

/// Begins a layered snapshot. A whole snapshot begins with its key count as a postcard
/// varint, at most ten bytes and the tenth holding a single bit, so ten bytes of `0xff` can
/// begin no snapshot that decodes.
pub(crate) const MAGIC: &[u8] = b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xffsynod-layers1";

/// Length of a frame's footer: payload length, revision, compacted revision.
const FOOTER: usize = 24;

/// The most frames a layered snapshot holds (the whole one and the layers on it); the next
/// snapshot is encoded whole.
pub(crate) const MAX_FRAMES: usize = 8;

/// Bytes of the base copied per write, so that a driver pacing the writes (by the progress
/// the writer reports) sees them a piece at a time.
const COPY_PIECE: usize = 1 << 20;

/// One frame of a layered snapshot.
struct Frame<'a> {
    payload: &'a [u8],
    revision: i64,
    compacted: i64,
}

/// The frames of `bytes` in order; `None` if they are not a layered snapshot.
fn frames(bytes: &[u8]) -> Option<Result<Vec<Frame<'_>>, String>> {
    let mut body = bytes.strip_prefix(MAGIC)?;
    let mut out = Vec::new();
    while !body.is_empty() {
        let Some(at) = body.len().checked_sub(FOOTER) else {
            return Some(Err(format!("a layer's footer cut to {} bytes", body.len())));
        };
        let (rest, footer) = body.split_at(at);
        let number = |i: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&footer[i * 8..(i + 1) * 8]);
            b
        };
        let len = u64::from_le_bytes(number(0));
        let Some(start) = usize::try_from(len)
            .ok()
            .and_then(|len| rest.len().checked_sub(len))
        else {
            return Some(Err(format!(
                "a layer of {len} bytes in {} bytes",
                rest.len()
            )));
        };
        out.push(Frame {
            payload: &rest[start..],
            revision: i64::from_le_bytes(number(1)),
            compacted: i64::from_le_bytes(number(2)),
        });
        body = &rest[..start];
    }
    if out.is_empty() {
        return Some(Err("a layered snapshot without a base".into()));
    }
    out.reverse();
    Some(Ok(out))
}

/// The revision of `base`'s last frame, if a layer for a store at `revision` and `compacted`
/// may be laid on it: `base` is layered, has room for another frame, and nothing was
/// compacted since.
fn layer_on(base: &[u8], revision: i64, compacted: i64) -> Option<i64> {
    let frames = frames(base)?.ok()?;
    let last = frames.last()?;
    (frames.len() < MAX_FRAMES && last.compacted == compacted && last.revision <= revision)
        .then_some(last.revision)
}

/// What a snapshot on a base writes: a layer of the entries above the base's revision, or a
/// whole frame.
pub(crate) enum Plan {
    /// A layer: the entries above the base's revision, taken out of the copy.
    Layer {
        /// Each changed key's entries above the base's revision, in key order.
        fresh: Vec<(MapKey, Vec<Rev>)>,
    },
    /// A whole frame (an empty base, a compaction since, or no room for another frame).
    Whole,
}

/// Decides what a snapshot of `copy` on `base` writes, and for a layer takes what it needs out
/// of `copy` now and lets go of the histories. A layer needs only the entries above the base,
/// but `copy` holds every key's whole history, shared with the live store: while it did, the
/// first put to each key copied that key's history on the node's loop, and since the base is
/// copied first, at its pace, that was every key the puts of those seconds touched
/// (docs/performance.md, "Where the open loop's tail comes from"). Taking the new entries out
/// copies only what the snapshot writes, once, on the snapshot's thread. After a layer's plan,
/// `copy` holds no entries, so it must not be written whole.
pub(crate) fn plan(copy: &mut Detached, base: &[u8]) -> Plan {
    match layer_on(base, copy.store.revision, copy.store.compacted) {
        Some(since) => {
            let fresh = NewEntries::of(copy.entries(), since)
                .entries
                .into_iter()
                .map(|(k, revs)| (k.clone(), revs.to_vec()))
                .collect();
            copy.let_go_of_entries();
            Plan::Layer { fresh }
        }
        None => Plan::Whole,
    }
}

/// Writes `copy`'s state as a layered snapshot as `plan` says: `base` then a layer, or a
/// whole frame. The caller counts and flushes.
pub(crate) fn write(
    copy: &Detached,
    plan: &Plan,
    base: &[u8],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let store = &copy.store;
    let mut out = Counted { out, written: 0 };
    match plan {
        Plan::Layer { fresh } => {
            for piece in base.chunks(COPY_PIECE) {
                out.write_all(piece)?;
            }
            let start = out.written;
            let layer = LayerOut {
                entries: NewEntries {
                    entries: fresh.iter().map(|(k, revs)| (k, revs.as_slice())).collect(),
                },
                leases: &store.leases,
                auth: &store.auth,
                alarms: &store.alarms,
            };
            postcard::to_io(&layer, &mut out).map_err(std::io::Error::other)?;
            footer(&mut out, start, store)
        }
        Plan::Whole => {
            out.write_all(MAGIC)?;
            let start = out.written;
            store.write_whole(copy, &mut out)?;
            footer(&mut out, start, store)
        }
    }
}

/// Ends the frame that began at `start`.
fn footer(out: &mut Counted<'_>, start: u64, store: &Store) -> std::io::Result<()> {
    let len = out.written - start;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(&store.revision.to_le_bytes())?;
    out.write_all(&store.compacted.to_le_bytes())
}

/// A writer that counts what passes.
struct Counted<'a> {
    out: &'a mut dyn Write,
    written: u64,
}

impl Write for Counted<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(bytes)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// A layer as written.
#[derive(Serialize)]
struct LayerOut<'a> {
    entries: NewEntries<'a>,
    leases: &'a BTreeMap<i64, Lease>,
    auth: &'a AuthState,
    alarms: &'a BTreeSet<Alarm>,
}

/// A layer as read.
#[derive(Deserialize)]
struct LayerIn {
    #[serde(deserialize_with = "crate::keys_encode::deserialize_entries")]
    entries: Vec<(MapKey, Arc<History>)>,
    leases: BTreeMap<i64, Lease>,
    auth: AuthState,
    alarms: BTreeSet<Alarm>,
}

/// Each key's entries above a revision, for the keys that have any, in key order: a serde
/// map of key to history, as the whole snapshot's key map.
struct NewEntries<'a> {
    entries: Vec<(&'a MapKey, &'a [Rev])>,
}

impl<'a> NewEntries<'a> {
    fn of(all: &'a [(MapKey, Arc<History>)], since: i64) -> Self {
        let entries = all
            .iter()
            .filter(|(_, h)| h.last().is_some_and(|r| r.main > since))
            .map(|(k, h)| (k, &h[h.partition_point(|r| r.main <= since)..]))
            .collect();
        NewEntries { entries }
    }
}

impl Serialize for NewEntries<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let entries = self.entries.iter().copied();
        crate::keys_encode::serialize_entries(self.entries.len(), entries, ser)
    }
}

/// The store a layered snapshot holds, before its checks and index (the caller's part);
/// `None` if `bytes` is not layered. Bytes from a peer are checked, never trusted: each
/// layer must follow the one before, keep its compacted revision and add entries only above
/// the revision it was laid on and up to its own.
pub(crate) fn restore(bytes: &[u8]) -> Option<Result<Store, String>> {
    Some(frames(bytes)?.and_then(|frames| {
        let (base, layers) = frames.split_first().ok_or("no base")?;
        let mut store = Store::read_whole(base.payload)?;
        if (store.revision, store.compacted) != (base.revision, base.compacted) {
            return Err(format!(
                "a base at revision {} (compacted {}) labelled {} ({})",
                store.revision, store.compacted, base.revision, base.compacted
            ));
        }
        for layer in layers {
            lay(&mut store, layer)?;
        }
        Ok(store)
    }))
}

/// Applies one layer to `store`.
fn lay(store: &mut Store, frame: &Frame<'_>) -> Result<(), String> {
    let since = store.revision;
    if frame.compacted != store.compacted || frame.revision < since {
        return Err(format!(
            "a layer to revision {} (compacted {}) on one at {since} ({})",
            frame.revision, frame.compacted, store.compacted
        ));
    }
    let layer: LayerIn =
        postcard::from_bytes(frame.payload).map_err(|e| format!("snapshot layer: {e}"))?;
    for (key, revs) in layer.entries {
        let (Some(first), Some(last)) = (revs.first(), revs.last()) else {
            return Err("a layer with an empty history".into());
        };
        if first.main <= since || last.main > frame.revision {
            return Err(format!(
                "a layer from {since} to {} with an entry at {}",
                frame.revision,
                if first.main <= since {
                    first.main
                } else {
                    last.main
                }
            ));
        }
        match store.keys.get_mut(&key) {
            Some(history) => Arc::make_mut(history).extend(revs.iter().cloned()),
            None => {
                store.keys.insert(key, revs);
            }
        }
    }
    store.revision = frame.revision;
    store.leases = layer.leases;
    store.auth = Arc::new(layer.auth);
    store.alarms = layer.alarms;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        AlarmCommand, AlarmKind, AuthCommand, CompactionRequest, DeleteRangeRequest, KvCommand,
        PutRequest,
    };
    use synod_core::multi::StateMachine;

    /// A small deterministic generator, so a failure replays.
    struct Mix(u64);

    impl Mix {
        fn next(&mut self, below: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % below
        }
    }

    /// Writes of every kind that change a store without a compaction: puts (some under a
    /// lease), deletes, lease grants, keep-alives and revokes, auth and alarms.
    fn churn(s: &mut Store, mix: &mut Mix, n: usize) {
        for _ in 0..n {
            let key = format!("k{:03}", mix.next(200)).into_bytes();
            let cmd = match mix.next(20) {
                0 => KvCommand::DeleteRange(DeleteRangeRequest {
                    key,
                    ..DeleteRangeRequest::default()
                }),
                1 => KvCommand::LeaseGrant {
                    id: 1 + mix.next(4) as i64,
                    ttl: 60,
                },
                2 => KvCommand::LeaseKeepAlive {
                    id: 1 + mix.next(4) as i64,
                },
                3 => KvCommand::LeaseRevoke {
                    id: 1 + mix.next(4) as i64,
                },
                4 => KvCommand::Auth(AuthCommand::RoleAdd {
                    name: format!("r{}", mix.next(5)),
                }),
                // An alarm raised stops the puts until the next is disarmed.
                5 if s.out_of_space() => KvCommand::Alarm(AlarmCommand::Deactivate {
                    member: 0,
                    kind: AlarmKind::NoSpace,
                }),
                5 => KvCommand::Alarm(AlarmCommand::Activate(crate::Alarm {
                    member: 1 + mix.next(3),
                    kind: AlarmKind::NoSpace,
                })),
                k => KvCommand::Put(PutRequest {
                    key,
                    value: vec![k as u8; mix.next(40) as usize].into(),
                    lease: if k == 6 { 1 + mix.next(4) as i64 } else { 0 },
                    ..PutRequest::default()
                }),
            };
            // Some fail (a lease not granted, a role already there): a failed write must
            // change nothing a layer would miss.
            s.apply(&cmd);
        }
    }

    fn after(s: &Store, base: &[u8]) -> Vec<u8> {
        s.snapshot_later().to_vec_after(base, &mut |_| {})
    }

    fn frame_count(bytes: &[u8]) -> usize {
        frames(bytes).expect("layered").expect("well formed").len()
    }

    /// How many holders the live store's history of `key` has.
    fn holders(s: &Store, key: &[u8]) -> usize {
        Arc::strong_count(s.keys.get(key).expect("the key is in the store"))
    }

    #[test]
    fn a_layer_lets_go_of_the_histories_before_it_copies_the_base() {
        let mut mix = Mix(7);
        let mut s = Store::new();
        churn(&mut s, &mut mix, 300);
        let base = after(&s, &s.snapshot());
        churn(&mut s, &mut mix, 100);
        let key = s.keys.keys().next().expect("a key").to_vec();
        let mut copy = Detached::new(s.shared_copy());
        assert_eq!(holders(&s, &key), 2, "the copy shares the history");
        let plan = plan(&mut copy, &base);
        assert!(matches!(plan, Plan::Layer { .. }));
        assert_eq!(holders(&s, &key), 1, "a put now changes it in place");
        // What it writes is still the store: the base, then a layer of what changed.
        let mut bytes = Vec::new();
        write(&copy, &plan, &base, &mut bytes).expect("a vector takes every write");
        assert!(bytes.starts_with(&base));
        assert_eq!(frame_count(&bytes), frame_count(&base) + 1);
        assert_eq!(Store::restore(&bytes).expect("restores"), s);
    }

    #[test]
    fn every_layer_restores_the_store_it_was_taken_of() {
        for seed in 0..20 {
            let mut mix = Mix(seed);
            let mut s = Store::new();
            churn(&mut s, &mut mix, 300);
            let mut bytes = s.snapshot();
            for round in 0..12 {
                let n = 1 + mix.next(150) as usize;
                churn(&mut s, &mut mix, n);
                let next = after(&s, &bytes);
                let back = Store::restore(&next)
                    .unwrap_or_else(|e| panic!("seed {seed} round {round}: {e}"));
                assert_eq!(back, s, "seed {seed} round {round}");
                // A whole snapshot first (the base was a plain one), then a layer a time up
                // to the limit, then whole again.
                assert_eq!(frame_count(&next), round % MAX_FRAMES + 1, "seed {seed}");
                if round % MAX_FRAMES > 0 {
                    assert!(
                        next.starts_with(&bytes),
                        "seed {seed}: the base copied as it was"
                    );
                }
                bytes = next;
            }
            // Most writes went through (an alarm stops puts until it is disarmed).
            assert!(s.revision() > 200, "seed {seed}: revision {}", s.revision());
        }
    }

    #[test]
    fn a_layer_holds_what_changed_not_the_whole_store() {
        let mut mix = Mix(7);
        let mut s = Store::new();
        for i in 0..2_000 {
            s.apply(&KvCommand::Put(PutRequest {
                key: format!("key-{i:05}").into_bytes(),
                value: vec![b'v'; 100].into(),
                ..PutRequest::default()
            }));
        }
        let base = after(&s, &s.snapshot());
        churn(&mut s, &mut mix, 20);
        let next = after(&s, &base);
        let layer = next.len() - base.len();
        assert!(
            layer < base.len() / 20,
            "layer {layer} on a base of {}",
            base.len()
        );
        assert_eq!(Store::restore(&next).unwrap(), s);
    }

    #[test]
    fn a_compaction_makes_the_next_snapshot_whole() {
        let mut mix = Mix(3);
        let mut s = Store::new();
        churn(&mut s, &mut mix, 400);
        let base = after(&s, &s.snapshot());
        churn(&mut s, &mut mix, 50);
        let layered = after(&s, &base);
        assert_eq!(frame_count(&layered), 2);
        let at = s.revision() - 20;
        let out = s.apply(&KvCommand::Compact(CompactionRequest { revision: at }));
        assert!(out.result.is_ok(), "{out:?} at {at}");
        let next = after(&s, &layered);
        assert_eq!(frame_count(&next), 1);
        assert_eq!(Store::restore(&next).unwrap(), s);
    }

    /// Rewrites the footer of frame `i` with `f` applied to its three numbers.
    fn relabel(bytes: &[u8], i: usize, f: impl Fn(&mut [i64; 3])) -> Vec<u8> {
        let frames = frames(bytes).unwrap().unwrap();
        let end =
            frames[i].payload.as_ptr() as usize - bytes.as_ptr() as usize + frames[i].payload.len();
        let mut numbers = [
            frames[i].payload.len() as i64,
            frames[i].revision,
            frames[i].compacted,
        ];
        f(&mut numbers);
        let mut out = bytes.to_vec();
        for (j, n) in numbers.iter().enumerate() {
            out[end + 8 * j..end + 8 * (j + 1)].copy_from_slice(&n.to_le_bytes());
        }
        out
    }

    #[test]
    fn layers_that_do_not_follow_their_base_are_refused() {
        let mut mix = Mix(11);
        let mut s = Store::new();
        churn(&mut s, &mut mix, 300);
        let base = after(&s, &s.snapshot());
        let base_rev = s.revision();
        while s.revision() < base_rev + 5 {
            churn(&mut s, &mut mix, 10);
        }
        let two = after(&s, &base);
        assert_eq!(frame_count(&two), 2);
        assert!(Store::restore(&two).is_ok());
        // A base labelled with another revision than it holds.
        assert!(Store::restore(&relabel(&two, 0, |n| n[1] += 1)).is_err());
        // A layer ending below the entries it holds: refused by the layer's own check, before
        // the restored store's.
        let err = Store::restore(&relabel(&two, 1, |n| n[1] = base_rev + 1)).unwrap_err();
        assert!(err.starts_with("a layer from"), "{err}");
        // A layer that says something was compacted.
        assert!(Store::restore(&relabel(&two, 1, |n| n[2] += 1)).is_err());
        // A length past the start, and a footer cut short.
        assert!(Store::restore(&relabel(&two, 1, |n| n[0] = i64::MAX)).is_err());
        assert!(Store::restore(&two[..two.len() - 3]).is_err());
        // The same layer twice: its entries are at or below the revision it is laid on.
        let layer = &two[base.len()..];
        let err = Store::restore(&[two.as_slice(), layer].concat()).unwrap_err();
        assert!(err.starts_with("a layer from"), "{err}");
        // Nothing after the magic.
        assert!(Store::restore(MAGIC).is_err());
    }

    #[test]
    fn no_whole_snapshot_begins_with_the_magic() {
        // Ten bytes of 0xff as the key count's varint do not decode.
        let mut plain = Store::new().snapshot();
        plain.splice(0..1, MAGIC.iter().copied());
        assert!(postcard::take_from_bytes::<Store>(&plain).is_err());
    }
}
