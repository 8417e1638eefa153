//! Fast Paxos roles, tested by the exact effects of each step.

use std::sync::Arc;
use synod_core::fast::{
    Acceptor, AcceptorConfig, AcceptorState, Coordinator, CoordinatorConfig, FastEffects, Learner,
    Message, Output, Persist, Recovery, Round, Timer, Vote,
};
use synod_core::quorum::FastQuorum;
use synod_core::NodeId;

const COORD: NodeId = 1;
const LEARNER: NodeId = 201;
const CLIENT: NodeId = 301;

fn quorum(n: u64) -> Arc<FastQuorum> {
    Arc::new(FastQuorum::majority(&(101..101 + n).collect::<Vec<_>>()).unwrap())
}

fn acceptor(id: NodeId, n: u64) -> Acceptor<String> {
    let cfg = AcceptorConfig {
        id,
        quorum: quorum(n),
        learners: vec![LEARNER],
        bug: None,
    };
    Acceptor::recover(cfg, AcceptorState::default())
}

fn coordinator(n: u64, recovery: Recovery) -> Coordinator<String> {
    let cfg = CoordinatorConfig {
        id: COORD,
        quorum: quorum(n),
        recovery,
        retry_ticks: (10, 20),
        seed: 7,
        bug: None,
    };
    Coordinator::recover(cfg, 0)
}

fn vote(round: Round, fast: bool, value: &str) -> Vote<String> {
    Vote {
        round,
        fast,
        value: value.into(),
    }
}

fn propose(v: &str) -> Message<String> {
    Message::Propose { value: v.into() }
}

fn any(round: Round, recovery: Recovery) -> Message<String> {
    Message::Any { round, recovery }
}

/// The messages of `fx`, in order, as (to, message), those held for the sync included.
fn sent(fx: &FastEffects<String>) -> Vec<(NodeId, Message<String>)> {
    fx.all_sends().map(|o| (o.to, o.msg.clone())).collect()
}

#[test]
fn acceptor_votes_for_the_first_proposal_of_a_fast_round_only() {
    let mut a = acceptor(101, 4);
    let r = Round::new(1, COORD);
    assert!(a
        .on_message(COORD, any(r, Recovery::Coordinated))
        .is_empty());
    let fx = a.on_message(CLIENT, propose("x"));
    assert_eq!(fx.persist, vec![Persist::Voted(vote(r, true, "x"))]);
    assert!(fx.send.is_empty(), "a vote leaves only once it is durable");
    let to: Vec<NodeId> = fx.send_after_sync.iter().map(|o| o.to).collect();
    assert_eq!(to, vec![COORD, LEARNER]);
    // A second proposal in the same round gets no vote.
    assert!(a.on_message(CLIENT, propose("y")).is_empty());
    assert_eq!(a.state().vote, Some(vote(r, true, "x")));
}

#[test]
fn proposal_before_any_is_voted_when_any_arrives() {
    let mut a = acceptor(101, 4);
    assert!(a.on_message(CLIENT, propose("early")).is_empty());
    let r = Round::new(2, COORD);
    let fx = a.on_message(COORD, any(r, Recovery::Coordinated));
    assert_eq!(fx.persist, vec![Persist::Voted(vote(r, true, "early"))]);
}

#[test]
fn acceptor_refuses_rounds_below_its_promise() {
    let mut a = acceptor(101, 4);
    let high = Round::new(5, 2);
    let fx = a.on_message(2, Message::Prepare { round: high });
    assert_eq!(fx.persist, vec![Persist::Promised(high)]);
    assert_eq!(
        sent(&fx),
        vec![(
            2,
            Message::Promise {
                round: high,
                vote: None
            }
        )]
    );
    let low = Round::new(4, COORD);
    let fx = a.on_message(
        COORD,
        Message::Accept {
            round: low,
            value: "v".into(),
        },
    );
    assert_eq!(
        sent(&fx),
        vec![(
            COORD,
            Message::Nack {
                round: low,
                promised: high
            }
        )]
    );
    // A prepare below the promise is refused; the same one again is promised again, without a
    // second write.
    let fx = a.on_message(COORD, Message::Prepare { round: low });
    assert_eq!(
        sent(&fx),
        vec![(
            COORD,
            Message::Nack {
                round: low,
                promised: high
            }
        )]
    );
    let fx = a.on_message(2, Message::Prepare { round: high });
    assert!(fx.persist.is_empty());
    assert_eq!(
        sent(&fx),
        vec![(
            2,
            Message::Promise {
                round: high,
                vote: None
            }
        )]
    );
    assert_eq!(a.id(), 101);
    // An Any below the promise opens no fast round.
    assert!(a
        .on_message(COORD, any(low, Recovery::Coordinated))
        .is_empty());
    assert!(a.on_message(CLIENT, propose("x")).is_empty());
    assert_eq!(a.state().vote, None);
}

