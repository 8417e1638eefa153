//! Single-decree scenarios, scripted step by step over the real proposer, acceptor and learner.

use super::chart::{Chart, Column, Row, RowGroups};
use super::Outcome;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use synod_core::basic::{
    Acceptor, BasicEffects, Learner, Message, Output, Proposer, ProposerConfig, Timer,
};
use synod_core::quorum::Quorum;
use synod_core::{Ballot, NodeId};

pub(super) const CLIENT: NodeId = 0;

/// Acceptor `i` (1-based).
pub(super) fn a(i: u64) -> NodeId {
    100 + i
}

/// Learner `i` (1-based).
pub(super) fn l(i: u64) -> NodeId {
    200 + i
}

/// A scripted single-decree world: messages wait in a queue until the script delivers them.
pub(super) struct Script {
    pub chart: Chart,
    proposers: BTreeMap<NodeId, Proposer<String>>,
    acceptors: BTreeMap<NodeId, Acceptor<String>>,
    learners: BTreeMap<NodeId, Learner<String>>,
    queue: Vec<(NodeId, NodeId, Message<String>)>,
    dead: BTreeSet<NodeId>,
    learned: BTreeMap<NodeId, String>,
}

fn ballot(b: Ballot) -> String {
    format!("{}.{}", b.round, b.node)
}

/// The row a message belongs to, and its part of a combined label (promises list each vote).
fn label(m: &Message<String>) -> (String, Option<String>) {
    match m {
        Message::Prepare { ballot: b } => (format!("Prepare({})", ballot(*b)), None),
        Message::Promise {
            ballot: b,
            accepted,
        } => (
            format!("Promise({}", ballot(*b)),
            Some(match accepted {
                None => "null".into(),
                Some((vb, v)) => format!("{v}@{}", ballot(*vb)),
            }),
        ),
        Message::Accept { ballot: b, value } => (format!("Accept!({},{value})", ballot(*b)), None),
        Message::Accepted { ballot: b, value } => {
            (format!("Accepted({},{value})", ballot(*b)), None)
        }
        Message::Nack { promised, .. } => (format!("Nack({})", ballot(*promised)), None),
        Message::Query => ("Query".into(), None),
    }
}

impl Script {
    pub fn new(proposers: u64, acceptors: u64, learners: u64) -> Self {
        let acc: Vec<NodeId> = (1..=acceptors).map(a).collect();
        let lrn: Vec<NodeId> = (1..=learners).map(l).collect();
        let quorum = Arc::new(Quorum::majority(&acc).expect("valid"));
        let mut chart = Chart::default();
        chart.columns.push(Column {
            node: CLIENT,
            group: "Client",
        });
        let mut s = Script {
            chart,
            proposers: BTreeMap::new(),
            acceptors: BTreeMap::new(),
            learners: BTreeMap::new(),
            queue: Vec::new(),
            dead: BTreeSet::new(),
            learned: BTreeMap::new(),
        };
        for id in 1..=proposers {
            s.chart.columns.push(Column {
                node: id,
                group: "Proposer",
            });
            let cfg = ProposerConfig {
                id,
                quorum: quorum.clone(),
                retry_ticks: (10, 20),
                seed: id,
                bug: None,
            };
            s.proposers.insert(id, Proposer::new(cfg));
        }
        for &id in &acc {
            s.chart.columns.push(Column {
                node: id,
                group: "Acceptor",
            });
            s.acceptors.insert(id, Acceptor::new(id, lrn.clone()));
        }
        for &id in &lrn {
            s.chart.columns.push(Column {
                node: id,
                group: "Learner",
            });
            s.learners.insert(id, Learner::new(id, quorum.clone(), 100));
        }
        s
    }

    /// Hides the client column (for scenarios that start mid-protocol).
    pub fn without_client(mut self) -> Self {
        self.chart.columns.retain(|c| c.node != CLIENT);
        self
    }

    fn absorb(&mut self, from: NodeId, fx: BasicEffects<String>) {
        // Records are durable at once here: every message may leave.
        for o in fx.send.into_iter().chain(fx.send_after_sync) {
            self.queue.push((from, o.to, o.msg));
        }
        for Output::Chosen(v) in fx.output {
            if self.learners.contains_key(&from) {
                self.learned.insert(from, v);
            }
        }
    }

    /// A client asks proposer `p` for `value` (drawn only when the client column is shown).
    pub fn request(&mut self, p: NodeId, value: &str) {
        if self.chart.columns.iter().any(|c| c.node == CLIENT) {
            self.chart.push(Row::Msg {
                senders: [CLIENT].into(),
                receivers: [p].into(),
                label: "Request".into(),
            });
        }
        let fx = self
            .proposers
            .get_mut(&p)
            .expect("proposer")
            .propose(value.into());
        self.absorb(p, fx);
    }

