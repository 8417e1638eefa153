//! What a restored store must hold before it is used. A snapshot can come from a peer, so its
//! bytes may decode to a store that breaks the rules writes rely on (a history out of order,
//! a revision above the store's own); such a store is refused with an error rather than left
//! to trip an assertion, or to misorder a watcher's events, at the next write.

use crate::store::{History, Store};

/// The revision of a store's first write: a store starts at revision 1, empty.
const FIRST_WRITE: i64 = 2;

impl Store {
    /// Checks the rules every write keeps: revisions within the store's, each key's history
    /// non-empty and in order, each value created no later than it was written, with a
    /// version and a lease that can be. (Whether each value was encoded with its own key and
    /// revision was checked as it was decoded.)
    pub(crate) fn check_restored(&self) -> Result<(), String> {
        if self.revision < 1 || self.compacted < 0 || self.compacted > self.revision {
            return Err(format!(
                "revision {} and compacted {} are out of order",
                self.revision, self.compacted
            ));
        }
        for (key, history) in self.keys.iter() {
            self.check_history(history)
                .map_err(|e| format!("key {:?}: {e}", String::from_utf8_lossy(key)))?;
        }
        Ok(())
    }

    fn check_history(&self, history: &History) -> Result<(), String> {
        if history.is_empty() {
            return Err("an empty history".into());
        }
        let mut last = None;
        for rev in history.iter() {
            let at = (rev.main, rev.sub);
            if rev.main < FIRST_WRITE || rev.main > self.revision || rev.sub < 0 {
                return Err(format!(
                    "revision {at:?} outside the store's {FIRST_WRITE}..={}",
                    self.revision
                ));
            }
            if last.is_some_and(|l| l >= at) {
                return Err(format!("revision {at:?} after {last:?}"));
            }
            last = Some(at);
            // The key and the mod revision each value was encoded with were checked as the
            // snapshot was decoded (`history::HistoryOf`).
            if let Some(kv) = &rev.kv {
                if kv.create_revision < FIRST_WRITE
                    || kv.create_revision > rev.main
                    || kv.version < 1
                    || kv.lease < 0
                {
                    return Err(format!("a value at {at:?} stamped otherwise"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::store::{History, Rev, Store, StoredValue};
    use crate::PutRequest;
    use std::sync::Arc;

    /// Two keys, one written twice: revisions 2, 3 and 4.
    pub(crate) fn store() -> Store {
        let mut s = Store::default();
        for (k, v) in [("a", "1"), ("b", "2"), ("a", "3")] {
            s.put(&PutRequest {
                key: k.into(),
                value: v.into(),
                ..Default::default()
            })
            .unwrap();
        }
        s
    }

    /// `store()` with key `a`'s history changed by `change`.
    fn with_history(change: impl FnOnce(&mut History)) -> Store {
        let mut s = store();
        let h = s.keys.get_mut(&b"a"[..]).unwrap();
        change(Arc::make_mut(h));
        s
    }

    /// `store()` with the value of `a`'s latest entry changed by `change`.
    /// `change` is given the entry's revision too.
    fn with_value(change: impl FnOnce(&mut StoredValue, i64)) -> Store {
        with_history(|h| {
            let rev = h.last_mut().unwrap();
            change(rev.kv.as_mut().unwrap(), rev.main);
        })
    }

    #[test]
    fn a_store_as_writes_leave_it_passes() {
        let s = store();
        assert_eq!(s.check_restored(), Ok(()));
        let mut compacted = store();
        compacted.compacted = compacted.revision;
        assert_eq!(compacted.check_restored(), Ok(()));
    }

    #[test]
    fn each_broken_rule_is_refused_alone() {
        let cases: Vec<(&str, Store)> = vec![
            (
                "revision 0",
                Store {
                    revision: 0,
                    ..Default::default()
                },
            ),
            ("compacted below 0", {
                let mut s = store();
                s.compacted = -1;
                s
            }),
            ("compacted above the revision", {
                let mut s = store();
                s.compacted = s.revision + 1;
                s
            }),
            ("an empty history", with_history(|h| h.clear())),
            ("an entry at revision 1", {
                let mut s = store();
                let h = s.keys.get_mut(&b"b"[..]).unwrap();
                Arc::make_mut(h)[0] = Rev {
                    main: 1,
                    sub: 0,
                    kv: None,
                };
                s
            }),
            (
                "an entry above the revision",
                with_history(|h| h.last_mut().unwrap().main += 1),
            ),
            (
                "a negative sub-revision",
                with_history(|h| h.last_mut().unwrap().sub = -1),
            ),
            (
                "two entries at one revision",
                with_history(|h| {
                    let first = h[0].clone();
                    h[1].main = first.main;
                    h[1].sub = first.sub;
                }),
            ),
            (
                "created at revision 1",
                with_value(|kv, _| kv.create_revision = 1),
            ),
            (
                "created after it was modified",
                with_value(|kv, main| kv.create_revision = main + 1),
            ),
            ("version 0", with_value(|kv, _| kv.version = 0)),
            ("a negative lease", with_value(|kv, _| kv.lease = -1)),
        ];
        for (what, s) in cases {
            assert!(s.check_restored().is_err(), "{what} was accepted");
        }
    }
}
