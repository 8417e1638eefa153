//! Regressions for bugs found on main, each driven step by step against one replica, with the
//! exact effects it returns checked (the step that went wrong is the one asserted on).

use synod_core::multi::{
    Command, Config, DurableState, Message, MultiEffects, Output, Replica, RoleKind, Timer, Value,
};
use synod_core::quorum::QuorumSpec;
use synod_core::{Ballot, NodeId};

use crate::common::Counter;

type Fx = MultiEffects<u64, u64>;

fn replica(id: NodeId, n: u64, quorum: QuorumSpec, disk: DurableState<u64>) -> Replica<Counter> {
    let mut c = Config::new(id, (1..=n).collect());
    c.quorum = quorum;
    let mut r = Replica::recover(c, Counter::default(), disk).expect("valid config");
    r.start();
    r
}

/// Fires the election timer until the replica stands (the first firing may find it heard from
/// a leader); returns what standing did.
fn stand(r: &mut Replica<Counter>) -> Fx {
    let mut fx = r.on_timer(Timer::Election);
    if r.ballot().is_none() {
        fx = r.on_timer(Timer::Election);
    }
    assert!(r.ballot().is_some(), "the replica stood for election");
    fx
}

/// The sync of `fx`'s records happened: delivers what it sends the replica itself after it (a
/// candidate's own promise), and returns what that did.
fn own_after_sync(r: &mut Replica<Counter>, fx: Fx) -> Fx {
    let me = r.id();
    let mut out = Fx::new();
    for o in fx.send_after_sync.into_iter().filter(|o| o.to == me) {
        out.extend(r.on_message(me, o.msg));
    }
    out
}

fn cmd(seq: u64, add: u64) -> Command<u64> {
    Command {
        client: 7,
        seq,
        op: add,
    }
}

/// A ballot that leaves the node at once (before the step's records are durable).
fn ballots_sent_at_once(fx: &Fx) -> Vec<Ballot> {
    fx.send
        .iter()
        .filter_map(|o| match &o.msg {
            Message::Prepare { ballot, .. }
            | Message::Accept { ballot, .. }
            | Message::Heartbeat { ballot, .. }
            | Message::ReadProbe { ballot, .. } => Some(*ballot),
            _ => None,
        })
        .collect()
}

/// Flexible quorums with q1 = 1: the candidate is a phase-1 quorum by itself. It used to win
/// in the step that wrote its promise and send accepts at once; a crash before the sync took the
/// promise back, and the restarted node handed out the same ballot again with another value.
#[test]
fn a_lone_phase1_quorum_leads_only_once_its_own_promise_is_durable() {
    let q = QuorumSpec::Flexible { q1: 1, q2: 3 };
    let mut r = replica(1, 3, q, DurableState::default());
    let fx = stand(&mut r);
    let ballot = r.ballot().expect("standing");
    assert_eq!(r.role_kind(), RoleKind::Candidate, "no win before the sync");
    assert!(
        ballots_sent_at_once(&fx).is_empty(),
        "nothing reveals the ballot before its promise is durable: {:?}",
        fx.send
    );
    let own: Vec<_> = fx
        .send_after_sync
        .iter()
        .filter(|o| o.to == 1)
        .map(|o| o.msg.clone())
        .collect();
    assert!(
        matches!(own.as_slice(), [Message::Promise { ballot: b, .. }] if *b == ballot),
        "the own promise comes back after the sync: {own:?}"
    );
    // A client command waits in the candidate's queue.
    let fx = r.on_client_request(cmd(1, 5));
    assert!(ballots_sent_at_once(&fx).is_empty());

    // The node crashes before the sync: its disk never saw the promise. The restart may pick
    // the same ballot, which is harmless exactly because no one ever saw it.
    let mut r = replica(1, 3, q, DurableState::default());
    let fx = stand(&mut r);
    assert_eq!(r.ballot(), Some(ballot), "the ballot may be picked again");
    let mut disk = DurableState::default();
    fx.persist.iter().for_each(|p| disk.apply(p));
    assert_eq!(disk.promised, ballot);
    // Once durable, the own promise is delivered and the node leads.
    let fx = own_after_sync(&mut r, fx);
    assert_eq!(r.role_kind(), RoleKind::Leader);
    let fx2 = r.on_client_request(cmd(1, 5));
    let accepts: Vec<_> = fx
        .send
        .iter()
        .chain(&fx2.send)
        .filter(|o| matches!(o.msg, Message::Accept { .. }))
        .collect();
    assert_eq!(accepts.len(), 2, "accepts go to both peers once leading");
}

