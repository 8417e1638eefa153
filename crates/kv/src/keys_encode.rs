//! How a snapshot encodes the store's key map: the bytes imbl's own `Serialize` makes (a map
//! of the entries in key order), made with fewer stalls.
//!
//! At a million keys the encode spent most of its time waiting for memory: each entry leads
//! through up to three heap objects made at different times (the key's history, the history's
//! spilled entries, and each value's bytes), and a walk that
//! follows them one entry after another waits for each in turn. This walk takes the entries a
//! batch at a time and touches each level of the batch's objects before it encodes any: the
//! loads of one level do not depend on each other, so the processor has many of them in
//! flight at once, and the encode then finds its objects in cache. Plain reads, no prefetch
//! instructions: nothing unsafe and nothing tied to one architecture.
//!
//! Keys are encoded and decoded as byte strings rather than byte by byte (a `SmallVec`
//! serializes as a sequence); postcard writes both as the length followed by the bytes.

use crate::history::{History, HistoryOf, Keyed, Rev};
use crate::store::MapKey;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use std::sync::Arc;

/// Entries per batch: enough loads in flight to cover a memory latency, few enough that a
/// batch's objects stay in the caches until they are encoded (a batch touches some 30 KiB).
const BATCH: usize = 64;

/// The key map as a serde map, in the bytes `imbl::OrdMap`'s own `Serialize` gives.
pub(crate) fn serialize<S: Serializer>(
    keys: &imbl::OrdMap<MapKey, Arc<History>>,
    ser: S,
) -> Result<S::Ok, S::Error> {
    serialize_entries(keys.len(), keys.iter(), ser)
}

/// A key's entries as a snapshot encodes them: its history, or the part of it a snapshot
/// layer holds.
pub(crate) trait Revs {
    /// The entries.
    fn revs(&self) -> &[Rev];
}

impl Revs for &Arc<History> {
    fn revs(&self) -> &[Rev] {
        self
    }
}

impl Revs for &[Rev] {
    fn revs(&self) -> &[Rev] {
        self
    }
}

/// [`serialize`]'s bytes from `len` entries in key order, wherever they are held. Generic
/// over how the entries are held, so that a history behind an `Arc` is first read in
/// [`touch`], with the rest of its batch, and not one at a time as the entries are taken.
pub(crate) fn serialize_entries<'a, S: Serializer, H: Revs>(
    len: usize,
    mut entries: impl Iterator<Item = (&'a MapKey, H)>,
    ser: S,
) -> Result<S::Ok, S::Error> {
    let mut map = ser.serialize_map(Some(len))?;
    let mut batch: Vec<(&MapKey, H)> = Vec::with_capacity(BATCH);
    loop {
        batch.clear();
        batch.extend(entries.by_ref().take(BATCH));
        if batch.is_empty() {
            break;
        }
        touch(&batch);
        for (key, history) in &batch {
            map.serialize_entry(serde_bytes::Bytes::new(key), &Keyed(key, history.revs()))?;
        }
    }
    map.end()
}

/// Reads one byte's worth of each object the batch's entries lead to, a level at a time.
fn touch(batch: &[(&MapKey, impl Revs)]) {
    let mut sum = 0usize;
    // The histories themselves (the `Arc`'s allocation holds one entry inline).
    for (_, history) in batch {
        sum = sum.wrapping_add(history.revs().len());
    }
    // A history of more than one entry keeps them in an allocation of their own.
    for (_, history) in batch {
        sum = sum.wrapping_add(history.revs().first().map_or(0, |rev| rev.main as usize));
    }
    // The value's bytes.
    for (_, history) in batch {
        for rev in history.revs() {
            if let Some(kv) = &rev.kv {
                sum = sum.wrapping_add(kv.value.first().copied().unwrap_or(0) as usize);
            }
        }
    }
    // Keeps the reads from being optimized away.
    std::hint::black_box(sum);
}

/// The key map from the bytes [`serialize`] makes (and imbl's own `Serialize` made), with
/// each key read as a byte string rather than byte by byte.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<imbl::OrdMap<MapKey, Arc<History>>, D::Error> {
    deserialize_entries(de).map(imbl::OrdMap::from)
}

/// The entries of the bytes [`serialize_entries`] makes, in their order.
pub(crate) fn deserialize_entries<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<Vec<(MapKey, Arc<History>)>, D::Error> {
    de.deserialize_map(Entries)
}

/// Room reserved up front for at most this many entries: the count comes from the snapshot,
/// which may have come from a peer, so it is not trusted with an allocation.
const RESERVE_MAX: usize = 1 << 16;

struct Entries;

impl<'de> Visitor<'de> for Entries {
    type Value = Vec<(MapKey, Arc<History>)>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a map of keys to their histories")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0).min(RESERVE_MAX));
        while let Some(Key(key)) = access.next_key::<Key>()? {
            let history = access.next_value_seed(HistoryOf(&key))?;
            entries.push((key, history));
        }
        Ok(entries)
    }
}

/// A key read as a byte string.
struct Key(MapKey);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_bytes(KeyBytes)
    }
}

struct KeyBytes;

impl<'de> Visitor<'de> for KeyBytes {
    type Value = Key;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key's bytes")
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Key, E> {
        Ok(Key(MapKey::from_slice(bytes)))
    }
}
