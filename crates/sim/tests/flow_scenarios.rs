//! Every `synod flow` scenario is also a test of what the protocol code did in it.

use std::collections::BTreeSet;
use synod_sim::flow::{scenario, Drawn, Row, SCENARIOS};

fn run(name: &str) -> Drawn {
    scenario(name)
        .unwrap_or_else(|| panic!("no scenario {name}"))
        .run()
}

fn learned(d: &Drawn) -> Vec<(&str, &str)> {
    d.outcome
        .learned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn every_scenario_renders_and_never_learns_two_values() {
    for s in SCENARIOS {
        let d = s.run();
        // The 3PC split is the one chart whose point is two outcomes, and the Fast Multi-Paxos
        // chart fills a log of three slots: their own tests check them.
        if s.name != "3pc-split" && s.name != "fast-multi" {
            assert!(d.outcome.values().len() <= 1, "{}: {:?}", s.name, d.outcome);
        }
        let text = d.chart.render();
        assert!(text.lines().count() > 3, "{}:\n{text}", s.name);
    }
}

#[test]
fn basic_without_failures() {
    let d = run("basic");
    assert_eq!(learned(&d), vec![("L1", "V"), ("L2", "V"), ("P1", "V")]);
    assert_eq!(
        d.chart.labels(),
        vec![
            "Request",
            "Prepare(1.1)",
            "Promise(1.1,{null,null,null})",
            "Accept!(1.1,V)",
            "Accepted(1.1,V)",
            "Response"
        ]
    );
}

#[test]
fn an_acceptor_fails_and_two_still_decide() {
    let d = run("acceptor-fails");
    assert_eq!(learned(&d), vec![("L1", "V"), ("L2", "V"), ("P1", "V")]);
    assert!(d.chart.labels().contains(&"Promise(1.1,{null,null})"));
}

#[test]
fn a_redundant_learner_fails_and_the_other_answers() {
    let d = run("learner-fails");
    assert_eq!(learned(&d), vec![("L1", "V"), ("P1", "V")]);
}

#[test]
fn a_new_proposer_adopts_the_value_it_finds() {
    let d = run("proposer-fails");
    // P2 was asked for W but must propose V, found in A1's promise.
    assert_eq!(learned(&d), vec![("L1", "V"), ("L2", "V"), ("P2", "V")]);
    assert!(d.chart.labels().contains(&"Promise(1.2,{V@1.1,null,null})"));
    assert!(d.chart.labels().contains(&"Accept!(1.2,V)"));
}

#[test]
fn duelling_proposers_nack_each_other_until_one_backs_off() {
    let d = run("duelling");
    let nacks = d
        .chart
        .labels()
        .iter()
        .filter(|l| l.starts_with("Nack"))
        .count();
    assert_eq!(nacks, 3);
    assert_eq!(learned(&d), vec![("L1", "V2"), ("L2", "V2"), ("P2", "V2")]);
}

#[test]
fn an_acceptor_accepts_two_values_and_only_the_second_is_chosen() {
    let d = run("two-values");
    assert!(d.chart.labels().contains(&"Accepted(1.1,V1)"));
    assert_eq!(learned(&d), vec![("L1", "V2"), ("L2", "V2"), ("P2", "V2")]);
    assert!(
        d.facts.contains(&"A1 holds V2".to_string()),
        "{:?}",
        d.facts
    );
}

#[test]
fn a_majority_across_ballots_is_not_a_decision() {
    let d = run("multi-identifier-majority");
    // V1 reached a majority of acceptors, but in two ballots: nobody learned it, and the last
    // proposer had to pick V2, the highest-ballot vote it saw.
    assert!(d
        .chart
        .labels()
        .contains(&"Promise(1.4,{V1@1.1,V2@1.2,null})"));
    assert_eq!(learned(&d), vec![("L1", "V2"), ("L2", "V2"), ("P4", "V2")]);
}

#[test]
fn an_existing_consensus_cannot_change() {
    let d = run("cannot-change");
    assert_eq!(
        learned(&d),
        vec![("L1", "V1"), ("L2", "V1"), ("P1", "V1"), ("P2", "V1")]
    );
}

#[test]
fn multi_paxos_first_request_runs_both_phases() {
    let d = run("multi-first");
    let labels = d.chart.labels();
    assert!(labels.iter().any(|l| l.starts_with("Prepare(1.1")));
    assert!(labels
        .iter()
        .any(|l| l.starts_with("Accept!(1.1, I=0, put x=1")));
    assert!(labels.contains(&"Response(Written)"));
    assert_eq!(learned(&d), vec![("S1", "put x=1")]);
}

#[test]
fn multi_paxos_steady_leader_skips_phase_one() {
    let d = run("multi-steady");
    let labels = d.chart.labels();
    assert!(
        !labels.iter().any(|l| l.starts_with("Prepare")),
        "{labels:?}"
    );
    assert_eq!(
        labels.iter().filter(|l| l.starts_with("Accept!")).count(),
        2
    );
    assert_eq!(
        learned(&d),
        vec![("S1", "put y=3"), ("S2", "put y=3"), ("S3", "put y=3")]
    );
}

/// Who received the messages whose label starts with `prefix` (rows of one label may repeat:
/// their receivers together).
fn receivers(d: &Drawn, prefix: &str) -> BTreeSet<u64> {
    let rows = d.chart.rows.iter();
    rows.filter_map(|r| match r {
        Row::Msg {
            label, receivers, ..
        } if label.starts_with(prefix) => Some(receivers.clone()),
        _ => None,
    })
    .flatten()
    .collect()
}

#[test]
fn thrifty_accepts_go_to_a_quorum_and_move_when_a_voter_fails() {
    let d = run("multi-thrifty");
    let to = |prefix: &str| receivers(&d, prefix);
    assert_eq!(
        to("Accept!(1.1, I=0"),
        BTreeSet::from([2]),
        "one follower votes"
    );
    assert_eq!(
        to("Chosen(I=0, put x=1)"),
        BTreeSet::from([3]),
        "the other hears"
    );
    // To S2 first (down: not delivered, not drawn), then to S3 a whole round later.
    assert_eq!(to("Accept!(1.1, I=1"), BTreeSet::from([3]), "retransmitted");
    assert_eq!(to("Accept!(1.1, I=2"), BTreeSet::from([3]), "S3 voted last");
    assert_eq!(learned(&d), vec![("S1", "put x=3"), ("S3", "put x=3")]);
}

#[test]
fn held_notices_leave_together_and_a_forwarding_member_is_told_at_once() {
    let d = run("multi-notices");
    let to = |prefix: &str| receivers(&d, prefix);
    assert_eq!(
        to("CatchUp(2 slots)"),
        BTreeSet::from([3]),
        "held values, together"
    );
    assert_eq!(to("Chosen(I=0"), BTreeSet::new(), "not told one by one");
    assert_eq!(
        to("Chosen(I=2, put z=3)"),
        BTreeSet::from([3]),
        "S3 forwarded it"
    );
    // S2 learns the third commit point at the next tick: nobody waits at it.
    for (s, slots) in [(1, 3), (2, 2), (3, 3)] {
        let applied = format!("S{s}: applied {slots} slots");
        assert!(
            d.facts.iter().any(|f| f.starts_with(&applied)),
            "{applied}: {:?}",
            d.facts
        );
    }
}

#[test]
fn collapsed_roles_new_leader_reproposes_and_the_retry_is_applied_once() {
    let d = run("collapsed-roles");
    let labels = d.chart.labels();
    assert!(
        labels
            .iter()
            .any(|l| l.starts_with("Accept!(1.2, I=0, put x=1")),
        "{labels:?}"
    );
    assert_eq!(learned(&d), vec![("S2", "put x=1"), ("S3", "put x=1")]);
    // One answer, and both live servers applied exactly one slot.
    assert_eq!(
        d.facts
            .iter()
            .filter(|f| f.starts_with("client got"))
            .count(),
        1
    );
    assert!(
        d.facts.iter().any(|f| f.starts_with("S3: applied 1 slots")),
        "{:?}",
        d.facts
    );
}

#[test]
fn two_pc_commits_in_three_delays_without_failures() {
    let d = run("2pc");
    assert_eq!(
        learned(&d),
        vec![("P1", "commit"), ("P2", "commit"), ("P3", "commit")]
    );
    assert_eq!(
        d.chart.labels(),
        vec!["Prepare", "Vote(yes)", "Outcome(commit)", "Ack"]
    );
}

#[test]
fn two_pc_blocks_when_the_coordinator_dies_after_the_votes() {
    let d = run("2pc-blocked");
    assert!(d.outcome.learned.is_empty(), "{:?}", d.outcome);
    let blocked = d.facts.iter().filter(|f| f.contains("blocked")).count();
    assert_eq!(blocked, 3, "{:?}", d.facts);
    assert_eq!(d.chart.labels(), vec!["Prepare", "Vote(yes)", "Ask"]);
}

#[test]
fn three_pc_commits_in_five_delays_without_failures() {
    let d = run("3pc");
    assert_eq!(
        learned(&d),
        vec![("P1", "commit"), ("P2", "commit"), ("P3", "commit")]
    );
    assert_eq!(d.chart.labels().len(), 6, "{:?}", d.chart.labels());
}

#[test]
fn three_pc_decides_both_ways_under_a_partition() {
    let d = run("3pc-split");
    assert_eq!(
        learned(&d),
        vec![("P1", "commit"), ("P2", "abort"), ("P3", "abort")]
    );
}

#[test]
fn paxos_commit_survives_the_coordinators_failure() {
    let d = run("paxos-commit");
    assert_eq!(
        learned(&d),
        vec![("P1", "commit"), ("P2", "commit"), ("P3", "commit")]
    );
    let labels = d.chart.labels();
    assert!(labels.contains(&"1a(1.21)"), "{labels:?}");
    assert!(labels.contains(&"Outcome(commit)"), "{labels:?}");
}

#[test]
fn fast_paxos_without_a_collision_learns_two_delays_after_the_request() {
    let d = run("fast");
    assert_eq!(
        d.chart.labels(),
        vec![
            "Any(1.1,coordinated)",
            "Accept!(W)",
            "Accepted(1.1,W)",
            "Response(W)"
        ]
    );
    assert_eq!(d.outcome.values(), vec!["W"]);
    assert_eq!(d.facts, vec!["round 1.1: A1=W A2=W A3=W A4=W"]);
}

#[test]
fn fast_paxos_collision_with_coordinated_recovery_runs_a_classic_next_step() {
    let d = run("fast-coordinated");
    assert_eq!(
        d.chart.labels(),
        vec![
            "Any(1.1,coordinated)",
            "Accept!(V)",
            "Accept!(W)",
            "Accepted(1.1,V)",
            "Accepted(1.1,W)",
            "Accept!(1.1+1,V)",
            "Accepted(1.1+1,V)",
            "Response(V)"
        ]
    );
    assert_eq!(d.facts[0], "round 1.1: A1=V A2=V A3=W A4=W");
    assert_eq!(d.outcome.values(), vec!["V"]);
    assert_eq!(
        d.outcome.learned.len(),
        5,
        "both clients, both learners, the leader"
    );
}

#[test]
fn fast_paxos_collision_with_uncoordinated_recovery_needs_no_leader() {
    let d = run("fast-uncoordinated");
    let labels = d.chart.labels();
    assert_eq!(labels[5], "Accepted(1.1+1,V)", "{labels:?}");
    assert!(
        !labels.iter().any(|l| l.starts_with("Accept!(1.1+1")),
        "{labels:?}"
    );
    assert_eq!(d.outcome.values(), vec!["V"]);
}

#[test]
fn fast_paxos_with_collapsed_roles_recovers_among_the_servers() {
    let d = run("fast-collapsed");
    assert_eq!(
        d.chart.labels(),
        vec![
            "Any(1.101,uncoordinated)",
            "Accept!(V)",
            "Accept!(W)",
            "Accepted(1.101,V)",
            "Accepted(1.101,W)",
            "Accepted(1.101+1,V)",
            "Response(V)"
        ]
    );
    let servers: Vec<_> = learned(&d)
        .into_iter()
        .filter(|(k, _)| k.starts_with('S'))
        .collect();
    assert_eq!(servers.len(), 4, "every server learns: {servers:?}");
}

#[test]
fn generalized_paxos_learns_commuting_reads_at_once_and_resolves_conflicts() {
    let d = run("generalized");
    // The two reads reach the acceptors in different orders and are learned together; each
    // conflict (a write and a read of one register, ordered differently) costs a new step.
    assert_eq!(
        d.facts,
        vec![
            "<>",
            "<ReadA,ReadB>",
            "<ReadA,ReadB,ReadA,ReadB,WriteB>",
            "<ReadA,ReadB,ReadA,ReadB,WriteB,ReadA,WriteA>"
        ]
    );
    let labels = d.chart.labels();
    assert!(
        labels.contains(&"Accepted(1.1,<ReadA,ReadB>)"),
        "{labels:?}"
    );
    assert!(
        labels.contains(&"Accepted(1.1,<ReadB,ReadA>)"),
        "{labels:?}"
    );
    assert!(labels.contains(&"Prepare(1.1+1)") && labels.contains(&"Prepare(1.1+2)"));
    assert!(!labels.contains(&"Prepare(1.1+3)"), "{labels:?}");
    assert_eq!(
        d.outcome.values().len(),
        1,
        "both learners learn the same: {:?}",
        d.outcome
    );
}

#[test]
fn fast_multi_paxos_takes_the_fast_path_then_recovers_a_collision_in_a_new_round() {
    let d = run("fast-multi");
    let labels = d.chart.labels();
    // The fast path: Propose, Accepted, and the client is answered.
    assert_eq!(
        labels[..4],
        [
            "Any(1.1,from 0)",
            "Propose(a)",
            "Accepted(1.1,#0=a)",
            "Done(a,#0)"
        ],
        "{labels:?}"
    );
    // The race splits slots 1 and 2; the leader prepares round 2 from slot 1, finishes both
    // classically, and reopens the fast round at slot 3.
    for l in [
        "Prepare(2.1,from 1)",
        "Accept!(2.1,#1=b)",
        "Accept!(2.1,#2=c)",
        "Any(2.1,from 3)",
        "Done(b,#1)",
        "Done(c,#2)",
    ] {
        assert!(labels.contains(&l), "{l} missing: {labels:?}");
    }
    assert_eq!(
        d.facts,
        vec![
            "#0: S1=a@1.1 S2=a@1.1 S3=a@1.1 S4=a@1.1",
            "#1: S1=b@1.1 S2=b@1.1 S3=c@1.1 S4=c@1.1 S1=b@2.1 S2=b@2.1 S3=b@2.1 S4=b@2.1",
            "#2: S3=b@1.1 S4=b@1.1 S1=c@1.1 S2=c@1.1 S1=c@2.1 S2=c@2.1 S3=c@2.1 S4=c@2.1",
        ]
    );
    for s in 1..=4 {
        for (slot, v) in [(0, "a"), (1, "b"), (2, "c")] {
            assert_eq!(d.outcome.learned[&format!("S{s} #{slot}")], v);
        }
    }
    assert_eq!(d.outcome.learned["C2 #2"], "c");
}

#[test]
fn move_leader_holds_the_write_that_arrives_and_the_successor_applies_it() {
    let d = run("move-leader");
    let labels = d.chart.labels();
    let at = |prefix: &str| {
        labels
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}: {labels:?}"))
    };
    // S1 starts no slot for y=2 itself: the only Accept! for it is S3's, after StandNow.
    assert!(
        !labels
            .iter()
            .any(|l| l.starts_with("Accept!(1.1") && l.contains("put y=2")),
        "{labels:?}"
    );
    assert!(at("StandNow(1.1") < at("Prepare(1.3"));
    assert!(at("Prepare(1.3") < at("Forward(1 cmds)"));
    assert!(at("Forward(1 cmds)") < at("Accept!(1.3, I=1, put y=2"));
    // Both writes answered, every server applied both.
    assert_eq!(
        d.facts
            .iter()
            .filter(|f| f.starts_with("client got"))
            .count(),
        2,
        "{:?}",
        d.facts
    );
    for s in ["S1", "S2", "S3"] {
        assert!(
            d.facts
                .iter()
                .any(|f| f.starts_with(&format!("{s}: applied 2 slots"))),
            "{:?}",
            d.facts
        );
    }
}