/// A single node is the same case with majority quorums.
#[test]
fn a_single_node_counts_its_promise_only_after_the_sync() {
    let mut r = replica(1, 1, QuorumSpec::Majority, DurableState::default());
    let fx = stand(&mut r);
    assert_eq!(r.role_kind(), RoleKind::Candidate);
    own_after_sync(&mut r, fx);
    assert_eq!(r.role_kind(), RoleKind::Leader);
}

/// A candidate that learned chosen slots during its election and compacted them into a snapshot
/// used to become leader at its old commit point, proposing slots below its own log start: a
/// panic in debug builds, a step-down in release.
#[test]
fn a_leader_never_proposes_below_a_snapshot_taken_during_its_election() {
    let mut r = replica(1, 3, QuorumSpec::Majority, DurableState::default());
    let fx = stand(&mut r);
    let ballot = r.ballot().unwrap();
    own_after_sync(&mut r, fx);
    assert_eq!(r.role_kind(), RoleKind::Candidate, "one promise of three");
    // Node 2 tells us slots 0 and 1 are chosen; we apply them and snapshot.
    for slot in 0..2 {
        r.on_message(
            2,
            Message::Chosen {
                slot,
                value: Value::batch(vec![cmd(slot + 1, 1)]),
            },
        );
    }
    assert_eq!(r.applied_index(), 2);
    r.take_snapshot();
    assert_eq!(r.log_start(), 2);
    r.on_client_request(cmd(3, 10));
    // Node 3 promises (it knows nothing): we win with a prepare that started at slot 0.
    let fx = r.on_message(
        3,
        Message::Promise {
            ballot,
            entries: Vec::new(),
            log_start: 0,
        },
    );
    assert_eq!(r.role_kind(), RoleKind::Leader);
    let slots: Vec<u64> = fx
        .send
        .iter()
        .filter_map(|o| match &o.msg {
            Message::Accept { slot, .. } => Some(*slot),
            _ => None,
        })
        .collect();
    assert_eq!(
        slots,
        vec![2, 2],
        "the new batch goes to slot 2, past the snapshot"
    );
    // The command is chosen there and applied once.
    for from in [1, 2] {
        r.on_message(from, Message::Accepted { ballot, slot: 2 });
    }
    assert_eq!(r.state_machine().0, 12);
    assert!(!r
        .on_message(3, Message::Accepted { ballot, slot: 2 })
        .output
        .iter()
        .any(|o| matches!(o, Output::Reply { .. })));
}

/// Node 2 of 3, following node 1 (a heartbeat says it leads), with read `id` asked of it.
fn follower_asking_leader_1(id: u64) -> Replica<Counter> {
    let mut r = replica(2, 3, QuorumSpec::Majority, DurableState::default());
    r.on_message(
        1,
        Message::Heartbeat {
            ballot: Ballot::new(1, 1),
            commit: 0,
        },
    );
    let fx = r.on_read(id);
    let asked = (fx.send.iter())
        .any(|o| o.to == 1 && matches!(o.msg, Message::ReadIndexRequest { id: i } if i == id));
    assert!(asked, "read {id} asked of node 1: {:?}", fx.send);
    r
}

