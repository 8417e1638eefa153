//! Multi-Paxos replica behaviour, driven by hand through a tiny synchronous network.

use std::collections::BTreeSet;
use synod_core::multi::{Command, Message, Output, RoleKind, Timer, Value};
use synod_core::{Ballot, NodeId};

use crate::common::net::Net;

#[test]
fn a_single_node_elects_itself_and_commits_alone() {
    let mut net = Net::new(1);
    net.elect(1);
    net.request(1, 9, 1, 5);
    // Its own vote counts only when the driver hands it back, after persisting it.
    assert!(net.replies.is_empty());
    assert!(matches!(
        net.queue.front(),
        Some((1, 1, Message::Accepted { slot: 0, .. }))
    ));
    net.settle();
    assert_eq!(
        net.replies,
        vec![(
            1,
            Output::Reply {
                client: 9,
                seq: 1,
                result: 5
            }
        )]
    );
}

#[test]
fn phase_one_once_then_phase_two_only() {
    let mut net = Net::new(3);
    net.timer(1, Timer::Election);
    let prepares = net
        .queue
        .iter()
        .filter(|m| matches!(m.2, Message::Prepare { .. }))
        .count();
    assert_eq!(prepares, 2);
    net.settle();
    for seq in 1..=5 {
        net.request(1, 9, seq, 1);
        assert!(
            net.queue
                .iter()
                .all(|m| !matches!(m.2, Message::Prepare { .. })),
            "a steady leader never prepares again"
        );
        net.settle();
    }
    assert_eq!(net.replies.len(), 5);
    net.timer(1, Timer::Heartbeat);
    net.settle();
    assert_eq!(
        net.totals(),
        vec![5, 5, 5],
        "followers apply once the commit point reaches them"
    );
}

#[test]
fn a_retried_command_is_applied_once_and_answered_from_the_session_table() {
    let mut net = Net::new(3);
    net.elect(1);
    net.request(1, 9, 1, 10);
    net.settle();
    // The client did not see the answer and retries at another replica, after a leader change.
    net.elect(2);
    net.request(2, 9, 1, 10);
    net.settle();
    net.timer(2, Timer::Heartbeat);
    net.settle();
    assert_eq!(net.totals(), vec![10, 10, 10]);
    let answers: Vec<_> = net.replies.iter().filter(|(n, _)| *n == 2).collect();
    assert_eq!(
        answers,
        vec![&(
            2,
            Output::Reply {
                client: 9,
                seq: 1,
                result: 10
            }
        )]
    );
}

#[test]
fn a_new_leader_reproposes_the_highest_vote_and_fills_holes_with_noops() {
    let mut net = Net::new(3);
    net.elect(1);
    net.request(1, 7, 1, 1);
    net.settle(); // slot 0 chosen everywhere
                  // Slot 1 reaches nobody; slot 2 reaches node 2 only; then the leader dies.
    net.request(1, 7, 2, 100);
    net.queue.clear();
    net.request(1, 8, 1, 1000);
    net.settle_with(|_, to, m| to != 2 || !matches!(m, Message::Accept { .. }));
    net.crash(1);
    net.down.insert(1);
    net.elect(2);
    net.timer(2, Timer::Heartbeat);
    net.settle();
    let log = net.r(3).log().clone();
    assert_eq!(log[&1].value, Value::Noop, "hole filled with a no-op");
    assert!(log[&1].chosen);
    assert_eq!(
        log[&2].value.commands()[0].op,
        1000,
        "the vote node 2 held is re-proposed"
    );
    assert_eq!(net.totals(), vec![1001, 1001]);
}

#[test]
fn a_restarted_replica_replays_its_log_and_never_reuses_a_ballot() {
    let mut net = Net::new(3);
    net.elect(1);
    for seq in 1..=3 {
        net.request(1, 9, seq, 2);
    }
    net.settle();
    let before = net.r(1).promised();
    net.crash(1);
    net.boot(1);
    assert_eq!(
        net.r(1).state_machine().0,
        6,
        "committed prefix replayed from disk"
    );
    assert_eq!(net.r(1).role_kind(), RoleKind::Follower);
    net.timer(1, Timer::Election);
    net.timer(1, Timer::Election);
    let b = net.r(1).ballot().expect("standing for election");
    assert!(b > before, "{b} must be above {before}");
}

#[test]
fn a_lagging_replica_catches_up_from_the_leader() {
    let mut net = Net::new(3);
    net.elect(1);
    net.down.insert(3);
    for seq in 1..=20 {
        net.request(1, 9, seq, 1);
        net.settle();
    }
    net.down.remove(&3);
    assert_eq!(net.r(3).applied_index(), 0);
    net.timer(1, Timer::Heartbeat);
    net.settle();
    assert_eq!(net.r(3).applied_index(), 20);
    assert_eq!(net.r(3).state_machine().0, 20);
}

