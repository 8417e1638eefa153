//! The multi-version store: every key keeps its history of values and deletions by revision.

use crate::auth::{AuthCommand, AuthState};
use crate::error::KvError;
pub(crate) use crate::history::{History, Rev, StoredValue};
use crate::lease::Lease;
use crate::maintenance::Alarm;
use crate::range::KeyRange;
use crate::txn::{check_duplicates, compare_holds};
use crate::types::*;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A key as the key map holds it: up to 24 bytes inline, so that the comparisons a lookup
/// makes read the map's own nodes rather than follow a pointer per key (at a million keys a
/// lookup makes some twenty, and the key bytes behind them were a cache miss each). Longer
/// keys spill to the heap as before. Encoded as a sequence of bytes, as the `Vec` it replaced.
pub(crate) type MapKey = smallvec::SmallVec<[u8; 24]>;

/// The keys one revision changed, in `sub` order (a key twice if it changed twice).
pub(crate) type Changed = Box<[Box<[u8]>]>;

/// An MVCC key-value store with etcd's revision rules: the store starts at revision 1; every
/// write request (a put, a delete that deletes something, a transaction with any write) creates
/// exactly one new revision, shared by all its writes; history below the compacted revision is
/// gone.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Store {
    /// Each key's history. A persistent B-tree, so that the copy of the store a snapshot
    /// encodes costs one pointer, not a pointer per key (at a million keys that copy stalled
    /// the node loop for 0.2-0.8 s); writes made while a copy lives copy only the tree nodes
    /// they touch. Histories are shared copy-on-write likewise. Encoded by
    /// [`crate::keys_encode`], in the map's own bytes.
    #[serde(with = "crate::keys_encode")]
    pub(crate) keys: imbl::OrdMap<MapKey, Arc<History>>,
    pub(crate) revision: i64,
    pub(crate) compacted: i64,
    /// Leases by id, with the keys attached to each.
    pub(crate) leases: BTreeMap<i64, Lease>,
    /// Which keys each revision changed, in `sub` order: what watchers replay. Derived from
    /// `keys`, so snapshots leave it out and [`Store::rebuild_index`] recomputes it. Revisions
    /// only ever grow and compaction cuts from the front, so a sorted queue does what a map
    /// would at a third of the memory per revision (at a million keys the map and its
    /// spare capacity cost about 150 bytes a put).
    #[serde(skip)]
    pub(crate) by_rev: VecDeque<(i64, Changed)>,
    /// Users, roles and the auth switch. Snapshots carry it after the store's own bytes, and
    /// only once auth was ever used, so snapshots from before auth existed still restore.
    /// Shared, so the server can publish it to its request handlers without copying.
    #[serde(skip)]
    pub(crate) auth: Arc<AuthState>,
    /// Raised alarms. Carried in snapshots after the auth state, likewise only when any is
    /// raised.
    #[serde(skip)]
    pub(crate) alarms: BTreeSet<Alarm>,
    /// How long the last snapshot's encoding was, shared with the copies snapshots encode.
    #[serde(skip)]
    pub(crate) encoded_len: EncodedLen,
    /// Keys live at the current revision, kept as writes go: counting them walked every key
    /// (79 ms at a million), on the node loop, for every status request. Derived from `keys`,
    /// so snapshots leave it out and [`Store::rebuild_index`] recounts it.
    #[serde(skip)]
    pub(crate) live: usize,
}

/// The length of a store's last snapshot encoding (or of the snapshot it was restored from),
/// shared by the store and its copies: the next encoding reserves room from it and so skips
/// the walk that would count its size (`Store::snapshot_with`). A hint about cost only, never
/// part of the state: two stores are equal whatever their hints say.
#[derive(Clone, Default)]
pub(crate) struct EncodedLen(Arc<AtomicUsize>);

impl std::fmt::Debug for EncodedLen {
    /// Nothing of the hint: stores that are equal print the same.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncodedLen")
    }
}

impl EncodedLen {
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, len: usize) {
        self.0.store(len, Ordering::Relaxed)
    }
}

