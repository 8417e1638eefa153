//! Fast Byzantine replicas driven by hand, with ed25519 keys: the fast path in two message
//! delays; a lying acceptor's pushed request splitting a slot, and the correct acceptors
//! choosing the vouched-for value with no leader; a leader's free choice and a choice against
//! the certificate refused; forged votes, forged proofs and junk refused; a restart that keeps
//! the vote; and the planted learner that decides on f votes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use synod_core::auth::{digest_of, Ed25519Signer, Ed25519Verifier, Signed, Verifier};
use synod_core::fab::{
    Choice, Client, Decided, Durable, Evidence, FabEffects, Message, Output, Persist, Replica,
    ReplicaConfig, Report, Timer, Vote,
};
use synod_core::pbft::{OpLog, Request};
use synod_core::quorum::FastByzantineQuorum;
use synod_core::{NodeId, PlantedBug};

pub(crate) type Msg = Message<String, u64>;
pub(crate) type Fx = FabEffects<String, u64>;

pub(crate) const CLIENT: NodeId = 101;
const OTHER: NodeId = 102;
pub(crate) const ACCEPTORS: [NodeId; 6] = [1, 2, 3, 4, 5, 6];

pub(crate) fn signer(id: NodeId) -> Ed25519Signer {
    Ed25519Signer::from_secret(id, &[id as u8; 32])
}

pub(crate) fn verifier() -> Arc<dyn Verifier> {
    let mut v = Ed25519Verifier::default();
    for id in ACCEPTORS.into_iter().chain([CLIENT, OTHER]) {
        v.add(id, &signer(id).public()).expect("a valid key");
    }
    Arc::new(v)
}

pub(crate) fn quorum() -> FastByzantineQuorum {
    FastByzantineQuorum::new(6).expect("6 acceptors")
}

fn config(id: NodeId, bug: Option<PlantedBug>) -> ReplicaConfig {
    ReplicaConfig {
        id,
        acceptors: ACCEPTORS.to_vec(),
        quorum: quorum(),
        window: 8,
        round_ticks: 25,
        recovery_rounds: 4,
        bug,
    }
}

pub(crate) fn replica_from(
    id: NodeId,
    bug: Option<PlantedBug>,
    disk: Durable<String>,
) -> Replica<OpLog<String>> {
    Replica::recover(
        config(id, bug),
        Arc::new(signer(id)),
        verifier(),
        disk,
        OpLog::default(),
    )
}

fn request(client: NodeId, op: &str, stamp: u64) -> Signed<Request<String>> {
    let body = Request {
        client,
        stamp,
        op: op.to_string(),
    };
    Signed::new(&signer(client), body)
}

fn vote(by: NodeId, view: u64, slot: u64, r: &Option<Signed<Request<String>>>) -> Msg {
    let digest = synod_core::fab::value_digest(r);
    Message::Accepted(
        Signed::new(&signer(by), Vote { view, slot, digest }),
        r.clone(),
    )
}

/// Correct replicas exchanging messages in order; some acceptors may be left out (the test
/// plays them) and some links cut.
struct Cluster {
    replicas: BTreeMap<NodeId, Replica<OpLog<String>>>,
    client: Option<Client<String, u64>>,
    queue: VecDeque<(NodeId, NodeId, Msg)>,
    executed: Vec<(NodeId, u64, Option<String>)>,
    recovering: Vec<(NodeId, u64, u64)>,
    done: Vec<(String, u64)>,
    disks: BTreeMap<NodeId, Durable<String>>,
    /// Messages sent to the acceptors the test plays, and to no one.
    outside: Vec<(NodeId, NodeId, Msg)>,
}

impl Cluster {
    fn new(correct: &[NodeId], bug: Option<PlantedBug>) -> Self {
        Cluster {
            replicas: correct
                .iter()
                .map(|&id| (id, replica_from(id, bug, Durable::default())))
                .collect(),
            client: None,
            queue: VecDeque::new(),
            executed: Vec::new(),
            recovering: Vec::new(),
            done: Vec::new(),
            disks: BTreeMap::new(),
            outside: Vec::new(),
        }
    }

