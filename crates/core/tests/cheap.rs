//! Cheap Paxos: two mains and one auxiliary acceptor (ids 1, 2 and 3), driven by hand.

use crate::common::net::Net;
use synod_core::multi::{Command, Message, Output, Role, RoleKind, Timer, Value};
use synod_core::{NodeId, PlantedBug};

const AUX: NodeId = 3;

/// Two mains and an auxiliary; node 1 leads.
fn two_plus_one(bug: Option<PlantedBug>) -> Net {
    let mut net = Net::cheap(2, 1, 4, 8, bug);
    net.elect(1);
    net
}

/// Fires `id`'s heartbeat timer `n` times, delivering everything after each.
fn beats(net: &mut Net, id: NodeId, n: usize) {
    for _ in 0..n {
        net.timer(id, Timer::Heartbeat);
        net.settle();
    }
}

fn roles(net: &mut Net, id: NodeId) -> Vec<(NodeId, Role)> {
    let m = net.r(id).membership().latest().clone();
    m.iter().map(|(id, r, _)| (id, r)).collect()
}

fn active(on: bool) -> Role {
    Role::Auxiliary { active: on }
}

#[test]
fn the_auxiliary_hears_nothing_while_both_mains_answer() {
    let mut net = two_plus_one(None);
    for seq in 1..=20 {
        net.request(1, 7, seq, 1);
        net.settle();
        if seq % 5 == 0 {
            beats(&mut net, 1, 1);
        }
    }
    beats(&mut net, 1, 10);
    assert_eq!(net.totals(), vec![20, 20]);
    assert_eq!(
        net.aux_received.get(&AUX),
        None,
        "the auxiliary was sent work"
    );
    assert_eq!(net.auxes[&AUX].votes(), 0);
}

#[test]
fn a_silent_main_is_covered_by_the_auxiliary_then_taken_out_and_put_back() {
    let mut net = two_plus_one(None);
    net.request(1, 7, 1, 5);
    net.settle();
    net.down.insert(2);
    net.request(1, 7, 2, 1);
    net.settle();
    assert_eq!(
        net.r(1).state_machine().0,
        5,
        "not chosen without node 2 or the auxiliary"
    );
    beats(&mut net, 1, 2);
    assert_eq!(
        net.r(1).state_machine().0,
        6,
        "chosen with the auxiliary's vote"
    );
    assert!(net.aux_received[&AUX] > 0);
    // Silent long enough: node 2 is made a learner, and the auxiliary inactive (one main
    // alone with an active auxiliary would need the auxiliary for every slot).
    beats(&mut net, 1, 40);
    assert_eq!(
        roles(&mut net, 1),
        vec![(1, Role::Voter), (2, Role::Learner), (AUX, active(false))]
    );
    assert_eq!(net.r(1).membership().latest().voters(), &[1]);
    let before = net.aux_received[&AUX];
    for seq in 3..=10 {
        net.request(1, 7, seq, 1);
        net.settle();
    }
    beats(&mut net, 1, 5);
    assert_eq!(net.r(1).state_machine().0, 14, "node 1 decides alone");
    assert_eq!(
        net.aux_received[&AUX], before,
        "an inactive auxiliary is sent nothing"
    );
    // Node 2 returns, catches up as a learner, and is made a main again, the auxiliary
    // active again.
    net.down.remove(&2);
    beats(&mut net, 1, 6);
    assert_eq!(
        roles(&mut net, 1),
        vec![(1, Role::Voter), (2, Role::Voter), (AUX, active(true))]
    );
    for seq in 11..=20 {
        net.request(1, 7, seq, 1);
        net.settle();
    }
    beats(&mut net, 1, 8);
    assert_eq!(net.totals(), vec![24, 24]);
    assert_eq!(roles(&mut net, 2), roles(&mut net, 1));
}

#[test]
fn the_auxiliary_forgets_what_every_main_has_learned() {
    let mut net = two_plus_one(None);
    net.down.insert(2);
    for seq in 1..=3 {
        net.request(1, 7, seq, 1);
        net.settle();
    }
    beats(&mut net, 1, 2);
    let held = net.auxes[&AUX].votes();
    assert!(held > 0, "the auxiliary voted");
    // Node 2 answers again before it is taken out: once it has learned those slots, the
    // auxiliary may drop its votes.
    net.down.remove(&2);
    beats(&mut net, 1, 4);
    assert_eq!(net.totals(), vec![3, 3]);
    assert_eq!(
        net.auxes[&AUX].votes(),
        0,
        "the auxiliary kept {held} votes"
    );
    assert!(net.auxes[&AUX].forgotten() > 0);
    assert_eq!(
        net.aux_disks[&AUX].votes.len(),
        0,
        "the forget point is durable"
    );
}

