//! Membership changes through the log, driven by hand: when a change takes effect, whose votes
//! count on either side of it, and when a leader must prepare again.

use synod_core::multi::{ChangeId, ChangeOutcome, Message, Output, Role, Timer};
use synod_core::{NodeId, PlantedBug};

use crate::common::members::{
    assert_bounds, change, five, five_with, outcomes, set, settle_holding_back, stand, ALPHA,
};
use crate::common::net::Net;

#[test]
fn a_change_takes_effect_alpha_slots_on_and_then_its_voters_decide() {
    let mut net = five(true);
    assert_bounds(&mut net, 1);
    assert_eq!(
        net.r(2).proposal_range(),
        None,
        "a follower proposes nothing"
    );
    change(
        &mut net,
        1,
        7,
        vec![set(4, Role::Learner), set(5, Role::Learner)],
    );
    net.settle();
    assert_bounds(&mut net, 1);
    let mine: Vec<_> = outcomes(&net).into_iter().filter(|o| o.0 == 1).collect();
    let [(
        _,
        7,
        ChangeOutcome::Applied {
            epoch: 1,
            effective,
            ..
        },
    )] = mine[..]
    else {
        panic!("{mine:?}");
    };
    // The leader filled the slots up to the boundary with no-ops: an idle cluster gets there.
    assert!(
        net.r(1).commit_index() >= effective,
        "commit below {effective}"
    );
    // Under the new configuration, 1 and 2 are a quorum of {1, 2, 3}; under the old one they
    // were two of five.
    net.down.extend([3, 4, 5]);
    net.request(1, 9, 1, 5);
    net.settle();
    assert!(
        net.replies
            .iter()
            .any(|(n, o)| *n == 1 && matches!(o, Output::Reply { result: 5, .. })),
        "{:?}",
        net.replies
    );
}

#[test]
fn a_leader_prepares_again_when_the_new_voters_did_not_promise() {
    for bug in [None, Some(PlantedBug::Phase1IgnoresNewConfig)] {
        let mut net = five_with(false, bug);
        let before = net.r(1).ballot().expect("leads");
        // Replace 2 and 3 by learners: {1, 4, 5} vote, and only 1 of them promised.
        change(
            &mut net,
            1,
            1,
            vec![set(2, Role::Learner), set(3, Role::Learner)],
        );
        net.settle();
        let after = net.r(1).ballot().expect("leads again");
        if bug.is_none() {
            assert!(after > before, "{after} must be above {before}");
        } else {
            assert_eq!(after, before, "the planted bug proposes without preparing");
        }
        // Either way the cluster goes on deciding with the new voters.
        net.request(1, 9, 1, 5);
        net.settle();
        assert!(net
            .replies
            .iter()
            .any(|(n, o)| *n == 1 && matches!(o, Output::Reply { .. })));
    }
}

#[test]
fn promises_that_arrive_after_the_win_serve_a_later_configuration() {
    let mut net = five(true);
    let before = net.r(1).ballot().expect("leads");
    change(
        &mut net,
        1,
        1,
        vec![set(2, Role::Learner), set(3, Role::Learner)],
    );
    net.settle();
    assert_eq!(
        net.r(1).ballot(),
        Some(before),
        "4 and 5 promised late: no second phase 1"
    );
}

#[test]
fn changes_are_proposed_one_at_a_time_and_each_expects_the_epoch_before_it() {
    let mut net = five(true);
    change(&mut net, 1, 1, vec![set(5, Role::Learner)]);
    change(&mut net, 1, 2, vec![set(4, Role::Learner)]);
    net.settle();
    let mine: Vec<_> = outcomes(&net)
        .into_iter()
        .filter(|o| o.0 == 1)
        .map(|(_, seq, o)| (seq, matches!(o, ChangeOutcome::Applied { .. })))
        .collect();
    assert_eq!(mine, vec![(1, true), (2, true)]);
    assert!(
        !net.replies
            .iter()
            .any(|(_, o)| matches!(o, Output::ChangeFailed { .. })),
        "{:?}",
        net.replies
    );
    assert_eq!(net.r(1).membership().latest().epoch(), 2);
    assert_eq!(
        net.r(3).membership().latest().epoch(),
        2,
        "followers apply too"
    );
}

