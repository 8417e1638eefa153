//! The commit protocols' processes, one rule at a time, by the effects each step returns.

use std::collections::BTreeSet;
use synod_core::commit::paxos_commit::{self, Val};
use synod_core::commit::{
    three_pc, two_pc, CommitNode, CommitOutput, CommitTimer, Decision, Setup,
};
use synod_core::Ballot;

const C: u64 = 1;

fn setup(refuse: &[(u64, u64)], acceptors: usize) -> Setup {
    Setup {
        coordinator: C,
        participants: vec![11, 12, 13],
        acceptors: (21..21 + acceptors as u64).collect(),
        refuse: refuse.iter().copied().collect::<BTreeSet<_>>(),
        timeout: 20,
        bug: None,
    }
}

fn decided<M, R>(fx: &synod_core::commit::CommitEffects<M, R>) -> Vec<Decision> {
    fx.output
        .iter()
        .filter_map(|o| match o {
            CommitOutput::Decided { decision, .. } => Some(*decision),
            _ => None,
        })
        .collect()
}

#[test]
fn two_pc_commits_on_all_yes_after_persisting_and_aborts_on_one_no() {
    let s = setup(&[(2, 12)], 0);
    let (mut c, _) = two_pc::Node::boot(&s, C, &[]);
    c.begin(1);
    let mut fx = c.on_message(
        11,
        two_pc::Msg::Vote {
            tx: 1,
            vote: synod_core::commit::Vote::Yes,
        },
    );
    fx.extend(c.on_message(
        12,
        two_pc::Msg::Vote {
            tx: 1,
            vote: synod_core::commit::Vote::Yes,
        },
    ));
    assert!(
        fx.send_after_sync.is_empty(),
        "no decision before the last vote"
    );
    let fx = c.on_message(
        13,
        two_pc::Msg::Vote {
            tx: 1,
            vote: synod_core::commit::Vote::Yes,
        },
    );
    assert_eq!(
        fx.persist,
        vec![two_pc::Record::Decision {
            tx: 1,
            decision: Decision::Commit
        }]
    );
    // The outcome reveals the decision: it leaves only once the decision is durable.
    assert!(fx.send.is_empty());
    assert_eq!(fx.send_after_sync.len(), 3);

    c.begin(2);
    let fx = c.on_message(
        12,
        two_pc::Msg::Vote {
            tx: 2,
            vote: synod_core::commit::Vote::No,
        },
    );
    assert_eq!(
        fx.persist,
        vec![two_pc::Record::Decision {
            tx: 2,
            decision: Decision::Abort
        }]
    );
}

#[test]
fn two_pc_presumes_abort_after_a_restart_without_a_decision() {
    let s = setup(&[], 0);
    let (mut c, fx) = two_pc::Node::boot(&s, C, &[]);
    assert!(fx.is_empty());
    let fx = c.on_message(11, two_pc::Msg::Ask { tx: 7 });
    assert_eq!(
        fx.send[0].msg,
        two_pc::Msg::Outcome {
            tx: 7,
            decision: Decision::Abort
        }
    );
    // With a decision on disk it repeats that decision to everyone.
    let rec = [two_pc::Record::Decision {
        tx: 7,
        decision: Decision::Commit,
    }];
    let (_, fx) = two_pc::Node::boot(&s, C, &rec);
    assert_eq!(fx.send.len(), 3);
    assert!(fx.send.iter().all(|o| o.msg
        == two_pc::Msg::Outcome {
            tx: 7,
            decision: Decision::Commit
        }));
}

#[test]
fn two_pc_participants_refuse_when_asked_before_voting_and_stay_silent_when_uncertain() {
    let s = setup(&[], 0);
    let (mut p, _) = two_pc::Node::boot(&s, 12, &[]);
    let fx = p.on_message(11, two_pc::Msg::Ask { tx: 1 });
    assert_eq!(decided(&fx), vec![Decision::Abort]);
    // Its later vote is the no it committed to.
    let fx = p.on_message(C, two_pc::Msg::Prepare { tx: 1 });
    assert_eq!(
        fx.send_after_sync[0].msg,
        two_pc::Msg::Vote {
            tx: 1,
            vote: synod_core::commit::Vote::No
        }
    );
    // Uncertain (voted yes, no outcome): nothing to say.
    p.on_message(C, two_pc::Msg::Prepare { tx: 2 });
    let fx = p.on_message(11, two_pc::Msg::Ask { tx: 2 });
    assert!(fx.send.is_empty() && fx.send_after_sync.is_empty());
    // A commit for a transaction it did not vote yes on is refused.
    let fx = p.on_message(
        C,
        two_pc::Msg::Outcome {
            tx: 3,
            decision: Decision::Commit,
        },
    );
    assert!(decided(&fx).is_empty());
}

#[test]
fn three_pc_termination_commits_from_a_pre_commit_and_aborts_when_all_are_uncertain() {
    use three_pc::{Msg, State};
    let s = setup(&[], 0);
    let (mut p, _) = three_pc::Node::boot(&s, 11, &[]);
    p.on_message(C, Msg::CanCommit { tx: 1 });
    let fx = p.on_timer(CommitTimer { tx: 1 });
    assert_eq!(fx.send.len(), 2, "asks the other two for their states");
    p.on_message(
        12,
        Msg::StateReport {
            tx: 1,
            state: State::PreCommitted,
        },
    );
    p.on_message(
        13,
        Msg::StateReport {
            tx: 1,
            state: State::Uncertain,
        },
    );
    let fx = p.on_timer(CommitTimer { tx: 1 });
    assert!(decided(&fx).is_empty(), "moves P3 to pre-committed first");
    assert_eq!(fx.send_after_sync.len(), 1);
    assert_eq!(fx.send_after_sync[0].to, 13);
    let fx = p.on_timer(CommitTimer { tx: 1 });
    assert_eq!(decided(&fx), vec![Decision::Commit]);

    p.on_message(C, Msg::CanCommit { tx: 2 });
    p.on_timer(CommitTimer { tx: 2 });
    p.on_message(
        12,
        Msg::StateReport {
            tx: 2,
            state: State::Uncertain,
        },
    );
    let fx = p.on_timer(CommitTimer { tx: 2 });
    assert_eq!(
        decided(&fx),
        vec![Decision::Abort],
        "silence is taken for a crash"
    );
}

