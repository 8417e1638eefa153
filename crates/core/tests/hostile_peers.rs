//! Multi-Paxos tolerates crashes, not lies, so a peer's damaged message may mislead a replica;
//! but it is still input, and a replica must not panic on it. Messages recorded from a small
//! cluster's run are damaged byte by byte, decoded, and delivered (from a member, or from a
//! node that is none) to a replica in the state the run left it; the cluster then settles.

use proptest::prelude::*;
use synod_core::multi::{Message, Timer};

use crate::common::net::Net;

/// A three-node cluster after an election, a few writes and reads, with every message
/// delivered meanwhile.
fn run() -> (Net, Vec<(u64, u64, Message<u64>)>) {
    let mut net = Net::new(3);
    let seen = std::cell::RefCell::new(Vec::new());
    let record = |from, to, m: &Message<u64>| {
        seen.borrow_mut().push((from, to, m.clone()));
        false
    };
    for _ in 0..2 {
        if net.r(1).ballot().is_none() {
            net.timer(1, Timer::Election);
        }
    }
    net.settle_with(record);
    for seq in 1..=4 {
        net.request(1, 7, seq, seq);
        net.settle_with(record);
    }
    net.read(1, &[1]);
    net.settle_with(record);
    net.request(2, 8, 1, 10);
    net.settle_with(record);
    let seen = seen.into_inner();
    (net, seen)
}

#[derive(Clone, Debug)]
enum Damage {
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Damage::Set(at, b)),
        (
            any::<usize>(),
            prop_oneof![Just(0xFFu8), Just(0x80), Just(0x00)]
        )
            .prop_map(|(at, b)| Damage::Set(at, b)),
        any::<usize>().prop_map(Damage::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..10))
            .prop_map(|(at, b)| Damage::Insert(at, b)),
        // A number near the top of its range (a varint of nine 0xFF bytes and a 0x01).
        any::<usize>().prop_map(|at| {
            let mut huge = vec![0xFF; 9];
            huge.push(0x01);
            Damage::Insert(at, huge)
        }),
    ]
}

fn apply(bytes: &mut Vec<u8>, d: &Damage) {
    let len = bytes.len().max(1);
    match d {
        Damage::Set(at, b) => {
            if let Some(x) = bytes.get_mut(at % len) {
                *x = *b;
            }
        }
        Damage::Truncate(at) => bytes.truncate(at % len),
        Damage::Insert(at, more) => {
            let at = (at % len).min(bytes.len());
            bytes.splice(at..at, more.iter().copied());
        }
    }
}

#[test]
fn the_run_records_messages_of_many_kinds() {
    let (_, seen) = run();
    let kinds: std::collections::BTreeSet<_> = seen.iter().map(|(_, _, m)| m.kind()).collect();
    assert!(kinds.len() >= 5, "{kinds:?}");
}

proptest! {
    // A fixed seed: the same cases on every run (a failure prints its input to replay).
    #![proptest_config(ProptestConfig {
        cases: 5_000,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5EED_0001),
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_damaged_message_does_not_panic_a_replica(
        pick in any::<usize>(),
        to in 1u64..=3,
        from in prop_oneof![1u64..=3, Just(9u64)],
        damages in prop::collection::vec(damage(), 1..4),
    ) {
        let (mut net, seen) = run();
        let (_, _, msg) = &seen[pick % seen.len()];
        let mut bytes = postcard::to_stdvec(msg).unwrap();
        for d in &damages {
            apply(&mut bytes, d);
        }
        if let Ok(msg) = postcard::from_bytes::<Message<u64>>(&bytes) {
            net.queue.push_back((from, to, msg));
            net.settle();
            for id in 1..=3 {
                for t in [Timer::Heartbeat, Timer::Election] {
                    net.timer(id, t);
                }
            }
            net.settle();
        }
    }
}