#[test]
fn followers_forward_and_strangers_are_told_no_leader() {
    let mut net = Net::new(3);
    net.request(2, 9, 1, 1);
    assert!(matches!(
        net.replies[0].1,
        Output::NotLeader { leader: None, .. }
    ));
    net.elect(1);
    net.timer(1, Timer::Heartbeat);
    net.settle();
    net.request(2, 9, 2, 1);
    assert!(matches!(net.queue[0].2, Message::Forward { .. }));
    net.settle();
    net.timer(1, Timer::Heartbeat);
    net.settle();
    assert!(net.replies.contains(&(
        2,
        Output::Reply {
            client: 9,
            seq: 2,
            result: 1
        }
    )));
}

#[test]
fn a_command_sent_to_a_follower_is_answered_without_waiting_for_a_heartbeat() {
    let mut net = Net::new(3);
    net.elect(1);
    net.timer(1, Timer::Heartbeat);
    net.settle();
    net.request(3, 9, 1, 5);
    // No timer fires: the leader must announce the new commit point on its own.
    net.settle();
    assert!(
        net.replies.contains(&(
            3,
            Output::Reply {
                client: 9,
                seq: 1,
                result: 5
            }
        )),
        "replies: {:?}",
        net.replies
    );
}

#[test]
fn a_full_window_batches_queued_commands_into_one_slot() {
    let mut net = Net::with_window(3, 1);
    net.elect(1);
    for c in 0..5 {
        net.request(1, c, 1, 1);
    }
    net.settle();
    let log = net.r(1).log().clone();
    let sizes: Vec<usize> = log.values().map(|e| e.value.commands().len()).collect();
    assert_eq!(
        sizes,
        vec![1, 4],
        "one slot in flight, the rest batched behind it"
    );
    assert_eq!(net.replies.len(), 5);
}

#[test]
fn a_stale_leader_steps_down_on_a_higher_ballot() {
    let mut net = Net::new(3);
    net.elect(1);
    net.elect(2);
    net.request(1, 9, 1, 1);
    net.settle();
    assert_eq!(net.r(1).role_kind(), RoleKind::Follower);
    assert!(net.r(1).promised() >= Ballot::new(1, 2));
}

#[test]
fn messages_from_non_members_are_ignored() {
    let mut net = Net::new(3);
    let fx = net.r(1).on_message(
        99,
        Message::Prepare {
            ballot: Ballot::new(50, 99),
            from: 0,
        },
    );
    assert!(fx.is_empty());
    assert_eq!(net.r(1).promised(), Ballot::ZERO);
}

#[test]
fn a_snapshot_compacts_the_log_and_a_restart_resumes_from_it() {
    let mut net = Net::new(3);
    net.elect(1);
    for seq in 1..=10 {
        net.request(1, 9, seq, 3);
        net.settle();
    }
    let fx = net.r(1).take_snapshot();
    assert!(
        matches!(fx.persist[..], [synod_core::multi::Persist::Snapshot(ref s)] if s.slot == 10)
    );
    net.absorb(1, fx);
    assert_eq!(net.r(1).log_start(), 10);
    assert!(net.r(1).log().is_empty());
    assert!(
        net.disks[&1].log.is_empty(),
        "the durable log is compacted too"
    );
    net.crash(1);
    net.boot(1);
    assert_eq!(
        net.r(1).state_machine().0,
        30,
        "state restored from the snapshot"
    );
    // The session table came back with it: a retry of the last command is answered, not
    // applied again.
    net.elect(1);
    net.request(1, 9, 10, 3);
    net.settle();
    assert_eq!(net.r(1).state_machine().0, 30);
    assert!(net.replies.contains(&(
        1,
        Output::Reply {
            client: 9,
            seq: 10,
            result: 30
        }
    )));
}

#[test]
fn a_replica_behind_the_leaders_snapshot_is_sent_the_snapshot() {
    let mut net = Net::new(3);
    net.elect(1);
    net.down.insert(3);
    for seq in 1..=8 {
        net.request(1, 9, seq, 1);
        net.settle();
    }
    let fx = net.r(1).take_snapshot();
    net.absorb(1, fx);
    net.down.remove(&3);
    net.timer(1, Timer::Heartbeat);
    let sent = std::cell::Cell::new(0);
    net.settle_with(|_, to, m| {
        if to == 3 && matches!(m, Message::InstallSnapshot { .. }) {
            sent.set(sent.get() + 1);
        }
        false
    });
    assert_eq!(sent.get(), 1, "the compacted slots travel as one snapshot");
    assert_eq!(
        net.r(3).state_machine().0,
        8,
        "caught up through the snapshot"
    );
    assert_eq!(net.r(3).log_start(), 8);
}