#[test]
fn uncoordinated_recovery_votes_in_the_next_step_once_a_collision_is_certain() {
    // N = 4: Qc = 3, Qf = 3.
    let mut a = acceptor(101, 4);
    let r = Round::new(1, COORD);
    a.on_message(COORD, any(r, Recovery::Uncoordinated));
    let fx = a.on_message(CLIENT, propose("b"));
    // Uncoordinated: the vote goes to the other acceptors too.
    let to: Vec<NodeId> = fx.send_after_sync.iter().map(|o| o.to).collect();
    assert_eq!(to, vec![COORD, 102, 103, 104, LEARNER]);
    // a, a from 102 and 103: a can still reach 3 with 104.
    let fx = a.on_message(
        102,
        Message::Accepted {
            vote: vote(r, true, "a"),
        },
    );
    assert!(fx.is_empty());
    let fx = a.on_message(
        103,
        Message::Accepted {
            vote: vote(r, true, "a"),
        },
    );
    assert!(fx.is_empty(), "a may still be chosen: no recovery yet");
    // b from 104: a has 2, b has 2, nobody silent: a collision. The rule is free and suggests
    // the most voted value, ties to the smallest: a.
    let fx = a.on_message(
        104,
        Message::Accepted {
            vote: vote(r, true, "b"),
        },
    );
    assert_eq!(
        fx.persist,
        vec![Persist::Voted(vote(r.next_step(), true, "a"))]
    );
}

#[test]
fn uncoordinated_recovery_waits_while_a_value_may_still_be_chosen() {
    // N = 5: Qc = 3, Qf = 4. Heard b, a, a with two silent: a may still reach 4.
    let mut a = acceptor(101, 5);
    let r = Round::new(1, COORD);
    a.on_message(COORD, any(r, Recovery::Uncoordinated));
    a.on_message(CLIENT, propose("b"));
    a.on_message(
        102,
        Message::Accepted {
            vote: vote(r, true, "a"),
        },
    );
    let fx = a.on_message(
        103,
        Message::Accepted {
            vote: vote(r, true, "a"),
        },
    );
    assert!(fx.is_empty());
    // c from 104: a has 2 and one acceptor is silent, so 3 at most: certain, and free; the
    // most voted value is suggested.
    let fx = a.on_message(
        104,
        Message::Accepted {
            vote: vote(r, true, "c"),
        },
    );
    assert_eq!(
        fx.persist,
        vec![Persist::Voted(vote(r.next_step(), true, "a"))]
    );
    // The last vote of the old step changes nothing: the next step has its vote.
    let fx = a.on_message(
        105,
        Message::Accepted {
            vote: vote(r, true, "b"),
        },
    );
    assert!(fx.is_empty());
}

