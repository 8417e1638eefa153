//! The seed's Generalized Paxos example, scripted over the real leader, acceptors and learners:
//! two clients read and write registers A and B; commuting commands that arrive in different
//! orders are learned at once, conflicting ones need the leader.

use super::chart::{Chart, Column, Row, RowGroups};
use super::{Drawn, Outcome};
use std::collections::BTreeMap;
use std::sync::Arc;
use synod_core::generalized::{
    Acceptor, AcceptorConfig, AcceptorState, Command, GenEffects, Leader, LeaderConfig, Learner,
    Message, Op, Output, Registers, Relation,
};
use synod_core::quorum::FastQuorum;
use synod_core::NodeId;

const LEADER: NodeId = 1;
const C1: NodeId = 301;
const C2: NodeId = 302;
const LEARNERS: [NodeId; 2] = [201, 202];

enum Proc {
    Leader(Leader),
    Acceptor(Acceptor),
    Learner(Learner),
}

impl Proc {
    fn on_message(&mut self, from: NodeId, msg: Message) -> GenEffects {
        match self {
            Proc::Leader(p) => p.on_message(from, msg),
            Proc::Acceptor(p) => p.on_message(from, msg),
            Proc::Learner(p) => p.on_message(from, msg),
        }
    }
}

struct Script {
    chart: Chart,
    procs: BTreeMap<NodeId, Proc>,
    queue: Vec<(NodeId, NodeId, Message)>,
    /// The latest history each learner reported.
    stable: BTreeMap<NodeId, String>,
    /// What the first learner has learned, as each "Stable" note showed it.
    notes: Vec<String>,
    seq: BTreeMap<NodeId, u64>,
}

fn label(m: &Message) -> (String, Option<String>) {
    match m {
        Message::Propose { cmd } => (format!("Propose({cmd})"), None),
        Message::Prepare { round } => (format!("Prepare({round})"), None),
        Message::Promise { round, vote } => (
            format!("Promise({round}"),
            Some(vote.as_ref().map_or("null".into(), |(_, h)| h.to_string())),
        ),
        Message::Phase2Start { round, base } => (format!("Phase2Start({round},{base})"), None),
        Message::Accepted { round, value } => (format!("Accepted({round},{value})"), None),
        Message::Nack { promised, .. } => (format!("Nack({promised})"), None),
        Message::Query => ("Query".into(), None),
        Message::Learned { value } => (format!("Learned({value})"), None),
        Message::Done { cmd } => (format!("Done({cmd})"), None),
    }
}

impl Script {
    fn new() -> Self {
        let acceptors: Vec<NodeId> = (101..=103).collect();
        let quorum = Arc::new(FastQuorum::majority(&acceptors).expect("3 acceptors"));
        let rel: Arc<dyn Relation> = Arc::new(Registers);
        let mut s = Script {
            chart: Chart::default(),
            procs: BTreeMap::new(),
            queue: Vec::new(),
            stable: BTreeMap::new(),
            notes: Vec::new(),
            seq: BTreeMap::new(),
        };
        for (node, group) in [(C1, "Client"), (C2, "Client"), (LEADER, "Leader")] {
            s.chart.columns.push(Column { node, group });
        }
        let cfg = LeaderConfig {
            id: LEADER,
            quorum: quorum.clone(),
            relation: rel.clone(),
            retry_ticks: (100, 200),
            seed: 1,
        };
        s.procs
            .insert(LEADER, Proc::Leader(Leader::recover(cfg, 0)));
        for &id in &acceptors {
            s.chart.columns.push(Column {
                node: id,
                group: "Acceptor",
            });
            let cfg = AcceptorConfig {
                id,
                quorum: quorum.clone(),
                learners: LEARNERS.to_vec(),
                relation: rel.clone(),
                bug: None,
            };
            let a = Acceptor::recover(cfg, AcceptorState::default());
            s.procs.insert(id, Proc::Acceptor(a));
        }
        for id in LEARNERS {
            s.chart.columns.push(Column {
                node: id,
                group: "Learner",
            });
            let l = Learner::new(id, quorum.clone(), rel.clone(), vec![], 100);
            s.procs.insert(id, Proc::Learner(l));
        }
        s
    }