#[test]
fn three_pc_participant_back_from_a_crash_waits_for_everyone() {
    use three_pc::{Msg, Record, State};
    let s = setup(&[], 0);
    let rec = [Record::Voted {
        tx: 1,
        vote: synod_core::commit::Vote::Yes,
    }];
    let (mut p, _) = three_pc::Node::boot(&s, 11, &rec);
    p.on_timer(CommitTimer { tx: 1 });
    p.on_message(
        12,
        Msg::StateReport {
            tx: 1,
            state: State::Uncertain,
        },
    );
    let fx = p.on_timer(CommitTimer { tx: 1 });
    assert!(decided(&fx).is_empty(), "P3 may have committed without it");
    assert_eq!(fx.send.len(), 1, "asks P3 again");
    p.on_message(
        13,
        Msg::StateReport {
            tx: 1,
            state: State::Committed,
        },
    );
    let fx = p.on_timer(CommitTimer { tx: 1 });
    assert_eq!(decided(&fx), vec![Decision::Commit]);
}

#[test]
fn paxos_commit_acceptor_takes_ballot_zero_only_from_its_participant_and_keeps_promises() {
    use paxos_commit::Msg;
    let s = setup(&[], 3);
    let (mut a, _) = paxos_commit::Node::boot(&s, 21, &[]);
    let forged = Msg::Phase2a {
        tx: 1,
        ballot: Ballot::ZERO,
        values: vec![(12, Val::Prepared)],
    };
    assert!(
        a.on_message(11, forged).is_empty(),
        "P1 may not vote for P2"
    );
    let own = Msg::Phase2a {
        tx: 1,
        ballot: Ballot::ZERO,
        values: vec![(11, Val::Prepared)],
    };
    let fx = a.on_message(11, own);
    assert_eq!(fx.persist.len(), 1);
    assert_eq!(
        fx.send_after_sync[0].to, C,
        "ballot 0 reports to the coordinator"
    );
    let fx = a.on_message(
        22,
        Msg::Phase1a {
            tx: 1,
            ballot: Ballot::new(2, 22),
        },
    );
    match &fx.send_after_sync[0].msg {
        Msg::Phase1b { accepted, .. } => {
            assert_eq!(accepted, &vec![(11, Ballot::ZERO, Val::Prepared)])
        }
        other => panic!("{other:?}"),
    }
    // Below the promise: refused, with the promise named.
    let fx = a.on_message(
        23,
        Msg::Phase1a {
            tx: 1,
            ballot: Ballot::new(1, 23),
        },
    );
    assert_eq!(
        fx.send[0].msg,
        Msg::Nack {
            tx: 1,
            promised: Ballot::new(2, 22)
        }
    );
    let late = Msg::Phase2a {
        tx: 1,
        ballot: Ballot::ZERO,
        values: vec![(12, Val::Aborted)],
    };
    assert!(
        a.on_message(12, late).persist.is_empty(),
        "a late ballot-0 vote is refused"
    );
}

#[test]
fn paxos_commit_recovery_keeps_what_may_be_chosen_and_aborts_the_silent() {
    use paxos_commit::{Msg, Record};
    let s = setup(&[], 3);
    let (mut l, _) = paxos_commit::Node::boot(&s, 21, &[Record::LeaderRound(4)]);
    let fx = l.on_message(11, Msg::Help { tx: 1 });
    assert_eq!(
        fx.persist,
        vec![Record::LeaderRound(5)],
        "a round above every one used"
    );
    let b = Ballot::new(5, 21);
    l.on_message(
        21,
        Msg::Phase1b {
            tx: 1,
            ballot: b,
            accepted: vec![(11, Ballot::ZERO, Val::Prepared)],
        },
    );
    let fx = l.on_message(
        22,
        Msg::Phase1b {
            tx: 1,
            ballot: b,
            accepted: vec![
                (11, Ballot::new(3, 22), Val::Aborted),
                (12, Ballot::ZERO, Val::Prepared),
            ],
        },
    );
    let values = match &fx.send[0].msg {
        Msg::Phase2a { values, .. } => values.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        values,
        vec![(11, Val::Aborted), (12, Val::Prepared), (13, Val::Aborted)],
        "the highest ballot's value where one was accepted, Aborted where none was"
    );
    let mut fx = l.on_message(
        21,
        Msg::Phase2b {
            tx: 1,
            ballot: b,
            values: values.clone(),
        },
    );
    assert!(fx.send.is_empty());
    fx = l.on_message(
        23,
        Msg::Phase2b {
            tx: 1,
            ballot: b,
            values,
        },
    );
    assert_eq!(fx.send.len(), 3);
    assert!(fx.send.iter().all(|o| o.msg
        == Msg::Outcome {
            tx: 1,
            decision: Decision::Abort
        }));
}
