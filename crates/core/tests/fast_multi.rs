//! Fast Multi-Paxos roles, tested by the exact effects of each step, and three servers run to a
//! decision by hand.

use std::collections::BTreeMap;
use std::sync::Arc;
use synod_core::fast::{Recovery, Round, Vote};
use synod_core::fast_multi::{
    Acceptor, AcceptorConfig, AcceptorState, Client, Entry, FmEffects, Leader, LeaderConfig,
    Learner, Message, Output, Persist, Server, Timer,
};
use synod_core::quorum::FastQuorum;
use synod_core::{NodeId, PlantedBug};

const CLIENT: NodeId = 101;

/// Acceptors 1..=n.
fn quorum(n: u64) -> Arc<FastQuorum> {
    Arc::new(FastQuorum::majority(&(1..=n).collect::<Vec<_>>()).unwrap())
}

fn acceptor(id: NodeId, n: u64) -> Acceptor<String> {
    let cfg = AcceptorConfig {
        id,
        quorum: quorum(n),
        learners: (1..=n).collect(),
        bug: None,
    };
    Acceptor::recover(cfg, AcceptorState::default())
}

fn leader_cfg(id: NodeId, n: u64, bug: Option<PlantedBug>) -> LeaderConfig {
    LeaderConfig {
        id,
        quorum: quorum(n),
        heartbeat_ticks: 10,
        election_ticks: 50,
        stall_beats: 2,
        recovery: Recovery::Coordinated,
        bug,
    }
}

fn cmd(v: &str) -> Entry<String> {
    Entry::Command(v.into())
}

fn fast(round: Round, v: &str) -> Vote<Entry<String>> {
    Vote {
        round,
        fast: true,
        value: cmd(v),
    }
}

fn classic(round: Round, v: Entry<String>) -> Vote<Entry<String>> {
    Vote {
        round,
        fast: false,
        value: v,
    }
}

fn propose(v: &str) -> Message<String> {
    Message::Propose { value: v.into() }
}

fn any(round: Round, from: u64) -> Message<String> {
    Message::Any {
        round,
        from,
        commit: 0,
        recovery: Recovery::Coordinated,
    }
}

/// The messages of `fx`, in order, as (to, message), those held for the sync included.
fn sent(fx: &FmEffects<String>) -> Vec<(NodeId, Message<String>)> {
    fx.all_sends().map(|o| (o.to, o.msg.clone())).collect()
}

fn voted(fx: &FmEffects<String>) -> Vec<(u64, Vote<Entry<String>>)> {
    fx.persist
        .iter()
        .filter_map(|p| match p {
            Persist::Voted { slot, vote } => Some((*slot, vote.clone())),
            _ => None,
        })
        .collect()
}

const R1: Round = Round::new(1, 1);
const R2: Round = Round::new(2, 2);

#[test]
fn an_acceptor_gives_each_proposal_its_next_free_slot_from_the_fast_region() {
    let mut a = acceptor(2, 3);
    a.on_message(1, any(R1, 4));
    let fx = a.on_message(CLIENT, propose("x"));
    assert_eq!(voted(&fx), vec![(4, fast(R1, "x"))]);
    // The vote goes to every other learner and to the round's leader, after the sync only.
    assert!(fx.send.is_empty());
    let vote = fast(R1, "x");
    let accepted = Message::Accepted { slot: 4, vote };
    assert_eq!(sent(&fx), vec![(1, accepted.clone()), (3, accepted)]);
    let fx = a.on_message(CLIENT, propose("y"));
    assert_eq!(voted(&fx), vec![(5, fast(R1, "y"))]);
    assert_eq!(a.state().votes.len(), 2);
    assert_eq!(a.state().promised, R1);
}

#[test]
fn a_retried_proposal_repeats_its_vote_instead_of_taking_another_slot() {
    let mut a = acceptor(2, 3);
    a.on_message(1, any(R1, 0));
    a.on_message(CLIENT, propose("x"));
    let fx = a.on_message(CLIENT, propose("x"));
    assert!(fx.persist.is_empty());
    let accepted = Message::Accepted {
        slot: 0,
        vote: fast(R1, "x"),
    };
    assert_eq!(sent(&fx), vec![(1, accepted.clone()), (3, accepted)]);
    assert!(fx.send.is_empty(), "repeated only after the sync");
    // A new fast round forgets it: the same command may take a slot of that round.
    a.on_message(1, any(Round::new(3, 1), 1));
    let fx = a.on_message(CLIENT, propose("x"));
    assert_eq!(voted(&fx), vec![(1, fast(Round::new(3, 1), "x"))]);
}

#[test]
fn proposals_wait_for_a_fast_round_and_take_its_slots_in_arrival_order() {
    let mut a = acceptor(1, 3);
    assert!(a.on_message(CLIENT, propose("x")).is_empty());
    assert!(a.on_message(CLIENT, propose("y")).is_empty());
    assert!(a.on_message(CLIENT, propose("x")).is_empty(), "held once");
    let fx = a.on_message(1, any(R1, 7));
    assert_eq!(voted(&fx), vec![(7, fast(R1, "x")), (8, fast(R1, "y"))]);
}

#[test]
fn a_higher_promise_closes_the_fast_round() {
    let mut a = acceptor(1, 3);
    a.on_message(1, any(R1, 0));
    let fx = a.on_message(2, Message::Prepare { round: R2, from: 0 });
    assert_eq!(fx.persist, vec![Persist::Promised(R2)]);
    assert!(
        a.on_message(CLIENT, propose("x")).is_empty(),
        "no vote in R1 now"
    );
    // An old Any changes nothing; the new one takes the held proposal.
    assert!(a.on_message(1, any(R1, 0)).is_empty());
    let fx = a.on_message(2, any(R2, 0));
    assert_eq!(voted(&fx), vec![(0, fast(R2, "x"))]);
}