#[test]
fn coordinated_recovery_sends_a_classic_accept_for_the_next_step() {
    let mut c = coordinator(4, Recovery::Coordinated);
    let fx = c.start();
    let r = Round::new(1, COORD);
    assert_eq!(fx.persist, vec![Persist::Number(1)]);
    assert!(
        fx.send.is_empty(),
        "a prepare waits for its round number to be durable"
    );
    assert_eq!(fx.send_after_sync.len(), 4);
    assert_eq!(fx.timers.len(), 1);
    let mut fx = FastEffects::new();
    for id in 101..=103 {
        fx = c.on_message(
            id,
            Message::Promise {
                round: r,
                vote: None,
            },
        );
    }
    let anys: Vec<_> = sent(&fx);
    assert_eq!(anys.len(), 4);
    assert!(anys
        .iter()
        .all(|(_, m)| *m == any(r, Recovery::Coordinated)));
    // Votes a, b, a, b: a collision among all four.
    for (id, v) in [(101, "a"), (102, "b"), (103, "a")] {
        let fx = c.on_message(
            id,
            Message::Accepted {
                vote: vote(r, true, v),
            },
        );
        assert!(fx.is_empty(), "no collision is certain before vote {id}");
    }
    let fx = c.on_message(
        104,
        Message::Accepted {
            vote: vote(r, true, "b"),
        },
    );
    let accepts = sent(&fx);
    assert_eq!(accepts.len(), 4);
    assert!(accepts.iter().all(|(_, m)| *m
        == Message::Accept {
            round: r.next_step(),
            value: "a".into()
        }));
    assert_eq!(c.round(), Some(r.next_step()));
}

#[test]
fn coordinator_proposes_the_possibly_chosen_value_after_phase_1() {
    // N = 5 (Qf = 4): promises report a, a, b from fast round 1.1; a may have been chosen.
    let mut c = coordinator(5, Recovery::Coordinated);
    c.start();
    let old = Round::new(1, 9);
    let fx = c.on_timer(Timer::Retry);
    assert_eq!(fx.persist, vec![Persist::Number(2)]);
    let r = Round::new(2, COORD);
    let mut fx = FastEffects::new();
    for (id, v) in [(101, "b"), (102, "a"), (103, "a")] {
        let vote = Some(vote(old, true, v));
        fx = c.on_message(id, Message::Promise { round: r, vote });
    }
    assert!(sent(&fx).iter().all(|(_, m)| *m
        == Message::Accept {
            round: r,
            value: "a".into()
        }));
    assert_eq!(sent(&fx).len(), 5);
}

#[test]
fn learner_needs_a_fast_quorum_in_a_fast_round_and_a_classic_one_in_a_classic_round() {
    // N = 5: Qc = 3, Qf = 4.
    let mut l = Learner::new(LEARNER, quorum(5), vec![CLIENT], 50);
    let fast = Round::new(1, COORD);
    for id in 101..=103 {
        let fx = l.on_message(
            id,
            Message::Accepted {
                vote: vote(fast, true, "x"),
            },
        );
        assert!(
            fx.output.is_empty(),
            "three votes are not a fast quorum of five"
        );
    }
    let classic = fast.next_step();
    l.on_message(
        101,
        Message::Accepted {
            vote: vote(classic, false, "y"),
        },
    );
    l.on_message(
        102,
        Message::Accepted {
            vote: vote(classic, false, "y"),
        },
    );
    let fx = l.on_message(
        104,
        Message::Accepted {
            vote: vote(classic, false, "y"),
        },
    );
    assert_eq!(fx.output, vec![Output::Chosen("y".into())]);
    assert_eq!(
        sent(&fx),
        vec![(CLIENT, Message::Chosen { value: "y".into() })]
    );
    // A fourth fast vote afterwards changes nothing.
    let fx = l.on_message(
        104,
        Message::Accepted {
            vote: vote(fast, true, "x"),
        },
    );
    assert!(fx.output.is_empty());
    assert_eq!(l.learned(), Some(&"y".to_string()));
}

#[test]
fn learner_ignores_votes_of_non_members_and_of_a_mislabelled_round() {
    let mut l = Learner::new(LEARNER, quorum(3), vec![], 50);
    let r = Round::new(1, COORD);
    l.on_message(
        101,
        Message::Accepted {
            vote: vote(r, false, "x"),
        },
    );
    // The same round claimed fast by another acceptor: not counted.
    l.on_message(
        102,
        Message::Accepted {
            vote: vote(r, true, "x"),
        },
    );
    let fx = l.on_message(
        999,
        Message::Accepted {
            vote: vote(r, false, "x"),
        },
    );
    assert!(fx.output.is_empty());
    let fx = l.on_message(
        103,
        Message::Accepted {
            vote: vote(r, false, "x"),
        },
    );
    assert_eq!(fx.output, vec![Output::Chosen("x".into())]);
}