#[test]
fn the_other_main_takes_over_with_the_auxiliary_when_the_leader_dies() {
    let mut net = two_plus_one(None);
    for seq in 1..=3 {
        net.request(1, 7, seq, 2);
        net.settle();
    }
    net.crash(1);
    net.down.insert(1);
    // Node 2's first prepare goes to node 1 only; the retransmission adds the auxiliary.
    net.timer(2, Timer::Election);
    net.timer(2, Timer::Election);
    net.settle();
    assert_eq!(net.r(2).role_kind(), RoleKind::Candidate);
    beats(&mut net, 2, 1);
    assert_eq!(net.r(2).role_kind(), RoleKind::Leader);
    net.request(2, 7, 4, 2);
    net.settle();
    beats(&mut net, 2, 40);
    assert_eq!(net.r(2).state_machine().0, 8);
    assert_eq!(
        roles(&mut net, 2),
        vec![(1, Role::Learner), (2, Role::Voter), (AUX, active(false))]
    );
}

/// Node 1 (leading) and the auxiliary choose adding 100 while node 2 is down; then node 1 dies
/// and node 2 is back. Returns node 1's total before it died.
fn chosen_without_2_then_1_dies(net: &mut Net) -> u64 {
    net.request(1, 7, 1, 5);
    net.settle();
    net.down.insert(2);
    net.request(1, 7, 2, 100);
    net.settle();
    beats(net, 1, 2);
    let leader_total = net.r(1).state_machine().0;
    net.crash(1);
    net.down.insert(1);
    net.down.remove(&2);
    leader_total
}

/// Node 1 and the auxiliary choose a value node 2 never saw; node 1 dies; node 2 must find
/// the value in the auxiliary's promise.
fn lost_value(bug: Option<PlantedBug>) -> (u64, u64) {
    let mut net = two_plus_one(bug);
    let leader_total = chosen_without_2_then_1_dies(&mut net);
    net.timer(2, Timer::Election);
    net.timer(2, Timer::Election);
    net.settle();
    beats(&mut net, 2, 3);
    net.settle_with(|_, _, m| matches!(m, Message::Heartbeat { .. }));
    (leader_total, net.r(2).state_machine().0)
}

#[test]
fn a_new_leader_keeps_a_value_only_the_auxiliary_and_a_dead_main_voted_for() {
    assert_eq!(lost_value(None), (105, 105));
}

#[test]
fn the_planted_aux_votes_ignored_bug_loses_a_chosen_value() {
    let (leader, successor) = lost_value(Some(PlantedBug::AuxVotesIgnored));
    assert_eq!(leader, 105);
    assert_ne!(successor, 105, "the bug did not show");
}

/// Two mains and an auxiliary that is sent every batch as its digest; node 1 leads.
fn two_plus_one_with_digests(bug: Option<PlantedBug>) -> Net {
    let mut net = Net::cheap(2, 1, 4, 8, bug);
    net.aux_digest_min = Some(0);
    for id in [1, 2] {
        net.boot(id);
    }
    net.elect(1);
    net
}

#[test]
fn with_digests_the_auxiliary_votes_for_a_batch_it_never_sees() {
    let mut net = two_plus_one_with_digests(None);
    net.down.insert(2);
    net.request(1, 7, 1, 5);
    net.settle();
    beats(&mut net, 1, 2);
    assert_eq!(net.r(1).state_machine().0, 5, "chosen with the auxiliary");
    let (slot, ballot, held) = (net.auxes[&AUX].votes_held())
        .map(|(s, b, v)| (s, b, v.clone()))
        .find(|(_, _, v)| !matches!(v, Value::Noop | Value::Reconfig(_)))
        .expect("the auxiliary voted for the batch");
    let Value::Digest(d) = held else {
        panic!("the auxiliary holds {held:?}, not a digest");
    };
    let whole = net.r(1).log().get(&slot).expect("node 1 holds the slot");
    assert_eq!(whole.value.digest().map(|(d, _)| d), Some(d));
    assert!(whole.ballot == ballot || whole.chosen);
}