#[test]
fn a_promise_reports_every_vote_from_the_first_slot_asked_about() {
    let mut a = acceptor(1, 3);
    a.on_message(1, any(R1, 0));
    for v in ["x", "y", "z"] {
        a.on_message(CLIENT, propose(v));
    }
    let fx = a.on_message(2, Message::Prepare { round: R2, from: 1 });
    let promise = Message::Promise {
        round: R2,
        from: 1,
        votes: vec![(1, fast(R1, "y")), (2, fast(R1, "z"))],
    };
    assert_eq!(sent(&fx), vec![(2, promise)]);
    assert!(fx.send.is_empty(), "a promise leaves after its sync");
    // A lower round is refused, at once.
    let fx = a.on_message(1, Message::Prepare { round: R1, from: 0 });
    let nack = Message::Nack {
        round: R1,
        promised: R2,
    };
    assert_eq!(fx.send.len(), 1);
    assert_eq!(sent(&fx), vec![(1, nack)]);
}

#[test]
fn a_classic_accept_is_taken_once_per_round_and_refused_below_the_promise() {
    let mut a = acceptor(3, 3);
    a.on_message(2, Message::Prepare { round: R2, from: 0 });
    let accept = |round, v: &str| Message::Accept {
        round,
        slot: 0,
        value: cmd(v),
    };
    let fx = a.on_message(2, accept(R2, "x"));
    assert_eq!(voted(&fx), vec![(0, classic(R2, cmd("x")))]);
    assert!(a.on_message(2, accept(R2, "y")).persist.is_empty());
    let fx = a.on_message(1, accept(R1, "z"));
    assert!(fx.persist.is_empty());
    assert_eq!(
        sent(&fx),
        vec![(
            1,
            Message::Nack {
                round: R1,
                promised: R2
            }
        )]
    );
    assert_eq!(a.state().votes[&0], classic(R2, cmd("x")));
}

#[test]
fn acceptor_state_is_rebuilt_from_its_records() {
    let mut state = AcceptorState::<String>::default();
    state.apply(&Persist::Promised(R2));
    state.apply(&Persist::Promised(R1));
    assert_eq!(state.promised, R2, "a promise never goes down");
    let higher = Round::new(5, 1);
    state.apply(&Persist::Voted {
        slot: 3,
        vote: fast(higher, "x"),
    });
    state.apply(&Persist::Number(9));
    assert_eq!(state.promised, higher);
    assert_eq!(state.votes[&3], fast(higher, "x"));
}

fn learner(id: NodeId, n: u64) -> Learner<String> {
    Learner::new(id, quorum(n), (1..=n).collect(), 30)
}

fn accepted(slot: u64, vote: Vote<Entry<String>>) -> Message<String> {
    Message::Accepted { slot, vote }
}

#[test]
fn a_learner_needs_a_fast_quorum_in_a_fast_round_and_a_classic_one_in_a_classic_round() {
    // Five acceptors: classic quorum 3, fast quorum 4.
    let mut l = learner(1, 5);
    for from in 1..=3 {
        let (fx, collided) = l.on_message(from, accepted(0, fast(R1, "x")));
        assert!(fx.output.is_empty(), "3 fast votes are not enough");
        assert_eq!(collided, None);
    }
    let (fx, _) = l.on_message(4, accepted(0, fast(R1, "x")));
    assert_eq!(
        fx.output,
        vec![Output::Chosen {
            slot: 0,
            value: cmd("x")
        }]
    );
    for from in 1..=2 {
        assert!(l
            .on_message(from, accepted(1, classic(R2, Entry::Noop)))
            .0
            .output
            .is_empty());
    }
    let (fx, _) = l.on_message(3, accepted(1, classic(R2, Entry::Noop)));
    assert_eq!(
        fx.output,
        vec![Output::Chosen {
            slot: 1,
            value: Entry::Noop
        }]
    );
    assert_eq!(l.prefix(), 2);
    // Votes from outside the configuration do not count.
    let mut l = learner(1, 3);
    for from in [7, 8, 9] {
        assert!(l
            .on_message(from, accepted(0, fast(R1, "x")))
            .0
            .output
            .is_empty());
    }
}

#[test]
fn a_learner_reports_a_collision_once_no_entry_can_reach_a_fast_quorum() {
    let mut l = learner(1, 5);
    assert_eq!(l.on_message(1, accepted(2, fast(R1, "x"))).1, None);
    assert_eq!(l.on_message(2, accepted(2, fast(R1, "y"))).1, None);
    // x could still get 1 + 3 silent = 4: no collision until a third dissent.
    assert_eq!(l.on_message(3, accepted(2, fast(R1, "z"))).1, Some((2, R1)));
    assert_eq!(l.highest_heard(), Some(2));
    assert_eq!(l.prefix(), 0);
}

