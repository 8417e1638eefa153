//! Membership as replicated state: the model's properties over random change sequences, and a
//! replica that counts quorums and addresses messages by the configuration of each slot.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use synod_core::multi::{
    ChangeId, ChangeOutcome, Command, Config, ConfigChange, DurableState, Entry, MemberInfo,
    MemberOp, Membership, Message, MultiEffects, Replica, Role, RoleKind, Timer, Value,
};
use synod_core::quorum::{Quorum, QuorumSpec};
use synod_core::{Ballot, NodeId};

use crate::common::Counter;

fn op() -> impl Strategy<Value = MemberOp> {
    prop_oneof![
        (proptest::option::of(1u64..12), any::<bool>()).prop_map(|(id, learner)| MemberOp::Add {
            id,
            role: if learner { Role::Learner } else { Role::Voter },
            info: MemberInfo::default(),
        }),
        (1u64..12).prop_map(MemberOp::Remove),
        (1u64..12, any::<bool>()).prop_map(|(id, learner)| MemberOp::SetRole {
            id,
            role: if learner { Role::Learner } else { Role::Voter },
        }),
        (1u64..12).prop_map(|id| MemberOp::Update {
            id,
            peer_urls: vec![format!("http://n{id}")],
            client_urls: vec![],
        }),
    ]
}

/// Changes at increasing slots; each expects the epoch it would find, or (sometimes) a stale one.
fn changes() -> impl Strategy<Value = Vec<(u64, bool, Vec<MemberOp>)>> {
    proptest::collection::vec(
        (
            1u64..6,
            any::<bool>(),
            proptest::collection::vec(op(), 0..3),
        ),
        0..12,
    )
}

fn run(alpha: u64, script: &[(u64, bool, Vec<MemberOp>)]) -> (Membership, Vec<ChangeOutcome>) {
    let mut m = Membership::of_voters(&[1, 2, 3], QuorumSpec::Majority, alpha).unwrap();
    let (mut slot, mut outcomes) = (0, Vec::new());
    for (i, (gap, stale, ops)) in script.iter().enumerate() {
        slot += gap;
        let epoch = m.latest().epoch();
        let change = ConfigChange {
            id: ChangeId {
                origin: 1,
                seq: i as u64,
            },
            expect_epoch: if *stale { epoch + 1 } else { epoch },
            ops: ops.clone(),
        };
        outcomes.push(m.apply(slot, &change));
    }
    (m, outcomes)
}

proptest! {
    #[test]
    fn the_model_is_deterministic_and_every_slot_has_one_valid_configuration(
        alpha in 1u64..8,
        script in changes(),
    ) {
        let (m, outcomes) = run(alpha, &script);
        let (again, same) = run(alpha, &script);
        prop_assert_eq!(&m, &again);
        prop_assert_eq!(&outcomes, &same);

        // Rejected changes start no epoch; applied ones one each, alpha after their slot.
        let applied: Vec<(u64, u64)> = outcomes
            .iter()
            .filter_map(|o| match o {
                ChangeOutcome::Applied { epoch, effective, .. } => Some((*epoch, *effective)),
                ChangeOutcome::Rejected(_) => None,
            })
            .collect();
        let epochs: Vec<(u64, u64)> = m.epochs().skip(1).map(|(s, c)| (c.epoch(), s)).collect();
        prop_assert_eq!(&epochs, &applied);

        // `at` is the last configuration starting at or before the slot, and each one's
        // quorum system is a valid one over its voters.
        let last = epochs.last().map_or(0, |e| e.1);
        for s in 0..=last + 1 {
            let naive = m.epochs().filter(|(start, _)| *start <= s).last().unwrap().1;
            prop_assert_eq!(m.at(s), naive);
            let c = m.at(s);
            prop_assert!(Quorum::from_spec(c.quorum_spec(), c.voters()).is_ok());
            prop_assert!(!c.voters().is_empty());
            for v in c.voters() {
                prop_assert_eq!(c.role(*v), Some(Role::Voter));
            }
        }

        // Trimming keeps every configuration a slot at or above the cut needs.
        for cut in 0..=last + 1 {
            let t = m.trimmed_below(cut);
            for s in cut..=last + 1 {
                prop_assert_eq!(t.at(s), m.at(s));
            }
            prop_assert_eq!(t.latest(), m.latest());
        }

        // What is encoded decodes to the same membership.
        let bytes = postcard::to_stdvec(&m).unwrap();
        prop_assert_eq!(postcard::from_bytes::<Membership>(&bytes).unwrap(), m);
    }

    #[test]
    fn assigned_ids_are_never_ids_used_before(alpha in 1u64..8, script in changes()) {
        let (m, outcomes) = run(alpha, &script);
        let mut seen: Vec<NodeId> = vec![1, 2, 3];
        for o in &outcomes {
            if let ChangeOutcome::Applied { assigned, .. } = o {
                for id in assigned {
                    prop_assert!(!seen.contains(id), "id {} reused", id);
                    seen.push(*id);
                }
            }
        }
        prop_assert!(m.max_id() >= *seen.iter().max().unwrap());
    }
}

