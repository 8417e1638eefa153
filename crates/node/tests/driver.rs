//! What a node hands its driver: what it reports (the server's metrics, lease API and
//! shutdown), what it decides on its own in a one-member cluster, and which messages leave
//! before a sync.

mod common;

use common::{follower, put, Driver, TICK};
use std::sync::Arc;
use synod_core::multi::{
    ChangeId, ChangeOutcome, ConfigChange, MemberOp, Message, RejectReason, Role, RoleKind, Value,
};
use synod_core::{Ballot, PlantedBug};
use synod_kv::{KvCommand, KvResult};
use synod_node::{Action, NodeConfig, ProposeError};

/// A one-member node restarted from a disk whose last boot was `boot_before`.
fn single(boot_before: u64) -> Driver {
    Driver::new(NodeConfig::new(1, vec![1], TICK), boot_before)
}

#[test]
fn the_node_reports_its_boot_clock_store_and_counters() {
    let mut d = single(4);
    assert_eq!(d.n.boot(), 5, "the boot after the one on disk");
    let ticks = d.elect();
    assert_eq!(d.n.now(), ticks);
    assert_eq!(d.n.counters().elections, 1);
    assert_eq!(d.n.counters().proposals, 0);

    let free = d.n.lanes_free();
    assert!(free > 1);
    d.n.propose(7, put("a"));
    d.n.propose(8, put("b"));
    assert_eq!(d.n.lanes_free(), free - 2, "a lane per command in flight");
    let replies = d.turn();
    let answered = replies
        .iter()
        .filter(|a| matches!(a, Action::Reply { .. }))
        .count();
    assert_eq!(answered, 2, "{replies:?}");
    assert_eq!(d.n.lanes_free(), free, "both lanes freed by the replies");
    assert_eq!(d.n.counters().proposals, 2);
    let store = d.n.store();
    assert!(store.get(b"a").is_some() && store.get(b"b").is_some());
    assert!(store.get(b"c").is_none());

    d.n.tick();
    d.turn();
    assert_eq!(d.n.now(), ticks + 1);
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

/// Grants a lease of `ttl` seconds with an id the node picks, and ends the turn; the id.
fn grant(d: &mut Driver, ttl: i64) -> i64 {
    d.n.propose(1, KvCommand::LeaseGrant { id: 0, ttl });
    let ids = granted(&d.turn());
    let &[(1, id)] = ids.as_slice() else {
        panic!("the lease is granted: {ids:?}");
    };
    id
}

#[test]
fn a_granted_lease_gets_a_fresh_id_unless_the_client_named_one() {
    let mut d = single(0);
    d.elect();
    d.n.propose(1, KvCommand::LeaseGrant { id: 0, ttl: 5 });
    d.n.propose(2, KvCommand::LeaseGrant { id: 0, ttl: 5 });
    d.n.propose(3, KvCommand::LeaseGrant { id: 42, ttl: 5 });
    let mut ids = granted(&d.turn());
    ids.sort();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(ids[2], (3, 42), "the client's own id is kept");
    let (a, b) = (ids[0].1, ids[1].1);
    assert!(a > 0 && b > 0 && a != b && a != 42 && b != 42, "{ids:?}");
}

#[test]
fn a_granted_lease_runs_on_the_nodes_clock() {
    let mut d = single(0);
    d.elect();
    let id = grant(&mut d, 5);
    d.n.tick();
    d.turn();
    assert_eq!(d.n.lease_remaining(id), Some(5));
    // 10 ms ticks: two seconds later, three are left.
    for _ in 0..200 {
        d.n.tick();
    }
    d.turn();
    assert_eq!(d.n.lease_remaining(id), Some(3));
    assert_eq!(d.n.lease_remaining(id + 1), None, "a lease it never saw");
}

#[test]
fn a_stopping_node_hands_back_every_waiting_client() {
    // A follower of node 1: its proposal is forwarded and its read asks the leader, and both
    // wait for answers that never come.
    let mut d = Driver::of(follower(0, None));
    d.n.propose(3, put("a"));
    d.n.read_index(4, Default::default());
    assert!(
        !d.turn()
            .iter()
            .any(|a| matches!(a, Action::Reply { .. } | Action::ReadReply { .. })),
        "nothing answered yet"
    );
    let mut waiting = d.n.stop();
    waiting.sort();
    assert_eq!(waiting, vec![3, 4]);
    assert!(d.n.stop().is_empty(), "each once");
}

#[test]
fn a_node_voted_out_fails_its_waiting_clients_and_refuses_new_ones() {
    // Node 2 of three, following node 1: a proposal and a read wait on the leader.
    let mut d = Driver::of(follower(0, None));
    d.n.propose(3, put("a"));
    d.n.read_index(4, Default::default());
    d.n.change_membership(Some(10), vec![MemberOp::Remove(3)]);
    d.turn();
    // It learns that the first slot took it out.
    let change = ConfigChange {
        id: ChangeId { origin: 1, seq: 1 },
        expect_epoch: 0,
        ops: vec![MemberOp::Remove(2)],
    };
    let entries = vec![(0, Value::Reconfig(Arc::new(change)))];
    d.n.on_peer(1, Message::CatchUp { entries });
    let removed = |a: &Action| match a {
        Action::Reply { ticket, result } => {
            (*result == Err(ProposeError::Removed)).then_some(*ticket)
        }
        Action::ReadReply { ticket, result } => {
            matches!(result, Err(ProposeError::Removed)).then_some(*ticket)
        }
        _ => None,
    };
    let actions = d.turn();
    let mut failed: Vec<u64> = actions.iter().filter_map(removed).collect();
    failed.sort();
    assert_eq!(
        failed,
        vec![3, 4],
        "the waiting clients are told to go elsewhere"
    );
    assert_eq!(
        member_replies(&actions),
        vec![(10, Err(ProposeError::Removed))]
    );
    assert!(d.n.replica().retired());
    d.n.propose(5, put("b"));
    d.n.read_index(6, Default::default());
    let mut failed: Vec<u64> = d.turn().iter().filter_map(removed).collect();
    failed.sort();
    assert_eq!(failed, vec![5, 6], "and so are new ones, at once");
    d.n.change_membership(Some(11), vec![MemberOp::Remove(3)]);
    assert_eq!(
        member_replies(&d.turn()),
        vec![(11, Err(ProposeError::Removed))]
    );
    for _ in 0..500 {
        d.n.tick();
    }
    assert!(
        !d.turn().iter().any(|a| matches!(a, Action::Send { .. })),
        "nothing resubmitted, no election"
    );
}

/// The membership change a node passed on to the leader, from its actions.
fn passed_on(actions: &[Action]) -> Option<ChangeId> {
    actions.iter().find_map(|a| match a {
        Action::Send {
            to: 1,
            msg: Message::ForwardChange { id, .. },
        } => Some(*id),
        _ => None,
    })
}

fn member_replies(actions: &[Action]) -> Vec<(u64, Result<bool, ProposeError>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::MemberReply { ticket, result } => Some((
                *ticket,
                result
                    .as_ref()
                    .map(|o| matches!(o, ChangeOutcome::Applied { .. }))
                    .map_err(Clone::clone),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn a_membership_change_asked_at_a_follower_is_answered_once_applied_there() {
    let mut d = Driver::of(follower(0, None));
    d.n.change_membership(Some(7), vec![MemberOp::Remove(3)]);
    let id = passed_on(&d.turn()).expect("passed on to the leader");
    assert_eq!(id.origin, 2);
    // Another node's change applied first answers nobody here; ours answers ticket 7.
    let theirs = ConfigChange {
        id: ChangeId { origin: 1, seq: 1 },
        expect_epoch: 0,
        ops: vec![MemberOp::SetRole {
            id: 3,
            role: Role::Learner,
        }],
    };
    let ours = ConfigChange {
        id,
        expect_epoch: 1,
        ops: vec![MemberOp::Remove(3)],
    };
    let entries = vec![(0, Value::Reconfig(Arc::new(theirs)))];
    d.n.on_peer(1, Message::CatchUp { entries });
    assert!(member_replies(&d.turn()).is_empty());
    let entries = vec![(1, Value::Reconfig(Arc::new(ours)))];
    d.n.on_peer(1, Message::CatchUp { entries });
    assert_eq!(member_replies(&d.turn()), vec![(7, Ok(true))]);
}

#[test]
fn a_promotion_the_leader_refuses_is_answered_with_its_reason() {
    let mut d = Driver::of(follower(0, None));
    d.n.change_membership(
        Some(7),
        vec![MemberOp::SetRole {
            id: 3,
            role: Role::Voter,
        }],
    );
    let id = passed_on(&d.turn()).expect("passed on to the leader");
    let refusal = Message::PromotionRefused {
        id,
        learner: 3,
        behind: 400,
    };
    // Only the leader speaks for the change.
    d.n.on_peer(3, refusal.clone());
    assert!(member_replies(&d.turn()).is_empty());
    d.n.on_peer(1, refusal);
    let replies: Vec<_> = d
        .turn()
        .into_iter()
        .filter_map(|a| match a {
            Action::MemberReply { ticket, result } => Some((ticket, result)),
            _ => None,
        })
        .collect();
    let reason = RejectReason::LearnerNotReady { id: 3, behind: 400 };
    assert_eq!(replies, vec![(7, Ok(ChangeOutcome::Rejected(reason)))]);
}

#[test]
fn a_membership_change_with_no_leader_known_fails_and_one_never_applied_times_out() {
    let mut d = Driver::new(NodeConfig::new(2, vec![1, 2, 3], TICK), 0);
    d.n.change_membership(Some(7), vec![MemberOp::Remove(3)]);
    assert_eq!(
        member_replies(&d.turn()),
        vec![(7, Err(ProposeError::NotLeader))]
    );
    let mut d = Driver::of(follower(0, None));
    d.n.change_membership(Some(8), vec![MemberOp::Remove(3)]);
    d.n.change_membership(None, vec![MemberOp::Remove(3)]);
    assert!(member_replies(&d.turn()).is_empty());
    let mut replies = Vec::new();
    for _ in 0..2_000 {
        d.n.tick();
        replies.extend(member_replies(&d.turn()));
        if !replies.is_empty() {
            break;
        }
    }
    assert_eq!(replies, vec![(8, Err(ProposeError::Timeout))]);
    let at = d.n.now();
    let give_up = 10 * NodeConfig::new(2, vec![1, 2, 3], TICK).election_ticks.1;
    assert!(at > give_up && at <= give_up + 2, "timed out at tick {at}");
}

/// Ends the turn and delivers what the node sent itself (its own promise and votes, once
/// durable); returns its other actions.
fn turn_with_self(d: &mut Driver) -> Vec<Action> {
    let mut rest = Vec::new();
    loop {
        let mut mine = Vec::new();
        for a in d.turn() {
            match a {
                Action::Send { to: 1, msg } => mine.push(msg),
                other => rest.push(other),
            }
        }
        if mine.is_empty() {
            return rest;
        }
        for msg in mine {
            d.n.on_peer(1, msg);
        }
    }
}

#[test]
fn a_leader_deposed_answers_only_the_changes_asked_of_it() {
    let mut d = Driver::new(NodeConfig::new(1, vec![1, 2, 3], TICK), 0);
    while d.n.replica().role_kind() != RoleKind::Candidate {
        d.n.tick();
        turn_with_self(&mut d);
    }
    let ballot = d.n.replica().ballot().expect("stands");
    let promise = Message::Promise {
        ballot,
        entries: vec![],
        log_start: 0,
    };
    d.n.on_peer(2, promise);
    turn_with_self(&mut d);
    assert_eq!(d.n.replica().role_kind(), RoleKind::Leader);
    let ops = vec![MemberOp::SetRole {
        id: 3,
        role: Role::Learner,
    }];
    d.n.change_membership(Some(7), ops.clone());
    let ours = turn_with_self(&mut d).into_iter().find_map(|a| match a {
        Action::Send {
            msg:
                Message::Accept {
                    value: Value::Reconfig(c),
                    ..
                },
            ..
        } => Some(c.id),
        _ => None,
    });
    let ours = ours.expect("the change proposed");
    // Node 2 passes on a change numbered like ours; it waits behind ours.
    let id = ChangeId {
        origin: 2,
        seq: ours.seq,
    };
    d.n.on_peer(2, Message::ForwardChange { id, ops });
    turn_with_self(&mut d);
    // Deposed: the change it held fails, but it was node 2's to answer, not ours.
    let higher = Ballot::new(ballot.round + 1, 3);
    d.n.on_peer(
        3,
        Message::Prepare {
            ballot: higher,
            from: 0,
        },
    );
    assert_eq!(d.n.replica().role_kind(), RoleKind::Follower);
    assert!(member_replies(&turn_with_self(&mut d)).is_empty());
}

#[test]
fn every_slot_is_reported_chosen_before_it_is_reported_applied() {
    let mut d = single(0);
    d.elect();
    d.n.propose(1, put("a"));
    d.n.propose(2, put("b"));
    let reports = d.turn();
    let events: Vec<(&str, u64)> = reports
        .iter()
        .filter_map(|a| match a {
            Action::Chosen { slot, .. } => Some(("chosen", *slot)),
            Action::Applied { slot, .. } => Some(("applied", *slot)),
            _ => None,
        })
        .collect();
    let slots: std::collections::BTreeSet<u64> = events.iter().map(|e| e.1).collect();
    assert!(!slots.is_empty(), "{reports:?}");
    for s in slots {
        let of: Vec<&str> = events.iter().filter(|e| e.1 == s).map(|e| e.0).collect();
        assert_eq!(of, ["chosen", "applied"], "slot {s}: {events:?}");
    }
}

#[test]
fn a_leader_expires_a_lease_its_clock_saw_run_out() {
    let mut d = single(0);
    d.elect();
    let id = grant(&mut d, 1);
    // One second is 100 ticks; expiry is proposed then, and applied in the same turn.
    for _ in 0..99 {
        d.n.tick();
        d.turn();
    }
    assert!(d.n.store().lease(id).is_some(), "still within its TTL");
    for _ in 0..3 {
        d.n.tick();
        d.turn();
    }
    assert!(d.n.store().lease(id).is_none(), "expired through the log");
}

#[test]
fn a_node_counts_the_elections_it_starts_not_its_retransmissions() {
    // Node 1 of three hears nobody: it stands again and again, retransmitting its prepare to
    // the silent peers between elections.
    let mut d = Driver::new(NodeConfig::new(1, vec![1, 2, 3], TICK), 0);
    let mut ballots = std::collections::BTreeSet::new();
    let mut prepares = 0;
    for _ in 0..2_000 {
        d.n.tick();
        for a in d.turn() {
            if let Action::Send {
                msg: Message::Prepare { ballot, .. },
                ..
            } = a
            {
                prepares += 1;
                ballots.insert(ballot);
            }
        }
    }
    assert!(prepares > 2 * ballots.len(), "retransmitted: {prepares}");
    assert_eq!(d.n.counters().elections, ballots.len() as u64);
}

/// A follower of node 1 votes in slot 0 and is asked for a read in the same turn; returns
/// what it hands its driver before the vote is synced.
fn vote_and_read(bug: Option<PlantedBug>) -> Vec<Action> {
    let mut n = follower(0, bug);
    n.on_peer(
        1,
        Message::Accept {
            ballot: synod_core::Ballot::new(1, 1),
            slot: 0,
            value: Value::Noop,
            commit: 0,
        },
    );
    n.read_index(9, Default::default());
    n.flush();
    n.take_actions()
}

fn votes_sent(actions: &[Action]) -> bool {
    actions.iter().any(|a| {
        matches!(
            a,
            Action::Send {
                to: 1,
                msg: Message::Accepted { .. },
            }
        )
    })
}

#[test]
fn a_followers_read_index_request_does_not_wait_for_its_votes_to_sync() {
    let actions = vote_and_read(None);
    assert!(
        actions.iter().any(|a| matches!(a, Action::Write { .. })),
        "the vote is being written: {actions:?}"
    );
    assert!(!votes_sent(&actions), "the vote waits for its sync");
    assert!(
        actions.iter().any(|a| matches!(
            a,
            Action::Send {
                to: 1,
                msg: Message::ReadIndexRequest { .. }
            }
        )),
        "asking the leader needs nothing durable: {actions:?}"
    );
}

#[test]
fn the_planted_send_before_sync_bug_lets_votes_leave_unwritten() {
    // What the catalogue says of it, so the simulator's catch is of this bug and no other.
    assert!(votes_sent(&vote_and_read(Some(PlantedBug::SendBeforeSync))));
}

#[test]
fn only_a_leading_node_moves_leadership_and_only_to_a_member() {
    let mut d = Driver::new(NodeConfig::new(1, vec![1, 2, 3], TICK), 0);
    assert!(matches!(
        d.n.move_leader(2),
        Err(synod_core::multi::TransferError::NotLeader { .. })
    ));
    let mut single = single(0);
    single.elect();
    assert!(matches!(
        single.n.move_leader(4),
        Err(synod_core::multi::TransferError::NotAMember(4))
    ));
    assert_eq!(single.n.move_leader(1), Ok(()));
}

/// Cheap Paxos: a main's `Progress` tells the leader how far it has learned, and the leader
/// lets auxiliaries forget their votes below what every main reported. So the commit point it
/// reports must be on disk before the report leaves, or a restart could bring the main back
/// below what the auxiliary forgot (found in review).
#[test]
fn a_main_reports_its_commit_point_only_once_it_is_durable() {
    let mut cfg = NodeConfig::new(2, vec![1, 2], TICK);
    cfg.auxiliaries = vec![3];
    let mut n = common::start(cfg, 0);
    let ballot = Ballot::new(1, 1);
    let accept = Message::Accept {
        ballot,
        slot: 0,
        value: Value::Noop,
        commit: 0,
    };
    n.on_peer(1, accept);
    n.flush();
    let batch = match &n.take_actions()[..] {
        [Action::Write { batch, .. }] => *batch,
        other => panic!("{other:?}"),
    };
    n.synced(batch, 0);
    n.flush();
    n.take_actions();
    // The heartbeat says slot 0 is chosen: the commit point moves to 1 and is reported.
    n.on_peer(1, Message::Heartbeat { ballot, commit: 1 });
    n.flush();
    let actions = n.take_actions();
    let progress = |a: &Action| {
        matches!(
            a,
            Action::Send {
                msg: Message::Progress { .. },
                ..
            }
        )
    };
    assert!(
        !actions.iter().any(progress),
        "reported before it is durable: {actions:?}"
    );
    let batch = actions
        .iter()
        .find_map(|a| match a {
            Action::Write { batch, records, .. } => {
                assert!(
                    records.contains(&synod_core::multi::Persist::Commit(1)),
                    "{records:?}"
                );
                Some(*batch)
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("the commit point is not written: {actions:?}"));
    n.synced(batch, 0);
    n.flush();
    let actions = n.take_actions();
    assert!(
        actions.iter().any(|a| matches!(
            a,
            Action::Send {
                to: 1,
                msg: Message::Progress { commit: 1, .. }
            }
        )),
        "{actions:?}"
    );
}

fn writes(actions: &[Action]) -> Vec<(u64, bool)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Write { batch, sync, .. } => Some((*batch, *sync)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_chosen_value_pushed_to_a_member_left_out_is_written_unsynced_and_synced_later() {
    let mut n = common::follower(0, None);
    let chosen = |slot| Message::Chosen {
        slot,
        value: Value::Noop,
    };
    n.on_peer(1, chosen(0));
    n.flush();
    let actions = n.take_actions();
    assert_eq!(writes(&actions), vec![(1, false)], "{actions:?}");
    assert_eq!(n.replica().commit_index(), 1, "learned without a sync");
    // Nothing waits for it; unreported, it is synced once it has been waiting long enough.
    for _ in 1..synod_node::UNSYNCED_TAIL_TICKS {
        n.tick();
        n.flush();
        assert!(writes(&n.take_actions()).is_empty());
    }
    n.tick();
    n.flush();
    assert_eq!(writes(&n.take_actions()), vec![(2, true)]);
    n.synced(2, 0);
    // A batch written unsynced and covered by a later sync needs no sync of its own again.
    n.on_peer(1, chosen(1));
    n.flush();
    assert_eq!(writes(&n.take_actions()), vec![(3, false)]);
    n.synced(3, 0);
    for _ in 0..synod_node::UNSYNCED_TAIL_TICKS {
        n.tick();
        n.flush();
        assert!(writes(&n.take_actions()).is_empty());
    }
}