#[test]
fn a_candidate_behind_compacted_acceptors_catches_up_instead_of_leading() {
    let mut net = Net::new(3);
    net.elect(1);
    net.down.insert(3);
    for seq in 1..=6 {
        net.request(1, 9, seq, 1);
        net.settle();
    }
    for id in [1, 2] {
        let fx = net.r(id).take_snapshot();
        net.absorb(id, fx);
    }
    net.down.remove(&3);
    // Node 3 knows nothing of slots 0..6 and every other acceptor compacted them: it must not
    // become leader and fill them with no-ops.
    net.timer(3, Timer::Election);
    net.timer(3, Timer::Election);
    net.settle();
    assert_ne!(net.r(3).role_kind(), RoleKind::Leader);
    assert_eq!(
        net.r(3).state_machine().0,
        6,
        "it caught up from a snapshot instead"
    );
    // Once caught up it may lead, and nothing chosen was lost.
    net.timer(3, Timer::Election);
    net.timer(3, Timer::Election);
    net.settle();
    assert_eq!(net.r(3).role_kind(), RoleKind::Leader);
    net.request(3, 9, 7, 1);
    net.settle();
    assert_eq!(net.r(3).state_machine().0, 7);
}

#[test]
fn a_snapshot_begun_earlier_compacts_only_what_it_covers() {
    let mut net = Net::new(3);
    net.elect(1);
    for seq in 1..=10 {
        net.request(1, 9, seq, 3);
        net.settle();
    }
    let pending = net.r(1).begin_snapshot().expect("something applied");
    assert_eq!(pending.slot(), 10);
    // The replica goes on while the state is encoded elsewhere.
    for seq in 11..=15 {
        net.request(1, 9, seq, 1);
        net.settle();
    }
    let snap = pending.build();
    let (fx, removed) = net.r(1).finish_snapshot(snap.clone());
    assert_eq!(
        removed.0.len(),
        10,
        "the compacted slots come back to the caller"
    );
    net.absorb(1, fx);
    assert_eq!(net.r(1).log_start(), 10);
    assert_eq!(net.r(1).log().len(), 5, "the slots after the snapshot stay");
    assert_eq!(net.r(1).state_machine().0, 35);
    // An older snapshot finished after a newer one changes nothing.
    let newer = net.r(1).take_snapshot();
    net.absorb(1, newer);
    assert_eq!(net.r(1).log_start(), 15);
    let (fx, removed) = net.r(1).finish_snapshot(snap);
    assert!(fx.persist.is_empty() && removed.0.is_empty());
    assert_eq!(net.r(1).log_start(), 15);
    net.crash(1);
    net.boot(1);
    assert_eq!(net.r(1).state_machine().0, 35);
}

#[test]
fn a_snapshot_built_into_a_writer_is_the_one_built_in_memory() {
    let mut net = Net::new(3);
    net.elect(1);
    for seq in 1..=6 {
        net.request(1, 9, seq, 4);
        net.settle();
    }
    let in_memory = net.r(1).begin_snapshot().expect("applied").build();
    let mut out = Vec::new();
    let written = net
        .r(1)
        .begin_snapshot()
        .expect("applied")
        .build_into(&mut out, &mut |_| {})
        .unwrap();
    assert_eq!((written.slot, written.len), (6, out.len() as u64));
    assert_eq!(written.with_state(out.into()), in_memory);
    // A writer that fails fails the build.
    struct Full;
    impl std::io::Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::StorageFull.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let pending = net.r(1).begin_snapshot().expect("applied");
    assert!(pending.build_into(&mut Full, &mut |_| {}).is_err());
}

#[test]
fn a_replica_knows_its_own_id() {
    let net = Net::new(3);
    for (&id, r) in &net.replicas {
        assert_eq!(r.id(), id);
    }
}

#[test]
fn followers_name_the_leader_they_heard() {
    let mut net = Net::new(3);
    net.elect(2);
    for id in 1..=3 {
        assert_eq!(net.r(id).leader_hint(), Some(2), "node {id}");
    }
}

#[test]
fn a_snapshot_needs_something_applied_since_the_last_and_is_adopted_once() {
    let mut net = Net::new(1);
    net.elect(1);
    net.request(1, 9, 1, 5);
    net.settle();
    let snap = net.r(1).begin_snapshot().expect("slots applied").build();
    let (fx, _) = net.r(1).finish_snapshot(snap.clone());
    assert_eq!(fx.persist.len(), 1, "the snapshot is recorded");
    assert_eq!(net.r(1).log_start(), net.r(1).applied_index());
    assert!(
        net.r(1).begin_snapshot().is_none(),
        "nothing applied since the last snapshot"
    );
    let (fx, _) = net.r(1).finish_snapshot(snap);
    assert!(
        fx.persist.is_empty(),
        "the same snapshot is not recorded twice"
    );
}

