//! The seed's "Byzantine Multi-Paxos, steady state" chart, drawn from four real PBFT replicas
//! and a client: Request, the primary's order (the seed's `Accept!`), the prepare broadcast
//! (its `Verify`), the commit broadcast (its `Accepted`), and the replies the client takes on
//! f + 1 matching. And a second chart, with a lying primary voted out by a view change that
//! carries the prepared request into the new view.

use super::chart::{Chart, Column, Row, RowGroups};
use super::{Drawn, Outcome};
use std::collections::BTreeMap;
use std::sync::Arc;
use synod_core::auth::{digest_of, Digest, Signed, SimKeyring, Verifier};
use synod_core::pbft::{
    order_digest, Client, Durable, Message, OpLog, Output, PbftEffects, PrePrepare, Replica,
    ReplicaConfig, Timer, NULL_DIGEST,
};
use synod_core::quorum::ByzantineQuorum;
use synod_core::NodeId;

const CLIENT: NodeId = 101;
const REPLICAS: [NodeId; 4] = [1, 2, 3, 4];

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
    /// Requests by digest, to name what prepares and commits vote for.
    ops: BTreeMap<Digest, String>,
    learned: BTreeMap<String, String>,
    facts: Vec<String>,
}

impl Script {
    /// The cast; `liar`, if any, is scripted by the scenario instead of run.
    fn new(liar: Option<NodeId>) -> Self {
        let keys = Arc::new(SimKeyring::new(0, REPLICAS.into_iter().chain([CLIENT])));
        let verifier: Arc<dyn Verifier> = keys.clone();
        let quorum = ByzantineQuorum::new(REPLICAS.len()).expect("4 replicas");
        let mut chart = Chart::default();
        chart.columns.push(Column {
            node: CLIENT,
            group: "Client",
        });
        chart.columns.push(Column {
            node: 1,
            group: "Primary",
        });
        for id in &REPLICAS[1..] {
            chart.columns.push(Column {
                node: *id,
                group: "Backups",
            });
        }
        let mut procs = BTreeMap::new();
        let client = Client::new(
            Arc::new(keys.signer(CLIENT)),
            verifier.clone(),
            REPLICAS.to_vec(),
            quorum,
            vec!["V".to_string()],
            1_000,
            None,
        );
        procs.insert(CLIENT, Proc::Client(Box::new(client)));
        for id in REPLICAS.into_iter().filter(|id| Some(*id) != liar) {
            let cfg = ReplicaConfig {
                id,
                replicas: REPLICAS.to_vec(),
                quorum,
                checkpoint_interval: 100,
                window: 200,
                view_change_ticks: 1_000,
                status_ticks: 1_000,
                bug: None,
            };
            let signer = Arc::new(keys.signer(id));
            let r = Replica::recover(
                cfg,
                signer,
                verifier.clone(),
                Durable::default(),
                OpLog::default(),
            )
            .expect("a fresh replica has no checkpoint to decode");
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
        if *digest == NULL_DIGEST {
            return "no-op".into();
        }
        self.ops.get(digest).cloned().unwrap_or_else(|| "?".into())
    }

    fn label(&mut self, m: &Msg) -> String {
        match m {
            Message::Request(r) => {
                self.ops.insert(digest_of(&r.body), r.body.op.clone());
                format!("Request({})", r.body.op)
            }
            Message::PrePrepare(pp, _) => {
                let b = pp.body;
                format!("PrePrepare({},#{},{})", b.view, b.seq, self.name(&b.digest))
            }
            Message::Prepare(p) => {
                let b = p.body;
                format!("Prepare({},#{},{})", b.view, b.seq, self.name(&b.digest))
            }
            Message::Commit(c) => {
                let b = c.body;
                format!("Commit({},#{},{})", b.view, b.seq, self.name(&b.digest))
            }
            Message::Reply(r) => format!("Reply({})", r.body.result),
            Message::ViewChange(vc) => {
                let prepared: Vec<String> = vc
                    .body
                    .prepared
                    .iter()
                    .map(|p| {
                        let b = p.pre_prepare.body;
                        format!("#{}={}", b.seq, self.name(&b.digest))
                    })
                    .collect();
                format!(
                    "ViewChange({},prepared {{{}}})",
                    vc.body.view,
                    prepared.join(",")
                )
            }
            Message::NewView(nv) => {
                let orders: Vec<String> = nv
                    .body
                    .pre_prepares
                    .iter()
                    .map(|pp| format!("#{}={}", pp.body.seq, self.name(&pp.body.digest)))
                    .collect();
                format!("NewView({},{})", nv.body.view, orders.join(","))
            }
            other => format!("{other:?}"),
        }
    }

    fn absorb(&mut self, from: NodeId, fx: PbftEffects<String, u64>) {
        for out in fx.output {
            match out {
                Output::Executed {
                    seq,
                    request: Some((r, result)),
                } => {
                    self.learned.insert(format!("R{from} #{seq}"), r.op.clone());
                    self.facts
                        .push(format!("R{from} executed {} at #{seq}: {result:?}", r.op));
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

    /// Delivers every queued message; what they cause waits for the next step. The client
    /// goes on to nothing: it had one request.
    fn step(&mut self) {
        let queued = std::mem::take(&mut self.queue);
        let mut rows = RowGroups::default();
        let mut effects = Vec::new();
        for (from, to, msg) in queued {
            let label = self.label(&msg);
            rows.add(from, to, label, None);
            // The scripted liar hears everything and answers as the scenario says.
            let fx = match self.procs.get_mut(&to) {
                Some(Proc::Replica(r)) => r.on_message(msg),
                Some(Proc::Client(c)) => c.on_message(msg),
                None => continue,
            };
            effects.push((to, fx));
        }
        for row in rows.rows(",") {
            self.chart.push(row);
        }
        for (to, fx) in effects {
            self.absorb(to, fx);
        }
    }
}

impl Script {
    fn start_client(&mut self) {
        let fx = match self.procs.get_mut(&CLIENT).expect("client") {
            Proc::Client(c) => c.start(),
            Proc::Replica(_) => unreachable!("the client"),
        };
        self.absorb(CLIENT, fx);
    }

    fn settle(&mut self) {
        for _ in 0..8 {
            if self.queue.is_empty() {
                break;
            }
            self.step();
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

/// Replica 1, view 0's primary, lies: it orders the client's request for replicas 3 and 4 and
/// a no-op for replica 2 at the same slot, then falls silent. Replicas 3 and 4 prepare the
/// request but cannot commit it without a third commit; the view-change timers fire, their
/// view changes carry the prepared certificate, and view 1's primary (replica 2) re-issues the
/// request at slot 1, where everyone executes it.
pub(super) fn view_change() -> Drawn {
    let mut s = Script::new(Some(1));
    s.chart.push(Row::Note(
        "(replica 1, the primary, lies: two orders for slot 1)".into(),
    ));
    s.start_client();
    let request = s
        .queue
        .iter()
        .find_map(|(_, _, m)| match m {
            Message::Request(r) => Some(r.clone()),
            _ => None,
        })
        .expect("the client's request");
    s.step();
    let liar = s.keys.signer(1);
    for (to, request) in [(2, None), (3, Some(request.clone())), (4, Some(request))] {
        let digest = order_digest(&request);
        let body = PrePrepare {
            view: 0,
            seq: 1,
            digest,
        };
        let pp = Signed::new(&liar, body);
        s.queue.push((1, to, Message::PrePrepare(pp, request)));
    }
    s.settle();
    s.chart.push(Row::Note(
        "(no third commit: the view-change timers fire)".into(),
    ));
    for id in [2, 3, 4] {
        let fx = match s.procs.get_mut(&id).expect("replica") {
            Proc::Replica(r) => r.on_timer(Timer::ViewChange),
            Proc::Client(_) => unreachable!("a replica"),
        };
        s.absorb(id, fx);
    }
    s.settle();
    s.drawn()
}

/// PBFT without faults: one request, three phases among the replicas, four replies.
pub(super) fn steady() -> Drawn {
    let mut s = Script::new(None);
    s.chart.push(Row::Note(
        "(the seed's Accept! is PrePrepare, Verify is Prepare, Accepted is Commit)".into(),
    ));
    s.start_client();
    s.settle();
    s.drawn()
}
