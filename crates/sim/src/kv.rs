//! The tiny key-value state machine the simulated clients drive, and their operations.

use std::collections::BTreeMap;
use std::sync::Arc;
use synod_core::multi::StateMachine;

/// A key-value operation. Strings are shared so that copying a batch into many messages is
/// cheap. Serializable, as every replicated command is, for the digest a leader sends an
/// auxiliary acceptor.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum KvOp {
    /// Read a key.
    Get(Arc<str>),
    /// Write a key.
    Put(Arc<str>, Arc<str>),
    /// Write `new` if the key currently holds `expected` (`None`: absent).
    Cas {
        /// The key.
        key: Arc<str>,
        /// The value required.
        expected: Option<Arc<str>>,
        /// The value written on success.
        new: Arc<str>,
    },
}

impl KvOp {
    /// The key the operation touches.
    pub fn key(&self) -> &Arc<str> {
        match self {
            KvOp::Get(k) | KvOp::Put(k, _) | KvOp::Cas { key: k, .. } => k,
        }
    }
}

/// What an operation returned.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KvResult {
    /// A read's value.
    Value(#[serde(with = "opt_arc")] Option<Arc<str>>),
    /// A write succeeded.
    Written,
    /// Whether a compare-and-set took effect.
    Swapped(bool),
}

/// An in-memory map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kv {
    map: BTreeMap<Arc<str>, Arc<str>>,
}

impl Kv {
    /// The current value of `key`.
    pub fn get(&self, key: &str) -> Option<&Arc<str>> {
        self.map.get(key)
    }
}

/// Serde for `Option<Arc<str>>` without serde's `rc` feature.
mod opt_arc {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::sync::Arc;

    pub fn serialize<S: Serializer>(v: &Option<Arc<str>>, s: S) -> Result<S::Ok, S::Error> {
        v.as_deref().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Arc<str>>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(Arc::from))
    }
}

impl StateMachine for Kv {
    type Command = KvOp;
    type Output = KvResult;

    fn apply(&mut self, op: &KvOp) -> KvResult {
        match op {
            KvOp::Get(k) => KvResult::Value(self.map.get(k).cloned()),
            KvOp::Put(k, v) => {
                self.map.insert(k.clone(), v.clone());
                KvResult::Written
            }
            KvOp::Cas { key, expected, new } => {
                if self.map.get(key) == expected.as_ref() {
                    self.map.insert(key.clone(), new.clone());
                    KvResult::Swapped(true)
                } else {
                    KvResult::Swapped(false)
                }
            }
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        let pairs: Vec<(&str, &str)> = self.map.iter().map(|(k, v)| (&**k, &**v)).collect();
        postcard::to_stdvec(&pairs).expect("strings serialize")
    }

    fn restore(bytes: &[u8]) -> Result<Self, String> {
        let pairs: Vec<(String, String)> =
            postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
        Ok(Kv {
            map: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_compares_with_absent_and_present() {
        let mut kv = Kv::default();
        let k: Arc<str> = "k".into();
        let cas = |e: Option<&str>, n: &str| KvOp::Cas {
            key: k.clone(),
            expected: e.map(Into::into),
            new: n.into(),
        };
        assert_eq!(kv.apply(&cas(Some("x"), "a")), KvResult::Swapped(false));
        assert_eq!(kv.apply(&cas(None, "a")), KvResult::Swapped(true));
        assert_eq!(kv.apply(&cas(None, "b")), KvResult::Swapped(false));
        assert_eq!(kv.apply(&cas(Some("a"), "b")), KvResult::Swapped(true));
        assert_eq!(
            kv.apply(&KvOp::Get(k.clone())),
            KvResult::Value(Some("b".into()))
        );
    }
}
