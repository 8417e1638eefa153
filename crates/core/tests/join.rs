//! Joining a running cluster: a node added by a membership change starts with an empty disk,
//! asks its peers for a snapshot (which carries the membership), and takes part only once one
//! arrived; until then it votes for nothing, persists nothing and serves nobody.

use synod_core::multi::{
    ChangeOutcome, DurableState, MemberInfo, MemberOp, Message, Output, Role, RoleKind, Snapshot,
    Timer,
};
use synod_core::NodeId;

use crate::common::members::{change, outcomes, set};
use crate::common::net::Net;

fn add(role: Role) -> MemberOp {
    MemberOp::Add {
        id: None,
        role,
        info: MemberInfo {
            name: "new".into(),
            peer_urls: vec!["http://127.0.0.1:9".into()],
            client_urls: vec![],
        },
    }
}

/// Three voters led by 1, with a few commands applied.
fn three() -> Net {
    let mut net = Net::new(3);
    net.elect(1);
    push(&mut net, 1, 5);
    net
}

fn push(net: &mut Net, first_seq: u64, n: u64) {
    for seq in first_seq..first_seq + n {
        net.request(1, 9, seq, 1);
        net.settle();
    }
}

/// Asks leader 1 to add a member with `role`; returns the id the log assigned.
fn added(net: &mut Net, seq: u64, role: Role) -> NodeId {
    change(net, 1, seq, vec![add(role)]);
    net.settle();
    let assigned = outcomes(net).into_iter().find_map(|(n, s, o)| match o {
        ChangeOutcome::Applied { assigned, .. } if n == 1 && s == seq => Some(assigned),
        _ => None,
    });
    match assigned.as_deref() {
        Some([id]) => *id,
        other => panic!("the add was not applied: {other:?} {:?}", net.replies),
    }
}

/// Starts `id` to join, and lets it ask (one peer a time, some perhaps down) until it joined.
fn join(net: &mut Net, id: NodeId) {
    net.add_joiner(id);
    net.settle();
    for _ in 0..30 {
        if !net.r(id).joining() {
            return;
        }
        net.timer(id, Timer::Election);
        net.settle();
    }
    panic!("node {id} did not join");
}

fn beat(net: &mut Net) {
    net.timer(1, Timer::Heartbeat);
    net.settle();
}

fn assert_caught_up(net: &mut Net, id: NodeId) {
    let (mine, leaders) = (net.r(id).commit_index(), net.r(1).commit_index());
    assert_eq!(mine, leaders, "node {id} did not catch up");
    assert_eq!(net.r(id).applied_index(), leaders);
    let (a, b) = (net.r(id).state_machine().0, net.r(1).state_machine().0);
    assert_eq!(a, b, "node {id}'s state differs from the leader's");
    let (a, b) = (
        net.r(id).membership().clone(),
        net.r(1).membership().clone(),
    );
    assert_eq!(a.latest(), b.latest());
}

#[test]
fn a_learner_added_to_a_running_cluster_joins_catches_up_and_is_promoted() {
    let mut net = three();
    let id = added(&mut net, 1, Role::Learner);
    assert_eq!(id, 4, "ids are assigned above every one used");
    join(&mut net, id);
    assert!(!net.r(id).joining());
    beat(&mut net);
    assert_caught_up(&mut net, id);
    assert_eq!(
        net.r(id).membership().latest().role(id),
        Some(Role::Learner)
    );

    // It answers heartbeats as a learner, so the leader's promotion gate lets it through.
    push(&mut net, 10, 3);
    beat(&mut net);
    change(&mut net, 1, 2, vec![set(id, Role::Voter)]);
    net.settle();
    push(&mut net, 20, 4);
    assert!(net.r(1).membership().latest().is_voter(id));
    assert_caught_up(&mut net, id);
}