fn server(id: NodeId, coordinator: bool) -> synod_core::fast::Server<String> {
    let servers: Vec<NodeId> = (101..=104).collect();
    let quorum = Arc::new(FastQuorum::majority(&servers).unwrap());
    let acceptor = AcceptorConfig {
        id,
        quorum: quorum.clone(),
        learners: servers,
        bug: None,
    };
    let coord = coordinator.then(|| {
        let cfg = CoordinatorConfig {
            id,
            quorum,
            recovery: Recovery::Uncoordinated,
            retry_ticks: (10, 20),
            seed: 1,
            bug: None,
        };
        (cfg, 0)
    });
    synod_core::fast::Server::recover(acceptor, AcceptorState::default(), vec![CLIENT], 50, coord)
}

#[test]
fn a_server_hears_its_own_promise_only_after_the_sync() {
    let mut s = server(101, true);
    let fx = s.start();
    assert_eq!(fx.persist, vec![Persist::Number(1)]);
    assert!(fx.send.is_empty());
    let to: Vec<NodeId> = fx.send_after_sync.iter().map(|o| o.to).collect();
    assert_eq!(
        to,
        vec![101, 102, 103, 104],
        "its own prepare waits for the sync too"
    );
    let r = Round::new(1, 101);
    let fx = s.on_message(101, Message::Prepare { round: r });
    assert_eq!(fx.persist, vec![Persist::Promised(r)]);
    assert_eq!(
        sent(&fx),
        vec![(
            101,
            Message::Promise {
                round: r,
                vote: None
            }
        )]
    );
    assert!(fx.send.is_empty());
    // Its own promise and two more make a classic quorum (3 of 4): Any, to itself at once.
    s.on_message(
        101,
        Message::Promise {
            round: r,
            vote: None,
        },
    );
    s.on_message(
        102,
        Message::Promise {
            round: r,
            vote: None,
        },
    );
    let fx = s.on_message(
        103,
        Message::Promise {
            round: r,
            vote: None,
        },
    );
    let to: Vec<NodeId> = fx.send.iter().map(|o| o.to).collect();
    assert_eq!(
        to,
        vec![102, 103, 104],
        "the Any to itself is handled inside the step"
    );
}

#[test]
fn a_server_counts_its_own_vote_only_after_the_sync() {
    let mut s = server(102, false);
    let r = Round::new(1, 101);
    s.on_message(101, any(r, Recovery::Coordinated));
    let fx = s.on_message(CLIENT, propose("x"));
    assert_eq!(fx.persist, vec![Persist::Voted(vote(r, true, "x"))]);
    assert!(fx.output.is_empty());
    assert!(fx
        .send_after_sync
        .iter()
        .any(|o| o.to == 102 && matches!(o.msg, Message::Accepted { .. })));
    // Two peers' votes: with its own not yet handed back, three of four is not counted.
    s.on_message(
        103,
        Message::Accepted {
            vote: vote(r, true, "x"),
        },
    );
    let fx = s.on_message(
        104,
        Message::Accepted {
            vote: vote(r, true, "x"),
        },
    );
    assert!(fx.output.is_empty(), "its own vote is not durable yet");
    let fx = s.on_message(
        102,
        Message::Accepted {
            vote: vote(r, true, "x"),
        },
    );
    assert_eq!(fx.output, vec![Output::Chosen("x".into())]);
    assert_eq!(s.learned(), Some(&"x".to_string()));
}

#[test]
fn a_learner_that_knows_answers_queries_and_a_learner_that_asks_adopts_the_answer() {
    let mut knows = Learner::new(201, quorum(3), vec![], 50);
    let r = Round::new(1, COORD);
    for id in 101..=102 {
        knows.on_message(
            id,
            Message::Accepted {
                vote: vote(r, false, "x"),
            },
        );
    }
    assert_eq!(knows.learned(), Some(&"x".to_string()));
    let fx = knows.on_message(202, Message::Query);
    assert_eq!(
        sent(&fx),
        vec![(202, Message::Chosen { value: "x".into() })]
    );

    let mut asks = Learner::new(202, quorum(3), vec![CLIENT], 50).ask_also(vec![201, 202, COORD]);
    let fx = asks.on_timer(Timer::Query);
    let to: Vec<NodeId> = sent(&fx).into_iter().map(|(to, _)| to).collect();
    assert_eq!(
        to,
        vec![101, 102, 103, 201, COORD],
        "acceptors and peers, not itself"
    );
    let fx = asks.on_message(201, Message::Chosen { value: "x".into() });
    assert_eq!(fx.output, vec![Output::Chosen("x".into())]);
    assert_eq!(
        sent(&fx),
        vec![(CLIENT, Message::Chosen { value: "x".into() })]
    );
    // Hearing it again, from anyone, changes nothing and tells nobody twice.
    let again = asks.on_message(COORD, Message::Chosen { value: "x".into() });
    assert!(again.is_empty());
    assert_eq!(asks.id(), 202);
    assert!(
        asks.on_timer(Timer::Query).is_empty(),
        "no more queries once learned"
    );
}