impl PartialEq for EncodedLen {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for EncodedLen {}

impl Default for Store {
    fn default() -> Self {
        Store {
            keys: imbl::OrdMap::new(),
            revision: 1,
            compacted: 0,
            leases: BTreeMap::new(),
            by_rev: VecDeque::new(),
            auth: Arc::default(),
            alarms: BTreeSet::new(),
            encoded_len: EncodedLen::default(),
            live: 0,
        }
    }
}

/// A write in progress: every change is stamped with `main`; `sub` counts them.
pub(crate) struct Write {
    pub(crate) main: i64,
    pub(crate) sub: i64,
    touched: BTreeSet<Vec<u8>>,
    order: Vec<Box<[u8]>>,
}

impl Store {
    /// An empty store at revision 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy for a snapshot, cheap because histories are shared: a pointer per key and the
    /// lease table. The revision index is left out, as snapshots leave it out.
    pub fn shared_copy(&self) -> Store {
        Store {
            keys: self.keys.clone(),
            revision: self.revision,
            compacted: self.compacted,
            leases: self.leases.clone(),
            by_rev: VecDeque::new(),
            auth: self.auth.clone(),
            alarms: self.alarms.clone(),
            encoded_len: self.encoded_len.clone(),
            live: self.live,
        }
    }

    /// Users, roles and permissions, shared (cloning the `Arc` is how the server publishes
    /// them; a change makes a new one).
    pub fn auth(&self) -> &Arc<AuthState> {
        &self.auth
    }

    pub(crate) fn auth_apply(&mut self, cmd: &AuthCommand) -> Result<(), KvError> {
        // Tried on a copy, so a failed change leaves the shared state (and its `Arc`) as it was.
        let mut next = (*self.auth).clone();
        next.apply(cmd)?;
        self.auth = Arc::new(next);
        Ok(())
    }

    /// Appends the auth state and then the alarms to snapshot bytes: the alarms only if any is
    /// raised, the auth state only if auth was ever touched or alarms follow. So a snapshot of
    /// a store that never used either is exactly what older versions wrote and read.
    pub(crate) fn append_trailer(&self, bytes: &mut Vec<u8>) {
        if self.auth.revision() > 0 || !self.alarms.is_empty() {
            bytes.extend(postcard::to_stdvec(&*self.auth).expect("auth state serializes"));
        }
        if !self.alarms.is_empty() {
            bytes.extend(postcard::to_stdvec(&self.alarms).expect("alarms serialize"));
        }
    }

    /// Reads what [`Store::append_trailer`] appended.
    pub(crate) fn restore_trailer(&mut self, rest: &[u8]) -> Result<(), String> {
        if rest.is_empty() {
            return Ok(());
        }
        let (auth, left): (AuthState, _) =
            postcard::take_from_bytes(rest).map_err(|e| format!("auth snapshot: {e}"))?;
        self.auth = Arc::new(auth);
        if !left.is_empty() {
            let (alarms, left): (BTreeSet<Alarm>, _) =
                postcard::take_from_bytes(left).map_err(|e| format!("alarms snapshot: {e}"))?;
            if !left.is_empty() {
                return Err(format!("{} stray bytes after the snapshot", left.len()));
            }
            self.alarms = alarms;
        }
        Ok(())
    }

    /// The current revision.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The compacted revision (0 if never compacted).
    pub fn compacted(&self) -> i64 {
        self.compacted
    }

    /// Number of live keys at the current revision.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether a key with this history is live at the current revision.
    fn is_live(history: &[Rev]) -> bool {
        history.last().is_some_and(|r| r.kv.is_some())
    }

    /// Counts the live keys again, walking every key: for a store just decoded.
    pub(crate) fn recount(&mut self) {
        self.live = self.keys.values().filter(|h| Self::is_live(h)).count();
    }

    /// True when no key is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of a key with this history visible at revision `at`, with the revision it
    /// was written at.
    fn visible(history: &[Rev], at: i64) -> Option<Visible<'_>> {
        // A put, and a read at the current revision, see the newest entry: taking it first
        // spares the binary search, whose steps through a long history (every revision is kept
        // until a compaction) are each a cache miss: 85% of a put's time in the store.
        let rev = match history.last() {
            Some(last) if last.main <= at => last,
            _ => history[..history.partition_point(|r| r.main <= at)].last()?,
        };
        Some(Visible {
            main: rev.main,
            value: rev.kv.as_ref()?,
        })
    }

