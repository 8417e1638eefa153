//! A key's history as the store keeps it, and the bytes snapshots give it.
//!
//! Each entry of a history keeps what a `KeyValue` says except the key (the key map holds it)
//! and the mod revision (the entry's own revision): at a million keys those two were 48 bytes
//! of every key's 567, a second copy of the key on the heap among them. What is left is held
//! in the entry itself rather than behind a pointer of its own: the value's bytes are shared
//! already, so copying an entry is cheap, and the pointer cost an allocation per write and a
//! memory access per entry a snapshot encodes (24 more bytes a key). Snapshots still encode
//! each entry's whole `KeyValue`, so their bytes did not change; decoding checks that the key
//! and mod revision it finds are the ones it can rebuild, and refuses a snapshot where they
//! are not.

use crate::types::KeyValue;
use bytes::Bytes;
use serde::de::{DeserializeSeed, Error as _, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Deserializer, Serialize};
use std::borrow::Cow;
use std::sync::Arc;

/// One entry of a key's history: a value written at `(main, sub)`, or a deletion (`None`).
/// The value is held inline: copying a history (copy-on-write, while a snapshot holds it)
/// copies its numbers and a reference to the value's bytes, never the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rev {
    pub(crate) main: i64,
    pub(crate) sub: i64,
    pub(crate) kv: Option<StoredValue>,
}

/// A key's history. Inline room for one entry: most keys of a large store are written once,
/// and a history kept in a `Vec` would cost a second allocation per key. Encoded as a
/// sequence, like the `Vec` it replaced, so snapshots keep their bytes.
pub(crate) type History = smallvec::SmallVec<[Rev; 1]>;

/// A value as a history keeps it: a [`KeyValue`] without its key and mod revision, which the
/// key map and the history entry hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredValue {
    pub(crate) create_revision: i64,
    pub(crate) version: i64,
    pub(crate) lease: i64,
    /// Shared with the put that wrote it (the log keeps that put until the next snapshot).
    pub(crate) value: Bytes,
}

impl StoredValue {
    /// The value as a client sees it: of `key`, written at revision `main`.
    pub(crate) fn to_kv(&self, key: &[u8], main: i64) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            create_revision: self.create_revision,
            mod_revision: main,
            version: self.version,
            value: self.value.clone(),
            lease: self.lease,
        }
    }
}

/// A history with its key, encoded as the sequence of entries it was before entries dropped
/// their key: `(main, sub, Option<KeyValue>)` each.
pub(crate) struct Keyed<'a>(pub(crate) &'a [u8], pub(crate) &'a [Rev]);

impl Serialize for Keyed<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut seq = ser.serialize_seq(Some(self.1.len()))?;
        for rev in self.1.iter() {
            seq.serialize_element(&RevOut {
                main: rev.main,
                sub: rev.sub,
                kv: rev.kv.as_ref().map(|v| KeyValueOut {
                    key: self.0,
                    create_revision: v.create_revision,
                    mod_revision: rev.main,
                    version: v.version,
                    value: &v.value,
                    lease: v.lease,
                }),
            })?;
        }
        seq.end()
    }
}

/// An entry as snapshots encode it (the fields of the `Rev` that had a whole `KeyValue`).
#[derive(Serialize)]
struct RevOut<'a> {
    main: i64,
    sub: i64,
    kv: Option<KeyValueOut<'a>>,
}

/// A [`KeyValue`]'s encoding, from borrowed parts.
#[derive(Serialize)]
struct KeyValueOut<'a> {
    #[serde(with = "serde_bytes")]
    key: &'a [u8],
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    #[serde(with = "serde_bytes")]
    value: &'a [u8],
    lease: i64,
}

/// An entry as decoded, before its key and mod revision are checked and dropped.
#[derive(Deserialize)]
struct RevIn<'a> {
    main: i64,
    sub: i64,
    #[serde(borrow)]
    kv: Option<KeyValueIn<'a>>,
}

/// A [`KeyValue`]'s encoding, its key borrowed from the snapshot's bytes where it can be.
#[derive(Deserialize)]
struct KeyValueIn<'a> {
    #[serde(borrow, with = "serde_bytes")]
    key: Cow<'a, [u8]>,
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    value: Bytes,
    lease: i64,
}

/// Decodes the history of `key` (what [`Keyed`] encodes).
pub(crate) struct HistoryOf<'k>(pub(crate) &'k [u8]);

impl<'de> DeserializeSeed<'de> for HistoryOf<'_> {
    type Value = Arc<History>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for HistoryOf<'_> {
    type Value = Arc<History>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key's history")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Most histories hold one entry; the count comes from the snapshot, so it is not
        // trusted with an allocation.
        let mut history = History::new();
        while let Some(rev) = seq.next_element::<RevIn<'de>>()? {
            let kv = match rev.kv {
                None => None,
                Some(kv) if kv.key[..] != *self.0 || kv.mod_revision != rev.main => {
                    return Err(A::Error::custom(format!(
                        "key {:?}: a value at {:?} stamped with another key or revision",
                        String::from_utf8_lossy(self.0),
                        (rev.main, rev.sub)
                    )));
                }
                Some(kv) => Some(StoredValue {
                    create_revision: kv.create_revision,
                    version: kv.version,
                    lease: kv.lease,
                    value: kv.value,
                }),
            };
            history.push(Rev {
                main: rev.main,
                sub: rev.sub,
                kv,
            });
        }
        Ok(Arc::new(history))
    }
}
