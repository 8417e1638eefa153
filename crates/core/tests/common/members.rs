//! A five-node network led by node 1, and the membership changes tests ask of it.

use super::net::Net;
use synod_core::multi::{ChangeOutcome, MemberOp, Message, Output, Role, RoleKind, Timer};
use synod_core::{NodeId, PlantedBug};

pub const ALPHA: u64 = 4;

pub fn set(id: NodeId, role: Role) -> MemberOp {
    MemberOp::SetRole { id, role }
}

/// Five voters, a window of two, alpha four; node 1 leads. `late` promises (from nodes 4 and
/// 5) reach it after it won, or never.
pub fn five(late: bool) -> Net {
    five_with(late, None)
}

pub fn five_with(late: bool, bug: Option<PlantedBug>) -> Net {
    let mut net = Net::with_bug(5, 2, ALPHA, bug);
    net.timer(1, Timer::Election);
    if late {
        net.settle();
    } else {
        net.settle_with(|from, to, m| {
            matches!(m, Message::Prepare { .. }) && to > 3 || from > 3 && to == 1
        });
    }
    net.settle();
    assert_eq!(net.r(1).ballot(), net.r(1).promised().into());
    net
}

/// A leader's `next <= bound <= applied + alpha`, as the simulator checks after every step.
pub fn assert_bounds(net: &mut Net, id: NodeId) {
    let r = net.r(id);
    let (next, bound) = r.proposal_range().expect("leads");
    let known = r.applied_index() + ALPHA;
    assert!(next <= bound && bound <= known, "{next} {bound} {known}");
    assert_eq!(bound, known, "a settled leader has prepared all it can");
}

pub fn change(net: &mut Net, at: NodeId, seq: u64, ops: Vec<MemberOp>) {
    let fx = net.r(at).propose_change(seq, ops);
    net.absorb(at, fx);
}

pub fn outcomes(net: &Net) -> Vec<(NodeId, u64, ChangeOutcome)> {
    net.replies
        .iter()
        .filter_map(|(n, o)| match o {
            Output::Reconfigured { id, outcome, .. } => Some((*n, id.seq, outcome.clone())),
            _ => None,
        })
        .collect()
}

/// Delivers everything, except that `node` hears of no slot after `slot` (no accept above it,
/// no catch-up): it learns `slot` is chosen, and nothing later.
pub fn settle_holding_back(net: &mut Net, node: NodeId, slot: u64) {
    net.settle_with(|_, to, m| {
        to == node
            && match m {
                Message::Accept { slot: s, .. } => *s > slot,
                Message::CatchUp { .. } => true,
                _ => false,
            }
    });
}

/// Fires `id`'s election timer until it stands.
pub fn stand(net: &mut Net, id: NodeId) {
    while net.r(id).role_kind() != RoleKind::Candidate {
        net.timer(id, Timer::Election);
    }
}