#[test]
fn a_learner_that_falls_behind_asks_and_peers_answer_with_what_was_chosen() {
    let mut l = learner(1, 3);
    let fx = l.on_timer(Timer::Query);
    assert!(sent(&fx).is_empty(), "not behind: nothing asked");
    l.note_commit(2);
    let fx = l.on_timer(Timer::Query);
    assert_eq!(
        sent(&fx),
        vec![
            (2, Message::Query { from: 0 }),
            (3, Message::Query { from: 0 })
        ]
    );
    let mut peer = learner(2, 3);
    peer.on_message(
        2,
        Message::Chosen {
            slot: 0,
            value: cmd("a"),
        },
    );
    peer.on_message(
        2,
        Message::Chosen {
            slot: 1,
            value: cmd("b"),
        },
    );
    let (fx, _) = peer.on_message(1, Message::Query { from: 1 });
    assert_eq!(
        sent(&fx),
        vec![(
            1,
            Message::Chosen {
                slot: 1,
                value: cmd("b")
            }
        )]
    );
    for (_, m) in sent(&peer.on_message(1, Message::Query { from: 0 }).0) {
        l.on_message(2, m);
    }
    assert_eq!(l.prefix(), 2);
    assert_eq!(l.chosen(1), Some(&cmd("b")));
    assert!(sent(&l.on_timer(Timer::Query)).is_empty(), "caught up");
}

/// Campaigns with `leader` and returns the round it prepared.
fn campaign(leader: &mut Leader<String>, l: &Learner<String>) -> (Round, FmEffects<String>) {
    leader.start();
    // A leader heard since the last timer lets the first one pass.
    let mut fx = leader.on_timer(Timer::Election, l);
    if fx.persist.is_empty() {
        fx = leader.on_timer(Timer::Election, l);
    }
    let round = match &sent(&fx)[0].1 {
        Message::Prepare { round, .. } => *round,
        other => panic!("expected a Prepare, got {other:?}"),
    };
    (round, fx)
}

#[test]
fn a_leader_finishes_voted_slots_classically_and_opens_the_fast_round_above_them() {
    let l = learner(1, 5);
    let mut leader = Leader::recover(leader_cfg(1, 5, None), 4);
    let (round, fx) = campaign(&mut leader, &l);
    assert_eq!(round, Round::new(5, 1), "above the persisted number");
    assert_eq!(fx.persist, vec![Persist::Number(5)]);
    assert!(fx.send.is_empty(), "Prepare waits for the number's sync");
    assert_eq!(sent(&fx).len(), 5);
    let promise = |votes| Message::Promise {
        round,
        from: 0,
        votes,
    };
    // Slot 0: x possibly chosen (3 of 3 reported, 2 silent: 3 + 2 >= 4). Slot 1: y and z
    // split, nothing possibly chosen: free. Slot 2: nobody voted. Slot 3: a classic vote.
    let old = Round::new(3, 2);
    let p1 = vec![
        (0, fast(old, "x")),
        (1, fast(old, "y")),
        (3, classic(old, cmd("w"))),
    ];
    let p2 = vec![(0, fast(old, "x")), (1, fast(old, "z"))];
    let p3 = vec![(0, fast(old, "x")), (1, fast(old, "z"))];
    assert!(leader.on_message(1, promise(p1), &l).is_empty());
    assert!(leader.on_message(2, promise(p2), &l).is_empty());
    assert_eq!(leader.leading(), None);
    let fx = leader.on_message(3, promise(p3), &l);
    assert_eq!(leader.leading(), Some(round));
    let to_all = |m: Message<String>| (1..=5).map(move |i| (i, m.clone()));
    let accept = |slot, value| Message::Accept { round, slot, value };
    let mut expected: Vec<(NodeId, Message<String>)> = Vec::new();
    expected.extend(to_all(accept(0, cmd("x"))));
    expected.extend(to_all(accept(1, cmd("z"))));
    expected.extend(to_all(accept(2, Entry::Noop)));
    expected.extend(to_all(accept(3, cmd("w"))));
    expected.extend(to_all(Message::Any {
        round,
        from: 4,
        commit: 0,
        recovery: Recovery::Coordinated,
    }));
    assert_eq!(sent(&fx), expected);
    // Its heartbeat repeats the Any.
    let fx = leader.on_timer(Timer::Heartbeat, &l);
    assert_eq!(sent(&fx).len(), 5);
    assert!(matches!(sent(&fx)[0].1, Message::Any { from: 4, .. }));
}

#[test]
fn the_planted_bug_opens_the_fast_round_over_voted_slots() {
    let l = learner(1, 3);
    let mut leader = Leader::recover(leader_cfg(1, 3, Some(PlantedBug::AnyOverVotedSlots)), 0);
    let (round, _) = campaign(&mut leader, &l);
    let votes = vec![(0, fast(Round::new(0, 2), "x"))];
    leader.on_message(
        1,
        Message::Promise {
            round,
            from: 0,
            votes,
        },
        &l,
    );
    let fx = leader.on_message(
        2,
        Message::Promise {
            round,
            from: 0,
            votes: vec![],
        },
        &l,
    );
    let anys: Vec<u64> = sent(&fx)
        .iter()
        .filter_map(|(_, m)| match m {
            Message::Any { from, .. } => Some(*from),
            _ => None,
        })
        .collect();
    assert_eq!(anys, vec![0, 0, 0]);
}

#[test]
fn promises_from_strangers_or_for_other_rounds_do_not_count() {
    let l = learner(1, 3);
    let mut leader = Leader::recover(leader_cfg(1, 3, None), 0);
    let (round, _) = campaign(&mut leader, &l);
    let ok = |from| Message::Promise {
        round,
        from,
        votes: vec![],
    };
    leader.on_message(9, ok(0), &l);
    leader.on_message(2, ok(1), &l);
    let other = Message::Promise {
        round: Round::new(7, 3),
        from: 0,
        votes: vec![],
    };
    leader.on_message(3, other, &l);
    // A vote at or above the round prepared cannot be in a promise for it.
    let bad = Message::Promise {
        round,
        from: 0,
        votes: vec![(0, fast(round, "x"))],
    };
    leader.on_message(3, bad, &l);
    assert_eq!(leader.leading(), None);
    leader.on_message(2, ok(0), &l);
    assert_eq!(leader.leading(), None, "one promise of the two needed");
    leader.on_message(3, ok(0), &l);
    assert_eq!(leader.leading(), Some(round));
}