    fn take(&mut self, from: NodeId, fx: Fx) {
        for p in &fx.persist {
            self.disks.entry(from).or_default().apply(p);
        }
        for o in fx.output {
            match o {
                Output::Executed { slot, request } => {
                    self.executed.push((from, slot, request.map(|(r, _)| r.op)))
                }
                Output::Recovering { slot, view } => self.recovering.push((from, slot, view)),
                Output::Done { op, result, .. } => self.done.push((op, result)),
            }
        }
        for o in fx.send.into_iter().chain(fx.send_after_sync) {
            self.queue.push_back((from, o.to, o.msg));
        }
    }

    fn deliver(&mut self, to: NodeId, msg: Msg) {
        if let Some(r) = self.replicas.get_mut(&to) {
            let fx = r.on_message(msg);
            self.take(to, fx);
        } else if to == CLIENT && self.client.is_some() {
            let fx = self.client.as_mut().expect("client").on_message(msg);
            self.take(CLIENT, fx);
        }
    }

    fn run(&mut self) {
        let mut steps = 0;
        while let Some((from, to, msg)) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < 100_000, "the cluster settles");
            if self.replicas.contains_key(&to) || to == CLIENT {
                self.deliver(to, msg);
            } else {
                self.outside.push((from, to, msg));
            }
        }
    }

    fn rounds(&mut self, n: usize) {
        for _ in 0..n {
            let ids: Vec<NodeId> = self.replicas.keys().copied().collect();
            for id in ids {
                let fx = self
                    .replicas
                    .get_mut(&id)
                    .expect("replica")
                    .on_timer(Timer::Round);
                self.take(id, fx);
            }
            self.run();
        }
    }

    fn executed_at(&self, slot: u64) -> Vec<(NodeId, Option<String>)> {
        self.executed
            .iter()
            .filter(|(_, s, _)| *s == slot)
            .map(|(n, _, op)| (*n, op.clone()))
            .collect()
    }
}

/// One client, six correct acceptors: the request is decided in view 0 by every acceptor, from
/// the client's proposal and one broadcast, and the client takes it on f + 1 replies.
#[test]
fn a_request_is_decided_in_two_message_delays() {
    let mut c = Cluster::new(&ACCEPTORS, None);
    let mut client = Client::new(
        Arc::new(signer(CLIENT)),
        verifier(),
        ACCEPTORS.to_vec(),
        quorum(),
        vec!["V".to_string(), "W".to_string()],
        1_000,
    );
    let fx = client.start();
    c.client = Some(client);
    c.take(CLIENT, fx);
    // Hop 1: the proposals. Hop 2: each acceptor's vote to the others.
    let proposals: Vec<_> = c.queue.drain(..).collect();
    assert_eq!(proposals.len(), 6);
    for (_, to, m) in proposals {
        c.deliver(to, m);
    }
    let votes: Vec<_> = c.queue.drain(..).collect();
    assert_eq!(votes.len(), 30, "every acceptor votes to every other");
    for (_, to, m) in votes {
        c.deliver(to, m);
    }
    let at1 = c.executed_at(1);
    assert_eq!(
        at1.len(),
        6,
        "every acceptor decided after two delays: {at1:?}"
    );
    assert!(at1.iter().all(|(_, op)| op.as_deref() == Some("V")));
    c.run();
    assert_eq!(c.done, vec![("V".to_string(), 0), ("W".to_string(), 1)]);
    assert!(c.recovering.is_empty(), "{:?}", c.recovering);
}

/// The seed's failure chart: acceptor 6 lies. It pushes another client's request into slot 1
/// to acceptor 5, which votes for it first, and votes for it too; the votes split 4 to 2, no
/// value can reach the fast quorum of 5, the correct acceptors see it, enter view 1 and each
/// votes for the value their own certificate vouches for, without a leader. Slot 1 decides V.
#[test]
fn a_split_slot_recovers_to_the_vouched_value_without_a_leader() {
    let correct = [1, 2, 3, 4, 5];
    let mut c = Cluster::new(&correct, None);
    let v = Some(request(CLIENT, "V", 1));
    let w = Some(request(OTHER, "W", 1));
    c.deliver(5, vote(6, 0, 1, &w));
    for id in correct {
        c.deliver(
            id,
            Message::Propose {
                slot: 1,
                request: v.clone().expect("v"),
            },
        );
        c.deliver(id, vote(6, 0, 1, &w));
    }
    c.run();
    let at1 = c.executed_at(1);
    assert_eq!(at1.len(), 5, "{at1:?}");
    assert!(
        at1.iter().all(|(_, op)| op.as_deref() == Some("V")),
        "{at1:?}"
    );
    let views: Vec<u64> = c.recovering.iter().map(|(_, _, v)| *v).collect();
    assert!(
        views.iter().all(|v| *v == 1) && views.len() == 5,
        "{views:?}"
    );
    let choices = c
        .outside
        .iter()
        .chain(c.queue.iter())
        .filter(|(_, _, m)| matches!(m, Message::Choice(..)))
        .count();
    assert_eq!(choices, 0, "a vouched value needs no leader");
}