    /// Every version of every key still kept (not compacted away), deletions left out: what
    /// each write left behind, for checking that no write was applied twice.
    pub fn versions(&self) -> impl Iterator<Item = KeyValue> + '_ {
        self.keys.iter().flat_map(|(key, h)| {
            h.iter()
                .filter_map(move |r| Some(r.kv.as_ref()?.to_kv(key, r.main)))
        })
    }

    /// The current version of `key`, if it exists.
    pub fn get(&self, key: &[u8]) -> Option<KeyValue> {
        let (key, h) = self.keys.get_key_value(key)?;
        Self::visible(h, i64::MAX).map(|v| v.to_kv(key))
    }

    /// Keys selected by `range`, as visible at revision `at`.
    fn scan<'a>(
        &'a self,
        range: &KeyRange,
        at: i64,
    ) -> impl Iterator<Item = (&'a [u8], Visible<'a>)> + 'a {
        // The map's range holds no borrow of the bounds once made, so they borrow `range`.
        (!range.is_empty())
            .then(|| self.keys.range::<_, [u8]>(range.bounds()))
            .into_iter()
            .flatten()
            .filter_map(move |(k, h)| Some((&k[..], Self::visible(h, at)?)))
    }

    /// Serves a range request (reading as of `req.revision`, or now).
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, KvError> {
        self.range_at(req, self.revision)
    }

    fn range_at(&self, req: &RangeRequest, current: i64) -> Result<RangeResponse, KvError> {
        let at = match req.revision {
            r if r <= 0 => current,
            r if r > current => return Err(KvError::FutureRevision),
            r if r < self.compacted => return Err(KvError::Compacted),
            r => r,
        };
        let range = KeyRange::new(&req.key, &req.range_end);
        let within = |v: i64, lo: i64, hi: i64| (lo == 0 || v >= lo) && (hi == 0 || v <= hi);
        let mut matches = self
            .scan(&range, at)
            .filter(|(_, v)| within(v.main, req.min_mod_revision, req.max_mod_revision))
            .filter(|(_, v)| {
                within(
                    v.value.create_revision,
                    req.min_create_revision,
                    req.max_create_revision,
                )
            });
        let order = match (req.sort_order, req.sort_target) {
            (SortOrder::None, SortTarget::Key) => SortOrder::None,
            (SortOrder::None, _) => SortOrder::Ascend,
            (o, _) => o,
        };
        // A range answers with how many keys it matched, so it walks them all; it keeps only
        // those it may answer with (all of them if it sorts), and copies out only those that
        // make the answer. At a million keys, `--limit 10` and `--count-only` copied every
        // key and value out before (docs/performance.md).
        let sorted = order != SortOrder::None && !req.count_only;
        let keep = match req.limit {
            _ if req.count_only => 0,
            l if l > 0 && !sorted => usize::try_from(l).unwrap_or(usize::MAX),
            _ => usize::MAX,
        };
        let mut kvs: Vec<(&[u8], Visible)> = matches.by_ref().take(keep).collect();
        let count = (kvs.len() + matches.count()) as i64;
        if sorted {
            kvs.sort_by(|(ak, a), (bk, b)| {
                let ord = match req.sort_target {
                    SortTarget::Key => ak.cmp(bk),
                    SortTarget::Version => a.value.version.cmp(&b.value.version),
                    SortTarget::Create => a.value.create_revision.cmp(&b.value.create_revision),
                    SortTarget::Mod => a.main.cmp(&b.main),
                    SortTarget::Value => a.value.value.cmp(&b.value.value),
                };
                if order == SortOrder::Descend {
                    ord.reverse()
                } else {
                    ord
                }
            });
        }
        let more = req.limit > 0 && count > req.limit;
        if more {
            kvs.truncate(usize::try_from(req.limit).unwrap_or(usize::MAX));
        }
        let kvs = kvs
            .into_iter()
            .map(|(key, v)| {
                let mut kv = v.to_kv(key);
                if req.keys_only {
                    kv.value = Bytes::new();
                }
                kv
            })
            .collect();
        Ok(RangeResponse { kvs, more, count })
    }

    pub(crate) fn begin(&self) -> Write {
        Write {
            main: self.revision + 1,
            sub: 0,
            touched: BTreeSet::new(),
            order: Vec::new(),
        }
    }

    /// Makes a write's changes the new revision, or undoes them on error.
    pub(crate) fn finish<T>(&mut self, w: Write, result: Result<T, KvError>) -> Result<T, KvError> {
        match &result {
            Ok(_) if w.sub > 0 => {
                debug_assert!(w.main == self.revision + 1);
                self.revision = w.main;
                for key in &w.touched {
                    self.move_lease_attachment(key, w.main);
                }
                debug_assert!(self.by_rev.back().is_none_or(|(r, _)| *r < w.main));
                self.by_rev.push_back((w.main, w.order.into_boxed_slice()));
            }
            Ok(_) => {}
            Err(_) => {
                for key in &w.touched {
                    let empty = match self.keys.get_mut(key.as_slice()) {
                        Some(h) => {
                            let h = Arc::make_mut(h);
                            let was = Self::is_live(h);
                            h.retain(|r| r.main != w.main);
                            self.live =
                                self.live + usize::from(Self::is_live(h)) - usize::from(was);
                            h.is_empty()
                        }
                        None => false,
                    };
                    if empty {
                        self.keys.remove(key.as_slice());
                    }
                }
            }
        }
        result
    }

    /// Puts one key as its own revision.
    pub fn put(&mut self, req: &PutRequest) -> Result<PutResponse, KvError> {
        let mut w = self.begin();
        let r = self.put_in(&mut w, req);
        self.finish(w, r)
    }

    /// Deletes a key or range; creates a revision only if something was deleted.
    pub fn delete_range(
        &mut self,
        req: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, KvError> {
        let mut w = self.begin();
        let r = self.delete_in(&mut w, req);
        self.finish(w, r)
    }

    /// Runs a transaction atomically: all its writes share one revision, or none happen.
    pub fn txn(&mut self, req: &TxnRequest) -> Result<TxnResponse, KvError> {
        let mut w = self.begin();
        let r = self.txn_in(&mut w, req);
        self.finish(w, r)
    }

    /// Drops history that is no longer visible at or after `revision`.
    pub fn compact(&mut self, req: &CompactionRequest) -> Result<(), KvError> {
        let rev = req.revision;
        if rev <= self.compacted {
            return Err(KvError::Compacted);
        }
        if rev > self.revision {
            return Err(KvError::FutureRevision);
        }
        // Only a key changed at or after the last compaction can have anything to drop: a
        // compaction leaves of each key at most one entry below its revision, and entries at
        // it. The revision index names those keys, so this walks the changes since (at a
        // million keys, walking every key held the loop for 60-160 ms per compaction).
        let upto = self.by_rev.partition_point(|(r, _)| *r <= rev);
        let mut changed: Vec<&[u8]> = (self.by_rev.range(..upto))
            .flat_map(|(_, keys)| keys.iter().map(|k| &**k))
            .collect();
        changed.sort_unstable();
        changed.dedup();
        let trim: Vec<(MapKey, usize, bool)> = changed
            .into_iter()
            .filter_map(|k| {
                let h = self.keys.get(k)?;
                let n = Self::dropped_by_compaction(h, rev);
                (n > 0).then(|| (MapKey::from_slice(k), n, n == h.len()))
            })
            .collect();
        for (key, n, all) in trim {
            if all {
                // Only a key deleted before `rev` goes whole: the live count stays.
                let gone = self.keys.remove(&key);
                debug_assert!(gone.is_none_or(|h| !Self::is_live(&h)));
            } else if let Some(h) = self.keys.get_mut(&key) {
                let h = Arc::make_mut(h);
                h.drain(..n);
                shrink_after_compaction(h);
            }
        }
        let below = self.by_rev.partition_point(|(r, _)| *r < rev);
        self.by_rev.drain(..below);
        if self.by_rev.len() <= self.by_rev.capacity() / 4 {
            self.by_rev.shrink_to_fit();
        }
        self.compacted = rev;
        debug_assert!(
            (self.keys.values()).all(|h| Self::dropped_by_compaction(h, rev) == 0),
            "a key the revision index did not name kept history below the compaction"
        );
        Ok(())
    }

    /// How many of `history`'s first entries a compaction at `rev` drops. It keeps the newest
    /// entry at or below `rev` (what a read at `rev` sees) and everything after it; a deletion
    /// before `rev` hides the key, so it goes too. Every change made at `rev` itself stays,
    /// because a watcher starting at `rev` must still see them all: a key can change twice in
    /// one revision (deleted, then put by a nested transaction).
    fn dropped_by_compaction(history: &[Rev], rev: i64) -> usize {
        let i = history.partition_point(|r| r.main <= rev);
        match i.checked_sub(1) {
            Some(j) if history[j].main == rev => history.partition_point(|r| r.main < rev),
            Some(j) if history[j].kv.is_some() => j,
            Some(j) => j + 1,
            None => 0,
        }
    }

    fn put_in(&mut self, w: &mut Write, req: &PutRequest) -> Result<PutResponse, KvError> {
        if req.key.is_empty() {
            return Err(KvError::EmptyKey);
        }
        if req.lease != 0 && !req.ignore_lease && !self.leases.contains_key(&req.lease) {
            return Err(KvError::LeaseNotFound);
        }
        // One walk down the key map for a key that exists: its history is read for the
        // previous value and then written in place. At a million keys a walk is some twenty
        // key comparisons, each a cache miss, and the three walks a put made before were a
        // quarter of a follower's loop (docs/performance.md).
        let mut history = self.keys.get_mut(req.key.as_slice());
        // The previous value's numbers and a reference to its bytes, never the bytes.
        let prev = history
            .as_deref()
            .and_then(|h| Self::visible(h, w.main))
            .map(|v| (v.main, v.value.clone()));
        if (req.ignore_value || req.ignore_lease) && prev.is_none() {
            return Err(KvError::KeyNotFound);
        }
        let value = match (&prev, req.ignore_value) {
            (Some((_, p)), true) => p.value.clone(),
            _ => req.value.clone(),
        };
        let lease = match (&prev, req.ignore_lease) {
            (Some((_, p)), true) => p.lease,
            _ => req.lease,
        };
        let kv = StoredValue {
            create_revision: prev.as_ref().map_or(w.main, |(_, p)| p.create_revision),
            version: prev.as_ref().map_or(1, |(_, p)| p.version + 1),
            value,
            lease,
        };
        let rev = w.stamp(&req.key, Some(kv));
        match history.as_mut() {
            Some(h) => self.live = Self::append(h, rev, self.live),
            None => self.insert_new(MapKey::from_slice(&req.key), rev),
        }
        Ok(PutResponse {
            prev_kv: prev
                .filter(|_| req.prev_kv)
                .map(|(main, p)| p.to_kv(&req.key, main)),
        })
    }

    pub(crate) fn delete_in(
        &mut self,
        w: &mut Write,
        req: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, KvError> {
        let range = KeyRange::new(&req.key, &req.range_end);
        let gone: Vec<KeyValue> = (self.scan(&range, w.main))
            .map(|(key, v)| v.to_kv(key))
            .collect();
        for kv in &gone {
            self.record(w, kv.key.clone(), None);
        }
        Ok(DeleteRangeResponse {
            deleted: gone.len() as i64,
            prev_kvs: if req.prev_kv { gone } else { Vec::new() },
        })
    }

    fn txn_in(&mut self, w: &mut Write, req: &TxnRequest) -> Result<TxnResponse, KvError> {
        let succeeded = req.compare.iter().all(|c| {
            compare_holds(
                c,
                (self.scan(&KeyRange::new(&c.key, &c.range_end), w.main)).map(|(_, v)| v),
                c.range_end.is_empty(),
            )
        });
        let branch = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        check_duplicates(branch)?;
        let mut responses = Vec::with_capacity(branch.len());
        for op in branch {
            responses.push(match op {
                RequestOp::Range(r) => ResponseOp::Range(self.range_at(r, w.main)?),
                RequestOp::Put(p) => ResponseOp::Put(self.put_in(w, p)?),
                RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(self.delete_in(w, d)?),
                RequestOp::Txn(t) => ResponseOp::Txn(self.txn_in(w, t)?),
            });
        }
        Ok(TxnResponse {
            succeeded,
            responses,
        })
    }

    fn record(&mut self, w: &mut Write, key: Vec<u8>, kv: Option<StoredValue>) {
        let rev = w.stamp(&key, kv);
        // A key that exists (every delete's) costs one walk; `entry` walked twice.
        match self.keys.get_mut(key.as_slice()) {
            Some(h) => self.live = Self::append(h, rev, self.live),
            None => self.insert_new(MapKey::from_vec(key), rev),
        }
    }

    /// Starts the history of a key the map does not hold with `rev`.
    fn insert_new(&mut self, key: MapKey, rev: Rev) {
        self.live += usize::from(rev.kv.is_some());
        self.keys.insert(key, Arc::new(History::from_elem(rev, 1)));
    }

    /// Adds `rev` at the end of a key's history (copied first if a snapshot shares it), and
    /// returns `live` (the store's count of live keys) as that leaves it.
    fn append(history: &mut Arc<History>, rev: Rev, live: usize) -> usize {
        let h = Arc::make_mut(history);
        debug_assert!(h
            .last()
            .is_none_or(|r| (r.main, r.sub) < (rev.main, rev.sub)));
        let was = Self::is_live(h);
        h.push(rev);
        live + usize::from(Self::is_live(h)) - usize::from(was)
    }
}

/// A value a read sees: the stored value and the revision it was written at (its mod
/// revision).
#[derive(Clone, Copy)]
pub(crate) struct Visible<'a> {
    pub(crate) main: i64,
    pub(crate) value: &'a StoredValue,
}

