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

#[test]
fn a_thrifty_leader_turns_to_another_follower_when_the_one_it_probes_falls_silent() {
    let mut net = cluster(true);
    net.read(1, &[1]);
    assert_eq!(probes_sent(&mut net), BTreeMap::from([(2, 1)]));
    net.down.insert(2);
    net.read(1, &[2]);
    net.settle();
    assert!(!served(&net, 2), "confirmed without a quorum");
    // The heartbeat sends the round in flight to the member left out, whose answer confirms
    // it; from then on that member answered the latest round and is probed first.
    net.timer(1, Timer::Heartbeat);
    net.settle();
    assert!(
        served(&net, 2),
        "the heartbeat did not reach the other follower"
    );
    net.read(1, &[3]);
    assert_eq!(probes_sent(&mut net), BTreeMap::from([(3, 1)]));
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