#[test]
fn a_refusal_or_a_higher_round_ends_leadership_and_the_next_campaign_goes_above_it() {
    let l = learner(1, 3);
    let mut leader = Leader::recover(leader_cfg(1, 3, None), 0);
    let (round, _) = campaign(&mut leader, &l);
    let promise = Message::Promise {
        round,
        from: 0,
        votes: vec![],
    };
    leader.on_message(1, promise.clone(), &l);
    leader.on_message(2, promise, &l);
    assert_eq!(leader.leading(), Some(round));
    let fx = leader.heard(Round::new(4, 3));
    assert_eq!(leader.leading(), None);
    assert_eq!(fx.timers.len(), 1, "waits for an election again");
    let (next, _) = campaign(&mut leader, &l);
    assert_eq!(next, Round::new(5, 1));
    leader.on_message(
        3,
        Message::Nack {
            round: next,
            promised: Round::new(9, 3),
        },
        &l,
    );
    let (next, _) = campaign(&mut leader, &l);
    assert_eq!(next, Round::new(10, 1));
}

#[test]
fn a_follower_that_hears_a_leader_does_not_campaign() {
    let l = learner(2, 3);
    let mut leader = Leader::recover(leader_cfg(2, 3, None), 0);
    leader.start();
    leader.heard(R1);
    let fx = leader.on_timer(Timer::Election, &l);
    assert!(fx.persist.is_empty() && sent(&fx).is_empty());
    assert_eq!(fx.timers.len(), 1);
    let fx = leader.on_timer(Timer::Election, &l);
    assert_eq!(
        fx.persist,
        vec![Persist::Number(2)],
        "silence: it campaigns"
    );
}

#[test]
fn a_leader_whose_log_stalls_prepares_again() {
    let mut l = learner(1, 3);
    let mut leader = Leader::recover(leader_cfg(1, 3, None), 0);
    let (round, _) = campaign(&mut leader, &l);
    let promise = Message::Promise {
        round,
        from: 0,
        votes: vec![],
    };
    leader.on_message(1, promise.clone(), &l);
    leader.on_message(2, promise, &l);
    // One vote in slot 0 that never completes.
    l.on_message(2, accepted(0, fast(round, "x")));
    assert!(leader.on_timer(Timer::Heartbeat, &l).persist.is_empty());
    let fx = leader.on_timer(Timer::Heartbeat, &l);
    assert_eq!(
        fx.persist,
        vec![Persist::Number(2)],
        "two stalled beats: a new round"
    );
    assert_eq!(leader.leading(), None);
}

fn server(id: NodeId, n: u64) -> Server<String> {
    let acceptor = AcceptorConfig {
        id,
        quorum: quorum(n),
        learners: (1..=n).collect(),
        bug: None,
    };
    let mut cfg = leader_cfg(id, n, None);
    cfg.election_ticks = 50 * id;
    Server::recover(acceptor, AcceptorState::default(), cfg, 0, 30)
}

/// Delivers every message (held ones too, as if every sync were done) until none is left,
/// returning each process's outputs.
fn pump(
    servers: &mut BTreeMap<NodeId, Server<String>>,
    client: &mut Client<String>,
    mut queue: Vec<(NodeId, NodeId, Message<String>)>,
) -> Vec<(NodeId, Output<String>)> {
    let mut outputs = Vec::new();
    while !queue.is_empty() {
        let mut next = Vec::new();
        for (from, to, msg) in queue {
            let fx = match servers.get_mut(&to) {
                Some(s) => s.on_message(from, msg),
                None => client.on_message(msg),
            };
            outputs.extend(fx.output.iter().cloned().map(|o| (to, o)));
            next.extend(fx.all_sends().map(|o| (to, o.to, o.msg.clone())));
        }
        queue = next;
    }
    outputs
}

#[test]
fn three_servers_elect_a_leader_and_apply_a_clients_commands_once_each() {
    let mut servers: BTreeMap<NodeId, Server<String>> =
        (1..=3).map(|i| (i, server(i, 3))).collect();
    let mut client = Client::new(vec![1, 2, 3], vec!["a".into(), "b".into()], 100);
    for s in servers.values_mut() {
        s.start();
    }
    let fx = servers.get_mut(&1).unwrap().on_timer(Timer::Election);
    let queue = fx.all_sends().map(|o| (1, o.to, o.msg.clone())).collect();
    pump(&mut servers, &mut client, queue);
    assert!(servers[&1].leading().is_some());
    let fx = client.start();
    let queue = fx
        .all_sends()
        .map(|o| (CLIENT, o.to, o.msg.clone()))
        .collect();
    let outputs = pump(&mut servers, &mut client, queue);
    let done: Vec<&Output<String>> = outputs
        .iter()
        .filter(|(id, _)| *id == CLIENT)
        .map(|(_, o)| o)
        .collect();
    // Three servers each answer "a", so the client hears a's Done thrice and moves on once.
    assert_eq!(
        done,
        vec![
            &Output::Done {
                value: "a".into(),
                index: 0
            },
            &Output::Done {
                value: "b".into(),
                index: 1
            },
        ]
    );
    assert!(client.finished());
    for s in servers.values() {
        assert_eq!(s.applied(), 2);
        assert_eq!(s.applied_through(), 2);
    }
    // The command proposed again after it was applied is answered at once, with its index.
    let fx = servers
        .get_mut(&2)
        .unwrap()
        .on_message(CLIENT, propose("a"));
    assert_eq!(
        sent(&fx),
        vec![(
            CLIENT,
            Message::Done {
                value: "a".into(),
                index: 0
            }
        )]
    );
    assert!(fx.persist.is_empty());
}