impl Visible<'_> {
    /// The value as a client sees it, of `key`.
    pub(crate) fn to_kv(self, key: &[u8]) -> KeyValue {
        self.value.to_kv(key, self.main)
    }
}

impl Write {
    /// The next change of this write, to `key`: stamped `(main, sub)` and noted as touched,
    /// in order.
    fn stamp(&mut self, key: &[u8], kv: Option<StoredValue>) -> Rev {
        let rev = Rev {
            main: self.main,
            sub: self.sub,
            kv,
        };
        self.sub += 1;
        self.touched.insert(key.to_vec());
        self.order.push(key.into());
        rev
    }
}

/// Gives back the room a history's entries held once a compaction has cut it to a quarter or
/// less: a key written often keeps every revision until a compaction, and would otherwise hold
/// its largest history's allocation for good (a key put a million times, 72 MB). A history
/// cut to one entry goes back inline.
fn shrink_after_compaction(history: &mut History) {
    if history.len() <= history.capacity() / 4 {
        history.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_core::multi::StateMachine;

    /// The store as it was encoded before its key map became persistent: data directories
    /// written then must still restore.
    #[derive(serde::Serialize)]
    struct EarlierLayout<'a> {
        keys: BTreeMap<Vec<u8>, Vec<EarlierRev>>,
        revision: i64,
        compacted: i64,
        leases: &'a BTreeMap<i64, Lease>,
    }

    /// A history entry as it was kept then: with the whole `KeyValue`, key and mod revision
    /// included.
    #[derive(serde::Serialize)]
    struct EarlierRev {
        main: i64,
        sub: i64,
        kv: Option<KeyValue>,
    }

    /// `s` encoded in [`EarlierLayout`].
    fn earlier_layout(s: &Store) -> Vec<u8> {
        earlier_layout_with(s, |_| {})
    }

    /// `s` encoded in [`EarlierLayout`], each value changed by `edit` first.
    fn earlier_layout_with(s: &Store, mut edit: impl FnMut(&mut KeyValue)) -> Vec<u8> {
        let mut earlier_rev = |k: &[u8], r: &Rev| EarlierRev {
            main: r.main,
            sub: r.sub,
            kv: r.kv.as_ref().map(|v| {
                let mut kv = v.to_kv(k, r.main);
                edit(&mut kv);
                kv
            }),
        };
        let earlier = EarlierLayout {
            keys: s
                .keys
                .iter()
                .map(|(k, h)| (k.to_vec(), h.iter().map(|r| earlier_rev(k, r)).collect()))
                .collect(),
            revision: s.revision,
            compacted: s.compacted,
            leases: &s.leases,
        };
        postcard::to_stdvec(&earlier).unwrap()
    }

    #[test]
    fn snapshots_keep_the_layout_of_the_ordered_map_they_replaced() {
        let mut s = Store::default();
        for (k, v) in [("b", "2"), ("a", "1"), ("c", "3"), ("a", "4")] {
            s.put(&PutRequest {
                key: k.into(),
                value: v.into(),
                ..Default::default()
            })
            .unwrap();
        }
        let bytes = earlier_layout(&s);
        assert_eq!(s.snapshot(), bytes);
        let back = Store::restore(&bytes).unwrap();
        assert_eq!(back.keys, s.keys);
        assert_eq!(back.revision(), s.revision());
    }

    /// The key map's encoder walks it in batches: several batches, keys longer than the map
    /// keeps inline, histories of one entry and of several, deletions and an empty value.
    #[test]
    fn a_large_store_encodes_in_the_earlier_layout_too() {
        let mut s = Store::default();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for i in 0..1_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = match i % 3 {
                0 => format!("k{}", x % 400).into_bytes(),
                1 => format!("a-key-longer-than-twenty-four-bytes/{}", x % 300).into_bytes(),
                _ => vec![(x % 256) as u8; (x % 5) as usize + 1],
            };
            if i % 7 == 0 {
                s.delete_range(&DeleteRangeRequest {
                    key,
                    ..Default::default()
                })
                .unwrap();
            } else {
                let value = vec![i as u8; (x % 40) as usize];
                s.put(&PutRequest {
                    key,
                    value: value.into(),
                    ..Default::default()
                })
                .unwrap();
            }
        }
        assert!(s.keys.len() > 300, "{} keys", s.keys.len());
        assert!(s.keys.values().any(|h| h.len() > 2));
        assert!(s.keys.values().any(|h| h.iter().any(|r| r.kv.is_none())));
        let bytes = earlier_layout(&s);
        assert_eq!(s.snapshot(), bytes);
        let mut written = Vec::new();
        s.snapshot_later()
            .to_writer(&mut written, &mut |_| {})
            .unwrap();
        assert_eq!(written, bytes);
        assert_eq!(Store::restore(&bytes).unwrap().keys, s.keys);
    }

    /// Values no longer keep their key and mod revision, which the key map and the history
    /// entry hold: a snapshot whose values say otherwise cannot be kept as it was encoded, so
    /// it is refused.
    #[test]
    fn a_snapshot_with_a_value_of_another_key_or_revision_is_refused() {
        // Revisions 2 and 4 of key a, 3 of key b.
        let s = crate::restore_check::tests::store();
        assert!(Store::restore(&earlier_layout(&s)).is_ok());
        let other_key = earlier_layout_with(&s, |kv| {
            if kv.key == b"b" {
                kv.key = b"a".to_vec();
            }
        });
        let other_revision = earlier_layout_with(&s, |kv| {
            if kv.mod_revision == 4 {
                kv.mod_revision = 3;
            }
        });
        // Each edit keeps every field's length, so the bytes decode but for the check.
        // (postcard drops a decoder's own message, so the error cannot say which.)
        for (what, bytes) in [("key", other_key), ("revision", other_revision)] {
            assert_eq!(bytes.len(), earlier_layout(&s).len());
            assert!(
                Store::restore(&bytes).is_err(),
                "another {what} was accepted"
            );
        }
    }

    /// A snapshot can come from a peer: a key count it cannot hold is an error, not an
    /// allocation of that many entries up front.
    #[test]
    fn a_snapshot_claiming_too_many_keys_is_refused() {
        let mut bytes = Vec::new();
        let mut n: u64 = 1 << 50;
        while n >= 0x80 {
            bytes.push((n as u8) | 0x80);
            n >>= 7;
        }
        bytes.push(n as u8);
        bytes.extend_from_slice(&[1, b'k', 0]);
        assert!(Store::restore(&bytes).is_err());
    }

    /// The log keeps a put until the next snapshot: the store holds the put's own value bytes,
    /// not a copy of them, and a put that keeps the value keeps the same bytes too.
    #[test]
    fn a_put_shares_its_value_with_the_store() {
        let mut s = Store::default();
        let req = PutRequest {
            key: b"k".to_vec(),
            value: vec![7; 256].into(),
            ..Default::default()
        };
        s.put(&req).unwrap();
        let stored = s.get(b"k").unwrap().value.clone();
        assert_eq!(stored.as_ptr(), req.value.as_ptr());
        s.put(&PutRequest {
            key: b"k".to_vec(),
            ignore_value: true,
            ..Default::default()
        })
        .unwrap();
        let kept = s.get(b"k").unwrap();
        assert_eq!((kept.version, kept.value.as_ptr()), (2, req.value.as_ptr()));
    }

    #[test]
    fn a_shared_copy_does_not_see_later_writes() {
        let mut s = Store::default();
        let put = |s: &mut Store, v: &str| {
            s.put(&PutRequest {
                key: b"k".to_vec(),
                value: v.to_string().into(),
                ..Default::default()
            })
            .unwrap()
        };
        put(&mut s, "before");
        let copy = s.shared_copy();
        put(&mut s, "after");
        let latest = |s: &Store| s.get(b"k").map(|kv| kv.value.clone());
        assert_eq!(latest(&copy), Some(bytes::Bytes::from_static(b"before")));
        assert_eq!(latest(&s), Some(bytes::Bytes::from_static(b"after")));
    }

    #[test]
    fn compaction_gives_back_the_room_of_what_it_dropped() {
        let mut s = Store::default();
        for i in 0..1_000 {
            for k in ["hot", "warm"] {
                s.put(&PutRequest {
                    key: k.into(),
                    value: format!("{i}").into_bytes().into(),
                    ..Default::default()
                })
                .unwrap();
            }
        }
        let room = |s: &Store, k: &str| s.keys.get(k.as_bytes()).map(|h| h.capacity());
        assert!(room(&s, "hot") >= Some(1_000) && s.by_rev.capacity() >= 2_000);
        // Half the history goes: not enough to give anything back.
        s.compact(&CompactionRequest { revision: 1_000 }).unwrap();
        assert!(room(&s, "hot") >= Some(1_000) && s.by_rev.capacity() >= 2_000);
        // All but the last entry goes: the history is inline again, the index small.
        s.compact(&CompactionRequest {
            revision: s.revision,
        })
        .unwrap();
        assert_eq!(room(&s, "hot"), Some(1), "back inline");
        assert!(!s.keys[&b"hot"[..]].spilled());
        assert!(s.by_rev.capacity() < 16, "{}", s.by_rev.capacity());
        let hot = s.get(b"hot").unwrap();
        assert_eq!((hot.value.as_ref(), hot.version), (&b"999"[..], 1_000));
        // And the room grows again as writes come.
        s.put(&PutRequest {
            key: b"hot".to_vec(),
            value: b"again".to_vec().into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.keys[&b"hot"[..]].len(), 2);
    }

    #[test]
    fn compaction_drops_a_deleted_key_entirely_and_trims_the_others() {
        let mut s = Store::default();
        for k in ["gone", "kept"] {
            for v in ["1", "2"] {
                s.put(&PutRequest {
                    key: k.into(),
                    value: v.into(),
                    ..Default::default()
                })
                .unwrap();
            }
        }
        s.delete_range(&DeleteRangeRequest {
            key: b"gone".to_vec(),
            ..Default::default()
        })
        .unwrap();
        let latest = s.revision;
        s.compact(&CompactionRequest { revision: latest }).unwrap();
        // The deletion was made at the compaction revision itself, so it stays for watchers.
        assert_eq!(s.keys.get(&b"gone"[..]).map(|h| h.len()), Some(1));
        assert_eq!(s.keys.get(&b"kept"[..]).map(|h| h.len()), Some(1));
        s.put(&PutRequest {
            key: b"kept".to_vec(),
            value: b"3".to_vec().into(),
            ..Default::default()
        })
        .unwrap();
        s.compact(&CompactionRequest {
            revision: s.revision,
        })
        .unwrap();
        assert!(!s.keys.contains_key(&b"gone"[..]), "no empty history left");
        assert_eq!(s.keys.get(&b"kept"[..]).map(|h| h.len()), Some(1));
    }
}
