//! Fast Byzantine Paxos is meant to survive a lying acceptor. Six acceptors and a client run
//! three operations, then rounds of recovery; at one delivery of the liar's messages, the bytes
//! are damaged (as in `hostile_peers`) and every part that still claims to come from the liar
//! is signed again with its key. The five correct acceptors must not panic, and must not
//! execute different requests in one slot.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use proptest::prelude::*;
use synod_core::fab::{Client, Durable, Message, Output, Timer};

use crate::fab::{quorum, replica_from, signer, verifier, Fx, Msg, ACCEPTORS, CLIENT};
use crate::hostile_peers::{apply, damage, Damage};
use crate::pbft_liar::{agree, resign, Liar};
use synod_core::NodeId;

/// Deliveries after which a settling stops (an undamaged run's take a few hundred).
const STORM: usize = 20_000;

/// What each correct acceptor executed: slot → (client, stamp) of the request, or none.
type Executed = BTreeMap<NodeId, BTreeMap<u64, Option<(NodeId, u64)>>>;

fn lie_about(liar: NodeId, msg: &Msg, damages: &[Damage]) -> Option<Msg> {
    let mut bytes = postcard::to_stdvec(msg).unwrap();
    for d in damages {
        apply(&mut bytes, d);
    }
    Some(match postcard::from_bytes::<Msg>(&bytes).ok()? {
        Message::Accepted(s, v) => Message::Accepted(resign(liar, s), v),
        Message::Report(s, v) => Message::Report(resign(liar, s), v),
        Message::Choice(s, e, v) => Message::Choice(resign(liar, s), e, v),
        Message::Status(s) => Message::Status(resign(liar, s)),
        Message::Reply(s) => Message::Reply(resign(liar, s)),
        Message::Lost(s) => Message::Lost(resign(liar, s)),
        other => other,
    })
}

/// Runs the scenario, lying at the liar's `lie.0`-th delivery; returns what the correct
/// acceptors executed and how many of the liar's messages were delivered.
fn run(liar: NodeId, lie: Option<(usize, &[Damage])>) -> (Executed, usize) {
    let mut replicas: BTreeMap<NodeId, _> = ACCEPTORS
        .iter()
        .map(|&id| (id, replica_from(id, None, Durable::default())))
        .collect();
    let ops: Vec<String> = ["V", "W", "X"].map(String::from).to_vec();
    let mut client = Client::new(
        Arc::new(signer(CLIENT)),
        verifier(),
        ACCEPTORS.to_vec(),
        quorum(),
        ops,
        1_000,
    );
    let mut queue: VecDeque<(NodeId, NodeId, Msg)> = VecDeque::new();
    let mut executed = Executed::new();
    let mut liar = Liar::new(liar, lie);
    let take = |from: NodeId, fx: Fx, q: &mut VecDeque<_>, ex: &mut Executed| {
        for o in fx.output {
            if let Output::Executed { slot, request } = o {
                let id = request.map(|(r, _)| (r.client, r.stamp));
                ex.entry(from).or_default().insert(slot, id);
            }
        }
        for o in fx.send.into_iter().chain(fx.send_after_sync) {
            q.push_back((from, o.to, o.msg));
        }
    };
    let fx = client.start();
    take(CLIENT, fx, &mut queue, &mut executed);
    for round in 0..4 {
        if round > 0 {
            for (&id, r) in replicas.iter_mut() {
                let fx = r.on_timer(Timer::Round);
                take(id, fx, &mut queue, &mut executed);
            }
        }
        let mut steps = 0;
        while let Some((from, to, msg)) = queue.pop_front() {
            steps += 1;
            if steps > STORM {
                queue.clear();
                break;
            }
            let Some(msg) = liar.pass(from, msg, lie_about) else {
                continue;
            };
            let fx = if to == CLIENT {
                client.on_message(msg)
            } else {
                match replicas.get_mut(&to) {
                    Some(r) => r.on_message(msg),
                    None => continue,
                }
            };
            take(to, fx, &mut queue, &mut executed);
        }
    }
    executed.remove(&liar.id());
    (executed, liar.told())
}

#[test]
fn without_a_lie_every_correct_acceptor_runs_the_three_operations() {
    for liar in [1, 6] {
        let (executed, lies) = run(liar, None);
        assert!(lies > 10, "{lies}");
        assert_eq!(executed.len(), 5);
        for slots in executed.values() {
            let stamps: Vec<u64> = slots.values().flatten().map(|(_, s)| *s).collect();
            assert_eq!(stamps.len(), 3, "{slots:?}");
        }
        agree(&executed).unwrap();
    }
}

proptest! {
    // A fixed seed: the same cases on every run (a failure prints its input to replay).
    #![proptest_config(ProptestConfig {
        cases: 600,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5EED_0004),
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_well_signed_lie_neither_panics_nor_splits_the_correct_acceptors(
        first in any::<bool>(),
        at in any::<usize>(),
        damages in prop::collection::vec(damage(), 1..4),
    ) {
        let liar = if first { 1 } else { 6 };
        let (_, lies) = run(liar, None);
        let (executed, _) = run(liar, Some((at % lies, &damages)));
        prop_assert_eq!(agree(&executed), Ok(()));
    }
}
