//! The seed's two Fast Byzantine charts, drawn from six real acceptors (each also a learner)
//! and a client: the steady state, where the client's `Accept!` and one broadcast of
//! `Accepted` decide a request; and the failure, where a lying acceptor splits a slot and the
//! correct acceptors notice, each holding the signed votes that show which value may have been
//! decided, and vote for it again in the next view without waiting for a leader.

use super::chart::{Chart, Column, Row, RowGroups};
use super::{Drawn, Outcome};
use std::collections::BTreeMap;
use std::sync::Arc;
use synod_core::auth::{Digest, Signed, SimKeyring, Verifier};
use synod_core::fab::{
    value_digest, Client, Durable, FabEffects, Message, Output, Replica, ReplicaConfig, Vote, NOOP,
};
use synod_core::pbft::OpLog;
use synod_core::quorum::FastByzantineQuorum;
use synod_core::NodeId;

const CLIENT: NodeId = 101;
const ACCEPTORS: [NodeId; 6] = [1, 2, 3, 4, 5, 6];

type Msg = Message<String, u64>;

enum Proc {
    Replica(Box<Replica<OpLog<String>>>),
    Client(Box<Client<String, u64>>),
}

struct Script {
    keys: Arc<SimKeyring>,
    chart: Chart,
    procs: BTreeMap<NodeId, Proc>,
    queue: Vec<(NodeId, NodeId, Msg)>,
    ops: BTreeMap<Digest, String>,
    learned: BTreeMap<String, String>,
    facts: Vec<String>,
}

impl Script {
    /// The cast; `liar`, if any, is scripted by the scenario instead of run.
    fn new(liar: Option<NodeId>, ops: &[&str]) -> Self {
        let keys = Arc::new(SimKeyring::new(0, ACCEPTORS.into_iter().chain([CLIENT])));
        let verifier: Arc<dyn Verifier> = keys.clone();
        let quorum = FastByzantineQuorum::new(ACCEPTORS.len()).expect("6 acceptors");
        let mut chart = Chart::default();
        chart.columns.push(Column {
            node: CLIENT,
            group: "Client",
        });
        for id in ACCEPTORS {
            chart.columns.push(Column {
                node: id,
                group: "Acceptors (each also a learner)",
            });
        }
        let mut procs = BTreeMap::new();
        let client = Client::new(
            Arc::new(keys.signer(CLIENT)),
            verifier.clone(),
            ACCEPTORS.to_vec(),
            quorum,
            ops.iter().map(|o| o.to_string()).collect(),
            1_000,
        );
        procs.insert(CLIENT, Proc::Client(Box::new(client)));
        for id in ACCEPTORS.into_iter().filter(|id| Some(*id) != liar) {
            let cfg = ReplicaConfig {
                id,
                acceptors: ACCEPTORS.to_vec(),
                quorum,
                window: 100,
                round_ticks: 1_000,
                recovery_rounds: 4,
                bug: None,
            };
            let r = Replica::recover(
                cfg,
                Arc::new(keys.signer(id)),
                verifier.clone(),
                Durable::default(),
                OpLog::default(),
            );
            procs.insert(id, Proc::Replica(Box::new(r)));
        }
        Script {
            keys,
            chart,
            procs,
            queue: Vec::new(),
            ops: BTreeMap::new(),
            learned: BTreeMap::new(),
            facts: Vec::new(),
        }
    }

    fn name(&self, digest: &Digest) -> String {
        if *digest == NOOP {
            return "no-op".into();
        }
        self.ops.get(digest).cloned().unwrap_or_else(|| "?".into())
    }

    fn label(&mut self, m: &Msg) -> String {
        match m {
            Message::Propose { slot, request } => {
                let value = Some(request.clone());
                self.ops
                    .insert(value_digest(&value), request.body.op.clone());
                format!("Propose(#{slot},{})", request.body.op)
            }
            Message::Accepted(v, value) => {
                if let Some(r) = value {
                    self.ops.insert(v.body.digest, r.body.op.clone());
                }
                let b = v.body;
                format!("Accepted({},#{},{})", b.view, b.slot, self.name(&b.digest))
            }
            Message::Report(r, _) => {
                let b = r.body;
                let last = b.last.map_or("none".into(), |(_, d)| self.name(&d));
                format!("Report({},#{},last {last})", b.view, b.slot)
            }
            Message::Choice(c, _, _) => {
                let b = c.body;
                format!("Choice({},#{},{})", b.view, b.slot, self.name(&b.digest))
            }
            Message::Reply(r) => format!("Reply(#{},{})", r.body.slot, r.body.result),
            Message::Lost(l) => format!("Lost(#{})", l.body.slot),
            other => format!("{other:?}"),
        }
    }