    /// Queues what a step produced. An acceptor reports its whole history after every command
    /// it appends; of the reports one step makes to one receiver only the last is kept (it
    /// holds the others), as the seed's chart draws them.
    fn absorb(&mut self, from: NodeId, fx: GenEffects, fresh: &mut Vec<(NodeId, NodeId, Message)>) {
        for out in fx.output {
            if let Output::Learned(h) = out {
                if LEARNERS.contains(&from) {
                    self.stable.insert(from, h.to_string());
                }
            }
        }
        for o in fx.send.into_iter().chain(fx.send_after_sync) {
            // Clients are not drawn answering ("responses not shown").
            if !self.procs.contains_key(&o.to) {
                continue;
            }
            if matches!(o.msg, Message::Accepted { .. }) {
                fresh.retain(|(f, t, m)| {
                    !(*f == from && *t == o.to && matches!(m, Message::Accepted { .. }))
                });
            }
            fresh.push((from, o.to, o.msg));
        }
    }

    fn start_leader(&mut self) {
        let fx = match self.procs.get_mut(&LEADER) {
            Some(Proc::Leader(l)) => l.start(),
            _ => return,
        };
        let mut fresh = Vec::new();
        self.absorb(LEADER, fx, &mut fresh);
        self.queue.extend(fresh);
    }

    /// `client` proposes `op` to the leader and every acceptor.
    fn propose(&mut self, client: NodeId, op: Op) {
        let seq = self.seq.entry(client).or_default();
        let cmd = Command {
            client,
            seq: *seq,
            op,
        };
        *seq += 1;
        for to in [LEADER, 101, 102, 103] {
            let cmd = cmd.clone();
            self.queue.push((client, to, Message::Propose { cmd }));
        }
    }

    /// Delivers everything queued; for each receiver, what `first` prefers comes first.
    fn step(&mut self, first: impl Fn(NodeId, NodeId) -> bool) {
        let mut queued = std::mem::take(&mut self.queue);
        queued.sort_by_key(|(from, to, _)| !first(*from, *to));
        let mut rows = RowGroups::default();
        let mut fresh = Vec::new();
        for (from, to, msg) in queued {
            let (key, part) = label(&msg);
            rows.add(from, to, key, part);
            let fx = self
                .procs
                .get_mut(&to)
                .expect("process")
                .on_message(from, msg);
            self.absorb(to, fx, &mut fresh);
        }
        for row in rows.rows(",") {
            self.chart.push(row);
        }
        self.queue = fresh;
    }

    fn settle(&mut self) {
        for _ in 0..10 {
            if self.queue.is_empty() {
                break;
            }
            self.step(|_, _| true);
        }
        let note = self
            .stable
            .get(&LEARNERS[0])
            .cloned()
            .unwrap_or_else(|| "<>".into());
        self.chart.push(Row::Note(format!("Stable = {note}")));
        self.notes.push(note);
    }

    fn drawn(self) -> Drawn {
        let mut outcome = Outcome::default();
        for (id, h) in &self.stable {
            outcome.learned.insert(format!("L{}", id - 200), h.clone());
        }
        Drawn {
            chart: self.chart,
            outcome,
            facts: self.notes,
        }
    }
}

/// The seed's example: commuting reads in different orders are both learned; a write and a
/// read of B in different orders are a conflict the leader resolves in the round's next step,
/// and so are a write and a read of A.
pub(super) fn example() -> Drawn {
    let mut s = Script::new();
    s.start_leader();
    s.settle(); // Prepare, Promise, Phase2Start(<>)
    s.chart
        .push(Row::Note("!! Concurrent commuting proposals".into()));
    s.propose(C2, Op::read("A"));
    s.propose(C1, Op::read("B"));
    s.step(|from, to| (to == 101) == (from == C2));
    s.settle();
    s.chart
        .push(Row::Note("!! Concurrent conflicting proposals".into()));
    s.propose(C1, Op::write("B"));
    s.propose(C1, Op::read("A"));
    s.propose(C2, Op::read("B"));
    s.step(|from, to| (to == 101) == (from == C1));
    s.settle();
    s.chart
        .push(Row::Note("!! More conflicting proposals".into()));
    s.propose(C1, Op::write("A"));
    s.propose(C2, Op::read("A"));
    s.step(|from, to| (to == 101) == (from == C1));
    s.settle();
    s.drawn()
}