#[test]
fn a_collision_in_the_led_round_starts_a_new_one_and_a_late_one_does_not() {
    let l = learner(1, 3);
    let mut leader = Leader::recover(leader_cfg(1, 3, None), 0);
    let (round, _) = campaign(&mut leader, &l);
    assert!(leader.on_collision(round, &l).is_empty(), "not leading yet");
    let promise = Message::Promise {
        round,
        from: 0,
        votes: vec![],
    };
    leader.on_message(1, promise.clone(), &l);
    leader.on_message(2, promise, &l);
    assert!(leader.on_collision(Round::new(0, 3), &l).is_empty());
    assert_eq!(leader.leading(), Some(round));
    let fx = leader.on_collision(round, &l);
    assert_eq!(fx.persist, vec![Persist::Number(2)]);
    assert!(matches!(sent(&fx)[0].1, Message::Prepare { from: 0, .. }));
}

#[test]
fn a_proposer_repeats_what_is_in_flight_and_gives_up_in_time() {
    use synod_core::fast_multi::Proposer;
    let mut p = Proposer::new(vec![1, 2, 3], 10, 3);
    let fx = p.propose("x".to_string());
    assert_eq!(sent(&fx).len(), 3);
    assert_eq!(fx.timers.len(), 1, "the retry timer is armed once");
    let fx = p.propose("y".to_string());
    assert!(fx.timers.is_empty());
    assert!(
        sent(&p.propose("y".to_string())).is_empty(),
        "in flight already"
    );
    assert_eq!(p.in_flight(), 2);
    assert!(p.applied(&"x".to_string()));
    assert!(!p.applied(&"x".to_string()));
    let fx = p.on_timer(Timer::Retry);
    assert_eq!(
        sent(&fx),
        (1..=3).map(|i| (i, propose("y"))).collect::<Vec<_>>()
    );
    assert_eq!(fx.timers.len(), 1);
    p.on_timer(Timer::Retry);
    let fx = p.on_timer(Timer::Retry);
    assert!(sent(&fx).is_empty());
    assert_eq!(
        fx.output,
        vec![Output::GaveUp {
            value: "y".to_string()
        }]
    );
    assert!(
        fx.timers.is_empty(),
        "nothing left in flight: the timer rests"
    );
    assert_eq!(p.in_flight(), 0);
    assert!(p.on_timer(Timer::Election).is_empty());
}

#[test]
fn a_quiet_server_answers_nobody_and_skips_what_it_applied() {
    let mut s = server(1, 1).quiet();
    let fx = s.on_timer(Timer::Election);
    let mut queue: Vec<(NodeId, Message<String>)> =
        fx.all_sends().map(|o| (o.to, o.msg.clone())).collect();
    queue.push((1, propose("a")));
    let mut applied = Vec::new();
    while let Some((_, msg)) = queue.pop() {
        let fx = s.on_message(1, msg);
        applied.extend(
            fx.output
                .iter()
                .filter(|o| matches!(o, Output::Applied { .. }))
                .cloned(),
        );
        queue.extend(
            fx.all_sends()
                .filter(|o| o.to == 1)
                .map(|o| (o.to, o.msg.clone())),
        );
        assert!(fx
            .all_sends()
            .all(|o| !matches!(o.msg, Message::Done { .. })));
    }
    assert_eq!(
        applied,
        vec![Output::Applied {
            index: 0,
            value: "a".into()
        }]
    );
    let fx = s.on_message(CLIENT, propose("a"));
    assert!(fx.is_empty(), "applied already: no vote, no answer");
}

#[test]
fn a_repeated_prepare_is_answered_again_without_a_new_record() {
    let mut a = acceptor(1, 3);
    a.on_message(2, Message::Prepare { round: R2, from: 0 });
    let fx = a.on_message(2, Message::Prepare { round: R2, from: 0 });
    assert!(fx.persist.is_empty(), "the promise is on disk already");
    let promise = Message::Promise {
        round: R2,
        from: 0,
        votes: vec![],
    };
    assert_eq!(sent(&fx), vec![(2, promise)]);
}

#[test]
fn an_any_below_the_promise_opens_nothing() {
    let mut a = acceptor(1, 3);
    a.on_message(2, Message::Prepare { round: R2, from: 0 });
    assert!(a.on_message(CLIENT, propose("x")).is_empty());
    assert!(
        a.on_message(1, any(R1, 0)).is_empty(),
        "R1 is below the promise"
    );
    assert!(a.on_message(CLIENT, propose("y")).is_empty());
    let fx = a.on_message(2, any(R2, 0));
    assert_eq!(voted(&fx), vec![(0, fast(R2, "x")), (1, fast(R2, "y"))]);
}

#[test]
fn a_client_proposes_one_command_at_a_time_and_repeats_it_until_done() {
    let mut c = Client::new(vec![1, 2], vec!["a".to_string(), "b".to_string()], 7);
    assert!(!c.finished());
    let fx = c.start();
    assert_eq!(sent(&fx), vec![(1, propose("a")), (2, propose("a"))]);
    assert_eq!(c.current(), Some(&"a".to_string()));
    let fx = c.on_timer(Timer::Retry);
    assert_eq!(sent(&fx), vec![(1, propose("a")), (2, propose("a"))]);
    assert_eq!(fx.timers.len(), 1);
    assert!(c.on_timer(Timer::Query).is_empty());
    let done = |v: &str, index| Message::Done {
        value: v.to_string(),
        index,
    };
    assert!(
        c.on_message(done("b", 0)).is_empty(),
        "not the command in flight"
    );
    let fx = c.on_message(done("a", 3));
    assert_eq!(
        fx.output,
        vec![Output::Done {
            value: "a".into(),
            index: 3
        }]
    );
    assert_eq!(sent(&fx), vec![(1, propose("b")), (2, propose("b"))]);
    assert!(!c.finished());
    c.on_message(done("b", 4));
    assert!(c.finished());
    assert_eq!(c.current(), None);
    assert!(c.on_timer(Timer::Retry).is_empty(), "nothing in flight");
}