#[test]
fn a_digest_leaves_only_after_the_leaders_own_vote_is_durable() {
    let mut net = two_plus_one_with_digests(None);
    net.down.insert(2);
    beats(&mut net, 1, 3);
    let fx = net.r(1).on_client_request(Command {
        client: 7,
        seq: 1,
        op: 4,
    });
    let to_aux = |sends: &[synod_core::Outgoing<Message<u64>>]| {
        (sends.iter())
            .filter(|o| {
                o.to == AUX && matches!(&o.msg, Message::Accept { value, .. } if value.is_digest())
            })
            .count()
    };
    assert_eq!(to_aux(&fx.send), 0, "a digest left before the sync");
    assert_eq!(to_aux(&fx.send_after_sync), 1);
    net.absorb(1, fx);
    net.settle();
    assert_eq!(net.r(1).state_machine().0, 4, "chosen with the auxiliary");
}

/// `lost_value` with digests: node 1 and the auxiliary choose a batch node 2 never saw, node 1
/// dies, and the auxiliary can only tell node 2 the batch's digest. Node 2 may not count that
/// promise until node 1 is back with the value. Returns node 1's total before it died, node
/// 2's while node 1 is down, and node 2's after node 1 returned.
fn lost_value_with_digests(bug: Option<PlantedBug>) -> (u64, u64, u64) {
    let mut net = two_plus_one_with_digests(bug);
    let leader_total = chosen_without_2_then_1_dies(&mut net);
    for _ in 0..3 {
        net.timer(2, Timer::Election);
        net.timer(2, Timer::Election);
        net.settle();
        beats(&mut net, 2, 3);
    }
    let alone = match net.r(2).role_kind() {
        RoleKind::Leader => {
            net.request(2, 8, 1, 1000);
            net.settle();
            beats(&mut net, 2, 3);
            net.r(2).state_machine().0
        }
        _ => net.r(2).state_machine().0,
    };
    net.down.remove(&1);
    net.boot(1);
    for _ in 0..3 {
        if net.r(2).role_kind() != RoleKind::Leader {
            net.timer(2, Timer::Election);
            net.timer(2, Timer::Election);
        }
        net.settle();
        beats(&mut net, 2, 3);
    }
    (leader_total, alone, net.r(2).state_machine().0)
}

#[test]
fn with_digests_a_new_leader_waits_for_a_main_that_holds_the_value() {
    let (leader, alone, after) = lost_value_with_digests(None);
    assert_eq!(leader, 105);
    assert_eq!(alone, 5, "node 2 led on the auxiliary's digest alone");
    assert_eq!(
        after, 105,
        "node 2 did not learn the value once node 1 was back"
    );
}

#[test]
fn the_planted_aux_digests_dropped_bug_loses_a_chosen_value() {
    let (leader, alone, _) = lost_value_with_digests(Some(PlantedBug::AuxDigestsDropped));
    assert_eq!(leader, 105);
    assert_ne!(alone, 5, "the bug did not show");
}

#[test]
fn a_slot_short_of_one_vote_for_a_single_round_does_not_wake_the_auxiliary() {
    let mut net = two_plus_one(None);
    net.request(1, 7, 1, 1);
    // Node 2's accept is lost once: the first retransmission goes to node 2 only.
    net.settle_with(|_, to, m| to == 2 && matches!(m, Message::Accept { .. }));
    net.timer(1, Timer::Heartbeat);
    net.settle();
    assert_eq!(net.totals(), vec![1, 1]);
    assert_eq!(net.aux_received.get(&AUX), None, "the auxiliary was woken");
}

#[test]
fn while_a_main_is_silent_the_auxiliary_gets_the_first_accept_and_read_probes() {
    let mut net = two_plus_one(None);
    net.down.insert(2);
    beats(&mut net, 1, 3);
    // Silent for two rounds: a new slot goes to the auxiliary at once, no retransmission.
    net.request(1, 7, 1, 4);
    net.settle();
    assert_eq!(net.r(1).state_machine().0, 4, "chosen on the first send");
    // A linearizable read needs a quorum's acknowledgement: the auxiliary gives it, probed
    // with the first send too.
    net.read(1, &[9]);
    net.settle();
    let ready = net
        .replies
        .iter()
        .any(|(n, o)| *n == 1 && matches!(o, Output::ReadReady { id: 9 }));
    assert!(ready, "{:?}", net.replies);
}

#[test]
fn one_silent_main_makes_one_change_however_long_it_takes_to_apply() {
    let mut net = two_plus_one(None);
    net.down.insert(2);
    // The change needs the auxiliary's vote, which it gets only on retransmissions: the
    // leader must not queue another change at every heartbeat meanwhile.
    beats(&mut net, 1, 60);
    let changes = net
        .r(1)
        .log()
        .values()
        .filter(|e| matches!(e.value, Value::Reconfig(_)))
        .count();
    assert_eq!(changes, 1);
}