#[test]
fn a_follower_passes_a_change_on_and_hears_its_outcome_through_the_log() {
    let mut net = five(true);
    net.timer(1, Timer::Heartbeat);
    net.settle();
    change(&mut net, 2, 1, vec![set(5, Role::Learner)]);
    net.settle();
    assert!(
        outcomes(&net)
            .iter()
            .any(|(n, seq, o)| *n == 2 && *seq == 1 && matches!(o, ChangeOutcome::Applied { .. })),
        "{:?}",
        net.replies
    );
    assert!(!net.r(5).membership().latest().is_voter(5));
    // A peer cannot pass on a change in another node's name.
    let fx = net.r(1).on_message(
        3,
        Message::ForwardChange {
            id: ChangeId { origin: 2, seq: 2 },
            ops: vec![set(5, Role::Voter)],
        },
    );
    net.absorb(1, fx);
    net.settle();
    assert!(!net.r(5).membership().latest().is_voter(5));
}

#[test]
fn a_change_asked_where_no_leader_is_known_fails_at_once() {
    let mut net = Net::with_alpha(3, 2, ALPHA);
    change(&mut net, 2, 1, vec![set(3, Role::Learner)]);
    assert!(
        net.replies
            .iter()
            .any(|(n, o)| *n == 2 && matches!(o, Output::ChangeFailed { leader: None, .. })),
        "{:?}",
        net.replies
    );
    assert!(net.queue.is_empty(), "nothing sent");
}

#[test]
fn a_read_waits_out_a_boundary_and_is_then_served() {
    let mut net = five(true);
    change(&mut net, 1, 1, vec![set(5, Role::Learner)]);
    net.read(1, &[77]);
    net.settle();
    assert!(net
        .replies
        .iter()
        .any(|(n, o)| *n == 1 && matches!(o, Output::ReadReady { id: 77 })));
}

#[test]
fn a_learner_does_not_stand() {
    let mut net = five(true);
    change(&mut net, 1, 1, vec![set(5, Role::Learner)]);
    net.settle();
    net.timer(1, Timer::Heartbeat);
    net.settle();
    for _ in 0..3 {
        net.timer(5, Timer::Election);
    }
    assert_eq!(net.r(5).ballot(), None, "learner 5 stood");
}

#[test]
fn a_leader_handing_over_refuses_a_change() {
    let mut net = five(true);
    let fx = net.r(1).transfer_leadership(2).expect("leads");
    net.absorb(1, fx);
    change(&mut net, 1, 1, vec![set(5, Role::Learner)]);
    assert!(
        net.replies
            .iter()
            .any(|(n, o)| *n == 1 && matches!(o, Output::ChangeFailed { .. })),
        "{:?}",
        net.replies
    );
}

#[test]
fn a_candidate_counts_promises_of_its_own_ballot_only() {
    let mut net = Net::with_alpha(3, 2, ALPHA);
    let stand = |net: &mut Net| {
        while net.r(1).ballot().is_none() {
            net.timer(1, Timer::Election);
        }
        net.r(1).ballot().expect("stands")
    };
    let first = stand(&mut net);
    net.queue.clear();
    net.timer(1, Timer::Election); // no win yet: stands again, higher
    let second = net.r(1).ballot().expect("stands");
    assert!(second > first);
    net.queue.clear();
    let promise = |ballot| Message::Promise {
        ballot,
        entries: vec![],
        log_start: 0,
    };
    let fx = net.r(1).on_message(1, promise(second));
    net.absorb(1, fx);
    let fx = net.r(1).on_message(2, promise(first));
    net.absorb(1, fx);
    assert_eq!(
        net.r(1).role_kind(),
        synod_core::multi::RoleKind::Candidate,
        "a promise of the earlier ballot does not count"
    );
    let fx = net.r(1).on_message(2, promise(second));
    net.absorb(1, fx);
    assert_eq!(net.r(1).role_kind(), synod_core::multi::RoleKind::Leader);
}

