//! States a replica must never end a step in, because nothing it waits for would move it out
//! of them. Each is a stall that only the end-of-run checks (liveness, convergence) would see
//! otherwise, hundreds of ticks after the step that made it and in a small share of the seeds:
//! convergence found the bug of seed 9306652 in 1 seed of 15,000, where the commit-point check
//! below catches it, planted, in about 1 of 100 (docs/testing.md).

use synod_core::multi::{Replica, RoleKind, StateMachine, Timer};
use synod_core::NodeId;
use synod_node::NodeCore;

/// What keeps replica `id` stalled after its step, if anything.
pub(super) fn stalled<S: StateMachine>(id: NodeId, r: &Replica<S>) -> Option<String> {
    // A leader has voted in every slot it moved its next slot past: a slot it skipped is
    // proposed by nobody and holds the commit point back for good (seed 260 of the
    // `--quorum 1,5` sweep).
    if let Some((next, _)) = r.proposal_range() {
        let from = r.commit_index().max(r.log_start());
        if let Some(gap) = (from..next).find(|s| !r.log().contains_key(s)) {
            return Some(format!(
                "node {id} leads with next slot {next} but never proposed slot {gap}"
            ));
        }
    }
    // Commands left queued with room to propose them wait for the next request or vote
    // (seeds 9804199 and 9801606: a catch-up that settled the slots in flight).
    let waiting = r.queued_with_room();
    if waiting > 0 {
        return Some(format!(
            "node {id} leads with {waiting} commands queued and room to propose"
        ));
    }
    let reads = r.reads_stalled();
    if reads > 0 {
        return Some(format!("node {id} holds {reads} reads it could answer"));
    }
    let orphaned = r.reads_orphaned();
    if orphaned > 0 {
        let leader = r.leader_hint();
        return Some(format!(
            "node {id} waits on {orphaned} read indexes asked of a node it no longer takes for \
             the leader ({leader:?})"
        ));
    }
    // The commit point is the end of the chosen prefix: every path that learns a value catches
    // up before its step ends. A chosen slot left at the commit point holds back the apply
    // point, and with it reads and the window; an idle cluster never catches up (seed 9306652
    // of the 3-node sweep).
    let commit = r.commit_index();
    if r.log().get(&commit).is_some_and(|e| e.chosen) {
        return Some(format!(
            "node {id}: slot {commit} is known chosen but the commit point stopped there"
        ));
    }
    None
}

/// What keeps node `id`'s own layer stalled after its turn, if anything: a timer its replica
/// counts on that is not armed, commands left with a former leader, or messages held for the
/// disk that no sync will release.
pub(super) fn node_stalled(id: NodeId, core: &NodeCore) -> Option<String> {
    let r = core.replica();
    // A leader that stops beating is deposed only by a follower's election timeout; a
    // candidate that stops sending prepares waits for its own.
    let role = r.role_kind();
    if role != RoleKind::Follower && !core.timer_armed(Timer::Heartbeat) {
        return Some(format!(
            "node {id} is a {role:?} with no heartbeat timer armed"
        ));
    }
    if r.holds_notices() && !core.timer_armed(Timer::Notices) {
        return Some(format!(
            "node {id} holds notices back with no notice timer armed"
        ));
    }
    // A former leader (dead, deposed, or a candidate that lost) never answers them: they
    // would wait for the resubmit timer, an election timeout.
    let misrouted = core.misrouted();
    if misrouted > 0 {
        let route = r.leader_hint();
        return Some(format!(
            "node {id} leaves {misrouted} commands with a node it no longer sends commands to \
             (a {role:?}, leader hint {route:?})"
        ));
    }
    // Only the old tail's own sync would release them, ticks later.
    if let Some(batch) = core.held_stranded() {
        return Some(format!(
            "node {id} holds messages for batch {batch}, which no sync it asked for covers"
        ));
    }
    None
}