/// A follower's read asked of one leader must not be answered by another member: the other's
/// index can come from before writes the read must see.
#[test]
fn a_read_index_reply_counts_only_from_the_leader_asked() {
    let mut r = follower_asking_leader_1(40);
    let fx = r.on_message(
        3,
        Message::ReadIndexReply {
            id: 40,
            index: Some(0),
        },
    );
    assert!(
        fx.output.is_empty(),
        "node 3 was not asked: {:?}",
        fx.output
    );
    let fx = r.on_message(
        1,
        Message::ReadIndexReply {
            id: 40,
            index: Some(0),
        },
    );
    assert_eq!(fx.output, vec![Output::ReadReady { id: 40 }]);
}

/// A 3-node sweep, seed 9306652: a candidate far behind won on promises that reported many
/// chosen slots (Learn obligations), more than `alpha` of them. `advance_bound` learned them a
/// window at a time, and each window opens only once the one before is applied; it learned
/// without applying, so once the election's own steps were over an idle leader kept chosen
/// slots unapplied, its commit point (and a follower waiting on it) stuck until the next write.
#[test]
fn a_leader_elected_far_behind_applies_every_slot_its_promises_report_chosen() {
    use crate::common::net::Net;
    const ALPHA: u64 = 2;
    let mut net = Net::with_alpha(3, 2, ALPHA);
    net.elect(1);
    net.request(1, 7, 1, 1);
    net.settle();
    // Node 2 misses many slots, which nodes 1 and 3 choose.
    net.crash(2);
    for seq in 2..=12 {
        net.request(1, 7, seq, 1);
        net.settle();
    }
    let chosen = net.r(3).commit_index();
    assert!(
        chosen > 4 * ALPHA,
        "enough slots for several windows: {chosen}"
    );
    // Node 1 goes; node 2 comes back and leads on node 3's promise. Nothing more is written.
    net.crash(1);
    net.boot(2);
    net.elect(2);
    assert!(
        net.r(2).commit_index() >= chosen,
        "{}",
        net.r(2).commit_index()
    );
    assert_eq!(net.r(2).applied_index(), net.r(2).commit_index());
    assert_eq!(
        net.r(2).state_machine().0,
        12,
        "every write applied at the new leader"
    );
}

/// A leader whose window is full queues what comes next. A catch-up that settles the slot it
/// has in flight frees the window, and the queue must go out in that step: it used to wait for
/// the next request, vote or forwarded command (found by the simulator's check that no leader
/// ends a step with commands queued and room to propose them, seeds 9804199 and 9801606).
#[test]
fn a_catch_up_that_settles_a_leaders_slot_in_flight_sends_its_queue() {
    use crate::common::net::Net;
    let mut net = Net::with_window(3, 1);
    net.elect(1);
    net.request(1, 7, 1, 1);
    let (next, _) = net.r(1).proposal_range().expect("leads");
    let in_flight = next - 1;
    net.request(1, 8, 1, 1);
    assert_eq!(
        net.r(1).proposal_range().map(|(n, _)| n),
        Some(next),
        "the window of one is full: the second command waits"
    );
    assert_eq!(
        net.r(1).queued_with_room(),
        0,
        "no room, so nothing counts as waiting"
    );
    // The accepts are lost; a peer that learned the slot otherwise hands it over.
    net.queue.clear();
    let value = net.r(1).log()[&in_flight].value.clone();
    let fx = net.r(1).on_message(
        2,
        Message::CatchUp {
            entries: vec![(in_flight, value)],
        },
    );
    let accepts: Vec<_> = fx
        .send
        .iter()
        .chain(&fx.send_after_sync)
        .filter_map(|o| match &o.msg {
            Message::Accept { slot, .. } => Some(*slot),
            _ => None,
        })
        .collect();
    assert!(
        accepts.contains(&next),
        "the queued command is proposed in slot {next} at once: {accepts:?}"
    );
    assert_eq!(net.r(1).queued_with_room(), 0);
    assert_eq!(net.r(1).commit_index(), next);
}