    /// Fires proposer `p`'s retry timer.
    pub fn retry(&mut self, p: NodeId) {
        let fx = self
            .proposers
            .get_mut(&p)
            .expect("proposer")
            .on_timer(Timer::Retry);
        self.absorb(p, fx);
    }

    /// Delivers every queued message that `keep` selects (in queue order); the rest stay
    /// queued. Messages to dead processes vanish. Draws one row per message kind.
    pub fn deliver(&mut self, keep: impl Fn(NodeId, NodeId, &Message<String>) -> bool) {
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|(f, t, m)| keep(*f, *t, m));
        self.queue = later;
        let mut groups = RowGroups::default();
        let learned_before = self.learned.clone();
        for (from, to, msg) in now {
            if self.dead.contains(&to) || self.dead.contains(&from) {
                continue;
            }
            let (key, part) = label(&msg);
            groups.add(from, to, key, part);
            let fx = if let Some(p) = self.proposers.get_mut(&to) {
                p.on_message(from, msg)
            } else if let Some(acc) = self.acceptors.get_mut(&to) {
                acc.on_message(from, msg)
            } else if let Some(lr) = self.learners.get_mut(&to) {
                lr.on_message(from, msg)
            } else {
                continue;
            };
            self.absorb(to, fx);
        }
        for row in groups.rows(",") {
            self.chart.push(row);
        }
        let fresh: BTreeSet<NodeId> = self
            .learned
            .keys()
            .filter(|k| !learned_before.contains_key(k))
            .copied()
            .collect();
        if !fresh.is_empty() && self.chart.columns.iter().any(|c| c.node == CLIENT) {
            self.chart.push(Row::Msg {
                senders: fresh,
                receivers: [CLIENT].into(),
                label: "Response".into(),
            });
        }
    }

    /// Delivers everything queued.
    pub fn deliver_all(&mut self) {
        self.deliver(|_, _, _| true);
    }

    /// Drops every queued message that `drop` selects, undrawn (lost in the failure).
    pub fn lose(&mut self, drop: impl Fn(NodeId, NodeId, &Message<String>) -> bool) {
        self.queue.retain(|(f, t, m)| !drop(*f, *t, m));
    }

    /// Process `node` fails: its queued messages and its state are gone for the chart's purposes.
    pub fn fail(&mut self, node: NodeId, note: &str) {
        self.dead.insert(node);
        self.queue.retain(|(f, _, _)| *f != node);
        self.chart.push(Row::Fail {
            node,
            note: note.into(),
        });
    }

    /// A remark row.
    pub fn note(&mut self, note: &str) {
        self.chart.push(Row::Note(note.into()));
    }

    /// The outcome: what each proposer and learner knows to be chosen.
    pub fn outcome(&self) -> Outcome {
        let mut learned: BTreeMap<String, String> = self
            .learned
            .iter()
            .map(|(id, v)| (format!("L{}", id - 200), v.clone()))
            .collect();
        for (id, p) in &self.proposers {
            if let Some(v) = p.chosen() {
                learned.insert(format!("P{id}"), v.clone());
            }
        }
        Outcome { learned }
    }

    /// The vote acceptor `id` holds now.
    pub fn vote_of(&self, id: NodeId) -> Option<String> {
        self.acceptors
            .get(&id)?
            .state()
            .accepted
            .as_ref()
            .map(|(_, v)| v.clone())
    }
}

/// Basic Paxos without failures: one round, everyone learns V.
pub(super) fn no_failures() -> Script {
    let mut s = Script::new(1, 3, 2);
    s.request(1, "V");
    for _ in 0..4 {
        s.deliver_all();
    }
    s
}

/// One acceptor fails; the remaining two are still a quorum.
pub(super) fn acceptor_fails() -> Script {
    let mut s = Script::new(1, 3, 2);
    s.request(1, "V");
    s.deliver_all();
    s.fail(a(3), "!! FAIL !!");
    for _ in 0..3 {
        s.deliver_all();
    }
    s
}

/// A redundant learner fails; the other learner still answers.
pub(super) fn learner_fails() -> Script {
    let mut s = Script::new(1, 3, 2);
    s.request(1, "V");
    for _ in 0..3 {
        s.deliver_all();
    }
    s.fail(l(2), "!! FAIL !!");
    s.deliver_all();
    s
}

/// The proposer fails while broadcasting Accept!; a new proposer must re-propose V.
pub(super) fn proposer_fails() -> Script {
    let mut s = Script::new(2, 3, 2);
    s.request(1, "V");
    s.deliver_all();
    s.deliver_all();
    s.note("!! Leader fails during broadcast !!");
    s.deliver(|_, to, _| to == a(1));
    s.deliver(|from, _, _| from == a(1));
    s.fail(1, "!! FAIL !!");
    s.note("!! NEW LEADER (asked for W) !!");
    s.request(2, "W");
    for _ in 0..4 {
        s.deliver_all();
    }
    s
}

