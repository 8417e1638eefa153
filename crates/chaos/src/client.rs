//! The workload: clients doing reads, writes, deletes and compare-and-sets on a few keys, each
//! sticking to one node for a while and moving on error, like a real etcd client.

use crate::recorder::{classify, Clock, Tally};
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, Txn, TxnOp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use synod_check::{Entry, Op, Outcome};

/// What every client shares.
pub struct Shared {
    /// `(node id, http://addr)` of every node's etcd API.
    pub endpoints: Vec<(u64, String)>,
    /// TLS for the clients (the CA and a client certificate), if the servers serve TLS.
    pub tls: Option<etcd_client::TlsOptions>,
    /// The keys.
    pub keys: Vec<String>,
    /// How long an operation may take before it is recorded as indeterminate.
    pub op_timeout: Duration,
    /// The run's clock.
    pub clock: Clock,
    /// Counts for progress lines.
    pub tally: Tally,
    /// Set when the workload should end (each client finishes its current operation).
    pub stop: AtomicBool,
}

/// The keys of a run of `n` keys.
pub fn keys(n: u64) -> Vec<String> {
    (0..n).map(|i| format!("chaos/k{i}")).collect()
}

/// Opens an etcd client to node `id`'s `endpoint`. Connecting is lazy, so this rarely fails; a
/// node that is down shows up as a failed or timed-out operation.
pub async fn connect(
    id: u64,
    endpoint: &str,
    op_timeout: Duration,
    tls: Option<&etcd_client::TlsOptions>,
) -> Option<Client> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_millis(500))
        .with_timeout(op_timeout);
    if let Some(tls) = tls {
        // A node's certificate names it as node<ID>.synod (what `synod certs` writes and
        // `synod server` checks between peers), whatever address it listens on.
        opts = opts.with_tls(tls.clone().domain_name(format!("node{id}.synod")));
    }
    let connecting = Client::connect([endpoint], Some(opts));
    tokio::time::timeout(op_timeout, connecting)
        .await
        .ok()?
        .ok()
}

/// What a client last saw of a key: its value and mod revision, `None` if absent. Its
/// compare-and-sets expect this.
type Seen = Option<(String, i64)>;

/// The kind of operation to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Get,
    Put,
    Delete,
    /// Compare the value.
    CasValue,
    /// Compare the mod revision (or the version, for an absent key).
    CasRevision,
}

fn draw_kind(rng: &mut ChaCha8Rng) -> Kind {
    match rng.gen_range(0..100) {
        0..=44 => Kind::Get,
        45..=69 => Kind::Put,
        70..=74 => Kind::Delete,
        75..=87 => Kind::CasValue,
        _ => Kind::CasRevision,
    }
}