/// A 5-node sweep (seed 11000000 with the check `Replica::reads_orphaned`): a follower asked
/// leader 1 for a read index, then promised a candidate, and later took the new leader's first
/// accept for its leader. Only a heartbeat from a new leader used to fail the reads asked of
/// the old one; by then the follower already took the new one for the leader, so the read
/// waited on a leader that had crashed until the node gave up on it, seconds later.
#[test]
fn a_follower_fails_the_read_indexes_it_asked_of_a_leader_it_no_longer_follows() {
    let mut r = follower_asking_leader_1(41);
    // Node 3 stands: promising it means node 1 may be gone, and may never answer.
    let fx = r.on_message(
        3,
        Message::Prepare {
            ballot: Ballot::new(2, 3),
            from: 1,
        },
    );
    assert!(
        fx.output
            .iter()
            .any(|o| matches!(o, Output::ReadFailed { id: 41, .. })),
        "the read asked of node 1 fails with the promise: {:?}",
        fx.output
    );
    assert_eq!(r.reads_orphaned(), 0);
    // A read asked of the new leader, which its first accept named, waits for it alone.
    let fx = r.on_message(
        3,
        Message::Accept {
            ballot: Ballot::new(2, 3),
            slot: 1,
            value: Value::Noop,
            commit: 0,
        },
    );
    assert!(fx.output.is_empty(), "nothing was waiting: {:?}", fx.output);
    assert_eq!(r.leader_hint(), Some(3));
    r.on_read(42);
    let fx = r.on_message(
        3,
        Message::Heartbeat {
            ballot: Ballot::new(2, 3),
            commit: 0,
        },
    );
    assert!(
        fx.output.is_empty(),
        "the read waits for node 3: {:?}",
        fx.output
    );
    assert_eq!(r.reads_orphaned(), 0);
}

/// The `--quorum 1,5` sweep, seed 260 (which no longer reaches this case since later changes
/// moved its draws). A leader alone in its phase-1 quorum wins with its own promise, its bound
/// `alpha` slots ahead, and uses one slot. A late promise then reports a vote at the bound;
/// when the apply point opens the next window, that obligation moves the next slot past the
/// bound. The slots the leader never used below the bound must be filled with no-ops, or
/// nobody proposes them and the commit point stops there for good.
#[test]
fn a_leader_fills_the_slots_a_late_promises_obligation_skips() {
    let q = QuorumSpec::Flexible { q1: 1, q2: 5 };
    let mut r = replica(1, 5, q, DurableState::default());
    let fx = stand(&mut r);
    let ballot = r.ballot().expect("standing");
    own_after_sync(&mut r, fx);
    assert_eq!(r.role_kind(), RoleKind::Leader);
    let alpha = Config::new(1, vec![1]).alpha;
    assert_eq!(
        r.proposal_range(),
        Some((0, alpha)),
        "leads slots below alpha"
    );
    r.on_client_request(cmd(1, 5));
    // Node 2's promise arrives late and reports a vote of an earlier ballot at the bound.
    let old = Ballot::new(0, 2);
    let reported = Value::Batch(vec![cmd(2, 7)].into());
    r.on_message(
        2,
        Message::Promise {
            ballot,
            entries: vec![synod_core::multi::PromiseEntry {
                slot: alpha,
                ballot: old,
                value: reported.clone(),
                chosen: false,
            }],
            log_start: 0,
        },
    );
    // Slot 0 is chosen by all five (q2 = 5) and applied: the next window opens.
    let mut fx = Fx::new();
    for from in 1..=5 {
        fx.extend(r.on_message(from, Message::Accepted { ballot, slot: 0 }));
    }
    assert_eq!(r.applied_index(), 1);
    let proposed: std::collections::BTreeMap<u64, Value<u64>> = fx
        .send
        .iter()
        .chain(&fx.send_after_sync)
        .filter_map(|o| match &o.msg {
            Message::Accept { slot, value, .. } if o.to == 2 => Some((*slot, value.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(proposed.get(&alpha), Some(&reported), "the obligation");
    let missing: Vec<u64> = (1..alpha).filter(|s| !proposed.contains_key(s)).collect();
    assert!(missing.is_empty(), "slots never proposed: {missing:?}");
    assert!(
        (1..alpha).all(|s| proposed[&s] == Value::Noop),
        "the skipped slots are filled with no-ops"
    );
}
