//! Fault injection on a PBFT cluster in this process: one liar (its mode drawn by the seed),
//! a correct replica crashed and restarted from its disk again and again, and three clients
//! reading, writing and deleting three keys all the while. Every history must be
//! linearizable: a client never takes a lie, a stale read or a lost write.

mod common;

use common::{Cluster, CLIENT, IDS};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use synod_bft::{BftClient, Byzantine, ClientError, KvOp, KvResult};
use synod_check::{check, Entry, Op, Outcome, DEFAULT_BUDGET};
use synod_core::NodeId;

const CLIENTS: u64 = 3;
const KEYS: [&str; 3] = ["x", "y", "z"];

/// Runs a client for `run` and returns its history.
async fn client(mut c: BftClient, id: NodeId, seed: u64, run: Duration, t0: Instant) -> Vec<Entry> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ id);
    let now = || t0.elapsed().as_micros() as u64;
    let mut history = Vec::new();
    let mut n = 0;
    while t0.elapsed() < run {
        n += 1;
        let key = KEYS[rng.gen_range(0..KEYS.len())];
        let value = format!("c{id}-{n}");
        let (op, kv) = match rng.gen_range(0..10) {
            0..=3 => (Op::Get { value: None }, KvOp::Get { key: key.into() }),
            4..=8 => (
                Op::Put {
                    value: value.clone(),
                },
                KvOp::Put {
                    key: key.into(),
                    value: value.into_bytes(),
                },
            ),
            _ => (Op::Delete, KvOp::Delete { key: key.into() }),
        };
        let call = now();
        let result = c.execute(kv).await;
        let ret = now();
        let (op, ret, outcome) = match (op, result) {
            (Op::Get { .. }, Ok(KvResult::Get { value })) => {
                let value = value.map(|v| String::from_utf8_lossy(&v).into_owned());
                (Op::Get { value }, Some(ret), Outcome::Ok)
            }
            (op @ (Op::Put { .. } | Op::Delete), Ok(_)) => (op, Some(ret), Outcome::Ok),
            (op, Err(ClientError::Timeout { .. })) => (op, None, Outcome::Unknown),
            (op, other) => panic!("client {id}: {op:?} answered {other:?}"),
        };
        history.push(Entry {
            client: id,
            key: key.into(),
            op,
            call,
            ret,
            outcome,
        });
    }
    history
}

async fn one_run(seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mode = [Byzantine::Equivocate, Byzantine::Forge, Byzantine::Silent][rng.gen_range(0..3)];
    let liar = (IDS[rng.gen_range(0..4)], mode);
    let mut cluster = Cluster::start(Some(liar)).await;
    let run = Duration::from_secs(4);
    let t0 = Instant::now();
    let histories = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (CLIENT..CLIENT + CLIENTS)
        .map(|id| {
            let c = cluster.client_with(id, Duration::from_secs(3));
            let histories = histories.clone();
            tokio::spawn(async move {
                let h = client(c, id, seed, run, t0).await;
                histories.lock().expect("not poisoned").extend(h);
            })
        })
        .collect();
    // The nemesis: a correct replica down for a while, then back from its disk.
    let mut crashes = 0;
    while t0.elapsed() + Duration::from_millis(900) < run {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(200..500))).await;
        let victim = loop {
            let id = IDS[rng.gen_range(0..4)];
            if id != liar.0 {
                break id;
            }
        };
        cluster.stop(victim).await;
        crashes += 1;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..400))).await;
        cluster.boot(victim, None).await;
    }
    for c in clients {
        c.await.expect("client task");
    }
    cluster.shutdown().await;
    let history = std::mem::take(&mut *histories.lock().expect("not poisoned"));
    let ok = history.iter().filter(|e| e.outcome == Outcome::Ok).count();
    let verdict = check(&history, DEFAULT_BUDGET);
    assert!(
        verdict.is_linearizable(),
        "seed {seed} (liar {liar:?}, {crashes} crashes): not linearizable\n{verdict}"
    );
    assert!(
        ok >= 10,
        "seed {seed} (liar {liar:?}): only {ok} operations completed"
    );
    eprintln!("seed {seed}: liar {liar:?}, {crashes} crashes, {ok} of {} operations completed, linearizable", history.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_under_a_liar_and_crashes_are_linearizable() {
    for seed in [1, 2, 3] {
        one_run(seed).await;
    }
}
