//! Snapshots larger than a piece travel in pieces, pulled by the receiver one at a time from
//! whichever member sent the first: lost pieces are asked for again, a sender that replaced its
//! snapshot starts the receiver over, a sender gone for good is given up on, and pieces that do
//! not fit the transfer under way are ignored, never trusted.

use synod_core::multi::{Message, Role, SnapshotHead, Timer};
use synod_core::NodeId;

use crate::common::members::{change, outcomes};
use crate::common::net::Net;

/// The counter's state is 8 bytes: with pieces of 3, a snapshot goes as 3 pieces.
const CHUNK: usize = 3;

fn push(net: &mut Net, first_seq: u64, n: u64) {
    for seq in first_seq..first_seq + n {
        net.request(1, 9, seq, 1);
        net.settle();
    }
}

fn beat(net: &mut Net) {
    net.timer(1, Timer::Heartbeat);
    net.settle();
}

fn compact(net: &mut Net, nodes: &[NodeId]) {
    for &n in nodes {
        let fx = net.r(n).take_snapshot();
        net.absorb(n, fx);
    }
}

/// Three voters led by 1; node 3 missed five commands, which 1 and 2 compacted away.
fn lagging() -> Net {
    lagging_with(CHUNK)
}

/// Three voters led by 1 that send snapshots in pieces of `chunk` bytes.
fn chunked(chunk: usize) -> Net {
    let mut net = Net::new(3);
    net.snapshot_chunk = chunk;
    for id in 1..=3 {
        net.boot(id);
    }
    net.elect(1);
    net
}

fn lagging_with(chunk: usize) -> Net {
    let mut net = chunked(chunk);
    push(&mut net, 1, 2);
    net.down.insert(3);
    push(&mut net, 3, 5);
    compact(&mut net, &[1, 2]);
    net.down.remove(&3);
    net
}

fn is_piece(m: &Message<u64>) -> bool {
    matches!(m, Message::SnapshotChunk { .. })
}

fn assert_caught_up(net: &mut Net, id: NodeId) {
    let leaders = net.r(1).commit_index();
    assert_eq!(net.r(id).applied_index(), leaders, "node {id} is behind");
    let (a, b) = (net.r(id).state_machine().0, net.r(1).state_machine().0);
    assert_eq!(a, b, "node {id}'s state differs from the leader's");
    assert_eq!(net.r(id).log_start(), net.r(1).log_start(), "not installed");
}

#[test]
fn a_lagging_follower_gets_a_large_snapshot_in_pieces() {
    let mut net = lagging();
    let mut pieces = vec![];
    let mut whole = 0;
    net.timer(1, Timer::Heartbeat);
    net.settle_with(|from, to, m| {
        if let Message::SnapshotChunk { offset, data, .. } = m {
            pieces.push((from, to, *offset, data.len()));
        }
        whole += matches!(m, Message::InstallSnapshot { .. }) as usize;
        false
    });
    assert_eq!(whole, 0, "too large to go whole");
    assert_eq!(pieces, vec![(1, 3, 0, 3), (1, 3, 3, 3), (1, 3, 6, 2)]);
    assert_caught_up(&mut net, 3);
    push(&mut net, 10, 2);
    assert_caught_up(&mut net, 3);
}

#[test]
fn a_snapshot_that_fits_one_piece_goes_whole() {
    let mut net = lagging_with(8);
    let mut pieces = 0;
    net.timer(1, Timer::Heartbeat);
    net.settle_with(|_, _, m| {
        pieces += is_piece(m) as usize;
        false
    });
    assert_eq!(pieces, 0);
    assert_caught_up(&mut net, 3);
}

#[test]
fn a_lost_piece_is_asked_for_again_after_a_timeout() {
    let mut net = lagging();
    let (mut dropped, mut firsts, mut requests) = (false, 0, 0);
    let mut drop_second = |_: NodeId, _: NodeId, m: &Message<u64>| {
        firsts += matches!(m, Message::SnapshotChunk { offset: 0, .. }) as usize;
        requests += matches!(m, Message::CatchUpRequest { .. }) as usize;
        let second = matches!(m, Message::SnapshotChunk { offset: 3, .. });
        let drop = second && !dropped;
        dropped |= drop;
        drop
    };
    net.timer(1, Timer::Heartbeat);
    net.settle_with(&mut drop_second);
    assert!(net.r(3).log_start() < net.r(1).log_start(), "stalled");
    // Heartbeats keep coming, but no catch-up request starts another transfer while this one
    // is still young; the timeout after a whole quiet one asks for the piece again.
    for _ in 0..2 {
        net.timer(3, Timer::Election);
        net.timer(1, Timer::Heartbeat);
        net.settle_with(&mut drop_second);
    }
    assert!(dropped);
    // One transfer, resumed: not dropped and started over, and no catch-up asked meanwhile
    // (the first heartbeat's asked for the snapshot).
    assert_eq!((firsts, requests), (1, 1));
    assert_caught_up(&mut net, 3);
}

