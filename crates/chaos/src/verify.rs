//! The end of a run: read every key after healing, and check that no acknowledged write is
//! missing.
//!
//! The final reads also go into the history, so the linearizability checker judges them with
//! everything else; [`lost_writes`] says the same thing plainly for the summary.

use crate::client::connect;
use crate::recorder::Clock;
use serde::Serialize;
use std::time::Duration;
use synod_check::{Entry, Op, Outcome};

/// Client id of the final reads through node `n`: `FINAL_READER + n`.
pub const FINAL_READER: u64 = 1000;

/// Reads every key through every node (linearizable reads, retried until they succeed or
/// `within` passes), recording each attempt as history entries.
pub async fn final_reads(
    endpoints: &[(u64, String)],
    keys: &[String],
    clock: &Clock,
    op_timeout: Duration,
    within: Duration,
    tls: Option<&etcd_client::TlsOptions>,
) -> Vec<Entry> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    for (node, endpoint) in endpoints {
        let client = FINAL_READER + node;
        for key in keys {
            loop {
                let call = clock.now_us();
                let got = match connect(*node, endpoint, op_timeout, tls).await {
                    Some(mut c) => tokio::time::timeout(op_timeout, c.get(key.as_str(), None))
                        .await
                        .ok()
                        .and_then(Result::ok),
                    None => None,
                };
                let ret = clock.now_us();
                let (value, outcome) = match got {
                    Some(r) => (
                        r.kvs()
                            .first()
                            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
                        Outcome::Ok,
                    ),
                    None => (None, Outcome::Unknown),
                };
                out.push(Entry {
                    client,
                    key: key.clone(),
                    op: Op::Get { value },
                    call,
                    ret: (outcome == Outcome::Ok).then_some(ret),
                    outcome,
                });
                if outcome == Outcome::Ok || tokio::time::Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    out
}

/// Every member's HashKV at one revision, taken after healing: members that applied the same
/// log answer the same hash.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReplicaHashes {
    /// The revision hashed: the highest any member reported once the clients had stopped.
    pub revision: i64,
    /// Each member's hash at that revision and the revision it had compacted to (`None`: it
    /// could not answer in time).
    pub hashes: std::collections::BTreeMap<u64, Option<(u32, i64)>>,
}

impl ReplicaHashes {
    /// Whether two members that answered with the same compacted revision hold different
    /// histories (a compaction trims history, so only those compare).
    pub fn divergent(&self) -> bool {
        let answered: Vec<&(u32, i64)> = self.hashes.values().flatten().collect();
        answered
            .iter()
            .any(|a| answered.iter().any(|b| a.1 == b.1 && a.0 != b.0))
    }

    /// Members that never answered: behind the revision or unreachable after healing.
    pub fn silent(&self) -> Vec<u64> {
        self.hashes
            .iter()
            .filter(|(_, h)| h.is_none())
            .map(|(n, _)| *n)
            .collect()
    }
}

/// Asks every member for its revision, then for its HashKV at the highest one, retrying each
/// member until it has applied that far or `within` passes for it.
pub async fn replica_hashes(
    endpoints: &[(u64, String)],
    op_timeout: Duration,
    within: Duration,
    tls: Option<&etcd_client::TlsOptions>,
) -> ReplicaHashes {
    let mut revision = 0;
    for (node, endpoint) in endpoints {
        if let Some(mut c) = connect(*node, endpoint, op_timeout, tls).await {
            if let Ok(Ok(s)) = tokio::time::timeout(op_timeout, c.status()).await {
                revision = revision.max(s.header().map_or(0, |h| h.revision()));
            }
        }
    }
    let mut out = ReplicaHashes {
        revision,
        hashes: Default::default(),
    };
    for (node, endpoint) in endpoints {
        // Each member its own budget, so a slow one cannot use up the next one's.
        let deadline = tokio::time::Instant::now() + within;
        let mut hash = None;
        while hash.is_none() && tokio::time::Instant::now() < deadline {
            if let Some(mut c) = connect(*node, endpoint, op_timeout, tls).await {
                if let Ok(Ok(r)) = tokio::time::timeout(op_timeout, c.hash_kv(revision)).await {
                    hash = Some((r.hash(), r.compact_version()));
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        out.hashes.insert(*node, hash);
    }
    out
}

/// An acknowledged write that the end state contradicts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LostWrite {
    /// The key.
    pub key: String,
    /// The acknowledged write (`put 3-17`, `cas 2-5`, `delete`), with its client and times.
    pub write: String,
    /// What the key held at the end (`None`: absent).
    pub found: Option<String>,
    /// Why that contradicts the write.
    pub why: String,
}

/// The write an entry makes if it took effect, `Some(None)` for a delete; `None` for reads
/// and for compare-and-sets that were told they failed.
fn writes(e: &Entry) -> Option<Option<&str>> {
    match (&e.op, e.outcome) {
        (_, Outcome::Fail) => None,
        (Op::Cas { ok: false, .. }, Outcome::Ok) => None,
        (op, _) => op.written(),
    }
}

fn describe(e: &Entry) -> String {
    let what = match &e.op {
        Op::Put { value } => format!("put {value}"),
        Op::Cas { value, .. } => format!("cas -> {value}"),
        Op::Delete => "delete".into(),
        Op::Get { .. } => "get".into(),
    };
    match e.ret {
        Some(r) => format!("{what} by client {} [{}..{} us]", e.client, e.call, r),
        None => format!(
            "{what} by client {} [{}.. us, indeterminate]",
            e.client, e.call
        ),
    }
}

/// Acknowledged writes missing from `key`'s final value `found`, given the run's `history`.
///
/// With unique values the final value names the write that made it, `W`. If `W` was
/// acknowledged at time `r`, every acknowledged write invoked after `r` should have replaced
/// it, so each such write is lost. A final value that no write could have made is reported
/// too. If `W` is indeterminate it may have taken effect arbitrarily late, so nothing is
/// provably lost; the checker still judges the whole history. An absent key is judged the
/// same way against the deletes.
pub fn lost_writes(history: &[Entry], key: &str, found: Option<&str>) -> Vec<LostWrite> {
    let ops: Vec<&Entry> = history
        .iter()
        .filter(|e| e.key == key && e.client < FINAL_READER)
        .collect();
    let acked: Vec<&Entry> = ops
        .iter()
        .copied()
        .filter(|e| e.outcome == Outcome::Ok && writes(e).is_some())
        .collect();
    // `after`: only writes invoked after this time are lost; `None`: all of them.
    let lost = |after: Option<u64>, why: &str| -> Vec<LostWrite> {
        acked
            .iter()
            .filter(|e| !matches!(after, Some(t) if e.call <= t) && writes(e) != Some(found))
            .map(|e| LostWrite {
                key: key.to_string(),
                write: describe(e),
                found: found.map(str::to_string),
                why: why.to_string(),
            })
            .collect()
    };
    let makers: Vec<&Entry> = ops
        .iter()
        .copied()
        .filter(|e| writes(e) == Some(found))
        .collect();
    if makers.iter().any(|e| e.outcome == Outcome::Unknown) {
        return Vec::new();
    }
    match (found, makers.iter().filter_map(|e| e.ret).max()) {
        (_, Some(last)) => lost(
            Some(last),
            "invoked after the write that made the final value had returned",
        ),
        (None, None) => lost(None, "the key is absent at the end, and nothing deleted it"),
        (Some(v), None) => vec![LostWrite {
            key: key.to_string(),
            write: "(none)".into(),
            found: Some(v.to_string()),
            why: "no operation wrote the value found at the end".into(),
        }],
    }
}

/// Reads that returned a value provably overwritten before they began: the write `W` that made
/// the value returned, then an acknowledged write `W'` invoked after `W` returned, and `W'`
/// returned before the read was invoked. Returns `(key, call)` of each. A plainer, partial
/// view of what the checker decides in full: it says when the stale reads happened, so they
/// can be matched with the faults in force.
pub fn stale_reads(history: &[Entry]) -> Vec<(String, u64)> {
    let mut by_key: std::collections::BTreeMap<&str, Vec<&Entry>> = Default::default();
    for e in history {
        by_key.entry(e.key.as_str()).or_default().push(e);
    }
    let mut out = Vec::new();
    for (key, ops) in by_key {
        // Acknowledged writes by call time, with the earliest return among those invoked at
        // or after each one (a suffix minimum), to find "some write invoked after t returned
        // before u" with one binary search.
        let mut acked: Vec<(u64, u64)> = ops
            .iter()
            .filter(|e| e.outcome == Outcome::Ok && writes(e).is_some())
            .filter_map(|e| e.ret.map(|r| (e.call, r)))
            .collect();
        acked.sort_unstable();
        let mut suffix_min = vec![u64::MAX; acked.len() + 1];
        for (k, w) in acked.iter().enumerate().rev() {
            suffix_min[k] = suffix_min[k + 1].min(w.1);
        }
        let made: std::collections::HashMap<&str, &Entry> = ops
            .iter()
            .filter_map(|e| match writes(e) {
                Some(Some(v)) => Some((v, *e)),
                _ => None,
            })
            .collect();
        for e in &ops {
            let (Op::Get { value: Some(v) }, Outcome::Ok) = (&e.op, e.outcome) else {
                continue;
            };
            let Some(maker_ret) = made.get(v.as_str()).and_then(|m| m.end()) else {
                continue;
            };
            let first_after = acked.partition_point(|w| w.0 <= maker_ret);
            if suffix_min[first_after] < e.call {
                out.push((key.to_string(), e.call));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(client: u64, op: Op, call: u64, ret: Option<u64>, outcome: Outcome) -> Entry {
        Entry {
            client,
            key: "k".into(),
            op,
            call,
            ret,
            outcome,
        }
    }
    fn put(v: &str, call: u64, ret: u64) -> Entry {
        e(1, Op::Put { value: v.into() }, call, Some(ret), Outcome::Ok)
    }

    #[test]
    fn hashes_diverge_only_when_two_answers_differ() {
        let of = |hs: &[Option<(u32, i64)>]| ReplicaHashes {
            revision: 9,
            hashes: hs
                .iter()
                .enumerate()
                .map(|(i, h)| (i as u64 + 1, *h))
                .collect(),
        };
        let quiet = of(&[Some((1, 0)), Some((1, 0)), None]);
        assert!(!quiet.divergent());
        assert_eq!(quiet.silent(), vec![3]);
        assert!(!of(&[None, None]).divergent());
        assert!(of(&[Some((1, 0)), None, Some((2, 0))]).divergent());
        assert!(of(&[Some((1, 4)), Some((2, 0)), Some((3, 0))]).divergent());
        // A compaction applied at one member and not yet at another: not comparable.
        let mid_compaction = of(&[Some((1, 4)), Some((2, 0))]);
        assert!(!mid_compaction.divergent());
        assert!(mid_compaction.silent().is_empty());
    }

    #[test]
    fn the_last_acknowledged_write_survives() {
        let h = [put("a", 0, 10), put("b", 20, 30)];
        assert!(lost_writes(&h, "k", Some("b")).is_empty());
    }

    #[test]
    fn an_older_value_at_the_end_means_a_lost_write() {
        let h = [put("a", 0, 10), put("b", 20, 30)];
        let lost = lost_writes(&h, "k", Some("a"));
        assert_eq!(lost.len(), 1);
        assert!(lost[0].write.starts_with("put b"), "{lost:?}");
    }

    #[test]
    fn concurrent_writes_may_end_either_way() {
        let h = [put("a", 0, 30), put("b", 10, 20)];
        assert!(lost_writes(&h, "k", Some("a")).is_empty());
        assert!(lost_writes(&h, "k", Some("b")).is_empty());
    }

    #[test]
    fn an_indeterminate_write_may_land_last() {
        let late = e(2, Op::Put { value: "x".into() }, 5, None, Outcome::Unknown);
        let h = [put("a", 0, 10), late, put("b", 20, 30)];
        assert!(lost_writes(&h, "k", Some("x")).is_empty());
    }

    #[test]
    fn absent_needs_a_delete_and_a_value_needs_a_writer() {
        let h = [put("a", 0, 10)];
        assert_eq!(lost_writes(&h, "k", None).len(), 1);
        assert_eq!(lost_writes(&h, "k", Some("zz")).len(), 1);
        let del = e(2, Op::Delete, 20, Some(25), Outcome::Ok);
        let h = [put("a", 0, 10), del];
        assert!(lost_writes(&h, "k", None).is_empty());
    }

    #[test]
    fn failed_compare_and_sets_and_failed_ops_wrote_nothing() {
        let cas = e(
            2,
            Op::Cas {
                expected: Some("q".into()),
                value: "c".into(),
                ok: false,
            },
            20,
            Some(30),
            Outcome::Ok,
        );
        let failed = e(3, Op::Put { value: "f".into() }, 40, None, Outcome::Fail);
        let h = [put("a", 0, 10), cas, failed];
        assert!(lost_writes(&h, "k", Some("a")).is_empty());
    }

    #[test]
    fn a_read_of_an_overwritten_value_is_stale() {
        let read = |v: &str, call: u64| {
            e(
                9,
                Op::Get {
                    value: Some(v.into()),
                },
                call,
                Some(call + 5),
                Outcome::Ok,
            )
        };
        let h = [
            put("a", 0, 10),
            put("b", 20, 30),
            read("a", 25),
            read("a", 40),
            read("b", 50),
        ];
        assert_eq!(stale_reads(&h), vec![("k".to_string(), 40)]);
    }
}
