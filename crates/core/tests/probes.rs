//! Thrifty read probes (`Config::thrifty_reads`): a leader asks only a quorum's worth of
//! members to confirm its leadership, and turns to another when one stops answering.

use crate::common::net::Net;
use std::collections::BTreeMap;
use synod_core::multi::{Message, Output, Timer};
use synod_core::NodeId;

/// Three replicas with thrifty reads or not, node 1 leading.
fn cluster(thrifty: bool) -> Net {
    let mut net = Net::new(3);
    net.thrifty_reads = thrifty;
    for id in 1..=3 {
        net.boot(id);
    }
    net.settle();
    net.elect(1);
    net
}

/// Delivers everything, counting the read probes each member was sent.
fn probes_sent(net: &mut Net) -> BTreeMap<NodeId, usize> {
    let mut sent = BTreeMap::new();
    net.settle_with(|_, to, m| {
        if matches!(m, Message::ReadProbe { .. }) {
            *sent.entry(to).or_insert(0) += 1;
        }
        false
    });
    sent
}

fn served(net: &Net, id: u64) -> bool {
    net.replies.contains(&(1, Output::ReadReady { id }))
}

#[test]
fn a_thrifty_leader_probes_one_follower_of_two_and_a_plain_one_both() {
    for thrifty in [false, true] {
        let mut net = cluster(thrifty);
        for id in 1..=3 {
            net.read(1, &[id]);
            let sent = probes_sent(&mut net);
            assert!(served(&net, id), "thrifty {thrifty}: read {id} not served");
            let want = match thrifty {
                true => BTreeMap::from([(2, 1)]),
                false => BTreeMap::from([(2, 1), (3, 1)]),
            };
            assert_eq!(sent, want, "thrifty {thrifty}, read {id}");
        }
    }
}

/// Delivers everything but what goes to or comes from `silent`, counting the read probes each
/// member was sent (those to `silent` included).
fn probes_sent_but_lost_to(net: &mut Net, silent: NodeId) -> BTreeMap<NodeId, usize> {
    let mut sent = BTreeMap::new();
    net.settle_with(|from, to, m| {
        if matches!(m, Message::ReadProbe { .. }) {
            *sent.entry(to).or_insert(0) += 1;
        }
        from == silent || to == silent
    });
    sent
}

#[test]
fn a_thrifty_leader_turns_to_another_follower_when_the_one_it_probes_falls_silent() {
    let mut net = cluster(true);
    net.read(1, &[1]);
    assert_eq!(probes_sent(&mut net), BTreeMap::from([(2, 1)]));
    // Node 2 falls silent: read 2's probe goes to it alone and is lost.
    net.read(1, &[2]);
    assert_eq!(
        probes_sent_but_lost_to(&mut net, 2),
        BTreeMap::from([(2, 1)])
    );
    assert!(!served(&net, 2), "confirmed without a quorum");
    // The heartbeat sends the round in flight to every member that has not acknowledged it,
    // and node 3's answer confirms it; from then on node 3 answered the latest round and is
    // probed first.
    net.timer(1, Timer::Heartbeat);
    assert_eq!(
        probes_sent_but_lost_to(&mut net, 2),
        BTreeMap::from([(2, 1), (3, 1)])
    );
    assert!(
        served(&net, 2),
        "the heartbeat did not reach the other follower"
    );
    net.read(1, &[3]);
    assert_eq!(
        probes_sent_but_lost_to(&mut net, 2),
        BTreeMap::from([(3, 1)])
    );
    assert!(served(&net, 3));
}

#[test]
fn a_thrifty_leader_probes_every_member_while_a_write_is_in_flight() {
    let mut net = cluster(true);
    net.request(1, 9, 1, 5);
    net.read(1, &[1]);
    assert_eq!(probes_sent(&mut net), BTreeMap::from([(2, 1), (3, 1)]));
    assert!(served(&net, 1));
    // The write is chosen: the next read's round goes to one follower again.
    net.read(1, &[2]);
    assert_eq!(probes_sent(&mut net), BTreeMap::from([(2, 1)]));
    assert!(served(&net, 2));
}

#[test]
fn after_a_failover_a_thrifty_leader_probes_a_member_whose_promise_it_holds() {
    let mut net = cluster(true);
    net.down.insert(1);
    net.elect(3);
    // Nodes 1 and 2 rank alike (neither acknowledged a round of node 3's leadership): node 2
    // promised, node 1, the old leader, did not.
    net.read(3, &[1]);
    assert_eq!(probes_sent(&mut net), BTreeMap::from([(2, 1)]));
    assert!(net.replies.contains(&(3, Output::ReadReady { id: 1 })));
}