#[test]
fn a_leader_serves_a_read_once_a_quorum_confirms_its_leadership() {
    let mut net = Net::new(3);
    net.elect(1);
    net.read(1, &[7]);
    assert!(net.replies.is_empty(), "not before the probes come back");
    net.settle();
    assert_eq!(net.replies, vec![(1, Output::ReadReady { id: 7 })]);
}

#[test]
fn a_read_the_driver_cancelled_is_not_served_when_its_index_arrives() {
    let mut net = Net::new(3);
    net.elect(1);
    net.read(2, &[5, 6]);
    net.r(2).cancel_read(5);
    net.settle();
    assert_eq!(net.replies, vec![(2, Output::ReadReady { id: 6 })]);
}

#[test]
fn a_leader_read_waits_until_every_slot_before_it_is_applied() {
    let mut net = Net::new(3);
    net.elect(1);
    net.request(1, 9, 1, 5);
    net.read(1, &[7]);
    // The probes come back, but no vote for the write does: it is not chosen yet.
    net.settle_with(|_, _, m| matches!(m, Message::Accepted { .. } | Message::Accept { .. }));
    assert!(
        !net.replies
            .iter()
            .any(|r| matches!(r, (1, Output::ReadReady { .. }))),
        "served before the write ahead of it: {:?}",
        net.replies
    );
}

/// Node 1 leads; `reader` asks for read 5, its messages are lost, node 1 falls silent when
/// `leader_silent`, and `successor` wins an election; `reader` must have failed the read.
fn read_fails_when_leadership_moves(reader: NodeId, leader_silent: bool, successor: NodeId) {
    let mut net = Net::new(3);
    net.elect(1);
    net.read(reader, &[5]);
    net.queue.clear();
    if leader_silent {
        net.down.insert(1);
    }
    net.elect(successor);
    assert!(
        net.replies
            .iter()
            .any(|r| matches!(r, (n, Output::ReadFailed { id: 5, .. }) if *n == reader)),
        "{:?}",
        net.replies
    );
}

#[test]
fn a_follower_fails_its_unanswered_reads_when_another_leader_takes_over() {
    // Node 1 never answers; node 3 wins an election meanwhile.
    read_fails_when_leadership_moves(2, true, 3);
}

#[test]
fn a_deposed_leader_fails_the_reads_it_held() {
    // Its probes are lost; node 2 wins an election meanwhile.
    read_fails_when_leadership_moves(1, false, 2);
}

#[test]
fn a_leader_steps_down_on_a_higher_ballot_in_a_probe_a_prepare_an_accept_or_a_heartbeat() {
    for kind in ["probe", "prepare", "accept", "heartbeat"] {
        let mut net = Net::new(3);
        net.elect(1);
        let mine = net.r(1).ballot().expect("leads");
        let higher = Ballot::new(mine.round + 1, 2);
        let msg = match kind {
            "probe" => Message::ReadProbe {
                ballot: higher,
                round: 1,
            },
            "prepare" => Message::Prepare {
                ballot: higher,
                from: 0,
            },
            "accept" => Message::Accept {
                ballot: higher,
                slot: 0,
                value: Value::Noop,
                commit: 0,
            },
            _ => Message::Heartbeat {
                ballot: higher,
                commit: 0,
            },
        };
        let fx = net.r(1).on_message(2, msg);
        net.absorb(1, fx);
        assert_eq!(net.r(1).role_kind(), RoleKind::Follower, "{kind}");
    }
}

/// A follower that missed a new leader's prepare (the leader won with another acceptor's
/// promise) and hears only its heartbeats promised nothing new, yet knows the leader's ballot:
/// that is the term its driver reports beside the leader's id.
#[test]
fn a_heartbeat_from_a_higher_ballot_is_the_highest_ballot_seen_without_a_promise() {
    let mut net = Net::new(3);
    net.elect(1);
    let before = net.r(3).promised();
    let higher = Ballot::new(before.round + 1, 2);
    let fx = net.r(3).on_message(
        2,
        Message::Heartbeat {
            ballot: higher,
            commit: 0,
        },
    );
    net.absorb(3, fx);
    assert_eq!(net.r(3).leader_hint(), Some(2));
    assert_eq!(net.r(3).promised(), before);
    assert_eq!(net.r(3).highest_ballot_seen(), higher);
    // A lower ballot refused changes nothing.
    let fx = net.r(3).on_message(
        1,
        Message::Heartbeat {
            ballot: before,
            commit: 0,
        },
    );
    net.absorb(3, fx);
    assert_eq!(net.r(3).highest_ballot_seen(), higher);
}

