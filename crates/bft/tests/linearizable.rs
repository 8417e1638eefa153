//! Fault injection on a PBFT cluster in this process: one liar (its mode drawn by the seed),
//! a correct replica crashed and restarted from its disk again and again, and three clients
//! reading, writing and deleting three keys all the while. Every history must be
//! linearizable: a client never takes a lie, a stale read or a lost write.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use synod_bft::node::RunningReplica;
use synod_bft::ReplicaOptions;
use synod_bft::{BftClient, Byzantine, ClientError, ClientOptions, KvOp, KvResult, Members};
use synod_check::{check, Entry, Op, Outcome, DEFAULT_BUDGET};
use synod_core::auth::{Ed25519Signer, Ed25519Verifier};
use synod_core::NodeId;
use tokio::net::TcpListener;

const IDS: [NodeId; 4] = [1, 2, 3, 4];
const CLIENTS: u64 = 3;
const KEYS: [&str; 3] = ["x", "y", "z"];

fn signer(id: NodeId) -> Arc<Ed25519Signer> {
    Arc::new(Ed25519Signer::from_secret(id, &[id as u8; 32]))
}

fn verifier() -> Arc<Ed25519Verifier> {
    let mut v = Ed25519Verifier::default();
    for id in IDS.iter().copied().chain(101..101 + CLIENTS) {
        v.add(id, &signer(id).public()).expect("a valid key");
    }
    Arc::new(v)
}

fn options(
    id: NodeId,
    members: &Members,
    dir: &PathBuf,
    liar: (NodeId, Byzantine),
) -> ReplicaOptions {
    let mut o = ReplicaOptions::new(
        id,
        members.clone(),
        dir.join(format!("r{id}")),
        signer(id),
        verifier(),
    );
    o.tick = Duration::from_millis(5);
    o.view_change_ticks = 60;
    o.status_ticks = 10;
    o.checkpoint_interval = 8;
    o.byzantine = (liar.0 == id).then_some(liar.1);
    o
}

/// Runs a client for `run` and returns its history.
async fn client(id: NodeId, members: Members, seed: u64, run: Duration, t0: Instant) -> Vec<Entry> {
    let mut opts = ClientOptions::new(members);
    opts.retry = Duration::from_millis(150);
    opts.timeout = Duration::from_secs(3);
    let mut c = BftClient::connect(signer(id), verifier(), opts).expect("connects");
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
    let dir = tempfile::tempdir().expect("temp dir");
    let dir_path = dir.path().to_path_buf();
    let mut listeners = BTreeMap::new();
    for id in IDS {
        listeners.insert(id, TcpListener::bind("127.0.0.1:0").await.expect("binds"));
    }
    let members: Members = listeners
        .iter()
        .map(|(&id, l)| (id, l.local_addr().expect("bound")))
        .collect();
    let mut running: BTreeMap<NodeId, RunningReplica> = BTreeMap::new();
    for (id, l) in listeners {
        let r = synod_bft::start(options(id, &members, &dir_path, liar), Some(l)).await;
        running.insert(id, r.expect("starts"));
    }
    let run = Duration::from_secs(4);
    let t0 = Instant::now();
    let histories = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (101..101 + CLIENTS)
        .map(|id| {
            let (members, histories) = (members.clone(), histories.clone());
            tokio::spawn(async move {
                let h = client(id, members, seed, run, t0).await;
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
        running
            .remove(&victim)
            .expect("running")
            .stop()
            .await
            .expect("stops");
        crashes += 1;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..400))).await;
        let r = synod_bft::start(options(victim, &members, &dir_path, liar), None).await;
        running.insert(victim, r.expect("restarts from its disk"));
    }
    for c in clients {
        c.await.expect("client task");
    }
    for (_, r) in running {
        r.stop().await.expect("stops");
    }
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
