//! What quorums chose, and what a new round must build on.
//!
//! In round k, a quorum R has chosen the longest common prefix (glb) of its members' histories;
//! the value learned is the lub of everything chosen. A leader opening a higher round hears the
//! latest votes of a classic quorum Q (`proved_safe`). Any k-quorum R that chose something
//! meets Q in at least m = Qf − |outside Q| acceptors that voted in k, and what R chose is a
//! prefix of the glb of their histories. So the lub, over every m of Q's round-k voters, of
//! their glb holds everything chosen in k; the fast quorum condition (Qc + 2·Qf > 2N) makes
//! those glbs compatible. With fewer than m round-k voters in Q, nothing was chosen in k, and
//! any round-k history holds what was chosen below k, since every round starts from a safe base.

use super::cstruct::CStruct;
use super::messages::Round;
use super::relation::Relation;
use crate::ballot::NodeId;
use crate::quorum::{FastQuorum, QuorumSystem};
use std::collections::{BTreeMap, BTreeSet};

/// Every `size`-subset of `items`, in order.
fn subsets<T: Clone>(items: &[T], size: usize) -> Vec<Vec<T>> {
    if size == 0 {
        return vec![Vec::new()];
    }
    if items.len() < size {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, first) in items.iter().enumerate() {
        for mut rest in subsets(&items[i + 1..], size - 1) {
            rest.insert(0, first.clone());
            out.push(rest);
        }
    }
    out
}

/// The lub of the glbs of every `size` of `histories`; `None` when there are fewer. Subsets
/// whose glb is incompatible with the rest are skipped (a correct peer never causes that).
pub fn lub_of_glbs(histories: &[&CStruct], size: usize, rel: &dyn Relation) -> Option<CStruct> {
    let mut acc: Option<CStruct> = None;
    for s in subsets(histories, size.max(1)) {
        let g = CStruct::glb_all(s.iter().copied(), rel)?;
        acc = match acc {
            None => Some(g),
            Some(a) => Some(a.lub(&g, rel).unwrap_or(a)),
        };
    }
    acc
}

/// A history every proposal of the new round must extend, from the latest votes of a classic
/// quorum (`reports`, one per acceptor that promised).
pub fn proved_safe(
    q: &FastQuorum,
    reports: &BTreeMap<NodeId, Option<(Round, CStruct)>>,
    rel: &dyn Relation,
) -> CStruct {
    let members: BTreeMap<NodeId, &Option<(Round, CStruct)>> = reports
        .iter()
        .filter(|(id, _)| q.members().contains(id))
        .map(|(id, v)| (*id, v))
        .collect();
    let Some(k) = members
        .values()
        .filter_map(|v| v.as_ref())
        .map(|v| v.0)
        .max()
    else {
        return CStruct::new();
    };
    let in_k: Vec<&CStruct> = members
        .values()
        .filter_map(|v| v.as_ref())
        .filter(|v| v.0 == k)
        .map(|v| &v.1)
        .collect();
    let heard: BTreeSet<NodeId> = members.keys().copied().collect();
    let outside = q.members().len() - q.count(&heard);
    let m = q.fast().saturating_sub(outside).max(1);
    if in_k.len() < m {
        return in_k[0].clone();
    }
    lub_of_glbs(&in_k, m, rel).unwrap_or_default()
}

/// What the latest histories of one round's voters show chosen: the lub of the glbs of every
/// fast quorum of them, or `None` with fewer voters than a fast quorum.
pub fn chosen_in_round(
    q: &FastQuorum,
    votes: &BTreeMap<NodeId, CStruct>,
    rel: &dyn Relation,
) -> Option<CStruct> {
    let hs: Vec<&CStruct> = votes
        .iter()
        .filter(|(id, _)| q.members().contains(id))
        .map(|(_, h)| h)
        .collect();
    lub_of_glbs(&hs, q.fast(), rel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generalized::relation::{Command, Op, Registers};

    fn c(seq: u64, op: Op) -> Command {
        Command { client: 1, seq, op }
    }

    #[test]
    fn subsets_are_all_there() {
        assert_eq!(
            subsets(&[1, 2, 3], 2),
            vec![vec![1, 2], vec![1, 3], vec![2, 3]]
        );
        assert_eq!(subsets(&[1, 2], 3), Vec::<Vec<i32>>::new());
    }

    #[test]
    fn safe_value_keeps_what_a_fast_quorum_may_have_chosen() {
        // N = 3 (Qc 2, Qf 3). Q = {1, 2} heard, 3 outside: m = 2. Both voted in round 1:
        // <RA, WB> and <WB, RA> (they commute): what {1,2,3} may have chosen is a prefix of
        // their glb, the whole <RA, WB>.
        let q = FastQuorum::majority(&[1, 2, 3]).unwrap();
        let (ra, wb) = (c(1, Op::read("A")), c(2, Op::write("B")));
        let r = Round::new(1, 9);
        let reports = BTreeMap::from([
            (
                1,
                Some((r, CStruct::from_commands([ra.clone(), wb.clone()]))),
            ),
            (
                2,
                Some((r, CStruct::from_commands([wb.clone(), ra.clone()]))),
            ),
        ]);
        let s = proved_safe(&q, &reports, &Registers);
        assert!(
            s.equivalent(&CStruct::from_commands([ra, wb]), &Registers),
            "{s}"
        );
    }

    #[test]
    fn conflicting_orders_leave_only_the_common_prefix_safe() {
        let q = FastQuorum::majority(&[1, 2, 3]).unwrap();
        let (ra, wb, rb) = (
            c(1, Op::read("A")),
            c(2, Op::write("B")),
            c(3, Op::read("B")),
        );
        let r = Round::new(1, 9);
        let reports = BTreeMap::from([
            (
                1,
                Some((
                    r,
                    CStruct::from_commands([ra.clone(), wb.clone(), rb.clone()]),
                )),
            ),
            (
                2,
                Some((
                    r,
                    CStruct::from_commands([rb.clone(), ra.clone(), wb.clone()]),
                )),
            ),
            (
                3,
                Some((
                    r,
                    CStruct::from_commands([rb.clone(), wb.clone(), ra.clone()]),
                )),
            ),
        ]);
        let s = proved_safe(&q, &reports, &Registers);
        assert!(
            s.equivalent(&CStruct::from_commands([ra]), &Registers),
            "{s}"
        );
        let votes: BTreeMap<NodeId, CStruct> = reports
            .into_iter()
            .map(|(id, v)| (id, v.unwrap().1))
            .collect();
        let chosen = chosen_in_round(&q, &votes, &Registers).unwrap();
        assert!(chosen.equivalent(&CStruct::from_commands([c(1, Op::read("A"))]), &Registers));
    }

    #[test]
    fn no_votes_is_the_empty_history() {
        let q = FastQuorum::majority(&[1, 2, 3]).unwrap();
        let reports = BTreeMap::from([(1, None), (2, None)]);
        assert!(proved_safe(&q, &reports, &Registers).is_empty());
    }
}