#[test]
fn a_joiner_votes_for_nothing_persists_nothing_and_serves_nobody() {
    let mut net = three();
    let id = added(&mut net, 1, Role::Voter);
    // Its peers' answers are lost: it stays a joiner however long it waits.
    net.add_joiner(id);
    net.settle_with(|_, to, m| to == id && matches!(m, Message::InstallSnapshot { .. }));
    push(&mut net, 10, 2);
    for _ in 0..5 {
        net.timer(id, Timer::Election);
        net.timer(id, Timer::Heartbeat);
        net.settle_with(|_, to, m| to == id && matches!(m, Message::InstallSnapshot { .. }));
    }
    let r = net.r(id);
    assert!(r.joining());
    assert_eq!(r.role_kind(), RoleKind::Follower, "a joiner never stands");
    assert_eq!(r.commit_index(), 0, "accepts and heartbeats are not taken");
    assert_eq!(net.disks[&id], DurableState::default(), "nothing persisted");

    net.request(id, 7, 1, 1);
    net.read(id, &[1]);
    let fx = net.r(id).propose_change(1, vec![set(2, Role::Learner)]);
    net.absorb(id, fx);
    let mine: Vec<_> = net.replies.iter().filter(|(n, _)| *n == id).collect();
    assert!(
        matches!(
            mine[..],
            [
                (_, Output::NotLeader { leader: None, .. }),
                (_, Output::ReadFailed { leader: None, .. }),
                (_, Output::ChangeFailed { leader: None, .. })
            ]
        ),
        "{mine:?}"
    );

    // Once a snapshot gets through, it is a voter like the others.
    net.timer(id, Timer::Election);
    net.settle();
    beat(&mut net);
    assert!(!net.r(id).joining());
    assert!(net.r(id).membership().latest().is_voter(id));
    assert_caught_up(&mut net, id);
}

#[test]
fn a_joiner_started_before_it_was_added_keeps_asking_until_it_is_known() {
    let mut net = three();
    net.add_joiner(4);
    net.settle();
    assert!(net.r(4).joining(), "nobody answers a node it does not know");
    let id = added(&mut net, 1, Role::Learner);
    assert_eq!(id, 4);
    net.timer(4, Timer::Election);
    net.settle();
    beat(&mut net);
    assert!(!net.r(4).joining());
    assert_caught_up(&mut net, 4);
}

#[test]
fn a_joiner_takes_a_peers_stored_snapshot_and_catches_up_after_it() {
    let mut net = three();
    for n in 1..=3 {
        let fx = net.r(n).take_snapshot();
        net.absorb(n, fx);
    }
    let snap_slot = net.r(2).log_start();
    assert!(snap_slot > 0);
    let id = added(&mut net, 1, Role::Learner);
    push(&mut net, 10, 3);
    // Only node 2's answer gets through, so its stored snapshot (from before the add) is what
    // arrives; the joiner asks one peer at a time until it does.
    net.add_joiner(id);
    let only_2 = |from: NodeId, _: NodeId, m: &Message<u64>| {
        from != 2 && matches!(m, Message::InstallSnapshot { .. })
    };
    net.settle_with(only_2);
    for _ in 0..20 {
        if !net.r(id).joining() {
            break;
        }
        net.timer(id, Timer::Election);
        net.settle_with(only_2);
    }
    assert_eq!(
        net.r(id).log_start(),
        snap_slot,
        "took node 2's stored snapshot"
    );
    // Not a member by that snapshot, yet not taken out either: nothing tells its clients so.
    let retired = (net.replies.iter()).any(|(n, o)| *n == id && matches!(o, Output::Retired));
    assert!(!retired, "{:?}", net.replies);
    beat(&mut net);
    assert_caught_up(&mut net, id);
    assert_eq!(
        net.r(id).membership().latest().role(id),
        Some(Role::Learner)
    );
}

#[test]
fn a_joined_node_restarts_from_its_snapshot_not_as_a_joiner() {
    let mut net = three();
    let id = added(&mut net, 1, Role::Learner);
    join(&mut net, id);
    beat(&mut net);
    let before = net.r(id).commit_index();
    net.crash(id);
    net.boot(id);
    assert!(!net.r(id).joining(), "it joined before the crash");
    assert_eq!(net.r(id).applied_index(), before);
    assert_caught_up(&mut net, id);
}

#[test]
fn a_snapshot_that_cannot_say_who_governs_does_not_make_a_member() {
    let mut net = three();
    let id = added(&mut net, 1, Role::Learner);
    net.down.insert(1);
    net.down.insert(2);
    net.down.insert(3);
    net.add_joiner(id);
    let good = net.r(2).applied_state();
    let without = Snapshot {
        membership: None,
        ..good.clone()
    };
    let garbled = Snapshot {
        state: bytes::Bytes::from_static(b"not a counter"),
        ..good.clone()
    };
    for (from, snapshot) in [(2, without), (3, garbled), (id, good.clone()), (5, good)] {
        let fx = net
            .r(id)
            .on_message(from, Message::InstallSnapshot { snapshot });
        net.absorb(id, fx);
        assert!(net.r(id).joining(), "joined from node {from}'s snapshot");
    }
    assert_eq!(net.disks[&id], DurableState::default());
}

/// Fires the election timer of every node, `rounds` times, delivering what each sends.
fn quiet_rounds(net: &mut Net, rounds: usize) {
    for _ in 0..rounds {
        let ids: Vec<NodeId> = net.replicas.keys().copied().collect();
        for id in ids {
            net.timer(id, Timer::Election);
            net.settle();
        }
    }
}

