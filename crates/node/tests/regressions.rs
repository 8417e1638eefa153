//! Regressions in the node layer, driven input by input.

mod common;

use common::follower;
use synod_core::multi::Message;
use synod_core::PlantedBug;
use synod_kv::RangeRequest;
use synod_node::{Action, NodeCore};

/// Asks for a read as `ticket`; returns the read id sent to the leader.
fn ask(n: &mut NodeCore, ticket: u64) -> u64 {
    n.read_index(ticket, RangeRequest::default());
    n.flush();
    n.take_actions()
        .into_iter()
        .find_map(|a| match a {
            Action::Send {
                to: 1,
                msg: Message::ReadIndexRequest { id },
            } => Some(id),
            _ => None,
        })
        .expect("the follower asks the leader")
}

fn answered(n: &mut NodeCore) -> Vec<u64> {
    n.flush();
    n.take_actions()
        .into_iter()
        .filter_map(|a| match a {
            Action::ReadReply { ticket, .. } => Some(ticket),
            _ => None,
        })
        .collect()
}

/// A reply to a read of the follower's previous boot arrives after it restarted. Read ids used
/// to start from zero at every boot, so the reply answered the new boot's read, at an index
/// from before writes that read must see.
fn old_reply_after_restart(bug: Option<PlantedBug>) -> Vec<u64> {
    let mut before = follower(0, bug);
    let old_id = ask(&mut before, 7);
    let mut after = follower(1, bug);
    ask(&mut after, 8);
    after.on_peer(
        1,
        Message::ReadIndexReply {
            id: old_id,
            index: Some(0),
        },
    );
    answered(&mut after)
}

#[test]
fn a_reply_meant_for_an_earlier_boot_answers_no_read() {
    assert!(old_reply_after_restart(None).is_empty());
}

#[test]
fn with_ids_reused_across_boots_the_old_reply_answers_the_new_read() {
    // The planted bug shows what the regression looked like.
    let bug = Some(PlantedBug::ReadIdsReusedAcrossBoots);
    assert_eq!(old_reply_after_restart(bug), vec![8]);
}

/// The commands a turn forwards, by the node they go to.
fn forwarded(d: &mut common::Driver) -> Vec<(u64, usize)> {
    d.turn()
        .into_iter()
        .filter_map(|a| match a {
            Action::Send {
                to,
                msg: Message::Forward { commands },
            } => Some((to, commands.len())),
            _ => None,
        })
        .collect()
}

/// Node 2 forwards a put to leader 1, then hears from node 3, which leads a higher ballot:
/// what it forwards to 3 in that turn.
fn forward_then_new_leader(bug: Option<PlantedBug>) -> Vec<(u64, usize)> {
    let mut d = common::Driver::of(follower(0, bug));
    d.n.propose(5, common::put("a"));
    assert_eq!(
        forwarded(&mut d),
        vec![(1, 1)],
        "forwarded to the leader it knows"
    );
    d.n.on_peer(
        3,
        Message::Heartbeat {
            ballot: synod_core::Ballot::new(2, 3),
            commit: 0,
        },
    );
    let again = forwarded(&mut d);
    assert_eq!(d.n.replica().leader_hint(), Some(3));
    assert_eq!(d.n.misrouted(), usize::from(bug.is_some()));
    again
}

#[test]
fn a_follower_forwards_to_a_new_leader_what_it_forwarded_to_the_old_one() {
    // Leader 1 may have died with the put: without this the client waited for the resubmit
    // timer, an election timeout, before the put reached leader 3.
    assert_eq!(forward_then_new_leader(None), vec![(3, 1)]);
    assert_eq!(
        forward_then_new_leader(Some(PlantedBug::ForwardedCommandsLeft)),
        vec![],
        "the planted bug leaves it with leader 1"
    );
}

/// A candidate that queued a put loses to node 3: what it forwards to node 3 in that turn (a
/// candidate that steps down drops its queue), and how many commands it counts rerouted.
fn candidate_loses(bug: Option<PlantedBug>) -> (Vec<(u64, usize)>, u64) {
    let mut cfg = synod_node::NodeConfig::new(2, vec![1, 2, 3], common::TICK);
    cfg.bug = bug;
    let mut d = common::Driver::of(common::start(cfg, 0));
    let mut ticks = 0;
    while d.n.replica().role_kind() != synod_core::multi::RoleKind::Candidate {
        ticks += 1;
        assert!(ticks < 1_000, "node 2 stands for election");
        d.n.tick();
        d.turn();
    }
    d.n.propose(5, common::put("a"));
    assert_eq!(forwarded(&mut d), vec![], "a candidate queues it");
    let ballot = d.n.replica().promised();
    d.n.on_peer(
        3,
        Message::Heartbeat {
            ballot: synod_core::Ballot::new(ballot.round + 1, 3),
            commit: 0,
        },
    );
    (forwarded(&mut d), d.n.counters().rerouted)
}

#[test]
fn a_candidate_that_loses_forwards_what_it_queued_to_the_winner() {
    assert_eq!(candidate_loses(None), (vec![(3, 1)], 1));
    let bug = Some(PlantedBug::ForwardedCommandsLeft);
    assert_eq!(
        candidate_loses(bug),
        (vec![], 0),
        "left for the resubmit timer"
    );
}
