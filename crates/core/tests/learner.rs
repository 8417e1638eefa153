//! The Multi-Paxos learner on its own: sessions, waiting clients, snapshot install. These are
//! bookkeeping the simulator's safety checkers rightly do not see (a client answered late, or a
//! stale duplicate proposed again, breaks nothing), so they are pinned here.

use std::collections::BTreeMap;
use std::sync::Arc;
use synod_core::multi::learner::Learner;
use synod_core::multi::{
    ChangeId, ChangeOutcome, Command, ConfigChange, Entry, MemberInfo, MemberOp, Membership,
    MultiEffects, Output, RejectReason, Role, Value,
};
use synod_core::quorum::QuorumSpec;
use synod_core::Ballot;

use crate::common::Counter;

type Fx = MultiEffects<u64, u64>;

/// Alpha of the learners here: a change chosen in slot `i` governs from `i + 4`.
const ALPHA: u64 = 4;

fn learner() -> Learner<Counter> {
    let genesis = Membership::of_voters(&[1, 2, 3], QuorumSpec::Majority, ALPHA).unwrap();
    Learner::new(Counter::default(), genesis, None)
}

/// A chosen change that adds a voter, expecting `epoch`.
fn add_voter(epoch: u64, seq: u64) -> Entry<u64> {
    Entry {
        ballot: Ballot::new(1, 1),
        value: Value::Reconfig(Arc::new(ConfigChange {
            id: ChangeId { origin: 2, seq },
            expect_epoch: epoch,
            ops: vec![MemberOp::Add {
                id: None,
                role: Role::Voter,
                info: MemberInfo::default(),
            }],
        })),
        chosen: true,
    }
}

fn reconfigured(fx: &Fx) -> Vec<(u64, u64, ChangeOutcome)> {
    fx.output
        .iter()
        .filter_map(|o| match o {
            Output::Reconfigured { slot, id, outcome } => Some((*slot, id.seq, outcome.clone())),
            _ => None,
        })
        .collect()
}

/// A log whose slots, from 0, are chosen batches of the given `(client, seq, add)` commands.
fn chosen_log(slots: &[&[(u64, u64, u64)]]) -> BTreeMap<u64, Entry<u64>> {
    slots
        .iter()
        .enumerate()
        .map(|(slot, cmds)| {
            let value = Value::batch(
                cmds.iter()
                    .map(|&(client, seq, op)| Command { client, seq, op })
                    .collect(),
            );
            let entry = Entry {
                ballot: Ballot::new(1, 1),
                value,
                chosen: true,
            };
            (slot as u64, entry)
        })
        .collect()
}

fn replies(fx: &Fx) -> Vec<(u64, u64, u64)> {
    fx.output
        .iter()
        .filter_map(|o| match o {
            Output::Reply {
                client,
                seq,
                result,
            } => Some((*client, *seq, *result)),
            _ => None,
        })
        .collect()
}

#[test]
fn applied_result_tells_the_latest_the_stale_and_the_new_apart() {
    let mut l = learner();
    let mut fx = Fx::new();
    l.catch_up(&chosen_log(&[&[(7, 5, 10)]]), &mut fx);
    assert_eq!(l.applied_result(7, 5), Some(Ok(10)), "the latest is cached");
    assert_eq!(
        l.applied_result(7, 3),
        Some(Err(())),
        "an older one is stale"
    );
    assert_eq!(l.applied_result(7, 6), None, "a newer one is new");
    assert_eq!(l.applied_result(8, 1), None, "another client is new");
}

#[test]
fn a_forgotten_client_is_not_answered() {
    let mut l = learner();
    l.wait_for(1, 1);
    l.wait_for(2, 1);
    l.forget(1, 1);
    let mut fx = Fx::new();
    l.catch_up(&chosen_log(&[&[(1, 1, 3), (2, 1, 4)]]), &mut fx);
    assert_eq!(replies(&fx), vec![(2, 1, 7)]);
}