/// Votes split 3 to 3 in view 0 (two clients, three acceptors each): nothing is vouched for,
/// so view 1's leader picks one, with its certificate, and everyone votes for it.
#[test]
fn a_leader_chooses_when_nothing_is_vouched_for() {
    let mut c = Cluster::new(&ACCEPTORS, None);
    let v = request(CLIENT, "V", 1);
    let w = request(OTHER, "W", 1);
    for id in ACCEPTORS {
        let r = if id <= 3 { v.clone() } else { w.clone() };
        c.deliver(
            id,
            Message::Propose {
                slot: 1,
                request: r,
            },
        );
    }
    c.run();
    let at1 = c.executed_at(1);
    assert_eq!(at1.len(), 6, "{at1:?}");
    let op = at1[0].1.clone();
    assert!(at1.iter().all(|(_, o)| *o == op), "{at1:?}");
    // View 1 of slot 1 is led by acceptors[(1 + 1) % 6] = 3.
    assert!(c.recovering.iter().all(|(_, s, v)| (*s, *v) == (1, 1)));
}

/// A leader's choice against the value its certificate vouches for is refused, and so is a
/// choice from an acceptor that does not lead the view, or with too few statements.
#[test]
fn a_choice_against_the_certificate_is_refused() {
    let v = Some(request(CLIENT, "V", 1));
    let w = Some(request(OTHER, "W", 1));
    let dv = synod_core::fab::value_digest(&v);
    let dw = synod_core::fab::value_digest(&w);
    // Five votes for V in view 0 make a certificate for view 1 that vouches for V.
    let evidence: Vec<Evidence> = [1, 2, 3, 4, 5]
        .into_iter()
        .map(|a| {
            let body = Vote {
                view: 0,
                slot: 1,
                digest: dv,
            };
            Evidence::Vote(Signed::new(&signer(a), body))
        })
        .collect();
    let leader = 3; // (slot 1 + view 1) % 6 = index 2.
    let choice = |by: NodeId, digest| {
        Signed::new(
            &signer(by),
            Choice {
                view: 1,
                slot: 1,
                digest,
            },
        )
    };
    let mut r = replica_from(1, None, Durable::default());
    let fx = r.on_message(Message::Choice(
        choice(leader, dw),
        evidence.clone(),
        w.clone(),
    ));
    assert!(fx.persist.is_empty(), "W against a certificate for V");
    let fx = r.on_message(Message::Choice(choice(4, dv), evidence.clone(), v.clone()));
    assert!(fx.persist.is_empty(), "not the leader of view 1");
    let fx = r.on_message(Message::Choice(
        choice(leader, dv),
        evidence[..4].to_vec(),
        v.clone(),
    ));
    assert!(fx.persist.is_empty(), "four statements, not a - f = 5");
    let fx = r.on_message(Message::Choice(choice(leader, dv), evidence, v.clone()));
    assert_eq!(
        fx.persist,
        vec![Persist::Vote {
            slot: 1,
            view: 1,
            value: v
        }],
        "the vouched value, from the leader, is voted for"
    );
}