    fn absorb(&mut self, from: NodeId, fx: FabEffects<String, u64>) {
        for out in fx.output {
            match out {
                Output::Executed {
                    slot,
                    request: Some((r, result)),
                } => {
                    self.learned
                        .insert(format!("A{from} #{slot}"), r.op.clone());
                    self.facts
                        .push(format!("A{from} executed {} at #{slot}: {result:?}", r.op));
                }
                Output::Recovering { slot, view } => {
                    self.facts
                        .push(format!("A{from} entered view {view} at #{slot}"));
                }
                Output::Done { op, result, .. } => {
                    self.learned.insert("client".into(), op.clone());
                    self.facts.push(format!("client took {result} for {op}"));
                }
                _ => {}
            }
        }
        // Records are durable at once here: every message may leave.
        for o in fx.send.into_iter().chain(fx.send_after_sync) {
            self.queue.push((from, o.to, o.msg));
        }
    }

    /// Delivers every queued message, in order; what they cause waits for the next step.
    fn step(&mut self, draw: bool) {
        let queued = std::mem::take(&mut self.queue);
        let mut rows = RowGroups::default();
        let mut effects = Vec::new();
        for (from, to, msg) in queued {
            let label = self.label(&msg);
            rows.add(from, to, label, None);
            let fx = match self.procs.get_mut(&to) {
                Some(Proc::Replica(r)) => r.on_message(msg),
                Some(Proc::Client(c)) => c.on_message(msg),
                None => continue,
            };
            effects.push((to, fx));
        }
        if draw {
            for row in rows.rows(",") {
                self.chart.push(row);
            }
        }
        for (to, fx) in effects {
            self.absorb(to, fx);
        }
    }

    fn start_client(&mut self) {
        let fx = match self.procs.get_mut(&CLIENT).expect("client") {
            Proc::Client(c) => c.start(),
            Proc::Replica(_) => unreachable!("the client"),
        };
        self.absorb(CLIENT, fx);
    }

    /// Steps until the client takes a result (its next request, if any, is then queued).
    fn until_done(&mut self, draw: bool) {
        let done = |s: &Self| {
            s.facts
                .iter()
                .filter(|f| f.starts_with("client took"))
                .count()
        };
        let before = done(self);
        for _ in 0..8 {
            if self.queue.is_empty() || done(self) > before {
                break;
            }
            self.step(draw);
        }
    }

    fn drawn(self) -> Drawn {
        Drawn {
            chart: self.chart,
            outcome: Outcome {
                learned: self.learned,
            },
            facts: self.facts,
        }
    }
}

/// No faults: the client proposes V at slot 1 to every acceptor, each votes and broadcasts its
/// vote to every acceptor and learner, each learner decides on 5 matching votes of 6 and
/// replies, and the client takes the result on f + 1 = 2 matching replies.
pub(super) fn steady() -> Drawn {
    let mut s = Script::new(None, &["V"]);
    s.chart.push(Row::Note(
        "(the seed's Accept! is Propose; Accepted goes to every acceptor and learner)".into(),
    ));
    s.start_client();
    s.until_done(true);
    s.drawn()
}

/// Acceptor 6 lies. The client's first request, V, was decided at slot 1 (not drawn). When the
/// client proposes W at slot 2, the liar pushes V into slot 2 ahead of it, signed as its own
/// vote, to acceptor 5, which votes for the first request it hears of there: V. Learners see
/// four votes for W and two for V; no value can reach 5. The correct acceptors see it too,
/// enter view 1, and each finds among the five signed votes it holds W named at least
/// fast - 2f = 3 times, so W is the only value that may have been decided: each votes for W in
/// view 1, with no leader, and the learners decide W.
pub(super) fn failure() -> Drawn {
    let mut s = Script::new(Some(6), &["V", "W"]);
    s.start_client();
    let v = s
        .queue
        .iter()
        .find_map(|(_, _, m)| match m {
            Message::Propose { request, .. } => Some(request.clone()),
            _ => None,
        })
        .expect("the client's first request");
    // Slot 1, undrawn: the liar votes V like everyone.
    let liar = s.keys.signer(6);
    let value = Some(v);
    let vote = |slot| {
        let body = Vote {
            view: 0,
            slot,
            digest: value_digest(&value),
        };
        Message::Accepted(Signed::new(&liar, body), value.clone())
    };
    for to in 1..=5 {
        s.queue.push((6, to, vote(1)));
    }
    s.until_done(false);
    // The chart, and the outcome it is checked by, start at slot 2.
    s.learned.clear();
    s.chart.push(Row::Note(
        "(V was decided at slot 1; acceptor 6 lies)".into(),
    ));
    // Acceptor 5 hears the liar's push before the client's proposal, the others after it.
    let client_msgs = std::mem::take(&mut s.queue);
    s.queue.push((6, 5, vote(2)));
    s.queue.extend(client_msgs);
    s.queue.extend((1..=4).map(|to| (6, to, vote(2))));
    s.chart.push(Row::Note(
        "(acceptor 6 pushes V into slot 2 ahead of the client's W)".into(),
    ));
    s.until_done(true);
    s.drawn()
}
