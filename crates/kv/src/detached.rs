//! A store copied for a snapshot, let go of the live store's key map before it is encoded.
//!
//! The copy a snapshot takes is one pointer: it shares the live store's key map, a persistent
//! B-tree. But while it shares it, every put on the node loop copies the tree nodes on its
//! key's path before it changes them, and copying a node clones each of its entries (a
//! reference count raised on a cold cache line per key). At a million keys that burst, the
//! first seconds of every snapshot, was the worst window of puts: 57-69% of the median, the
//! same whether or not the copy was then encoded (docs/performance.md, "What a snapshot's
//! windows pay for"). So the snapshot's thread, before it encodes anything, takes the entries
//! into a vector of its own and drops its hold on the map: from then on the loop's puts find
//! their nodes unshared and change them in place. The histories stay shared while a whole
//! snapshot is encoded (a put copies its key's history first); a layer takes the few entries
//! it writes and lets go of them before it copies its base ([`crate::layers::plan`]). The
//! vector is encoded in the bytes the map would give.

use crate::history::History;
use crate::store::{MapKey, Store};
use serde::ser::{Serialize, SerializeStruct, Serializer};
use std::sync::Arc;

/// A store whose key map has been taken apart into `entries`, in key order.
pub(crate) struct Detached {
    /// Everything but the keys (its key map is empty).
    pub(crate) store: Store,
    entries: Vec<(MapKey, Arc<History>)>,
}

impl Detached {
    /// Takes `store`'s entries out of its key map and lets the map go.
    pub(crate) fn new(mut store: Store) -> Self {
        let keys = std::mem::take(&mut store.keys);
        let mut entries = Vec::with_capacity(keys.len());
        entries.extend(keys.iter().map(|(k, h)| (k.clone(), h.clone())));
        // Dropping the copy's root gives the live store's nodes back their single owner.
        drop(keys);
        Detached { store, entries }
    }

    /// The entries, in key order.
    pub(crate) fn entries(&self) -> &[(MapKey, Arc<History>)] {
        &self.entries
    }

    /// Drops the entries, and with them this copy's hold on the live store's histories:
    /// from then on a put changes its key's history in place. The copy then encodes as a
    /// store without keys, so only a layer's writer, which took what it needs, calls this.
    pub(crate) fn let_go_of_entries(&mut self) {
        self.entries = Vec::new();
    }
}

/// The entries as the key map's serde map.
struct Entries<'a>(&'a [(MapKey, Arc<History>)]);

impl Serialize for Entries<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        crate::keys_encode::serialize_entries(self.0.len(), self.0.iter().map(|(k, h)| (k, h)), ser)
    }
}

/// The bytes [`Store`]'s own `Serialize` gives: its serialized fields in their order, the
/// keys from the vector. `a_detached_copy_encodes_as_its_store` holds the two together.
impl Serialize for Detached {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut st = ser.serialize_struct("Store", 4)?;
        st.serialize_field("keys", &Entries(&self.entries))?;
        st.serialize_field("revision", &self.store.revision)?;
        st.serialize_field("compacted", &self.store.compacted)?;
        st.serialize_field("leases", &self.store.leases)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use crate::{Alarm, AlarmCommand, AlarmKind};
    use crate::{CompactionRequest, DeleteRangeRequest, KvCommand, PutRequest, Store};
    use synod_core::multi::StateMachine;

    fn put(s: &mut Store, key: String, value: &str, lease: i64) {
        let out = s.apply(&KvCommand::Put(PutRequest {
            key: key.into_bytes(),
            value: value.as_bytes().to_vec().into(),
            lease,
            ..PutRequest::default()
        }));
        assert!(out.result.is_ok(), "{out:?}");
    }

    /// Enough keys for the key map to have several levels, histories of more than one entry,
    /// a deletion, a compaction, a lease with a key, an alarm and auth: every part of a
    /// snapshot.
    fn store() -> Store {
        let mut s = Store::new();
        assert!(s
            .apply(&KvCommand::LeaseGrant { id: 9, ttl: 60 })
            .result
            .is_ok());
        for i in 0..3_000 {
            put(&mut s, format!("k{:05}", (i * 7_919) % 3_000), "v", 0);
        }
        for i in 0..500 {
            put(
                &mut s,
                format!("k{:05}", i * 3),
                "w",
                if i % 50 == 0 { 9 } else { 0 },
            );
        }
        let del = KvCommand::DeleteRange(DeleteRangeRequest {
            key: b"k00010".to_vec(),
            range_end: b"k00020".to_vec(),
            ..DeleteRangeRequest::default()
        });
        assert!(s.apply(&del).result.is_ok());
        let compact = KvCommand::Compact(CompactionRequest { revision: 1_000 });
        assert!(s.apply(&compact).result.is_ok());
        let alarm = Alarm {
            member: 2,
            kind: AlarmKind::Corrupt,
        };
        s.apply(&KvCommand::Alarm(AlarmCommand::Raise(alarm)));
        s.apply(&KvCommand::Auth(crate::AuthCommand::RoleAdd {
            name: "r".into(),
        }));
        s
    }

    #[test]
    fn a_detached_copy_encodes_as_its_store() {
        let mut s = store();
        let whole = s.snapshot();
        assert_eq!(s.snapshot_later().to_vec(&mut |_| {}), whole);
        let mut out = Vec::new();
        let len = s.snapshot_later().to_writer(&mut out, &mut |_| {}).unwrap();
        assert_eq!((len as usize, &out), (whole.len(), &whole));
        // A copy taken, then puts on the live store: the copy still encodes the state it was
        // taken at, and the live store goes on as one that never snapshotted.
        let copy = s.snapshot_later();
        let mut twin = s.clone();
        for i in 0..200 {
            put(&mut s, format!("k{:05}", i * 11), "x", 0);
            put(&mut twin, format!("k{:05}", i * 11), "x", 0);
        }
        assert_eq!(copy.to_vec(&mut |_| {}), whole);
        assert_eq!(s, twin);
        assert_eq!(Store::restore(&s.snapshot()).unwrap(), twin);
    }
}