#[test]
fn a_snapshot_answers_the_clients_it_covers_and_drops_the_stale_ones() {
    let mut source = learner();
    let mut fx = Fx::new();
    source.catch_up(&chosen_log(&[&[(1, 2, 5)], &[(2, 3, 6)]]), &mut fx);
    let snap = source.snapshot();

    let mut l = learner();
    l.wait_for(1, 2); // covered exactly: answered with its result
    l.wait_for(2, 2); // older than what the snapshot applied for client 2: dropped unanswered
    l.wait_for(3, 1); // not covered: still waits
    let mut fx = Fx::new();
    l.install(&snap, &mut fx).expect("install");
    assert_eq!(replies(&fx), vec![(1, 2, 5)]);
    assert_eq!(l.applied(), 2);
    assert_eq!(l.state_machine().0, 11);

    // The dropped wait is gone and the uncovered one remains: applying their commands later
    // answers only the one still waiting.
    let mut fx = Fx::new();
    let log = chosen_log(&[&[], &[], &[(2, 2, 100), (3, 1, 1)]]);
    l.catch_up(&log, &mut fx);
    assert_eq!(replies(&fx), vec![(3, 1, 12)]);
}

#[test]
fn the_commit_point_is_persisted_when_it_advances_and_only_then() {
    use synod_core::multi::Persist;
    let mut l = learner();
    let log = chosen_log(&[&[(1, 1, 1)], &[(1, 2, 1)]]);
    let mut fx = Fx::new();
    l.catch_up(&log, &mut fx);
    assert_eq!(fx.persist, vec![Persist::Commit(2)]);
    let mut fx = Fx::new();
    l.catch_up(&log, &mut fx);
    assert!(fx.persist.is_empty(), "nothing new: no record");
}

#[test]
fn chosen_changes_are_applied_in_log_order_and_reported() {
    let mut log = chosen_log(&[&[(1, 1, 5)], &[], &[(1, 2, 6)]]);
    log.insert(1, add_voter(0, 1));
    log.insert(3, add_voter(0, 2)); // raced the first one: its epoch is stale
    let mut l = learner();
    let mut fx = Fx::new();
    l.catch_up(&log, &mut fx);
    assert_eq!(
        reconfigured(&fx),
        vec![
            (
                1,
                1,
                ChangeOutcome::Applied {
                    epoch: 1,
                    effective: 1 + ALPHA,
                    assigned: vec![4]
                }
            ),
            (
                3,
                2,
                ChangeOutcome::Rejected(RejectReason::StaleEpoch {
                    expected: 0,
                    actual: 1
                })
            ),
        ]
    );
    assert_eq!(
        l.state_machine().0,
        11,
        "the state machine never sees a change"
    );
    assert_eq!(l.membership().at(ALPHA).voters(), &[1, 2, 3]);
    assert_eq!(l.membership().at(1 + ALPHA).voters(), &[1, 2, 3, 4]);
}

#[test]
fn a_snapshot_carries_the_membership_and_one_it_could_not_hold_is_refused() {
    let mut log = chosen_log(&[&[(1, 1, 5)], &[], &[(1, 2, 6)]]);
    log.insert(1, add_voter(0, 1));
    let mut source = learner();
    source.catch_up(&log, &mut Fx::new());
    let snap = source.snapshot();
    assert_eq!(snap.membership.as_ref(), Some(source.membership()));

    let mut l = learner();
    l.install(&snap, &mut Fx::new()).expect("install");
    assert_eq!(l.membership(), source.membership());

    // No membership: the first configuration stands.
    let mut old = snap.clone();
    old.membership = None;
    let mut l = learner();
    l.install(&old, &mut Fx::new()).expect("install");
    assert_eq!(l.membership(), learner().membership());

    // A change below slot 1 cannot govern from slot 1 + ALPHA: a peer's snapshot claiming so
    // is refused and changes nothing.
    let mut bad = snap;
    bad.slot = 1;
    let mut l = learner();
    let e = l.install(&bad, &mut Fx::new()).unwrap_err();
    assert!(e.contains("membership"), "{e}");
    assert_eq!(l.applied(), 0);
    assert_eq!(l.membership(), learner().membership());
}

#[test]
fn compaction_forgets_the_configurations_of_compacted_slots_only() {
    let mut log = chosen_log(&[&[(1, 1, 5)], &[], &[], &[], &[], &[], &[]]);
    log.insert(1, add_voter(0, 1));
    let mut l = learner();
    l.catch_up(&log, &mut Fx::new());
    // Epoch 0 governs slots 0..5, epoch 1 from 1 + ALPHA = 5 on.
    l.compacted_below(4);
    assert_eq!(
        l.membership().epochs().count(),
        2,
        "slot 4 still needs epoch 0"
    );
    l.compacted_below(5);
    let kept: Vec<u64> = l.membership().epochs().map(|(_, c)| c.epoch()).collect();
    assert_eq!(kept, vec![1]);
}
