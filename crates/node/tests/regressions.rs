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