#[test]
fn a_read_is_not_served_while_a_boundary_is_in_reach() {
    let mut net = five(true);
    change(&mut net, 1, 1, vec![set(5, Role::Learner)]);
    // The change (slot 0) is chosen; the no-ops that bring the log to its boundary are not.
    let hold = |_: NodeId, _: NodeId, m: &Message<u64>| matches!(m, Message::Accepted { slot, .. } if *slot >= 1);
    net.settle_with(hold);
    assert_eq!(net.r(1).applied_index(), 1, "the change is applied");
    net.read(1, &[77]);
    net.settle_with(hold);
    let served = |net: &Net| {
        net.replies
            .iter()
            .any(|(n, o)| *n == 1 && matches!(o, Output::ReadReady { id: 77 }))
    };
    assert!(!served(&net), "served with two configurations in reach");
    net.timer(1, Timer::Heartbeat);
    net.settle();
    assert!(served(&net), "{:?}", net.replies);
}

#[test]
fn a_read_index_covers_every_slot_the_promises_reported() {
    use std::collections::BTreeMap;
    use synod_core::multi::{Command, DurableState, Entry, Value};
    use synod_core::Ballot;
    // Alpha 8 lets a new leader at commit 0 prepare slots 0..8 only. Node 3 voted for slots
    // 1..=12 under the old leader, whose write in slot 12 may have been acknowledged: a read at
    // the new leader must wait for all of them, not for its prepared slots only.
    let mut net = Net::with_alpha(3, 8, 8);
    let old = Ballot::new(1, 1);
    let vote = |slot: u64| Entry {
        ballot: old,
        value: Value::batch(vec![Command {
            client: 7,
            seq: slot + 1,
            op: 1,
        }]),
        chosen: false,
    };
    let disk = |slots: std::ops::RangeInclusive<u64>| DurableState {
        promised: old,
        log: slots.map(|s| (s, vote(s))).collect::<BTreeMap<_, _>>(),
        commit: 0,
        snapshot: None,
    };
    net.disks.insert(2, disk(0..=0));
    net.disks.insert(3, disk(1..=12));
    net.crash(1);
    net.down.insert(1);
    net.boot(2);
    net.boot(3);
    net.queue.clear();
    let mut indexes = Vec::new();
    let mut hold = |_: NodeId, _: NodeId, m: &Message<u64>| {
        if let Message::ReadIndexReply { index, .. } = m {
            indexes.push(*index);
        }
        matches!(m, Message::Accepted { .. })
    };
    while net.r(2).ballot().is_none() {
        net.timer(2, Timer::Election);
    }
    net.settle_with(&mut hold);
    assert!(net.r(2).proposal_range().is_some(), "2 leads");
    net.read(3, &[5]);
    net.settle_with(&mut hold);
    assert_eq!(indexes, vec![Some(13)]);
}

#[test]
fn a_late_promise_reporting_a_vote_below_the_bound_does_not_hold_reads_back() {
    use synod_core::multi::{Command, PromiseEntry, Value};
    use synod_core::Ballot;
    // Found by the simulator (7 nodes, seed 525): an idle leader whose late promise reported an
    // old vote in a slot it had long prepared put its reads' index past anything it would ever
    // propose, and they waited forever.
    let mut net = five(true);
    let ballot = net.r(1).ballot().expect("leads");
    let stale = PromiseEntry {
        slot: 0,
        ballot: Ballot::new(0, 4),
        value: Value::batch(vec![Command {
            client: 3,
            seq: 1,
            op: 9,
        }]),
        chosen: false,
    };
    let fx = net.r(1).on_message(
        4,
        Message::Promise {
            ballot,
            entries: vec![stale],
            log_start: 0,
        },
    );
    net.absorb(1, fx);
    net.read(1, &[42]);
    net.settle();
    assert!(
        net.replies
            .iter()
            .any(|(n, o)| *n == 1 && matches!(o, Output::ReadReady { id: 42 })),
        "{:?}",
        net.replies
    );
}