/// Who received the message whose label starts with `prefix`.
fn receivers_of(d: &Drawn, prefix: &str) -> Vec<u64> {
    use synod_sim::flow::Row;
    d.chart
        .rows
        .iter()
        .find_map(|r| match r {
            Row::Msg {
                receivers, label, ..
            } if label.starts_with(prefix) => Some(receivers.iter().copied().collect()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {prefix}: {:?}", d.chart.labels()))
}

#[test]
fn reconfigure_joins_from_a_snapshot_and_each_change_governs_alpha_slots_later() {
    let d = run("reconfigure");
    let labels = d.chart.labels();
    let at = |prefix: &str| {
        labels
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}: {labels:?}"))
    };
    // The joiner knows nothing until a peer's snapshot arrives; catch-up does the rest.
    assert!(at("JoinRequest") < at("Snapshot(I<"));
    assert!(at("Snapshot(I<") < at("CatchUp?(I>="));
    assert!(at("Progress(") < at("Accept!(1.1, I=3, S4 becomes Voter"));
    // The add in slot 1 governs from slot 3: S4 gets accepts from then on, not before.
    assert_eq!(receivers_of(&d, "Accept!(1.1, I=1, add s4"), vec![2, 3]);
    assert_eq!(receivers_of(&d, "Accept!(1.1, I=3,"), vec![2, 3, 4]);
    // The removal in slot 6 governs from slot 8: S3 still votes on slot 7, then no more.
    assert_eq!(receivers_of(&d, "Accept!(1.1, I=7,"), vec![2, 3, 4]);
    assert_eq!(receivers_of(&d, "Accept!(1.1, I=8,"), vec![2, 4]);
    assert_eq!(receivers_of(&d, "Accept!(1.1, I=9,"), vec![2, 4]);
    // Every write answered; the members left agree, and S4 holds the last write.
    let answered = d
        .facts
        .iter()
        .filter(|f| f.starts_with("client got"))
        .count();
    assert_eq!(answered, 4, "{:?}", d.facts);
    assert!(d
        .facts
        .contains(&"S4: applied 10 slots, x=Some(\"4\")".to_string()));
    assert!(d
        .facts
        .contains(&"S2: applied 10 slots, x=Some(\"4\")".to_string()));
}

#[test]
fn cheap_multi_brings_the_auxiliary_in_only_while_a_main_is_missing() {
    let d = run("cheap-multi");
    // Steady state: the mains alone (S4 is the auxiliary).
    assert_eq!(receivers_of(&d, "Accept!(1.1, I=1, put x=2"), vec![2, 3]);
    // The retransmission after a heartbeat round without a quorum includes it, and its vote
    // completes the quorum.
    let rows_to = |prefix: &str| {
        use synod_sim::flow::Row;
        d.chart
            .rows
            .iter()
            .filter_map(|r| match r {
                Row::Msg {
                    receivers, label, ..
                } if label.starts_with(prefix) => {
                    Some(receivers.iter().copied().collect::<Vec<_>>())
                }
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(rows_to("Accept!(1.1, I=1,"), vec![vec![2, 3], vec![4]]);
    // The auxiliary is sent the batch's digest, the mains the batch.
    assert_eq!(rows_to("Accept!(1.1, I=1, digest:"), vec![vec![4]]);
    // The change making S3 a learner, and the no-op after it, still need the auxiliary.
    assert_eq!(
        receivers_of(&d, "Accept!(1.1, I=2, S3 becomes Learner"),
        vec![2, 4]
    );
    assert_eq!(receivers_of(&d, "Accept!(1.1, I=3, no-op"), vec![2, 4]);
    // From where the change governs on, the two live mains are a quorum: the auxiliary is idle.
    assert_eq!(receivers_of(&d, "Accept!(1.1, I=4, put x=3"), vec![2]);
    let answered = d
        .facts
        .iter()
        .filter(|f| f.starts_with("client got"))
        .count();
    assert_eq!(answered, 3, "{:?}", d.facts);
    assert!(d
        .facts
        .contains(&"S2: applied 5 slots, x=Some(\"3\")".to_string()));
}

/// The seed's Byzantine Multi-Paxos chart: every replica executes the request after the three
/// phases, and the client takes the result on f + 1 = 2 matching replies of the 4.
#[test]
fn pbft_steady_state_orders_prepares_commits_and_replies() {
    let d = run("pbft");
    assert_eq!(
        d.chart.labels(),
        vec![
            "Request(V)",
            "PrePrepare(0,#1,V)",
            "Prepare(0,#1,V)",
            "Commit(0,#1,V)",
            "Reply(0)"
        ]
    );
    for r in 1..=4 {
        assert_eq!(d.outcome.learned[&format!("R{r} #1")], "V");
    }
    assert_eq!(d.outcome.learned["client"], "V");
    assert!(
        d.facts.contains(&"client took 0 for V".to_string()),
        "{:?}",
        d.facts
    );
    // The primary sends no prepare: its order is its vote.
    let text = d.chart.render();
    let prepare = text
        .lines()
        .find(|l| l.ends_with(" Prepare(0,#1,V)"))
        .expect("a prepare row");
    assert!(prepare.contains("|<-"), "{text}");
}

/// A lying primary's two orders at slot 1 leave the request prepared at two backups but not
/// committed; the view change carries their certificate, view 1's primary re-issues it, and
/// the three correct replicas execute it at slot 1.
#[test]
fn pbft_votes_out_a_lying_primary_and_keeps_the_prepared_request() {
    let d = run("pbft-view-change");
    let labels = d.chart.labels();
    for l in [
        "PrePrepare(0,#1,no-op)",
        "PrePrepare(0,#1,V)",
        "Commit(0,#1,V)",
        "ViewChange(1,prepared {#1=V})",
        "NewView(1,#1=V)",
        "Commit(1,#1,V)",
        "Reply(0)",
    ] {
        assert!(labels.contains(&l), "{l} missing: {labels:?}");
    }
    let view0_commit = labels.iter().position(|l| *l == "Commit(0,#1,V)");
    let view_change = labels.iter().position(|l| l.starts_with("ViewChange"));
    assert!(view0_commit < view_change, "{labels:?}");
    for r in 2..=4 {
        assert_eq!(d.outcome.learned[&format!("R{r} #1")], "V");
    }
    assert!(
        !d.outcome.learned.contains_key("R1 #1"),
        "the liar is scripted"
    );
    assert_eq!(d.outcome.learned["client"], "V");
}

/// The seed's Fast Byzantine steady-state chart: the client's proposal, one broadcast of votes
/// among the six acceptors, and every acceptor's reply; every acceptor decides V two message
/// delays after the client sent it.
#[test]
fn fast_byzantine_steady_state_decides_in_one_broadcast() {
    let d = run("fast-byzantine");
    assert_eq!(
        d.chart.labels(),
        vec!["Propose(#1,V)", "Accepted(0,#1,V)", "Reply(#1,0)"]
    );
    for a in 1..=6 {
        assert_eq!(d.outcome.learned[&format!("A{a} #1")], "V");
    }
    assert_eq!(d.outcome.learned["client"], "V");
}

/// The seed's Fast Byzantine failure chart: acceptor 6 pushes V into slot 2 ahead of the
/// client's W to acceptor 5; the votes split 4 to 2; the five correct acceptors enter view 1
/// and vote W again without any leader's choice; every correct acceptor decides W at slot 2,
/// and the client takes W's result.
#[test]
fn fast_byzantine_failure_splits_a_slot_and_the_correct_acceptors_choose_again() {
    let d = run("fast-byzantine-failure");
    let labels = d.chart.labels();
    let at = |l: &str| {
        labels
            .iter()
            .position(|x| *x == l)
            .unwrap_or_else(|| panic!("{l} missing: {labels:?}"))
    };
    assert!(at("Accepted(0,#2,V)") < at("Accepted(0,#2,W)"));
    assert!(at("Accepted(0,#2,W)") < at("Accepted(1,#2,W)"));
    assert!(at("Accepted(1,#2,W)") < at("Reply(#2,1)"));
    assert!(
        !labels.iter().any(|l| l.starts_with("Choice")),
        "no leader needed: {labels:?}"
    );
    for a in 1..=5 {
        assert_eq!(d.outcome.learned[&format!("A{a} #2")], "W");
        assert!(d.facts.contains(&format!("A{a} entered view 1 at #2")));
    }
    assert_eq!(d.outcome.learned["client"], "W");
}

#[test]
fn read_index_probes_one_follower_and_turns_to_the_other_when_it_fails() {
    let d = run("read-index");
    // One follower's acknowledgement makes a quorum with the leader: only S2 is probed.
    assert_eq!(receivers_of(&d, "ReadProbe(1.1, #1)"), vec![2]);
    // S2 fails: the heartbeat sends read 2's round to S3, and read 3's probe goes to S3 first.
    assert_eq!(receivers_of(&d, "ReadProbe(1.1, #2)"), vec![3]);
    assert_eq!(receivers_of(&d, "ReadProbe(1.1, #3)"), vec![3]);
    let labels = d.chart.labels();
    let at = |l: &str| {
        labels
            .iter()
            .position(|x| *x == l)
            .unwrap_or_else(|| panic!("no {l}: {labels:?}"))
    };
    // Each read is answered with the write before it, and only after its round is confirmed.
    for id in 1..=3 {
        assert!(at(&format!("ReadAck(1.1, #{id})")) < at(&format!("Response(read #{id}: x=1)")));
    }
    // Read 2 waits for the heartbeat: S3 hears its round only from it.
    let last_beat = labels.iter().rposition(|x| x.starts_with("Heartbeat("));
    assert!(last_beat.is_some_and(|b| at("Read(#2: x, linearizable)") < b));
    assert!(last_beat.is_some_and(|b| b < at("ReadAck(1.1, #2)")));
}