/// Two proposers keep pre-empting each other until one backs off.
pub(super) fn duelling() -> Script {
    let mut s = Script::new(2, 3, 2);
    let from = |p: NodeId| move |f: NodeId, _t: NodeId, _m: &Message<String>| f == p;
    let to = |p: NodeId| move |_f: NodeId, t: NodeId, _m: &Message<String>| t == p;
    s.request(1, "V1");
    s.deliver(from(1)); // Prepare(1.1)
    s.deliver(to(1)); // Promise; P1's Accept! waits
    s.note("!! a second proposer starts");
    s.request(2, "V2");
    s.deliver(from(2)); // Prepare(1.2)
    s.deliver(to(2)); // Promise; P2's Accept! waits
    s.note("!! P1 proposes, denied");
    s.deliver(from(1)); // Accept!(1.1) -> Nack
    s.deliver(to(1));
    s.note("!! P1 tries a higher ballot");
    s.retry(1);
    s.deliver(from(1));
    s.deliver(to(1));
    s.note("!! P2 proposes, denied");
    s.deliver(from(2));
    s.deliver(to(2));
    s.note("!! P2 tries a higher ballot");
    s.retry(2);
    s.deliver(from(2));
    s.deliver(to(2));
    s.note("!! P1 proposes, denied; it backs off for a random while");
    s.deliver(from(1));
    s.deliver(to(1));
    s.note("!! P2 proposes undisturbed");
    s.deliver(from(2));
    s.deliver_all();
    s
}

/// An acceptor accepts V1, then V2: harmless, V1 was never chosen.
pub(super) fn two_values() -> Script {
    let mut s = Script::new(2, 3, 2).without_client();
    s.request(1, "V1");
    s.deliver_all();
    s.deliver_all();
    s.deliver(|_, to, _| to == a(1)); // Accept!(1.1,V1) reaches A1 only
    s.lose(|f, _, _| f == 1);
    s.deliver_all(); // A1's Accepted goes out
    s.fail(1, "!! FAIL !!");
    s.request(2, "V2");
    s.deliver(|_, to, _| to != a(1)); // Prepare to A2, A3 only
    s.lose(|_, to, _| to == a(1));
    for _ in 0..3 {
        s.deliver_all();
    }
    s
}

/// V1 is accepted by a majority, but in different ballots: not chosen, and V2 wins.
pub(super) fn multi_identifier_majority() -> Script {
    let mut s = Script::new(4, 5, 2).without_client();
    // P1: V1 reaches A1 only.
    s.request(1, "V1");
    s.deliver_all();
    s.deliver_all();
    s.deliver(|_, to, _| to == a(1));
    s.lose(|f, _, _| f == 1);
    s.deliver_all();
    s.fail(1, "!! FAIL !!");
    // P2 prepares A2..A5: V2 reaches A2 only.
    s.request(2, "V2");
    s.lose(|_, to, _| to == a(1));
    s.deliver_all();
    s.deliver_all();
    s.deliver(|_, to, _| to == a(2));
    s.lose(|f, _, _| f == 2);
    s.deliver_all();
    s.fail(2, "!! FAIL !!");
    // P3 prepares A1, A3, A4, A5: must propose V1; it reaches A3 and A4.
    s.request(3, "V3");
    s.lose(|_, to, _| to == a(2));
    s.deliver_all();
    s.deliver_all();
    s.deliver(|_, to, _| to == a(3) || to == a(4));
    s.lose(|f, _, _| f == 3);
    s.deliver_all();
    s.fail(3, "!! FAIL !!");
    s.note("V1 was accepted by A1, A3, A4: a majority, but in two ballots");
    // P4 prepares A1, A2, A5: the highest vote among them is V2.
    s.request(4, "V4");
    s.lose(|_, to, _| to == a(3) || to == a(4));
    for _ in 0..4 {
        s.deliver_all();
    }
    s
}

/// V1 is chosen; a new proposer that asks for V2 can only re-propose V1.
pub(super) fn cannot_change() -> Script {
    let mut s = Script::new(2, 3, 2).without_client();
    s.request(1, "V1");
    s.deliver_all();
    s.deliver_all();
    s.deliver(|_, to, _| to == a(1) || to == a(2));
    s.lose(|f, _, _| f == 1);
    s.deliver_all();
    s.fail(1, "!! FAIL !!");
    s.request(2, "V2");
    s.deliver(|_, to, _| to != a(1));
    s.lose(|_, to, _| to == a(1));
    for _ in 0..3 {
        s.deliver_all();
    }
    s
}