/// Votes in other acceptors' names, a proof of forged votes, and a proof with one vote too
/// few decide nothing; junk values are refused without a panic.
#[test]
fn forged_votes_and_proofs_decide_nothing() {
    let w = Some(request(OTHER, "W", 1));
    let digest = synod_core::fab::value_digest(&w);
    let mut r = replica_from(1, None, Durable::default());
    for a in 2..=6 {
        let forged = Signed::forged(
            &signer(6),
            a,
            Vote {
                view: 0,
                slot: 1,
                digest,
            },
        );
        let fx = r.on_message(Message::Accepted(forged, w.clone()));
        assert!(fx.output.is_empty());
    }
    let forged: Vec<Signed<Vote>> = (2..=6)
        .map(|a| {
            Signed::forged(
                &signer(6),
                a,
                Vote {
                    view: 0,
                    slot: 1,
                    digest,
                },
            )
        })
        .collect();
    let fx = r.on_message(Message::Decided(vec![Decided {
        votes: forged,
        value: w.clone(),
    }]));
    assert!(fx.output.is_empty(), "forged proof");
    let four: Vec<Signed<Vote>> = (2..=5)
        .map(|a| {
            Signed::new(
                &signer(a),
                Vote {
                    view: 0,
                    slot: 1,
                    digest,
                },
            )
        })
        .collect();
    let fx = r.on_message(Message::Decided(vec![Decided {
        votes: four.clone(),
        value: w.clone(),
    }]));
    assert!(fx.output.is_empty(), "4 votes, fast quorum is 5");
    // A vote whose value is not the digest's, a report naming a later view, a huge view.
    let mut bad = four[0].clone();
    bad.body.digest = [7; 32];
    let fx = r.on_message(Message::Accepted(bad, w.clone()));
    assert!(fx.output.is_empty() && fx.persist.is_empty());
    let report = Report {
        view: u64::MAX,
        slot: u64::MAX,
        last: Some((u64::MAX, digest)),
    };
    let fx = r.on_message(Message::Report(Signed::new(&signer(2), report), w.clone()));
    assert!(fx.persist.is_empty());
    // Views at the very top of the range, from an acceptor and in a leader's choice with
    // made-up evidence: refused, no overflow.
    let top = Signed::new(
        &signer(2),
        Vote {
            view: u64::MAX,
            slot: 1,
            digest,
        },
    );
    assert!(r
        .on_message(Message::Accepted(top.clone(), w.clone()))
        .persist
        .is_empty());
    let choice = Choice {
        view: u64::MAX,
        slot: 1,
        digest,
    };
    let evidence = vec![Evidence::Vote(top); 5];
    let fx = r.on_message(Message::Choice(
        Signed::new(&signer(2), choice),
        evidence,
        w.clone(),
    ));
    assert!(fx.persist.is_empty());
    let mut all = four;
    all.push(Signed::new(
        &signer(6),
        Vote {
            view: 0,
            slot: 1,
            digest,
        },
    ));
    let fx = r.on_message(Message::Decided(vec![Decided {
        votes: all,
        value: w,
    }]));
    let executed: Vec<_> = fx
        .output
        .iter()
        .filter(|o| matches!(o, Output::Executed { slot: 1, .. }))
        .collect();
    assert_eq!(executed.len(), 1, "five genuine votes decide");
}

/// Every vote of view 0 is lost: the round timer resends them, and the slot decides without a
/// recovery.
#[test]
fn lost_votes_are_sent_again() {
    let mut c = Cluster::new(&ACCEPTORS, None);
    let v = request(CLIENT, "V", 1);
    for id in ACCEPTORS {
        c.deliver(
            id,
            Message::Propose {
                slot: 1,
                request: v.clone(),
            },
        );
    }
    let lost = c.queue.drain(..).count();
    assert_eq!(lost, 30);
    c.rounds(1);
    assert!(
        c.executed_at(1).is_empty(),
        "the first round only marks the slot"
    );
    c.rounds(1);
    assert_eq!(c.executed_at(1).len(), 6);
    assert!(c.recovering.is_empty());
}

/// An acceptor that lost its peers' reports for view 1 (a restart) while they voted there:
/// their view-1 votes count toward its certificate for view 1, and it votes with them, so the
/// slot decides instead of waiting for reports nobody sends any more.
#[test]
fn later_votes_count_as_evidence_for_a_view() {
    let w = Some(request(OTHER, "W", 1));
    let digest = synod_core::fab::value_digest(&w);
    let mut disk = Durable::default();
    disk.apply(&Persist::View { slot: 1, view: 1 });
    let mut r = replica_from(6, None, disk);
    let mut decided = false;
    for a in 1..=4 {
        let v = Signed::new(
            &signer(a),
            Vote {
                view: 1,
                slot: 1,
                digest,
            },
        );
        let fx = r.on_message(Message::Accepted(v, w.clone()));
        decided |= fx
            .output
            .iter()
            .any(|o| matches!(o, Output::Executed { slot: 1, .. }));
    }
    // Four votes and its own report make five statements; W is named four times.
    let fx = r.on_timer(Timer::Round);
    let fx2 = r.on_timer(Timer::Round);
    let voted = fx
        .persist
        .iter()
        .chain(&fx2.persist)
        .any(|p| matches!(p, Persist::Vote { slot: 1, view: 1, value } if *value == w));
    assert!(voted || decided, "{:?} {:?}", fx.persist, fx2.persist);
}