#[test]
fn a_change_that_replaces_the_only_voter_leaves_the_new_one_leading() {
    // One voter, and a learner that joined: the change makes the learner the only voter. The
    // old leader, re-preparing for the new configuration, learns it no longer votes and steps
    // down; the new voter may not know yet that it votes. Someone must tell it.
    let mut net = Net::with_alpha(1, 2, 4);
    net.elect(1);
    push(&mut net, 1, 3);
    let id = added(&mut net, 1, Role::Learner);
    join(&mut net, id);
    beat(&mut net);
    change(
        &mut net,
        1,
        2,
        vec![set(1, Role::Learner), set(id, Role::Voter)],
    );
    // The leader's last commit notices are lost: only what the old voter does afterwards can
    // tell the new one that it votes.
    net.settle_with(|from, _, m| from == 1 && matches!(m, Message::Heartbeat { .. }));
    assert!(
        net.r(1).membership().latest().is_voter(id),
        "{:?}",
        net.replies
    );
    quiet_rounds(&mut net, 4);
    assert_eq!(net.r(id).role_kind(), RoleKind::Leader);
    net.request(id, 9, 50, 1);
    net.settle();
    assert_caught_up(&mut net, id);
    assert_eq!(net.r(1).commit_index(), net.r(id).commit_index());
}

#[test]
fn a_learner_behind_a_change_it_cannot_hear_of_asks_around_and_catches_up() {
    // Node 3 lags behind the addition of node 4, which then leads: node 3 drops the messages
    // of a node it does not know. It must learn of node 4 from an older member.
    let mut net = three();
    change(&mut net, 1, 1, vec![set(3, Role::Learner)]);
    net.settle();
    net.down.insert(3);
    let id = added(&mut net, 2, Role::Voter);
    join(&mut net, id);
    push(&mut net, 10, 3);
    let fx = net.r(1).transfer_leadership(id).expect("1 leads");
    net.absorb(1, fx);
    net.settle();
    beat(&mut net);
    assert_eq!(net.r(id).role_kind(), RoleKind::Leader);
    push_at(&mut net, id, 20, 3);
    net.down.remove(&3);
    assert!(
        !net.r(3).membership().knows(id),
        "3 must lag behind the add"
    );
    // Node 4's heartbeats reach node 3, which drops them; quiet timeouts make it ask.
    for _ in 0..6 {
        net.timer(id, Timer::Heartbeat);
        net.settle();
        net.timer(3, Timer::Election);
        net.settle();
    }
    assert!(net.r(3).membership().knows(id));
    assert_eq!(net.r(3).commit_index(), net.r(id).commit_index());
}

fn push_at(net: &mut Net, at: NodeId, first_seq: u64, n: u64) {
    for seq in first_seq..first_seq + n {
        net.request(at, 9, seq, 1);
        net.settle();
    }
}

#[test]
fn a_member_with_durable_state_restarted_with_join_does_not_join_again() {
    // Operators restart members with etcd's `--initial-cluster-state existing` out of habit:
    // a member with any state has a membership already, and must not go quiet as a joiner.
    let mut net = three();
    net.crash(2);
    net.joiners.insert(2);
    net.boot(2);
    assert!(!net.r(2).joining());
    push(&mut net, 10, 2);
    assert_caught_up(&mut net, 2);
}

#[test]
fn a_member_that_leaves_snapshots_to_its_driver_asks_for_one_and_serves_the_next_request() {
    let mut net = three();
    net.build_for_joiners = false;
    for n in 1..=3 {
        net.boot(n);
    }
    net.elect(1);
    let id = added(&mut net, 1, Role::Learner);
    net.add_joiner(id);
    let mut answers = 0;
    net.settle_with(|_, to, m| {
        let snapshot = matches!(
            m,
            Message::InstallSnapshot { .. } | Message::SnapshotChunk { .. }
        );
        answers += (to == id && snapshot) as usize;
        false
    });
    assert_eq!(answers, 0, "no snapshot built on the spot");
    assert!(net.r(id).joining());
    let asked: Vec<NodeId> = (1..=3)
        .filter(|&n| net.r(n).take_snapshot_wanted())
        .collect();
    assert_eq!(
        asked.len(),
        1,
        "the peer asked wants its driver to take one: {asked:?}"
    );
    assert!(!net.r(asked[0]).take_snapshot_wanted(), "asked once");
    // The drivers take snapshots (off their loops, in a server); the next request is served.
    for n in 1..=3 {
        let fx = net.r(n).take_snapshot();
        net.absorb(n, fx);
    }
    join(&mut net, id);
    beat(&mut net);
    assert_caught_up(&mut net, id);
}
