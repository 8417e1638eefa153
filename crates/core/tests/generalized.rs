//! Generalized Paxos roles, tested by the exact effects of each step.

use std::sync::Arc;
use synod_core::generalized::{
    Acceptor, AcceptorConfig, AcceptorState, CStruct, Command, GenEffects, Leader, LeaderConfig,
    Learner, Message, Op, Output, Persist, Registers, Relation, Round,
};
use synod_core::quorum::FastQuorum;
use synod_core::NodeId;

const LEADER: NodeId = 1;
const LEARNER: NodeId = 201;

fn quorum() -> Arc<FastQuorum> {
    Arc::new(FastQuorum::majority(&[101, 102, 103]).unwrap())
}

fn rel() -> Arc<dyn Relation> {
    Arc::new(Registers)
}

fn cmd(client: NodeId, seq: u64, op: Op) -> Command {
    Command { client, seq, op }
}

fn hist(cmds: &[&Command]) -> CStruct {
    CStruct::from_commands(cmds.iter().map(|c| (*c).clone()))
}

fn acceptor(id: NodeId) -> Acceptor {
    let cfg = AcceptorConfig {
        id,
        quorum: quorum(),
        learners: vec![LEARNER],
        relation: rel(),
        bug: None,
    };
    Acceptor::recover(cfg, AcceptorState::default())
}

fn sent(fx: &GenEffects) -> Vec<(NodeId, Message)> {
    fx.all_sends().map(|o| (o.to, o.msg.clone())).collect()
}

#[test]
fn an_open_round_grows_by_each_proposal_and_reports_the_whole_history() {
    let mut a = acceptor(101);
    let r = Round::new(1, LEADER);
    let ra = cmd(301, 0, Op::read("A"));
    let wb = cmd(302, 0, Op::write("B"));
    // A proposal before the round opens waits, then joins the base.
    assert!(a
        .on_message(301, Message::Propose { cmd: ra.clone() })
        .is_empty());
    let fx = a.on_message(
        LEADER,
        Message::Phase2Start {
            round: r,
            base: CStruct::new(),
        },
    );
    assert_eq!(fx.persist, vec![Persist::Voted(r, hist(&[&ra]))]);
    assert!(fx.send.is_empty(), "a vote leaves after the sync");
    let fx = a.on_message(302, Message::Propose { cmd: wb.clone() });
    let both = hist(&[&ra, &wb]);
    assert_eq!(fx.persist, vec![Persist::Voted(r, both.clone())]);
    let to: Vec<NodeId> = sent(&fx).into_iter().map(|(t, _)| t).collect();
    assert_eq!(to, vec![LEARNER, LEADER]);
    // The same command again changes nothing.
    assert!(a.on_message(302, Message::Propose { cmd: wb }).is_empty());
    // A promise to a higher round ends the round: later proposals wait.
    let higher = Round::new(2, 2);
    let fx = a.on_message(2, Message::Prepare { round: higher });
    assert_eq!(
        sent(&fx),
        vec![(
            2,
            Message::Promise {
                round: higher,
                vote: Some((r, both))
            }
        )]
    );
    let late = cmd(303, 0, Op::read("B"));
    assert!(a.on_message(303, Message::Propose { cmd: late }).is_empty());
}

#[test]
fn a_learner_learns_the_common_prefix_of_a_fast_quorum() {
    let mut l = Learner::new(LEARNER, quorum(), rel(), vec![], 50);
    let r = Round::new(1, LEADER);
    let (ra, rb, wb) = (
        cmd(301, 0, Op::read("A")),
        cmd(302, 0, Op::read("B")),
        cmd(303, 0, Op::write("B")),
    );
    // Qf is 3 of 3. Reads in different orders commute; Write(B) is where they differ.
    l.on_message(
        101,
        Message::Accepted {
            round: r,
            value: hist(&[&ra, &rb, &wb]),
        },
    );
    l.on_message(
        102,
        Message::Accepted {
            round: r,
            value: hist(&[&rb, &ra]),
        },
    );
    let fx = l.on_message(
        103,
        Message::Accepted {
            round: r,
            value: hist(&[&rb, &wb, &ra]),
        },
    );
    let learned = hist(&[&ra, &rb]);
    assert_eq!(fx.output.len(), 1);
    let Output::Learned(h) = &fx.output[0] else {
        panic!("{fx:?}")
    };
    assert!(h.equivalent(&learned, &Registers), "{h}");
    // Clients hear that their commands are learned.
    let done: Vec<NodeId> = sent(&fx).into_iter().map(|(t, _)| t).collect();
    assert_eq!(done, vec![301, 302]);
}

#[test]
fn a_leader_opens_with_the_safe_history_and_prepares_the_next_step_on_a_conflict() {
    let cfg = LeaderConfig {
        id: LEADER,
        quorum: quorum(),
        relation: rel(),
        retry_ticks: (10, 20),
        seed: 3,
    };
    let mut l = Leader::recover(cfg, 4);
    let fx = l.start();
    assert_eq!(fx.persist, vec![Persist::Number(5)]);
    let r = Round::new(5, LEADER);
    let (wb, rb) = (cmd(301, 0, Op::write("B")), cmd(302, 0, Op::read("B")));
    let old = Round::new(2, 9);
    l.on_message(
        101,
        Message::Promise {
            round: r,
            vote: Some((old, hist(&[&wb]))),
        },
    );
    let fx = l.on_message(
        102,
        Message::Promise {
            round: r,
            vote: Some((old, hist(&[&wb]))),
        },
    );
    // Q = {101, 102}, one acceptor outside: Qf 3 needs 2 of Q, who both hold Write(B).
    let opened: Vec<Message> = sent(&fx).into_iter().map(|(_, m)| m).collect();
    assert_eq!(opened.len(), 3);
    assert!(opened.iter().all(|m| *m
        == Message::Phase2Start {
            round: r,
            base: hist(&[&wb])
        }));
    // Two acceptors order Read(B) and a second Write(B) differently: a conflict.
    let wb2 = cmd(303, 0, Op::write("B"));
    l.on_message(
        101,
        Message::Accepted {
            round: r,
            value: hist(&[&wb, &rb, &wb2]),
        },
    );
    let fx = l.on_message(
        102,
        Message::Accepted {
            round: r,
            value: hist(&[&wb, &wb2, &rb]),
        },
    );
    let next = r.next_step();
    assert_eq!(sent(&fx).len(), 3);
    assert!(sent(&fx)
        .iter()
        .all(|(_, m)| *m == Message::Prepare { round: next }));
    assert_eq!(l.round(), Some(next));
}
