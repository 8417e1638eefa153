//! Notices held back (`Config::notice_ticks`): a leader tells a member the values chosen without
//! its vote, and a commit point no accept carried, at the notice timer, all at once; a member
//! with someone waiting on it is told at once.

use crate::common::net::Net;
use std::collections::BTreeMap;
use synod_core::multi::{Message, Output, Timer};
use synod_core::NodeId;

/// Three replicas, node 1 leading, thrifty accepts, notices held for a tick.
fn cluster() -> Net {
    let mut net = Net::new(3);
    net.thrifty_writes = true;
    net.notice_ticks = 1;
    for id in 1..=3 {
        net.boot(id);
    }
    net.settle();
    net.elect(1);
    net
}

/// What the leader sent each member, by kind (with the entries a catch-up carried), while
/// everything is delivered.
fn sent(net: &mut Net) -> BTreeMap<(NodeId, &'static str), usize> {
    let mut out = BTreeMap::new();
    net.settle_with(|from, to, m| {
        let (kind, n) = match m {
            Message::Accept { .. } => ("accept", 1),
            Message::Chosen { .. } => ("chosen", 1),
            Message::Heartbeat { .. } => ("heartbeat", 1),
            Message::CatchUp { entries } => ("catch-up entries", entries.len()),
            _ => return false,
        };
        if from == 1 {
            *out.entry((to, kind)).or_insert(0) += n;
        }
        false
    });
    out
}

/// Node `at` answered client `client`'s command `seq`.
fn answered(net: &Net, at: NodeId, client: u64, seq: u64) -> bool {
    let reply = |o: &Output<u64>| matches!(o, Output::Reply { client: c, seq: q, .. } if *c == client && *q == seq);
    net.replies.iter().any(|(n, o)| *n == at && reply(o))
}

/// Node `at` served read `id`.
fn read_ready(net: &Net, at: NodeId, id: u64) -> bool {
    let ready = |o: &Output<u64>| matches!(o, Output::ReadReady { id: i } if *i == id);
    net.replies.iter().any(|(n, o)| *n == at && ready(o))
}

#[test]
fn held_values_and_commit_points_leave_together_at_the_notice_timer() {
    let mut net = cluster();
    for seq in 1..=3 {
        net.request(1, 7, seq, 5);
        let got = sent(&mut net);
        assert_eq!(got, BTreeMap::from([((2, "accept"), 1)]), "write {seq}");
    }
    // The voter learned the first two commit points from the next accepts; nobody was told
    // the third, and the member left out knows nothing yet.
    assert_eq!(net.totals(), vec![15, 10, 0]);
    net.timer(1, Timer::Notices);
    let got = sent(&mut net);
    let want = BTreeMap::from([
        ((2, "heartbeat"), 1),
        ((3, "catch-up entries"), 3),
        ((3, "heartbeat"), 1),
    ]);
    assert_eq!(got, want);
    assert_eq!(net.totals(), vec![15, 15, 15]);
    // Nothing left to tell: the next firing sends nothing.
    net.timer(1, Timer::Notices);
    assert!(sent(&mut net).is_empty());
}

#[test]
fn a_heartbeat_sends_the_held_values_before_the_commit_point() {
    let mut net = cluster();
    net.request(1, 7, 1, 5);
    net.settle();
    let mut order = Vec::new();
    net.timer(1, Timer::Heartbeat);
    net.settle_with(|from, to, m| {
        if from == 1 && to == 3 {
            order.push(m.kind());
        }
        false
    });
    assert_eq!(order, vec!["catchup", "heartbeat"]);
    assert_eq!(net.totals(), vec![5, 5, 5]);
}

#[test]
fn a_member_that_forwarded_a_write_is_told_at_once() {
    let mut net = cluster();
    // Node 3 is left out of the accepts; its client's write is forwarded to the leader.
    net.request(3, 9, 1, 4);
    let got = sent(&mut net);
    assert_eq!(got.get(&(3, "chosen")), Some(&1), "{got:?}");
    assert_eq!(
        net.totals(),
        vec![4, 0, 4],
        "node 3 applied without a timer"
    );
    assert!(answered(&net, 3, 9, 1), "{:?}", net.replies);
    // The voter, with nobody waiting on it, still waits for the timer.
    net.request(3, 9, 2, 1);
    net.settle();
    assert_eq!(net.totals(), vec![5, 4, 5]);
}

#[test]
fn a_read_index_reaches_a_member_after_the_values_held_for_it() {
    let mut net = cluster();
    net.request(1, 7, 1, 5);
    net.settle();
    assert_eq!(net.totals(), vec![5, 0, 0]);
    let mut order = Vec::new();
    net.read(3, &[11]);
    net.settle_with(|from, to, m| {
        if from == 1 && to == 3 {
            order.push(m.kind());
        }
        false
    });
    let at = |k: &str| order.iter().position(|&o| o == k);
    let (values, reply) = (at("catchup"), at("read-index-reply"));
    assert!(
        values.is_some() && reply.is_some() && values < reply,
        "{order:?}"
    );
    assert_eq!(net.totals()[2], 5);
    assert!(read_ready(&net, 3, 11), "{:?}", net.replies);
}