#[test]
fn a_candidate_prepares_the_voters_of_every_configuration_it_knows() {
    for bug in [None, Some(PlantedBug::Phase1IgnoresNewConfig)] {
        let mut net = five_with(true, bug);
        change(&mut net, 1, 1, vec![set(5, Role::Learner)]);
        net.settle();
        // 5 votes again from alpha slots after the promotion; node 2 learns the promotion is
        // chosen but nothing after it, so its first unchosen slot is still governed by {1..4}.
        let (slot, _) = net.r(1).proposal_range().expect("leads");
        change(&mut net, 1, 2, vec![set(5, Role::Voter)]);
        settle_holding_back(&mut net, 2, slot);
        assert!(!net.r(2).membership().at(slot + 1).is_voter(5));
        assert!(net.r(2).membership().latest().is_voter(5));
        net.queue.clear();
        stand(&mut net, 2);
        let asked_5 = net
            .queue
            .iter()
            .any(|(from, to, m)| *from == 2 && *to == 5 && matches!(m, Message::Prepare { .. }));
        assert_eq!(asked_5, bug.is_none(), "bug {bug:?}");
    }
}

/// What node 4 ends up knowing chosen at the first slot of a new configuration that, before
/// it stood, node 1 and node 5 chose a value in: node 1's value, and node 4's. Nodes 2 and 3
/// are made learners ({1, 4, 5} vote from slot `c + α`); node 4 learns the change but nothing
/// after it; node 1 and node 5 choose a write in the new configuration's first slot; node 1
/// dies; node 4 stands (node 5 does not hear its prepare) and is asked for another write.
fn first_new_slot(bug: Option<PlantedBug>) -> (Net, String, Option<String>) {
    let mut net = five_with(true, bug);
    let (c, _) = net.r(1).proposal_range().expect("leads");
    let e = c + ALPHA;
    change(
        &mut net,
        1,
        1,
        vec![set(2, Role::Learner), set(3, Role::Learner)],
    );
    // Node 4 hears of nothing after the change.
    settle_holding_back(&mut net, 4, c);
    net.request(1, 9, 1, 5);
    // Only node 5 votes with node 1, and nobody hears that the write is chosen.
    net.settle_with(|_, to, m| match m {
        Message::Accept { slot, .. } => to == 4 && *slot > c || *slot >= e && to != 5,
        Message::CatchUp { .. } | Message::Chosen { .. } => true,
        Message::Heartbeat { commit, .. } => *commit > e,
        _ => false,
    });
    let chosen = |net: &mut Net, id: NodeId, s: u64| {
        (net.r(id).log().get(&s))
            .filter(|e| e.chosen)
            .map(|e| format!("{:?}", e.value))
    };
    let v = chosen(&mut net, 1, e).expect("nodes 1 and 5 chose the write");
    net.crash(1);
    net.down.insert(1);
    stand(&mut net, 4);
    net.settle_with(|_, to, m| to == 5 && matches!(m, Message::Prepare { .. }));
    // A client's write reaches node 4, which proposes it where it believes nothing was chosen.
    net.request(4, 10, 1, 7);
    net.settle_with(|_, to, m| to == 5 && matches!(m, Message::Prepare { .. }));
    let w = chosen(&mut net, 4, e);
    (net, v, w)
}

#[test]
fn phase1_ignoring_the_new_configuration_chooses_two_values() {
    let (_, v, w) = first_new_slot(Some(PlantedBug::Phase1IgnoresNewConfig));
    let w = w.expect("the planted bug wins with the old configuration's promises alone");
    assert_ne!(v, w, "the bug did not show");
    // Done right, node 4 needs a phase-1 quorum of {1, 4, 5}: without node 5 it cannot win,
    // and once node 5 answers, its promise carries the write.
    let (mut net, v, w) = first_new_slot(None);
    assert_eq!(w, None, "won without a quorum of the new configuration");
    net.timer(4, Timer::Heartbeat);
    net.settle();
    let learned = net.replicas[&4]
        .log()
        .values()
        .any(|e| e.chosen && format!("{:?}", e.value) == v);
    assert!(
        learned,
        "node 4 did not learn the write nodes 1 and 5 chose"
    );
}