fn timer_kinds(fx: &FmEffects<String>) -> Vec<Timer> {
    fx.timers.iter().map(|t| t.kind).collect()
}

#[test]
fn roles_arm_their_timers_at_start() {
    let mut leader = Leader::<String>::recover(leader_cfg(1, 3, None), 0);
    let fx = leader.start();
    assert_eq!(timer_kinds(&fx), vec![Timer::Election]);
    assert_eq!(fx.timers[0].after, 50);
    let mut l = learner(1, 3);
    let fx = l.start();
    assert_eq!(timer_kinds(&fx), vec![Timer::Query]);
    assert_eq!(fx.timers[0].after, 30);
    let mut s = server(2, 3);
    assert_eq!(s.id(), 2);
    assert_eq!(s.leading(), None);
    let mut kinds = timer_kinds(&s.start());
    kinds.sort();
    assert_eq!(kinds, vec![Timer::Election, Timer::Query]);
}

/// Makes `leader` lead a fresh round with promises from 1 and 2 of 3.
fn lead(leader: &mut Leader<String>, l: &Learner<String>) -> Round {
    let (round, _) = campaign(leader, l);
    let promise = Message::Promise {
        round,
        from: 0,
        votes: vec![],
    };
    leader.on_message(1, promise.clone(), l);
    leader.on_message(2, promise, l);
    assert_eq!(leader.leading(), Some(round));
    round
}

#[test]
fn a_leader_keeps_its_round_against_stale_news_and_its_own_round() {
    let l = learner(1, 3);
    let mut leader = Leader::recover(leader_cfg(1, 3, None), 0);
    // A follower hearing a round has nothing to step down from.
    assert!(leader.heard(R1).is_empty());
    let round = lead(&mut leader, &l);
    assert!(leader.heard(round).is_empty(), "its own round");
    assert!(leader.heard(Round::new(0, 3)).is_empty());
    // A refusal of another round, or one that is not above, changes nothing.
    let nack = |round, promised| Message::Nack { round, promised };
    assert!(leader
        .on_message(3, nack(Round::new(0, 1), R2), &l)
        .is_empty());
    assert!(leader.on_message(3, nack(round, round), &l).is_empty());
    assert_eq!(leader.leading(), Some(round));
    // Its election timer does nothing while it leads.
    let fx = leader.on_timer(Timer::Election, &l);
    assert!(fx.is_empty());
    assert_eq!(leader.leading(), Some(round));
    // A refusal of its round by a higher promise ends it.
    let fx = leader.on_message(3, nack(round, Round::new(round.number + 1, 3)), &l);
    assert_eq!(leader.leading(), None);
    assert_eq!(timer_kinds(&fx), vec![Timer::Election]);
}

#[test]
fn an_idle_leader_never_prepares_again() {
    let l = learner(1, 3);
    let mut leader = Leader::recover(leader_cfg(1, 3, None), 0);
    let round = lead(&mut leader, &l);
    for _ in 0..5 {
        let fx = leader.on_timer(Timer::Heartbeat, &l);
        assert!(fx.persist.is_empty(), "nothing waits: no new round");
        assert_eq!(timer_kinds(&fx), vec![Timer::Heartbeat]);
    }
    assert_eq!(leader.leading(), Some(round));
}

#[test]
fn a_learner_adopts_decisions_only_from_members_and_asks_across_a_gap() {
    let mut l = learner(1, 3);
    let (fx, _) = l.on_message(
        9,
        Message::Chosen {
            slot: 0,
            value: cmd("x"),
        },
    );
    assert!(fx.output.is_empty(), "a stranger's word is not taken");
    assert_eq!(l.chosen(0), None);
    // Slot 1 known, slot 0 not: behind, though no leader announced a commit point.
    l.on_message(
        2,
        Message::Chosen {
            slot: 1,
            value: cmd("y"),
        },
    );
    assert_eq!(l.prefix(), 0);
    let fx = l.on_timer(Timer::Query);
    assert_eq!(
        sent(&fx),
        vec![
            (2, Message::Query { from: 0 }),
            (3, Message::Query { from: 0 })
        ]
    );
    l.on_message(
        3,
        Message::Chosen {
            slot: 0,
            value: cmd("x"),
        },
    );
    assert_eq!(l.prefix(), 2);
    l.note_commit(2);
    assert!(
        sent(&l.on_timer(Timer::Query)).is_empty(),
        "level with the commit point"
    );
}

#[test]
fn a_server_reports_its_acceptors_promise() {
    let mut s = server(1, 1);
    assert_eq!(s.acceptor_state().promised, Round::ZERO);
    let mut queue: Vec<Message<String>> = s
        .on_timer(Timer::Election)
        .all_sends()
        .map(|o| o.msg.clone())
        .collect();
    while let Some(m) = queue.pop() {
        queue.extend(s.on_message(1, m).all_sends().map(|o| o.msg.clone()));
    }
    assert_eq!(s.acceptor_state().promised, Round::new(1, 1));
    assert_eq!(s.leading(), Some(Round::new(1, 1)));
}