#[test]
fn a_replica_refuses_a_heartbeat_that_claims_to_come_from_itself() {
    let mut net = Net::new(3);
    net.elect(1);
    let ballot = net.r(1).ballot().expect("leads");
    net.crash(1);
    net.boot(1);
    let fx = net
        .r(1)
        .on_message(1, Message::Heartbeat { ballot, commit: 0 });
    net.absorb(1, fx);
    assert_eq!(net.r(1).leader_hint(), None);
}

#[test]
fn a_candidate_asks_again_only_the_members_that_have_not_promised() {
    let mut net = Net::new(5);
    net.timer(1, Timer::Election);
    net.timer(1, Timer::Election);
    // Only node 2 hears the prepare: two promises of three needed.
    net.settle_with(|from, to, m| from == 1 && to > 2 && matches!(m, Message::Prepare { .. }));
    assert_eq!(net.r(1).role_kind(), RoleKind::Candidate);
    let fx = net.r(1).on_timer(Timer::Heartbeat);
    let mut asked: Vec<NodeId> = fx
        .send
        .iter()
        .chain(&fx.send_after_sync)
        .filter(|o| matches!(o.msg, Message::Prepare { .. }))
        .map(|o| o.to)
        .collect();
    asked.sort_unstable();
    assert_eq!(asked, vec![3, 4, 5]);
}

#[test]
fn a_follower_that_promises_a_new_candidate_forgets_the_old_leader() {
    let mut net = Net::new(3);
    net.elect(1);
    let old = net.r(1).ballot().expect("leads");
    let fx = net.r(2).on_message(
        3,
        Message::Prepare {
            ballot: Ballot::new(old.round + 1, 3),
            from: 0,
        },
    );
    net.absorb(2, fx);
    assert_eq!(net.r(2).leader_hint(), None);
}

#[test]
fn a_leader_steps_down_on_a_nack_of_its_ballot_but_not_of_an_older_one() {
    let mut net = Net::new(3);
    net.elect(1);
    let mine = net.r(1).ballot().expect("leads");
    let older = Ballot::new(mine.round.saturating_sub(1), 1);
    // A refusal of an earlier ballot of ours, by a promise we have since overtaken.
    let fx = net.r(1).on_message(
        2,
        Message::Nack {
            ballot: older,
            promised: Ballot::new(older.round, 3),
        },
    );
    net.absorb(1, fx);
    assert_eq!(net.r(1).role_kind(), RoleKind::Leader);
    let fx = net.r(1).on_message(
        2,
        Message::Nack {
            ballot: mine,
            promised: Ballot::new(mine.round + 1, 3),
        },
    );
    net.absorb(1, fx);
    assert_eq!(net.r(1).role_kind(), RoleKind::Follower);
}

/// What the leader `from` sends, taken off the queue, in order.
fn sent_by(net: &mut Net, from: NodeId) -> Vec<(NodeId, Message<u64>)> {
    let (mine, rest): (Vec<_>, Vec<_>) = net.queue.drain(..).partition(|(f, _, _)| *f == from);
    net.queue.extend(rest);
    mine.into_iter().map(|(_, to, m)| (to, m)).collect()
}

#[test]
fn a_leader_retransmits_accepts_and_probes_only_to_members_that_have_not_answered() {
    let mut net = Net::new(5);
    net.elect(1);
    net.request(1, 9, 1, 5);
    net.read(1, &[4]);
    // Only node 2 answers: neither the slot nor the read round reaches a quorum.
    net.settle_with(|from, to, _| !(to == 2 || from == 2 || from == to));
    assert!(net.replies.is_empty());
    net.timer(1, Timer::Heartbeat);
    let mut accepts = BTreeSet::new();
    let mut probes = BTreeSet::new();
    for (to, m) in sent_by(&mut net, 1) {
        match m {
            Message::Accept { .. } => accepts.insert(to),
            Message::ReadProbe { .. } => probes.insert(to),
            _ => false,
        };
    }
    assert_eq!(accepts, BTreeSet::from([3, 4, 5]));
    assert_eq!(probes, BTreeSet::from([3, 4, 5]));
}

#[test]
fn a_slot_chosen_ahead_of_a_gap_announces_no_commit_point() {
    let mut net = Net::new(3);
    net.elect(1);
    net.request(1, 9, 1, 5);
    net.request(1, 8, 1, 6);
    let first = net.r(1).commit_index();
    let mut heartbeats = 0;
    // The first slot's votes are lost; the second is chosen, but the commit point cannot pass
    // the first, so there is nothing to announce.
    net.settle_with(|from, _, m| {
        heartbeats += usize::from(from == 1 && matches!(m, Message::Heartbeat { .. }));
        matches!(m, Message::Accepted { slot, .. } if *slot == first)
    });
    assert_eq!(net.r(1).commit_index(), first);
    assert_eq!(heartbeats, 0);
    // Once the first slot is chosen the commit point jumps past both, and is announced.
    net.timer(1, Timer::Heartbeat);
    net.settle_with(|from, _, m| {
        heartbeats += usize::from(from == 1 && matches!(m, Message::Heartbeat { .. }));
        false
    });
    assert_eq!(net.r(1).commit_index(), first + 2);
    assert!(heartbeats > 0);
}