/// Runs client `id` until `shared.stop`, returning its history.
///
/// Values are `"<client>-<n>"`: unique, so a read names the write it saw. A compare-and-set
/// by mod revision is recorded as one by value: the value whose write had that revision is
/// the only one the key can hold while its mod revision is that.
pub async fn run(id: u64, seed: u64, shared: Arc<Shared>) -> Vec<Entry> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let n = shared.endpoints.len();
    let mut at = usize::try_from(id).unwrap_or(0) % n.max(1);
    let mut stick = rng.gen_range(10..60);
    let mut conns: HashMap<usize, Client> = HashMap::new();
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut history = Vec::new();
    let mut seq = 0u64;
    while !shared.stop.load(Ordering::Relaxed) && n > 0 {
        if stick == 0 {
            at = other(&mut rng, at, n);
            stick = rng.gen_range(10..60);
        }
        stick -= 1;
        let client = match conns.get(&at) {
            Some(c) => c.clone(),
            None => match connect(
                shared.endpoints[at].0,
                &shared.endpoints[at].1,
                shared.op_timeout,
                shared.tls.as_ref(),
            )
            .await
            {
                Some(c) => {
                    conns.insert(at, c.clone());
                    c
                }
                None => {
                    at = other(&mut rng, at, n);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let key = shared.keys[rng.gen_range(0..shared.keys.len())].clone();
        seq += 1;
        let value = format!("{id}-{seq}");
        let kind = draw_kind(&mut rng);
        let known = seen.get(&key).cloned().flatten();
        let call = shared.clock.now_us();
        let (op, result) = one(client, kind, &key, value, known, &shared).await;
        let ret = shared.clock.now_us();
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(o) => *o,
        };
        if let Ok(now) = result {
            if let Some(now) = now {
                seen.insert(key.clone(), now);
            }
        } else {
            // Move on, as an etcd client does when its endpoint fails; pause a little so that
            // a cluster that is down is not hammered.
            at = other(&mut rng, at, n);
            tokio::time::sleep(Duration::from_millis(rng.gen_range(5..30))).await;
        }
        shared.tally.add(outcome);
        history.push(Entry {
            client: id,
            key,
            op,
            call,
            ret: (outcome == Outcome::Ok).then_some(ret),
            outcome,
        });
    }
    history
}

/// A node other than `at` (or `at` if it is the only one).
fn other(rng: &mut ChaCha8Rng, at: usize, n: usize) -> usize {
    if n < 2 {
        return at;
    }
    (at + rng.gen_range(1..n)) % n
}

/// Does one operation. Returns it as recorded (with its result filled in when it completed),
/// and on completion what the key is now known to hold (`Some(seen)`, or `None` if nothing
/// new was learned), else the outcome.
async fn one(
    mut c: Client,
    kind: Kind,
    key: &str,
    value: String,
    known: Seen,
    shared: &Shared,
) -> (Op, Result<Option<Seen>, Outcome>) {
    let limit = shared.op_timeout;
    match kind {
        Kind::Get => {
            let r = timed(tokio::time::timeout(limit, c.get(key, None)).await);
            match r {
                Ok(resp) => {
                    let kv = resp.kvs().first();
                    let now = kv.map(|kv| {
                        (
                            String::from_utf8_lossy(kv.value()).into_owned(),
                            kv.mod_revision(),
                        )
                    });
                    let op = Op::Get {
                        value: now.as_ref().map(|n| n.0.clone()),
                    };
                    (op, Ok(Some(now)))
                }
                Err(o) => (Op::Get { value: None }, Err(o)),
            }
        }
        Kind::Put => {
            let op = Op::Put {
                value: value.clone(),
            };
            let r = timed(tokio::time::timeout(limit, c.put(key, value.as_str(), None)).await);
            let learned = r.map(|resp| resp.header().map(|h| Some((value, h.revision()))));
            (op, learned)
        }
        Kind::Delete => {
            let r = timed(tokio::time::timeout(limit, c.delete(key, None)).await);
            (Op::Delete, r.map(|_| Some(None)))
        }
        Kind::CasValue | Kind::CasRevision => {
            let compare = match (&known, kind) {
                (None, _) => Compare::version(key, CompareOp::Equal, 0),
                (Some((v, _)), Kind::CasValue) => Compare::value(key, CompareOp::Equal, v.as_str()),
                (Some((_, rev)), _) => Compare::mod_revision(key, CompareOp::Equal, *rev),
            };
            let txn = Txn::new()
                .when([compare])
                .and_then([TxnOp::put(key, value.as_str(), None)]);
            let r = timed(tokio::time::timeout(limit, c.txn(txn)).await);
            let expected = known.map(|k| k.0);
            match r {
                Ok(resp) => {
                    let ok = resp.succeeded();
                    let learned = match (ok, resp.header()) {
                        (true, Some(h)) => Some(Some((value.clone(), h.revision()))),
                        _ => None,
                    };
                    let op = Op::Cas {
                        expected,
                        value,
                        ok,
                    };
                    (op, Ok(learned))
                }
                Err(o) => (
                    Op::Cas {
                        expected,
                        value,
                        ok: false,
                    },
                    Err(o),
                ),
            }
        }
    }
}

/// The outcome of an operation bounded by a timeout: a timeout is indeterminate.
fn timed<T>(
    r: Result<Result<T, etcd_client::Error>, tokio::time::error::Elapsed>,
) -> Result<T, Outcome> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(&e)),
        Err(_) => Err(Outcome::Unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_has_every_kind_in_roughly_the_planned_shares() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut counts = HashMap::new();
        for _ in 0..10_000 {
            *counts.entry(draw_kind(&mut rng)).or_insert(0) += 1;
        }
        let share = |k| counts.get(&k).copied().unwrap_or(0);
        assert!((4_000..5_000).contains(&share(Kind::Get)));
        assert!((2_000..3_000).contains(&share(Kind::Put)));
        assert!((300..700).contains(&share(Kind::Delete)));
        assert!(share(Kind::CasValue) > 1_000 && share(Kind::CasRevision) > 1_000);
    }

    #[test]
    fn moving_on_never_stays_and_covers_every_other_node() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut hit = [0; 3];
        for _ in 0..300 {
            let o = other(&mut rng, 1, 3);
            assert_ne!(o, 1);
            hit[o] += 1;
        }
        assert!(hit[0] > 50 && hit[2] > 50);
        assert_eq!(other(&mut rng, 0, 1), 0);
    }
}
