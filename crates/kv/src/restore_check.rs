//! What a restored store must hold before it is used. A snapshot can come from a peer, so its
//! bytes may decode to a store that breaks the rules writes rely on (a history out of order,
//! a revision above the store's own); such a store is refused with an error rather than left
//! to trip an assertion, or to misorder a watcher's events, at the next write.

use crate::store::{History, Store};

impl Store {
    /// Checks the rules every write keeps: revisions within the store's, each key's history
    /// non-empty and in order, each value stamped with its key and the revision it is at.
    pub(crate) fn check_restored(&self) -> Result<(), String> {
        if self.revision < 1 || self.compacted < 0 || self.compacted > self.revision {
            return Err(format!(
                "revision {} and compacted {} are out of order",
                self.revision, self.compacted
            ));
        }
        for (key, history) in self.keys.iter() {
            self.check_history(key, history)
                .map_err(|e| format!("key {:?}: {e}", String::from_utf8_lossy(key)))?;
        }
        Ok(())
    }

    fn check_history(&self, key: &[u8], history: &History) -> Result<(), String> {
        if history.is_empty() {
            return Err("an empty history".into());
        }
        let mut last = None;
        for rev in history.iter() {
            let at = (rev.main, rev.sub);
            if rev.main < 1 || rev.main > self.revision || rev.sub < 0 {
                return Err(format!(
                    "revision {at:?} outside the store's 1..={}",
                    self.revision
                ));
            }
            if last.is_some_and(|l| l >= at) {
                return Err(format!("revision {at:?} after {last:?}"));
            }
            last = Some(at);
            if let Some(kv) = &rev.kv {
                if kv.key != key
                    || kv.mod_revision != rev.main
                    || kv.create_revision < 1
                    || kv.create_revision > kv.mod_revision
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
