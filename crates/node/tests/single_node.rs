//! What a node reports to its driver (the server's metrics, lease API and shutdown), checked
//! on a one-member cluster that decides on its own.

use std::time::Duration;
use synod_core::multi::Message;
use synod_core::multi::RoleKind;
use synod_core::Ballot;
use synod_kv::{KvCommand, KvResult, PutRequest};
use synod_node::{Action, NodeConfig, NodeCore, Recovered};

/// A one-member node restarted from a disk whose last boot was `boot_before`.
fn node(boot_before: u64) -> NodeCore {
    let cfg = NodeConfig::new(1, vec![1], Duration::from_millis(10));
    let recovered = Recovered {
        boot: boot_before,
        ..Default::default()
    };
    let mut n = NodeCore::new(cfg, recovered, 1, 0).expect("valid config");
    n.start();
    n
}

/// Ends the turn and plays the driver: every write is durable at once. Returns the replies.
fn turn(n: &mut NodeCore) -> Vec<Action> {
    let mut replies = Vec::new();
    let mut bytes = 0;
    loop {
        n.flush();
        let actions = n.take_actions();
        if actions.is_empty() {
            return replies;
        }
        for a in actions {
            match a {
                Action::Write { batch, records } => {
                    bytes += 64 * records.len() as u64;
                    n.synced(batch, bytes);
                }
                Action::Reply { .. } | Action::ReadReply { .. } => replies.push(a),
                _ => {}
            }
        }
    }
}

/// Ticks until the node leads; returns how many ticks that took.
fn elect(n: &mut NodeCore) -> u64 {
    for t in 1..=1_000 {
        n.tick();
        turn(n);
        if n.replica().role_kind() == RoleKind::Leader {
            return t;
        }
    }
    panic!("a one-member cluster elects itself");
}

fn put(key: &str) -> KvCommand {
    KvCommand::Put(PutRequest {
        key: key.into(),
        value: b"v".to_vec(),
        ..Default::default()
    })
}

#[test]
fn the_node_reports_its_boot_clock_store_and_counters() {
    let mut n = node(4);
    assert_eq!(n.boot(), 5, "the boot after the one on disk");
    let ticks = elect(&mut n);
    assert_eq!(n.now(), ticks);
    assert_eq!(n.counters().elections, 1);
    assert_eq!(n.counters().proposals, 0);

    let free = n.lanes_free();
    assert!(free > 1);
    n.propose(7, put("a"));
    n.propose(8, put("b"));
    assert_eq!(n.lanes_free(), free - 2, "a lane per command in flight");
    let replies = turn(&mut n);
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(n.lanes_free(), free, "both lanes freed by the replies");
    assert_eq!(n.counters().proposals, 2);
    assert!(n.store().get(b"a").is_some() && n.store().get(b"b").is_some());
    assert!(n.store().get(b"c").is_none());

    n.tick();
    turn(&mut n);
    assert_eq!(n.now(), ticks + 1);
}

/// The lease ids granted, by ticket, among `replies`.
fn granted(replies: &[Action]) -> Vec<(u64, i64)> {
    replies
        .iter()
        .filter_map(|a| match a {
            Action::Reply {
                ticket,
                result: Ok(out),
            } => match &out.result {
                Ok(KvResult::LeaseGranted { id, .. }) => Some((*ticket, *id)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn a_granted_lease_gets_a_fresh_id_unless_the_client_named_one() {
    let mut n = node(0);
    elect(&mut n);
    n.propose(1, KvCommand::LeaseGrant { id: 0, ttl: 5 });
    n.propose(2, KvCommand::LeaseGrant { id: 0, ttl: 5 });
    n.propose(3, KvCommand::LeaseGrant { id: 42, ttl: 5 });
    let mut ids = granted(&turn(&mut n));
    ids.sort();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(ids[2], (3, 42), "the client's own id is kept");
    let (a, b) = (ids[0].1, ids[1].1);
    assert!(a > 0 && b > 0 && a != b && a != 42 && b != 42, "{ids:?}");
}

#[test]
fn a_granted_lease_runs_on_the_nodes_clock() {
    let mut n = node(0);
    elect(&mut n);
    n.propose(1, KvCommand::LeaseGrant { id: 0, ttl: 5 });
    let ids = granted(&turn(&mut n));
    let &[(1, id)] = ids.as_slice() else {
        panic!("the lease is granted: {ids:?}");
    };
    n.tick();
    turn(&mut n);
    assert_eq!(n.lease_remaining(id), Some(5));
    // 10 ms ticks: two seconds later, three are left.
    for _ in 0..200 {
        n.tick();
    }
    turn(&mut n);
    assert_eq!(n.lease_remaining(id), Some(3));
    assert_eq!(n.lease_remaining(id + 1), None, "a lease it never saw");
}

#[test]
fn a_stopping_node_hands_back_every_waiting_client() {
    // A follower of node 1: its proposal is forwarded and its read asks the leader, and both
    // wait for answers that never come.
    let cfg = NodeConfig::new(2, vec![1, 2, 3], Duration::from_millis(10));
    let mut n = NodeCore::new(cfg, Recovered::default(), 1, 0).expect("valid config");
    n.start();
    n.on_peer(
        1,
        Message::Heartbeat {
            ballot: Ballot::new(1, 1),
            commit: 0,
        },
    );
    n.propose(3, put("a"));
    n.read_index(4, Default::default());
    assert!(turn(&mut n).is_empty(), "nothing answered yet");
    let mut waiting = n.stop();
    waiting.sort();
    assert_eq!(waiting, vec![3, 4]);
    assert!(n.stop().is_empty(), "each once");
}