type Fx = MultiEffects<u64, u64>;

/// Replica 1 of {1, 2, 3}, alpha 2, restarted from a log whose slot 0 chose to add voter 4:
/// slots from 2 on belong to {1, 2, 3, 4}.
fn after_adding_voter_4() -> Replica<Counter> {
    let mut cfg = Config::new(1, vec![1, 2, 3]);
    cfg.window = 1;
    cfg.alpha = 2;
    let add = ConfigChange {
        id: ChangeId { origin: 2, seq: 1 },
        expect_epoch: 0,
        ops: vec![MemberOp::Add {
            id: Some(4),
            role: Role::Voter,
            info: MemberInfo::default(),
        }],
    };
    let chosen = |value| Entry {
        ballot: Ballot::new(1, 2),
        value,
        chosen: true,
    };
    let durable = DurableState {
        promised: Ballot::new(1, 2),
        log: BTreeMap::from([
            (0, chosen(Value::Reconfig(Arc::new(add)))),
            (1, chosen(Value::Noop)),
        ]),
        commit: 2,
        snapshot: None,
    };
    Replica::recover(cfg, Counter::default(), durable).unwrap()
}

fn sent_to(fx: &Fx, kind: &str) -> Vec<NodeId> {
    let mut to: Vec<NodeId> = fx
        .send
        .iter()
        .chain(&fx.send_after_sync)
        .filter(|o| o.msg.kind() == kind && o.to != 1)
        .map(|o| o.to)
        .collect();
    to.sort();
    to
}

#[test]
fn a_replica_prepares_counts_and_accepts_with_the_configuration_of_its_slots() {
    let mut r = after_adding_voter_4();
    assert_eq!(r.applied_index(), 2);
    assert_eq!(r.membership().at(1).voters(), &[1, 2, 3]);
    assert_eq!(r.membership().at(2).voters(), &[1, 2, 3, 4]);

    r.start();
    let mut fx = r.on_timer(Timer::Election);
    if fx.send_after_sync.is_empty() {
        fx = r.on_timer(Timer::Election);
    }
    assert_eq!(sent_to(&fx, "prepare"), vec![2, 3, 4]);
    let ballot = r.ballot().expect("standing");
    let promise = |r: &mut Replica<Counter>, from| {
        r.on_message(
            from,
            Message::Promise {
                ballot,
                entries: vec![],
                log_start: 0,
            },
        )
    };
    promise(&mut r, 1);
    promise(&mut r, 2);
    assert_eq!(
        r.role_kind(),
        RoleKind::Candidate,
        "2 of {{1, 2, 3}} would do, but slot 2 belongs to 4 voters: 3 are needed"
    );
    promise(&mut r, 4);
    assert_eq!(r.role_kind(), RoleKind::Leader);

    let fx = r.on_client_request(Command {
        client: 9,
        seq: 1,
        op: 5,
    });
    assert_eq!(sent_to(&fx, "accept"), vec![2, 3, 4]);
}

#[test]
fn a_replica_listens_to_members_of_its_configurations_only() {
    let prepare = Message::Prepare {
        ballot: Ballot::new(9, 4),
        from: 2,
    };
    let mut before = Replica::new(Config::new(1, vec![1, 2, 3]), Counter::default()).unwrap();
    let fx = before.on_message(4, prepare.clone());
    assert!(fx.send_after_sync.is_empty() && fx.send.is_empty());

    let mut after = after_adding_voter_4();
    let fx = after.on_message(4, prepare);
    let answered: Vec<_> = fx.send_after_sync.iter().map(|o| o.msg.kind()).collect();
    assert_eq!(answered, ["promise"]);

    let mut r = after_adding_voter_4();
    assert_eq!(
        r.on_message(5, Message::CatchUpRequest { from: 0 })
            .send
            .len(),
        0,
        "5 is in no configuration"
    );
}