/// A no-op can be what a certificate vouches for, named only by reports (which carry no value
/// for it): the acceptor still votes for it.
#[test]
fn a_vouched_no_op_is_voted_for() {
    let mut disk = Durable::default();
    disk.apply(&Persist::View { slot: 1, view: 1 });
    let mut r = replica_from(1, None, disk);
    for a in 2..=5 {
        let body = Report {
            view: 1,
            slot: 1,
            last: Some((0, synod_core::fab::NOOP)),
        };
        let fx = r.on_message(Message::Report(Signed::new(&signer(a), body), None));
        assert!(
            fx.persist.is_empty(),
            "four statements are not a certificate"
        );
    }
    let mut persisted = Vec::new();
    for _ in 0..2 {
        persisted.extend(r.on_timer(Timer::Round).persist);
    }
    assert!(
        persisted.contains(&Persist::Vote {
            slot: 1,
            view: 1,
            value: None
        }),
        "{persisted:?}"
    );
}

/// From view 2 on, an acceptor whose own certificate vouches for a value still waits for the
/// leader's choice: certificates may differ, and only a leader ends a split.
#[test]
fn from_view_two_only_the_leader_chooses() {
    let w = Some(request(OTHER, "W", 1));
    let digest = synod_core::fab::value_digest(&w);
    // Slot 1, view 2 is led by acceptors[(1 + 2) % 6] = 4.
    for (id, leads) in [(1, false), (4, true)] {
        let mut disk = Durable::default();
        disk.apply(&Persist::View { slot: 1, view: 2 });
        let mut r = replica_from(id, None, disk);
        let mut sent_choice = false;
        let mut voted = false;
        for a in [2, 3, 5, 6] {
            let v = Signed::new(
                &signer(a),
                Vote {
                    view: 1,
                    slot: 1,
                    digest,
                },
            );
            let fx = r.on_message(Message::Accepted(v, w.clone()));
            let _ = r.on_timer(Timer::Round);
            sent_choice |= fx.all_sends().any(|o| matches!(o.msg, Message::Choice(..)));
            voted |= fx
                .persist
                .iter()
                .any(|p| matches!(p, Persist::Vote { view: 2, .. }));
        }
        let fx = r.on_timer(Timer::Round);
        sent_choice |= fx.all_sends().any(|o| matches!(o.msg, Message::Choice(..)));
        assert_eq!(sent_choice, leads, "acceptor {id}");
        assert_eq!(voted, leads, "acceptor {id}");
    }
}

/// A restarted acceptor keeps its vote: it does not vote for another request in the same view,
/// and resends the vote it made.
#[test]
fn a_restart_keeps_the_vote() {
    let v = request(CLIENT, "V", 1);
    let w = request(OTHER, "W", 1);
    let mut r = replica_from(1, None, Durable::default());
    let fx = r.on_message(Message::Propose {
        slot: 1,
        request: v.clone(),
    });
    let mut disk = Durable::default();
    for p in &fx.persist {
        disk.apply(p);
    }
    let mut r = replica_from(1, None, disk);
    let fx = r.on_message(Message::Propose {
        slot: 1,
        request: w,
    });
    assert!(fx.persist.is_empty(), "no second vote in view 0");
    let mut resent = Vec::new();
    for _ in 0..2 {
        let fx = r.on_timer(Timer::Round);
        resent.extend(fx.all_sends().filter_map(|o| match &o.msg {
            Message::Accepted(vote, _) => Some(vote.body.digest),
            _ => None,
        }));
    }
    assert!(resent.contains(&digest_of(&v.body)), "{resent:?}");
}

/// With the planted bug a learner decides on f = 1 matching vote: a lone liar's vote decides.
#[test]
fn the_planted_learner_decides_on_one_vote() {
    let w = Some(request(OTHER, "W", 1));
    let mut honest = replica_from(1, None, Durable::default());
    let mut buggy = replica_from(1, Some(PlantedBug::FabLearnerTakesF), Durable::default());
    assert!(honest.on_message(vote(6, 0, 1, &w)).output.is_empty());
    let fx = buggy.on_message(vote(6, 0, 1, &w));
    assert!(
        fx.output
            .iter()
            .any(|o| matches!(o, Output::Executed { slot: 1, .. })),
        "{:?}",
        fx.output
    );
}
