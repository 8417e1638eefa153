//! The promotion gate: a learner becomes a voter only once the leader has lately heard that it
//! is within a catch-up batch of the commit point. A voter that must first catch up is one
//! voter fewer to spare; etcd refuses such a promotion, and so does Synod.

use synod_core::multi::{MemberOp, Message, Output, RejectReason, Role, Timer};
use synod_core::NodeId;

use crate::common::members::{change, five, outcomes, set};
use crate::common::net::Net;

/// More than the default catch-up batch (256): a learner that missed them is not in sync.
const FAR: u64 = 300;

/// Five nodes led by 1, with node 5 demoted to learner and the change in force.
fn with_learner() -> Net {
    let mut net = five(true);
    change(&mut net, 1, 1, vec![set(5, Role::Learner)]);
    net.settle();
    for seq in 1..=8 {
        net.request(1, 9, seq, 1);
        net.settle();
    }
    assert_eq!(net.r(1).membership().latest().role(5), Some(Role::Learner));
    net
}

/// `n` commands through leader 1, each settled before the next, so each takes its own slot.
fn push(net: &mut Net, first_seq: u64, n: u64) {
    for seq in first_seq..first_seq + n {
        net.request(1, 9, seq, 1);
        net.settle();
    }
}

/// One heartbeat round of the leader, delivered.
fn beat(net: &mut Net) {
    net.timer(1, Timer::Heartbeat);
    net.settle();
}

/// The refusals node `at` reported: (change seq, learner, how far behind).
fn refusals(net: &Net, at: NodeId) -> Vec<(u64, NodeId, u64)> {
    net.replies
        .iter()
        .filter_map(|(n, o)| match o {
            Output::ChangeRefused {
                id,
                reason:
                    RejectReason::LearnerNotReady {
                        id: learner,
                        behind,
                    },
            } if *n == at => Some((id.seq, *learner, *behind)),
            _ => None,
        })
        .collect()
}

fn applied(net: &Net, at: NodeId, seq: u64) -> bool {
    outcomes(net).iter().any(|(n, s, o)| {
        *n == at && *s == seq && matches!(o, synod_core::multi::ChangeOutcome::Applied { .. })
    })
}

#[test]
fn a_learner_that_answered_the_last_heartbeat_in_sync_is_promoted() {
    let mut net = with_learner();
    beat(&mut net);
    change(&mut net, 1, 2, vec![set(5, Role::Voter)]);
    net.settle();
    assert!(applied(&net, 1, 2), "{:?}", net.replies);
    assert!(refusals(&net, 1).is_empty());
    assert!(net.r(1).membership().latest().is_voter(5));
}

#[test]
fn a_learner_left_behind_is_promoted_only_once_it_caught_up() {
    let mut net = with_learner();
    beat(&mut net);
    net.down.insert(5);
    push(&mut net, 100, FAR);
    beat(&mut net);
    change(&mut net, 1, 2, vec![set(5, Role::Voter)]);
    net.settle();
    let refused = refusals(&net, 1);
    assert!(
        matches!(refused[..], [(2, 5, behind)] if behind >= FAR),
        "{refused:?}"
    );
    assert!(!applied(&net, 1, 2));
    assert_eq!(net.r(1).membership().latest().role(5), Some(Role::Learner));

    // Back, it catches up a batch per heartbeat, and says so; then the promotion goes through.
    net.down.remove(&5);
    for _ in 0..4 {
        beat(&mut net);
    }
    let (five_at, one_at) = (net.r(5).commit_index(), net.r(1).commit_index());
    assert_eq!(five_at, one_at, "5 did not catch up");
    change(&mut net, 1, 3, vec![set(5, Role::Voter)]);
    net.settle();
    assert!(applied(&net, 1, 3), "{:?}", net.replies);
    assert!(net.r(1).membership().latest().is_voter(5));
}