/// A leader with a slot in flight hears from node 2 that the slot is chosen: with its own
/// value (`same`) or with another one. Returns whether it still leads.
fn leads_after_hearing_its_slot_chosen(same: bool) -> bool {
    let mut net = Net::new(3);
    net.elect(1);
    net.request(1, 9, 1, 5);
    let (slot, value) = sent_by(&mut net, 1)
        .into_iter()
        .find_map(|(_, m)| match m {
            Message::Accept { slot, value, .. } => Some((slot, value)),
            _ => None,
        })
        .expect("the leader proposes");
    let value = if same {
        value
    } else {
        Value::Batch(
            vec![Command {
                client: 8,
                seq: 1,
                op: 7,
            }]
            .into(),
        )
    };
    let fx = net.r(1).on_message(2, Message::Chosen { slot, value });
    net.absorb(1, fx);
    net.r(1).role_kind() == RoleKind::Leader
}

#[test]
fn a_leader_that_learns_another_value_chosen_in_its_slot_steps_down() {
    // Another value chosen there means a higher ballot chose it: announcing commit points in
    // this ballot would let followers take their votes for our value as chosen.
    assert!(!leads_after_hearing_its_slot_chosen(false));
    assert!(leads_after_hearing_its_slot_chosen(true));
}

#[test]
fn a_follower_asks_to_catch_up_only_when_it_is_behind_the_leaders_commit_point() {
    let mut net = Net::new(3);
    net.elect(1);
    net.request(1, 9, 1, 5);
    let is_ask = |m: &Message<u64>| matches!(m, Message::CatchUpRequest { .. });
    let mut asked = Vec::new();
    // Node 3 misses the accept, so the next heartbeat finds it behind.
    net.settle_with(|from, to, m| {
        if is_ask(m) {
            asked.push(from);
        }
        to == 3 && matches!(m, Message::Accept { .. })
    });
    net.timer(1, Timer::Heartbeat);
    net.settle_with(|from, _, m| {
        if is_ask(m) {
            asked.push(from);
        }
        false
    });
    assert_eq!(asked, vec![3]);
    // Everyone is up to date now: heartbeats ask for nothing.
    net.timer(1, Timer::Heartbeat);
    net.settle_with(|from, _, m| {
        if is_ask(m) {
            asked.push(from);
        }
        false
    });
    assert_eq!(asked, vec![3]);
}

#[test]
fn a_new_leader_does_not_propose_again_a_slot_it_learned_chosen_while_standing() {
    // Two guards see to it: `become_leader` skips slots known chosen, and the leader's own
    // acceptor answers an accept for a chosen slot with its value. Either alone suffices.
    let mut net = Net::new(3);
    net.elect(1);
    let gap = net.r(1).commit_index();
    net.request(1, 9, 1, 5);
    net.request(1, 8, 1, 6);
    let mut value = None;
    // The first slot's votes are lost; the second is chosen, and only node 1 knows it.
    net.settle_with(|_, _, m| match m {
        Message::Accepted { slot, .. } => *slot == gap,
        Message::Accept { slot, value: v, .. } if *slot == gap + 1 => {
            value = Some(v.clone());
            false
        }
        _ => false,
    });
    assert_eq!(net.r(1).commit_index(), gap);
    let value = value.expect("proposed");
    // Node 2 stands without node 1. Its own promise reports its vote for the second slot;
    // then, before node 3's promise arrives, it hears that slot chosen.
    net.down.insert(1);
    for _ in 0..2 {
        if net.r(2).ballot().is_none() {
            net.timer(2, Timer::Election);
        }
    }
    let mut stash = Vec::new();
    net.settle_with(|from, to, m| {
        let held = (from, to) == (3, 2);
        if held {
            stash.push((from, to, m.clone()));
        }
        held
    });
    assert_eq!(net.r(2).role_kind(), RoleKind::Candidate);
    let fx = net.r(2).on_message(
        3,
        Message::Chosen {
            slot: gap + 1,
            value,
        },
    );
    net.absorb(2, fx);
    net.queue.extend(stash);
    let mut proposed = BTreeSet::new();
    net.settle_with(|from, _, m| {
        if let (2, Message::Accept { slot, .. }) = (from, m) {
            proposed.insert(*slot);
        }
        false
    });
    assert_eq!(net.r(2).role_kind(), RoleKind::Leader);
    assert!(
        proposed.contains(&gap),
        "the gap needs a round: {proposed:?} gap {gap}"
    );
    assert!(
        !proposed.contains(&(gap + 1)),
        "the slot it knows chosen does not: {proposed:?} gap {gap}"
    );
    assert_eq!(net.r(2).commit_index(), gap + 2);
}

