//! Members taken out and members demoted: a leader voted out hands over, a member voted out
//! while away learns it from the voters instead of deposing anyone, and learners' votes never
//! count.

use synod_core::multi::{MemberOp, Message, Output, Role, RoleKind, Timer};
use synod_core::{NodeId, PlantedBug};

use crate::common::members::{change, five, five_with, set, settle_holding_back, stand};
use crate::common::net::Net;

fn retired(net: &Net, id: NodeId) -> bool {
    net.replies
        .iter()
        .any(|(n, o)| *n == id && matches!(o, Output::Retired))
}

fn leaders(net: &Net) -> Vec<NodeId> {
    net.replicas
        .iter()
        .filter(|(_, r)| r.role_kind() == RoleKind::Leader)
        .map(|(&id, _)| id)
        .collect()
}

fn answered(net: &Net, at: NodeId, seq: u64) -> bool {
    net.replies
        .iter()
        .any(|(n, o)| *n == at && matches!(o, Output::Reply { seq: s, .. } if *s == seq))
}

#[test]
fn a_leader_voted_out_hands_over_to_a_voter_and_retires() {
    let mut net = five(true);
    change(&mut net, 1, 1, vec![MemberOp::Remove(1)]);
    net.settle();
    assert!(retired(&net, 1), "{:?}", net.replies);
    assert!(net.r(1).retired());
    assert!(!net.r(2).retired(), "only the member taken out retires");
    assert!(!retired(&net, 2));
    let now = leaders(&net);
    let [successor] = now[..] else {
        panic!("one leader, not {now:?}");
    };
    assert_ne!(successor, 1, "the member taken out still leads");
    // The successor decides with the voters left, and the old leader is not one of them.
    net.down.insert(1);
    net.request(successor, 9, 1, 5);
    net.settle();
    assert!(answered(&net, successor, 1), "{:?}", net.replies);
}

#[test]
fn a_leader_voted_out_whose_successor_never_stands_steps_down_instead_of_resuming() {
    let mut net = five(true);
    change(&mut net, 1, 1, vec![MemberOp::Remove(1)]);
    net.settle_with(|_, _, m| matches!(m, Message::StandNow { .. }));
    assert_eq!(net.r(1).role_kind(), RoleKind::Leader);
    assert!(net.r(1).handing_over().is_some());
    // The handover ages out at the second election timeout.
    net.timer(1, Timer::Election);
    assert_eq!(net.r(1).role_kind(), RoleKind::Leader);
    net.timer(1, Timer::Election);
    assert_eq!(net.r(1).role_kind(), RoleKind::Follower);
}

#[test]
fn a_member_voted_out_while_away_learns_it_and_deposes_nobody() {
    let mut net = five(true);
    net.down.insert(5);
    change(&mut net, 1, 1, vec![MemberOp::Remove(5)]);
    net.settle();
    let ballot = net.r(1).ballot().expect("leads");
    assert!(!net.r(5).retired(), "5 was away and knows nothing yet");
    net.down.remove(&5);
    net.queue.clear();
    // 5 still thinks it votes, and stands.
    stand(&mut net, 5);
    net.settle();
    assert!(net.r(5).retired(), "the voters told 5 what was chosen");
    assert!(retired(&net, 5));
    assert_eq!(
        net.r(5).role_kind(),
        RoleKind::Follower,
        "a candidate that learns it is out gives up at once"
    );
    assert_eq!(net.r(1).ballot(), Some(ballot), "1 was not deposed");
    for _ in 0..3 {
        net.timer(5, Timer::Election);
    }
    assert_eq!(net.r(5).role_kind(), RoleKind::Follower, "5 stood again");
}

#[test]
fn a_member_demoted_stands_no_more_even_before_the_change_takes_effect() {
    for bug in [None, Some(PlantedBug::RemovedNodeStands)] {
        let mut net = five_with(true, bug);
        let (slot, _) = net.r(1).proposal_range().expect("leads");
        change(&mut net, 1, 1, vec![set(5, Role::Learner)]);
        // 5 learns the change is chosen, and nothing after it: its new role governs no slot
        // it has applied yet.
        settle_holding_back(&mut net, 5, slot);
        let r = net.r(5);
        assert_eq!(r.applied_index(), slot + 1);
        assert!(r.membership().at(slot + 1).is_voter(5));
        assert!(!r.membership().latest().is_voter(5));
        let stood = (0..3).any(|_| {
            net.timer(5, Timer::Election);
            net.r(5).role_kind() == RoleKind::Candidate
        });
        assert_eq!(stood, bug.is_some(), "bug {bug:?}");
    }
}

#[test]
fn a_learners_vote_counts_for_nothing() {
    for bug in [None, Some(PlantedBug::LearnerCounted)] {
        let mut net = five_with(true, bug);
        change(
            &mut net,
            1,
            1,
            vec![set(4, Role::Learner), set(5, Role::Learner)],
        );
        net.settle();
        // Voters {1, 2, 3}: with 2 and 3 away, only learners 4 and 5 vote with 1.
        net.down.extend([2, 3]);
        net.request(1, 9, 1, 5);
        net.settle();
        assert_eq!(answered(&net, 1, 1), bug.is_some(), "bug {bug:?}");
    }
}

#[test]
fn a_member_voted_out_learns_it_even_after_the_others_forgot_it() {
    let mut net = five(true);
    net.down.insert(5);
    change(&mut net, 1, 1, vec![MemberOp::Remove(5)]);
    net.settle();
    // Past the slot the change governs from, snapshots forget the configurations 5 was in.
    net.request(1, 9, 1, 5);
    net.settle();
    for id in 1..=4 {
        let fx = net.r(id).take_snapshot();
        net.absorb(id, fx);
    }
    assert!(!net.r(1).membership().knows(5), "1 still knows 5");
    net.down.remove(&5);
    net.queue.clear();
    stand(&mut net, 5);
    net.settle();
    assert!(net.r(5).retired(), "5 never learned it is out");
    assert_eq!(net.r(5).role_kind(), RoleKind::Follower);
}

#[test]
fn a_stranger_gets_no_answer() {
    let mut net = five(true);
    net.request(1, 9, 1, 5);
    net.settle();
    assert!(net.r(2).commit_index() > 0, "something to tell");
    let ballot = net.r(1).ballot().expect("leads");
    for msg in [
        Message::Prepare { ballot, from: 0 },
        Message::CatchUpRequest { from: 0 },
    ] {
        let fx = net.r(2).on_message(9, msg);
        assert!(fx.send.is_empty() && fx.send_after_sync.is_empty());
    }
}
