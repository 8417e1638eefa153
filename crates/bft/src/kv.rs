//! The state machine a PBFT cluster serves: a map from byte keys to byte values.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::collections::BTreeMap;
use synod_core::pbft::Service;
use synod_core::NodeId;

/// An operation on the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvOp {
    /// Sets `key` to `value`.
    Put {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// The value.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// Reads `key`. It goes through the agreement like a write: a read answered by one
    /// replica alone could be a lie, and `f + 1` replicas answering from their own state
    /// could each be at a different point of the log.
    Get {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
    },
    /// Removes `key`.
    Delete {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
    },
}

/// What an operation returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvResult {
    /// A put: the value the key held before, if any.
    Put {
        /// The previous value.
        prev: Option<ByteBuf>,
    },
    /// A get: the value, if the key is set.
    Get {
        /// The value.
        value: Option<ByteBuf>,
    },
    /// A delete: whether the key was set.
    Delete {
        /// Whether a value was removed.
        existed: bool,
    },
}

/// The replicated map.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvStore {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl KvStore {
    /// The value of `key`, if set.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.map.get(key).map(|v| v.as_slice())
    }

    /// Keys set.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl Service for KvStore {
    type Op = KvOp;
    type Result = KvResult;

    fn execute(&mut self, _client: NodeId, op: &KvOp) -> KvResult {
        match op {
            KvOp::Put { key, value } => KvResult::Put {
                prev: self
                    .map
                    .insert(key.clone(), value.clone())
                    .map(ByteBuf::from),
            },
            KvOp::Get { key } => KvResult::Get {
                value: self.map.get(key.as_slice()).cloned().map(ByteBuf::from),
            },
            KvOp::Delete { key } => KvResult::Delete {
                existed: self.map.remove(key.as_slice()).is_some(),
            },
        }
    }

    fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("encoding into memory does not fail")
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_delete_and_state_round_trip() {
        let mut s = KvStore::default();
        let put = |v: &str| KvOp::Put {
            key: b"k".to_vec(),
            value: v.as_bytes().to_vec(),
        };
        assert_eq!(s.execute(1, &put("a")), KvResult::Put { prev: None });
        assert_eq!(
            s.execute(1, &put("b")),
            KvResult::Put {
                prev: Some(b"a".to_vec().into())
            }
        );
        let back = KvStore::decode(&s.encode()).expect("decodes");
        assert_eq!(back, s);
        assert_eq!(back.get(b"k"), Some(&b"b"[..]));
        let del = KvOp::Delete { key: b"k".to_vec() };
        assert_eq!(s.execute(1, &del), KvResult::Delete { existed: true });
        assert_eq!(s.execute(1, &del), KvResult::Delete { existed: false });
        assert!(KvStore::decode(&[0xff, 0xff]).is_none());
    }
}