#[test]
fn a_transfer_holds_new_writes_then_the_successor_leads_and_applies_them() {
    let mut net = Net::new(3);
    net.elect(1);
    net.timer(1, Timer::Heartbeat);
    net.settle();
    net.request(1, 9, 1, 5);
    let fx = net
        .r(1)
        .transfer_leadership(3)
        .expect("the leader may transfer");
    net.absorb(1, fx);
    assert_eq!(net.r(1).handing_over(), Some(3));
    // Slot 0 is in flight: nobody is asked to stand before it is chosen.
    assert!(!net
        .queue
        .iter()
        .any(|(_, _, m)| matches!(m, Message::StandNow { .. })));
    net.request(1, 7, 1, 10);
    let held = sent_by(&mut net, 1);
    assert!(
        !held
            .iter()
            .any(|(_, m)| matches!(m, Message::Accept { slot: 1, .. })),
        "a leader handing over starts no new slot: {held:?}"
    );
    for (to, m) in held {
        net.queue.push_back((1, to, m));
    }
    net.settle();
    assert_eq!(net.r(3).role_kind(), RoleKind::Leader);
    assert_eq!(net.r(1).role_kind(), RoleKind::Follower);
    assert_eq!(net.r(1).handing_over(), None);
    net.timer(3, Timer::Heartbeat);
    net.settle();
    assert_eq!(net.totals(), vec![15, 15, 15], "both commands applied once");
    for (client, result) in [(9, 5), (7, 15)] {
        let reply = Output::Reply {
            client,
            seq: 1,
            result,
        };
        assert!(net.replies.contains(&(1, reply)), "{:?}", net.replies);
    }
}

#[test]
fn a_successor_catches_up_before_it_stands() {
    let mut net = Net::new(3);
    net.elect(1);
    // Node 3 misses the accepts and commit points for two slots.
    net.request(1, 9, 1, 1);
    net.request(1, 9, 2, 1);
    net.settle_with(|_, to, _| to == 3);
    assert_eq!(net.r(3).commit_index(), 0);
    let fx = net.r(1).transfer_leadership(3).unwrap();
    net.absorb(1, fx);
    // Without the chosen values it asks for, node 3 does not stand.
    net.settle_with(|_, _, m| matches!(m, Message::CatchUp { .. }));
    assert_eq!(net.r(3).role_kind(), RoleKind::Follower);
    assert_eq!(net.r(1).role_kind(), RoleKind::Leader);
    net.timer(1, Timer::Heartbeat);
    net.settle();
    assert_eq!(net.r(3).role_kind(), RoleKind::Leader);
    assert!(net.r(3).commit_index() >= 2, "it learned before leading");
}

#[test]
fn a_successor_that_promised_someone_else_while_catching_up_does_not_stand() {
    let (mut net, held) = asked_to_stand_with_catch_up_held();
    // Meanwhile node 2 stands and node 3 promises it.
    let promised = net.r(3).promised();
    let ballot = Ballot::new(promised.round + 1, 2);
    let fx = net.r(3).on_message(2, Message::Prepare { ballot, from: 0 });
    net.absorb(3, fx);
    assert_eq!(net.r(3).promised(), ballot);
    net.queue.clear();
    catches_up_and_does_not_stand(&mut net, held);
}

#[test]
fn a_transfer_nobody_takes_up_is_abandoned_after_two_election_timeouts() {
    let mut net = Net::new(3);
    net.elect(1);
    net.down.insert(3);
    let fx = net.r(1).transfer_leadership(3).unwrap();
    net.absorb(1, fx);
    net.settle();
    net.request(1, 9, 1, 4);
    net.settle();
    assert_eq!(net.totals(), vec![0, 0, 0], "held while the transfer lasts");
    net.timer(1, Timer::Election);
    assert_eq!(net.r(1).handing_over(), Some(3));
    net.timer(1, Timer::Election);
    assert_eq!(net.r(1).handing_over(), None);
    net.settle();
    net.timer(1, Timer::Heartbeat);
    net.settle();
    assert_eq!(net.r(1).state_machine().0, 4, "proposed once abandoned");
    assert_eq!(net.r(1).role_kind(), RoleKind::Leader);
}