#[test]
fn a_first_piece_from_another_member_or_of_an_old_snapshot_is_ignored() {
    let mut net = lagging();
    let held = net.r(2).snapshot().cloned().expect("node 2 compacted");
    let first = |s: &synod_core::multi::Snapshot| Message::SnapshotChunk {
        slot: s.slot,
        offset: 0,
        total: s.state.len() as u64,
        data: s.state.slice(..3),
        head: Some(SnapshotHead {
            sessions: s.sessions.clone(),
            membership: s.membership.clone(),
        }),
    };
    // Node 1's transfer is under way; node 2's first piece of the same snapshot changes nothing.
    net.timer(1, Timer::Heartbeat);
    net.settle_with(|_, _, m| matches!(m, Message::SnapshotRequest { .. }));
    let fx = net.r(3).on_message(2, first(&held));
    assert!(
        fx.send.is_empty(),
        "a second transfer started: {:?}",
        fx.send
    );
    net.timer(3, Timer::Election);
    net.timer(3, Timer::Election);
    net.settle();
    assert_caught_up(&mut net, 3);
    // Once caught up, a first piece of a snapshot it is past starts nothing.
    let fx = net.r(3).on_message(2, first(&held));
    assert!(
        fx.send.is_empty(),
        "a transfer of an old snapshot: {:?}",
        fx.send
    );
}

#[test]
fn a_replaced_snapshot_is_kept_through_three_quiet_timeouts() {
    let mut net = lagging();
    let (older, _) = replaced_mid_transfer(&mut net, 3);
    assert_eq!(net.r(3).snapshot().map(|s| s.slot), Some(older));
}

/// Node 3's transfer from node 1 is under way (first piece in, its request for the second held
/// back) when node 1 takes a newer snapshot; node 1 fires `timeouts` election timers before the
/// held request reaches it. Returns the older snapshot's slot and the newer's.
fn replaced_mid_transfer(net: &mut Net, timeouts: usize) -> (u64, u64) {
    let older = net.r(1).log_start();
    net.timer(1, Timer::Heartbeat);
    let mut held = vec![];
    net.settle_with(|from, to, m| {
        let hold = matches!(m, Message::SnapshotRequest { .. });
        if hold {
            held.push((from, to, m.clone()));
        }
        hold
    });
    push(net, 20, 2);
    compact(net, &[1]);
    let newer = net.r(1).log_start();
    assert!(newer > older);
    for _ in 0..timeouts {
        net.timer(1, Timer::Election);
        net.settle();
    }
    net.queue.extend(held);
    net.settle();
    (older, newer)
}

#[test]
fn a_sender_that_took_a_newer_snapshot_still_serves_the_transfer_under_way() {
    let mut net = lagging();
    let (older, _) = replaced_mid_transfer(&mut net, 0);
    assert_eq!(net.r(3).snapshot().map(|s| s.slot), Some(older));
    beat(&mut net);
    let leaders = net.r(1).commit_index();
    assert_eq!(net.r(3).applied_index(), leaders);
    let (a, b) = (net.r(3).state_machine().0, net.r(1).state_machine().0);
    assert_eq!(a, b);
}

#[test]
fn a_sender_that_dropped_the_replaced_snapshot_starts_the_receiver_over() {
    let mut net = lagging();
    // Four election timeouts with no request for it: every transfer of it is over.
    let (_, newer) = replaced_mid_transfer(&mut net, 4);
    assert_eq!(net.r(3).snapshot().map(|s| s.slot), Some(newer));
    assert_caught_up(&mut net, 3);
}

#[test]
fn a_transfer_whose_sender_went_away_is_given_up_and_another_member_serves_it() {
    let mut net = lagging();
    net.timer(1, Timer::Heartbeat);
    // Only the first piece gets through; then the leader is gone.
    net.settle_with(|_, _, m| matches!(m, Message::SnapshotRequest { .. }));
    net.down.insert(1);
    // Whichever of 2 and 3 stands, 3 learns from 2 that it is behind and gets its snapshot.
    let mut from_2 = 0;
    for _ in 0..6 {
        net.timer(3, Timer::Election);
        net.timer(2, Timer::Election);
        net.settle_with(|from, _, m| {
            from_2 += (from == 2 && is_piece(m)) as usize;
            false
        });
    }
    assert!(from_2 >= 3, "node 2 sent the snapshot in pieces: {from_2}");
    assert_eq!(net.r(3).log_start(), net.r(2).log_start());
    assert_eq!(net.r(3).applied_index(), net.r(2).applied_index());
}