/// A server of 3 that has heard nothing yet.
fn follower(id: NodeId) -> Server<String> {
    let mut s = server(id, 3);
    s.start();
    s
}

fn any_at(round: Round, from: u64, commit: u64) -> Message<String> {
    Message::Any {
        round,
        from,
        commit,
        recovery: Recovery::Coordinated,
    }
}

#[test]
fn a_server_that_hears_a_leader_does_not_campaign_and_one_that_does_not_does() {
    let mut s = follower(2);
    s.on_message(1, any_at(R1, 0, 0));
    let fx = s.on_timer(Timer::Election);
    assert!(fx.persist.is_empty(), "it heard round {R1} from node 1");
    let fx = s.on_timer(Timer::Election);
    assert_eq!(
        fx.persist,
        vec![Persist::Number(2)],
        "then silence: it campaigns"
    );
    // Its own messages, or a round below its promise, are no news of a leader.
    let mut s = follower(2);
    s.on_message(2, any_at(R1, 0, 0));
    assert_eq!(
        s.on_timer(Timer::Election).persist,
        vec![Persist::Number(1)]
    );
    let mut s = follower(3);
    s.on_message(2, Message::Prepare { round: R2, from: 0 });
    s.on_message(1, any_at(R1, 0, 0));
    s.on_timer(Timer::Election); // clears what Prepare(R2) said
    let fx = s.on_timer(Timer::Election);
    assert_eq!(
        fx.persist,
        vec![Persist::Number(3)],
        "R1 is below its promise: no leader heard; it campaigns above R2"
    );
}

#[test]
fn a_server_behind_the_leaders_commit_point_asks_and_one_ahead_of_it_tells() {
    let mut behind = follower(2);
    behind.on_message(1, any_at(R1, 0, 3));
    let fx = behind.on_timer(Timer::Query);
    assert_eq!(
        sent(&fx),
        vec![
            (1, Message::Query { from: 0 }),
            (3, Message::Query { from: 0 })
        ]
    );
    // Node 3 knows slots 0 and 1; the leader (node 1) says only slot 0 is committed.
    let mut ahead = follower(3);
    for slot in 0..2 {
        let value = cmd(&format!("v{slot}"));
        ahead.on_message(2, Message::Chosen { slot, value });
    }
    let fx = ahead.on_message(1, any_at(R1, 0, 1));
    assert_eq!(
        sent(&fx),
        vec![(
            1,
            Message::Chosen {
                slot: 1,
                value: cmd("v1")
            }
        )]
    );
    // A leader level with it, or its own Any, gets nothing.
    assert!(sent(&ahead.on_message(1, any_at(R1, 0, 2))).is_empty());
    assert!(sent(&ahead.on_message(3, any_at(R1, 0, 0))).is_empty());
}

#[test]
fn a_repeated_any_keeps_the_fast_rounds_memory_of_what_it_voted() {
    let mut a = acceptor(2, 3);
    a.on_message(1, any(R1, 0));
    a.on_message(CLIENT, propose("x"));
    // The leader's heartbeat repeats its Any: same round, nothing new.
    assert!(a.on_message(1, any(R1, 0)).is_empty());
    let fx = a.on_message(CLIENT, propose("x"));
    assert!(fx.persist.is_empty(), "x keeps its one slot of the round");
    let fx = a.on_message(CLIENT, propose("y"));
    assert_eq!(voted(&fx), vec![(1, fast(R1, "y"))]);
}

fn any_unco(round: Round, from: u64) -> Message<String> {
    Message::Any {
        round,
        from,
        commit: 0,
        recovery: Recovery::Uncoordinated,
    }
}

#[test]
fn under_uncoordinated_recovery_acceptors_resolve_a_split_slot_in_its_next_step() {
    // Three acceptors: classic quorum 2, fast quorum 3.
    let mut a = acceptor(1, 3);
    a.on_message(2, any_unco(R1, 0));
    let fx = a.on_message(CLIENT, propose("x"));
    assert_eq!(voted(&fx), vec![(0, fast(R1, "x"))]);
    // Its vote goes to every peer too (they are learners here anyway), after the sync.
    let accepted = Message::Accepted {
        slot: 0,
        vote: fast(R1, "x"),
    };
    assert_eq!(sent(&fx), vec![(2, accepted.clone()), (3, accepted)]);
    // A stranger's vote, or a classic one, is no report.
    assert!(a.on_message(9, accepted_msg(0, fast(R1, "y"))).is_empty());
    assert!(a
        .on_message(2, accepted_msg(0, classic(R1, cmd("y"))))
        .is_empty());
    // Peer 2 voted y there: with x and y from a classic quorum neither can reach 3 votes. The
    // rule leaves the choice free and suggests the first of the tied entries, x.
    let fx = a.on_message(2, accepted_msg(0, fast(R1, "y")));
    let next = R1.next_step();
    assert_eq!(voted(&fx), vec![(0, fast(next, "x"))]);
    // That vote is a promise for slot 0 only: the fast round goes on in the other slots.
    assert_eq!(a.state().promised, R1);
    let fx = a.on_message(CLIENT, propose("z"));
    assert_eq!(voted(&fx), vec![(1, fast(R1, "z"))]);
    // On disk too: the records rebuild the same promise.
    let mut disk = AcceptorState::<String>::default();
    disk.apply(&Persist::Voted {
        slot: 0,
        vote: fast(R1, "x"),
    });
    disk.apply(&Persist::Voted {
        slot: 0,
        vote: fast(next, "x"),
    });
    assert_eq!(disk.promised, R1);
}