#[test]
fn only_the_leader_of_the_promised_ballot_can_make_a_follower_stand() {
    let mut net = Net::new(3);
    net.elect(1);
    net.timer(1, Timer::Heartbeat);
    net.settle();
    assert!(matches!(
        net.r(2).transfer_leadership(3),
        Err(synod_core::multi::TransferError::NotLeader { leader: Some(1) })
    ));
    assert!(matches!(
        net.r(1).transfer_leadership(4),
        Err(synod_core::multi::TransferError::NotAMember(4))
    ));
    let fx = net.r(1).transfer_leadership(1).unwrap();
    assert!(fx.send.is_empty() && net.r(1).handing_over().is_none());
    let promised = net.r(3).promised();
    // Another member, or the right ballot from the wrong sender, or an old ballot: ignored.
    for (from, ballot) in [
        (2, promised),
        (2, Ballot::new(promised.round, 2)),
        (1, Ballot::new(promised.round.saturating_sub(1), 1)),
    ] {
        let fx = net
            .r(3)
            .on_message(from, Message::StandNow { ballot, commit: 0 });
        assert!(
            fx.send.is_empty() && fx.send_after_sync.is_empty(),
            "{from} {ballot}"
        );
        assert_eq!(net.r(3).role_kind(), RoleKind::Follower);
    }
    let fx = net.r(3).on_message(
        1,
        Message::StandNow {
            ballot: promised,
            commit: 0,
        },
    );
    assert_eq!(net.r(3).role_kind(), RoleKind::Candidate);
    net.absorb(3, fx);
    net.settle();
    assert_eq!(net.r(3).role_kind(), RoleKind::Leader);
}

#[test]
fn a_successor_that_cannot_catch_up_in_time_gives_up_instead_of_deposing_later() {
    let (mut net, held) = asked_to_stand_with_catch_up_held();
    // Two of its election timeouts pass (it hears the leader meanwhile, so it does not stand
    // on its own, and is asked again), and the leader gives up on the transfer.
    let ask_again = held_stand_now(&mut net);
    for _ in 0..2 {
        let ballot = net.r(1).ballot().expect("node 1 leads");
        for m in [Message::Heartbeat { ballot, commit: 0 }, ask_again.clone()] {
            let fx = net.r(3).on_message(1, m);
            net.absorb(3, fx);
        }
        net.timer(3, Timer::Election);
        net.timer(1, Timer::Election);
        net.queue.clear();
    }
    assert_eq!(net.r(1).handing_over(), None);
    catches_up_and_does_not_stand(&mut net, held);
    assert_eq!(net.r(1).role_kind(), RoleKind::Leader);
}

#[test]
fn asking_again_does_not_extend_how_long_writes_are_held() {
    let mut net = Net::new(3);
    net.elect(1);
    net.down.insert(3);
    net.down.insert(2);
    let fx = net.r(1).transfer_leadership(3).unwrap();
    net.absorb(1, fx);
    net.timer(1, Timer::Election);
    // The same successor again, then another: the first timeout still counts.
    let fx = net.r(1).transfer_leadership(3).unwrap();
    net.absorb(1, fx);
    let fx = net.r(1).transfer_leadership(2).unwrap();
    net.absorb(1, fx);
    assert_eq!(net.r(1).handing_over(), Some(2));
    net.timer(1, Timer::Election);
    assert_eq!(
        net.r(1).handing_over(),
        None,
        "given up on the second firing"
    );
}

/// The StandNow a leader handing over would send now (it retransmits on every heartbeat).
fn held_stand_now(net: &mut Net) -> Message<u64> {
    net.timer(1, Timer::Heartbeat);
    let m = net
        .queue
        .iter()
        .find(|(_, _, m)| matches!(m, Message::StandNow { .. }))
        .map(|(_, _, m)| m.clone())
        .expect("a leader handing over asks again on its heartbeat");
    net.queue.clear();
    m
}

/// Node 1 leads three; node 3 missed slot 0 and is asked to take over, but the chosen values it
/// asks for are held back (returned, to deliver later).
fn asked_to_stand_with_catch_up_held() -> (Net, Vec<(NodeId, NodeId, Message<u64>)>) {
    let mut net = Net::new(3);
    net.elect(1);
    net.request(1, 9, 1, 1);
    net.settle_with(|_, to, _| to == 3);
    let fx = net.r(1).transfer_leadership(3).unwrap();
    net.absorb(1, fx);
    let mut held = Vec::new();
    while let Some((from, to, m)) = net.queue.pop_front() {
        if matches!(m, Message::CatchUp { .. }) {
            held.push((from, to, m));
        } else if let Some(r) = net.replicas.get_mut(&to) {
            let fx = r.on_message(from, m);
            net.absorb(to, fx);
        }
    }
    assert!(!held.is_empty());
    (net, held)
}

/// Delivers the held catch-up: node 3 learns slot 0 and must still be a follower.
fn catches_up_and_does_not_stand(net: &mut Net, held: Vec<(NodeId, NodeId, Message<u64>)>) {
    for (from, to, m) in held {
        let fx = net.r(to).on_message(from, m);
        net.absorb(to, fx);
    }
    assert!(net.r(3).commit_index() >= 1, "it caught up");
    assert_eq!(
        net.r(3).role_kind(),
        RoleKind::Follower,
        "but did not stand"
    );
}
