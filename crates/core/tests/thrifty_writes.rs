//! Thrifty accepts (`Config::thrifty_writes`): a leader sends each accept to a quorum's worth
//! of members, tells the others the value once it is chosen, and turns to another member when
//! one stops voting.

use crate::common::net::Net;
use std::collections::BTreeMap;
use synod_core::multi::{Message, Timer};
use synod_core::NodeId;

/// Three replicas, node 1 leading, accepts thrifty or not.
fn cluster(thrifty: bool) -> Net {
    let mut net = Net::new(3);
    net.thrifty_writes = thrifty;
    for id in 1..=3 {
        net.boot(id);
    }
    net.settle();
    net.elect(1);
    net
}

/// What each member was sent, by kind, while everything is delivered but what `lost` selects.
fn sent(
    net: &mut Net,
    lost: impl Fn(NodeId, NodeId) -> bool,
) -> BTreeMap<(NodeId, &'static str), usize> {
    let mut out = BTreeMap::new();
    net.settle_with(|from, to, m| {
        let kind = match m {
            Message::Accept { .. } => "accept",
            Message::Chosen { .. } => "chosen",
            Message::Heartbeat { .. } => "heartbeat",
            _ => return lost(from, to),
        };
        *out.entry((to, kind)).or_insert(0) += 1;
        lost(from, to)
    });
    out
}

#[test]
fn a_thrifty_leader_sends_one_follower_the_accept_and_the_other_the_chosen_value() {
    for thrifty in [false, true] {
        let mut net = cluster(thrifty);
        net.request(1, 7, 1, 5);
        let got = sent(&mut net, |_, _| false);
        let want = match thrifty {
            true => BTreeMap::from([
                ((2, "accept"), 1),
                ((2, "heartbeat"), 1),
                ((3, "chosen"), 1),
            ]),
            false => BTreeMap::from([
                ((2, "accept"), 1),
                ((3, "accept"), 1),
                ((2, "heartbeat"), 1),
                ((3, "heartbeat"), 1),
            ]),
        };
        assert_eq!(got, want, "thrifty {thrifty}");
        assert_eq!(
            net.totals(),
            vec![5, 5, 5],
            "thrifty {thrifty}: every member applied it"
        );
    }
}

#[test]
fn a_thrifty_leader_turns_to_the_other_follower_when_the_one_it_chose_falls_silent() {
    let mut net = cluster(true);
    net.request(1, 7, 1, 1);
    net.settle();
    // Node 2 falls silent: the next write's accept goes to it alone and is lost.
    net.request(1, 7, 2, 2);
    let got = sent(&mut net, |from, to| from == 2 || to == 2);
    assert_eq!(got, BTreeMap::from([((2, "accept"), 1)]));
    assert_eq!(net.totals()[0], 1, "chosen without a quorum");
    // One heartbeat round later it is not yet a whole round old: node 3 hears heartbeats only.
    net.timer(1, Timer::Heartbeat);
    let got = sent(&mut net, |from, to| from == 2 || to == 2);
    assert_eq!(got.get(&(3, "accept")), None, "{got:?}");
    // A whole round: node 3 is sent the accept, votes, and the write is chosen.
    net.timer(1, Timer::Heartbeat);
    let got = sent(&mut net, |from, to| from == 2 || to == 2);
    assert_eq!(got.get(&(3, "accept")), Some(&1), "{got:?}");
    assert_eq!((net.totals()[0], net.totals()[2]), (3, 3));
    // Node 3 voted last: the next write goes to it alone, and is chosen at once.
    net.request(1, 7, 3, 4);
    let got = sent(&mut net, |from, to| from == 2 || to == 2);
    assert_eq!(got.get(&(3, "accept")), Some(&1), "{got:?}");
    assert_eq!(got.get(&(2, "accept")), None, "{got:?}");
    assert_eq!((net.totals()[0], net.totals()[2]), (7, 7));
}