#[test]
fn a_waiting_proposal_gets_one_rounds_vote_only() {
    let mut a = acceptor(101, 4);
    a.on_message(CLIENT, propose("early"));
    let r1 = Round::new(1, COORD);
    let fx = a.on_message(COORD, any(r1, Recovery::Coordinated));
    assert_eq!(fx.persist, vec![Persist::Voted(vote(r1, true, "early"))]);
    // A later fast round does not vote for it again by itself: it waits for a proposal.
    let r2 = Round::new(2, COORD);
    assert!(a
        .on_message(COORD, any(r2, Recovery::Coordinated))
        .is_empty());
    let fx = a.on_message(CLIENT, propose("late"));
    assert_eq!(fx.persist, vec![Persist::Voted(vote(r2, true, "late"))]);
}

#[test]
fn a_peer_vote_in_a_step_without_successor_is_refused() {
    let mut a = acceptor(101, 4);
    let r = Round::new(1, COORD);
    a.on_message(COORD, any(r, Recovery::Uncoordinated));
    a.on_message(CLIENT, propose("x"));
    let last = Round {
        step: u32::MAX,
        ..r
    };
    for peer in 102..=104 {
        let fx = a.on_message(
            peer,
            Message::Accepted {
                vote: vote(last, true, "y"),
            },
        );
        assert!(
            fx.is_empty(),
            "a bad peer's vote neither panics nor moves the acceptor"
        );
    }
}

#[test]
fn peer_votes_outside_an_announced_uncoordinated_round_are_ignored() {
    // N = 5 (Qf 4): a, a, b, b from four peers make a certain collision. Still, an acceptor
    // never told the round is uncoordinated must not vote in its next step (that round's
    // coordinator may run it classic).
    let split = [(102, "a"), (103, "a"), (104, "b"), (105, "b")];
    let r = Round::new(1, COORD);
    let mut a = acceptor(101, 5);
    for (peer, v) in split {
        assert!(a
            .on_message(
                peer,
                Message::Accepted {
                    vote: vote(r, true, v)
                }
            )
            .is_empty());
    }
    // Nor when told it is coordinated.
    let mut b = acceptor(101, 5);
    b.on_message(COORD, any(r, Recovery::Coordinated));
    for (peer, v) in split {
        assert!(b
            .on_message(
                peer,
                Message::Accepted {
                    vote: vote(r, true, v)
                }
            )
            .is_empty());
    }
    // Classic votes and votes from outside the membership do not count either.
    let mut c = acceptor(101, 5);
    c.on_message(COORD, any(r, Recovery::Uncoordinated));
    for (peer, v) in split {
        let classic = vote(r, false, v);
        assert!(c
            .on_message(peer, Message::Accepted { vote: classic })
            .is_empty());
        let stranger = Message::Accepted {
            vote: vote(r, true, v),
        };
        assert!(c.on_message(peer + 800, stranger).is_empty());
    }
    // The same votes, fast, from members, in an announced uncoordinated round: it recovers.
    let fx = (102..=105)
        .zip(["a", "a", "b", "b"])
        .map(|(peer, v)| {
            c.on_message(
                peer,
                Message::Accepted {
                    vote: vote(r, true, v),
                },
            )
        })
        .last()
        .expect("four votes");
    assert_eq!(
        fx.persist,
        vec![Persist::Voted(vote(r.next_step(), true, "a"))]
    );
}