fn accepted_msg(slot: u64, vote: Vote<Entry<String>>) -> Message<String> {
    Message::Accepted { slot, vote }
}

#[test]
fn under_coordinated_recovery_acceptors_leave_a_split_slot_to_the_leader() {
    let mut a = acceptor(1, 3);
    a.on_message(2, any(R1, 0));
    a.on_message(CLIENT, propose("x"));
    assert!(a.on_message(2, accepted_msg(0, fast(R1, "y"))).is_empty());
    assert!(a.on_message(3, accepted_msg(0, fast(R1, "z"))).is_empty());
}

#[test]
fn a_leader_leaves_collisions_to_the_acceptors_under_uncoordinated_recovery() {
    let l = learner(1, 3);
    let mut cfg = leader_cfg(1, 3, None);
    cfg.recovery = Recovery::Uncoordinated;
    let mut leader = Leader::recover(cfg, 0);
    let round = lead(&mut leader, &l);
    assert!(leader.on_collision(round, &l).is_empty());
    assert_eq!(leader.leading(), Some(round));
    let fx = leader.on_timer(Timer::Heartbeat, &l);
    assert!(sent(&fx).iter().all(|(_, m)| matches!(
        m,
        Message::Any {
            recovery: Recovery::Uncoordinated,
            ..
        }
    )));
}

#[test]
fn a_server_gives_a_command_that_lost_its_slot_a_new_one() {
    // Node 2 voted x into slot 0, but slot 0 was chosen for y: x proposed again takes slot 1.
    let mut s = follower(2);
    s.on_message(1, any_at(R1, 0, 0));
    s.on_message(CLIENT, propose("x"));
    s.on_message(
        1,
        Message::Chosen {
            slot: 0,
            value: cmd("y"),
        },
    );
    let fx = s.on_message(CLIENT, propose("x"));
    assert_eq!(voted(&fx), vec![(1, fast(R1, "x"))]);
    // Proposed once more, it keeps that slot: its vote is repeated, no new one.
    assert!(s.on_message(CLIENT, propose("x")).persist.is_empty());
}

#[test]
fn a_strangers_votes_leave_no_trace_a_leader_would_wait_for() {
    let mut l = learner(1, 3);
    for from in [7, 8, 9] {
        l.on_message(from, accepted_msg(99, fast(R1, "x")));
    }
    assert_eq!(l.highest_heard(), None, "no slot 99 to wait for");
    l.on_message(2, accepted_msg(4, fast(R1, "x")));
    assert_eq!(l.highest_heard(), Some(4));
}

#[test]
fn a_bad_leader_at_the_end_of_the_slot_and_step_space_crashes_nobody() {
    // A fast region that starts at the last slot: one vote there, then no free slot.
    let mut a = acceptor(1, 3);
    a.on_message(2, any(R1, u64::MAX));
    let fx = a.on_message(CLIENT, propose("x"));
    assert_eq!(voted(&fx), vec![(u64::MAX, fast(R1, "x"))]);
    assert!(a.on_message(CLIENT, propose("y")).is_empty());
    // An uncoordinated round at the last step: a split there is left alone.
    let last = Round {
        number: 1,
        coordinator: 2,
        step: u32::MAX,
    };
    let mut a = acceptor(1, 3);
    a.on_message(2, any_unco(last, 0));
    assert_eq!(
        voted(&a.on_message(CLIENT, propose("x"))),
        vec![(0, fast(last, "x"))]
    );
    assert!(a.on_message(3, accepted_msg(0, fast(last, "y"))).is_empty());
    let mut b = acceptor(1, 3);
    b.on_message(2, any_unco(last, 0));
    b.on_message(3, accepted_msg(0, fast(last, "y")));
    let fx = b.on_message(CLIENT, propose("x"));
    assert_eq!(
        voted(&fx),
        vec![(0, fast(last, "x"))],
        "its own vote, no recovery step"
    );
    // A promise reporting a vote absurdly far ahead does not count (the leader would fill
    // every slot in between); one just inside the span does.
    let l = learner(1, 3);
    let mut leader = Leader::recover(leader_cfg(1, 3, None), 0);
    let (round, _) = campaign(&mut leader, &l);
    let old = Round::new(0, 3);
    let promise = |slot| Message::Promise {
        round,
        from: 0,
        votes: vec![(slot, fast(old, "z"))],
    };
    leader.on_message(2, promise(u64::MAX), &l);
    leader.on_message(2, promise(synod_core::fast_multi::MAX_PROMISE_SPAN), &l);
    leader.on_message(
        3,
        Message::Promise {
            round,
            from: 0,
            votes: vec![],
        },
        &l,
    );
    assert_eq!(leader.leading(), None, "node 2's promises did not count");
    let fx = leader.on_message(2, promise(9), &l);
    assert_eq!(leader.leading(), Some(round));
    assert!(sent(&fx)
        .iter()
        .any(|(_, m)| matches!(m, Message::Any { from: 10, .. })));
}

#[test]
fn a_peers_round_at_the_end_of_the_number_space_leaves_a_follower() {
    let l = learner(1, 3);
    let mut leader = Leader::recover(leader_cfg(1, 3, None), 0);
    leader.start();
    leader.heard(Round::new(u64::MAX, 2));
    leader.on_timer(Timer::Election, &l);
    let fx = leader.on_timer(Timer::Election, &l);
    assert!(
        fx.persist.is_empty() && sent(&fx).is_empty(),
        "no round to campaign in"
    );
    assert_eq!(timer_kinds(&fx), vec![Timer::Election]);
    assert_eq!(leader.leading(), None);
}