#[test]
fn pieces_that_do_not_fit_the_transfer_are_ignored() {
    let mut net = lagging();
    let applied = net.r(3).applied_index();
    // A snapshot node 1 does not hold: nobody will send the rest of it.
    let slot = net.r(1).log_start() + 100;
    let head = || {
        let s = net_snapshot_head();
        Some(s)
    };
    let piece =
        |offset: u64, total: u64, data: &[u8], head: Option<SnapshotHead>| Message::SnapshotChunk {
            slot,
            offset,
            total,
            data: bytes::Bytes::copy_from_slice(data),
            head,
        };
    let garbage = [
        // A first piece without sessions and membership.
        (1, piece(0, 8, &[1, 2, 3], None)),
        // Longer than it claims the whole is.
        (1, piece(0, 2, &[1, 2, 3], head())),
    ];
    for (from, m) in garbage {
        let fx = net.r(3).on_message(from, m);
        assert!(fx.send.is_empty() && fx.persist.is_empty());
    }
    // A transfer from 1 begins (its first piece asks for the next) ...
    let fx = net.r(3).on_message(1, piece(0, 8, &[1, 0, 0], head()));
    assert_eq!(fx.send.len(), 1, "asks for the next piece");
    // ... and pieces from someone else, out of order, of another total, or running past the
    // end change nothing.
    let strays = [
        (2, piece(3, 8, &[0, 0, 0], None)),
        (1, piece(6, 8, &[0, 0], None)),
        (1, piece(3, 9, &[0, 0, 0], None)),
        (1, piece(3, 8, &[0; 6], None)),
        (1, piece(3, 8, &[], None)),
    ];
    for (from, m) in strays {
        let fx = net.r(3).on_message(from, m);
        assert!(fx.send.is_empty() && fx.persist.is_empty(), "taken");
    }
    assert_eq!(net.r(3).applied_index(), applied);
    // The stalled transfer is given up on, and node 1's real snapshot arrives.
    for _ in 0..4 {
        net.timer(3, Timer::Election);
        net.timer(1, Timer::Heartbeat);
        net.settle();
    }
    assert_caught_up(&mut net, 3);
}

/// Sessions and membership that decode (those of a fresh three-node cluster).
fn net_snapshot_head() -> SnapshotHead {
    let mut net = Net::new(3);
    let s = net.r(1).applied_state();
    SnapshotHead {
        sessions: s.sessions,
        membership: s.membership,
    }
}

#[test]
fn a_joiner_gets_a_snapshot_in_pieces_from_a_member_that_stored_none() {
    let mut net = chunked(CHUNK);
    push(&mut net, 1, 4);
    change(
        &mut net,
        1,
        1,
        vec![synod_core::multi::MemberOp::Add {
            id: None,
            role: Role::Learner,
            info: synod_core::multi::MemberInfo {
                name: "new".into(),
                peer_urls: vec!["http://127.0.0.1:9".into()],
                client_urls: vec![],
            },
        }],
    );
    net.settle();
    assert!(!outcomes(&net).is_empty());
    assert!(net.r(1).snapshot().is_none(), "nothing stored to send");
    net.add_joiner(4);
    let mut pieces = 0;
    net.settle_with(|_, to, m| {
        pieces += (to == 4 && is_piece(m)) as usize;
        false
    });
    for _ in 0..10 {
        if !net.r(4).joining() {
            break;
        }
        net.timer(4, Timer::Election);
        net.settle_with(|_, to, m| {
            pieces += (to == 4 && is_piece(m)) as usize;
            false
        });
    }
    assert!(!net.r(4).joining());
    assert_eq!(pieces, 3);
    beat(&mut net);
    assert_eq!(net.r(4).applied_index(), net.r(1).commit_index());
    let (a, b) = (net.r(4).state_machine().0, net.r(1).state_machine().0);
    assert_eq!(a, b);
    assert!(net.r(4).snapshot().is_some(), "started from the snapshot");
}

#[test]
fn a_rebased_snapshot_is_what_lagging_followers_get() {
    let mut net = lagging();
    let snap = net.r(1).snapshot().cloned().unwrap();
    let counted = u64::from_le_bytes(snap.state[..].try_into().unwrap());
    // Only the snapshot of that slot and length is replaced.
    let other = bytes::Bytes::from((counted + 1).to_le_bytes().to_vec());
    assert!(!net.r(1).rebase_snapshot(snap.slot + 1, other.clone()));
    assert!(!net.r(1).rebase_snapshot(snap.slot, other.slice(..7)));
    assert_eq!(net.r(1).snapshot(), Some(&snap));
    // The same bytes held elsewhere (the driver's mapping of its checkpoint file) are kept in
    // place of the replica's own, and are what a lagging follower gets.
    let elsewhere = bytes::Bytes::copy_from_slice(&snap.state);
    let at = elsewhere.as_ptr();
    assert!(net.r(1).rebase_snapshot(snap.slot, elsewhere));
    assert_eq!(net.r(1).snapshot().unwrap().state.as_ptr(), at);
    beat(&mut net);
    assert_caught_up(&mut net, 3);
    assert_eq!(net.r(3).state_machine().0, counted);
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "rebased onto different bytes")]
fn rebasing_onto_other_bytes_of_the_same_length_is_caught_in_debug_builds() {
    let mut net = lagging();
    let snap = net.r(1).snapshot().cloned().unwrap();
    let counted = u64::from_le_bytes(snap.state[..].try_into().unwrap());
    let other = bytes::Bytes::from((counted + 1).to_le_bytes().to_vec());
    net.r(1).rebase_snapshot(snap.slot, other);
}