/// How many times node 1 armed the notice timer.
fn notice_timers(net: &Net) -> usize {
    let armed = net.armed.iter();
    armed
        .filter(|&&(n, t)| n == 1 && t == Timer::Notices)
        .count()
}

#[test]
fn the_notice_timer_is_armed_once_for_what_it_will_send() {
    let mut net = cluster();
    let before = notice_timers(&net);
    net.request(1, 7, 1, 5);
    net.settle();
    assert_eq!(
        notice_timers(&net),
        before + 1,
        "armed when the first value is held"
    );
    net.request(1, 7, 2, 5);
    net.settle();
    assert_eq!(notice_timers(&net), before + 1, "already armed");
    net.timer(1, Timer::Notices);
    net.settle();
    net.request(1, 7, 3, 5);
    net.settle();
    assert_eq!(notice_timers(&net), before + 2, "armed again once it fired");
}

#[test]
fn a_member_that_starts_forwarding_first_gets_what_was_held_for_it() {
    let mut net = cluster();
    net.request(1, 7, 1, 5);
    net.settle();
    assert_eq!(net.totals(), vec![5, 0, 0]);
    // Node 3's write comes after the one held for it: it must not wait for the timer.
    net.request(3, 9, 1, 4);
    let got = sent(&mut net);
    assert_eq!(got.get(&(3, "catch-up entries")), Some(&1), "{got:?}");
    assert_eq!(got.get(&(3, "chosen")), Some(&1), "{got:?}");
    assert_eq!(net.totals()[2], 9);
    assert!(answered(&net, 3, 9, 1), "{:?}", net.replies);
}

#[test]
fn a_voter_reading_is_told_the_commit_point_before_its_read_index() {
    let mut net = cluster();
    net.request(1, 7, 1, 5);
    net.settle();
    assert_eq!(net.totals(), vec![5, 0, 0], "node 2 voted but was not told");
    net.read(2, &[12]);
    let got = sent(&mut net);
    assert_eq!(got.get(&(2, "heartbeat")), Some(&1), "{got:?}");
    assert_eq!(net.totals()[1], 5);
    assert!(read_ready(&net, 2, 12), "{:?}", net.replies);
}

#[test]
fn a_member_that_stops_forwarding_is_held_back_again_two_heartbeats_later() {
    let mut net = cluster();
    net.request(3, 9, 1, 4);
    net.settle();
    for beats in 0..3 {
        net.request(1, 7, beats + 1, 1);
        let got = sent(&mut net);
        let told = got.contains_key(&(3, "chosen"));
        assert_eq!(told, beats < 2, "after {beats} heartbeats: {got:?}");
        net.timer(1, Timer::Heartbeat);
        net.settle();
    }
}

#[test]
fn a_leader_stepping_down_sends_the_values_it_held() {
    let mut net = cluster();
    net.request(1, 7, 1, 5);
    net.settle();
    assert_eq!(net.totals(), vec![5, 0, 0]);
    // Node 2 stands; node 1 steps down on its higher ballot.
    net.timer(2, Timer::Election);
    net.timer(2, Timer::Election);
    let got = sent(&mut net);
    assert_eq!(got.get(&(3, "catch-up entries")), Some(&1), "{got:?}");
    assert_eq!(net.totals()[2], 5);
}

#[test]
fn a_voter_that_forwarded_a_write_is_told_its_commit_point_at_once() {
    let mut net = cluster();
    net.request(2, 9, 1, 4);
    let got = sent(&mut net);
    assert_eq!(got.get(&(2, "heartbeat")), Some(&1), "{got:?}");
    assert_eq!(
        got.get(&(3, "heartbeat")),
        None,
        "nobody waits at 3: {got:?}"
    );
    assert_eq!(net.totals(), vec![4, 4, 0]);
    assert!(answered(&net, 2, 9, 1), "{:?}", net.replies);
}

#[test]
fn many_held_values_leave_in_catch_ups_of_at_most_a_batch_each() {
    let mut net = cluster();
    for seq in 1..=300 {
        net.request(1, 7, seq, 1);
        net.settle();
    }
    let mut sizes = Vec::new();
    net.timer(1, Timer::Notices);
    net.settle_with(|from, to, m| {
        if let (1, 3, Message::CatchUp { entries }) = (from, to, m) {
            sizes.push(entries.len());
        }
        false
    });
    assert_eq!(sizes, vec![256, 44], "catch_up_batch is 256");
    assert_eq!(net.totals(), vec![300, 300, 300]);
}