#[test]
fn a_learner_heard_from_within_two_heartbeat_intervals_is_in_sync_and_not_after() {
    for (lost, promoted) in [(2, true), (3, false)] {
        let mut net = with_learner();
        beat(&mut net);
        // 5 hears the heartbeats but its answers are lost: what 1 last heard grows old.
        for _ in 0..lost {
            net.timer(1, Timer::Heartbeat);
            net.settle_with(|from, _, m| from == 5 && matches!(m, Message::Progress { .. }));
        }
        change(&mut net, 1, 2, vec![set(5, Role::Voter)]);
        net.settle_with(|from, _, m| from == 5 && matches!(m, Message::Progress { .. }));
        assert_eq!(applied(&net, 1, 2), promoted, "{lost} answers lost");
        assert_eq!(
            refusals(&net, 1).is_empty(),
            promoted,
            "{lost} answers lost"
        );
    }
}

#[test]
fn a_learner_not_heard_from_lately_is_not_promoted_however_short_the_log() {
    let mut net = with_learner();
    net.down.insert(5);
    for _ in 0..3 {
        beat(&mut net);
    }
    change(&mut net, 1, 2, vec![set(5, Role::Voter)]);
    net.settle();
    let commit = net.r(1).commit_index();
    assert!(commit < net_batch(), "a short log: {commit}");
    assert_eq!(refusals(&net, 1), vec![(2, 5, commit)]);
}

#[test]
fn a_promotion_asked_at_a_follower_is_refused_to_the_follower() {
    let mut net = with_learner();
    net.down.insert(5);
    push(&mut net, 100, FAR);
    beat(&mut net);
    change(&mut net, 2, 2, vec![set(5, Role::Voter)]);
    net.settle();
    assert_eq!(refusals(&net, 2).len(), 1, "{:?}", net.replies);
    assert!(
        refusals(&net, 1).is_empty(),
        "the leader answers only its own changes"
    );
    // A refusal that does not come from the leader is not believed.
    let forged = Message::PromotionRefused {
        id: synod_core::multi::ChangeId { origin: 2, seq: 7 },
        learner: 5,
        behind: 1,
    };
    let fx = net.r(2).on_message(3, forged);
    assert!(fx.output.is_empty());
}

#[test]
fn other_changes_pass_the_gate() {
    let mut net = with_learner();
    net.down.insert(5);
    push(&mut net, 100, FAR);
    // Taking out a learner behind, or demoting a voter, needs no progress.
    change(&mut net, 1, 2, vec![MemberOp::Remove(5)]);
    net.settle();
    change(&mut net, 1, 3, vec![set(4, Role::Learner)]);
    net.settle();
    assert!(applied(&net, 1, 2), "{:?}", net.replies);
    assert!(applied(&net, 1, 3), "{:?}", net.replies);
    assert!(refusals(&net, 1).is_empty());
}

#[test]
fn a_learner_one_catch_up_batch_behind_is_in_sync_and_one_slot_more_is_not() {
    let batch = net_batch();
    for (behind, promoted) in [(batch + 1, false), (batch, true)] {
        let mut net = with_learner();
        push(&mut net, 100, FAR);
        let ballot = net.r(1).ballot().expect("leads");
        let commit = net.r(1).commit_index() - behind;
        let fx = net.r(1).on_message(5, Message::Progress { ballot, commit });
        net.absorb(1, fx);
        change(&mut net, 1, 2, vec![set(5, Role::Voter)]);
        // Only the change's own messages: a heartbeat would bring a fresher answer from 5.
        net.settle();
        assert_eq!(applied(&net, 1, 2), promoted, "{behind} behind");
        assert_eq!(refusals(&net, 1).is_empty(), promoted, "{behind} behind");
    }
}

/// The replicas' catch-up batch: how far behind a learner may be and still be in sync.
fn net_batch() -> u64 {
    Net::new(5).config(1).catch_up_batch as u64
}
