//! Fast Paxos scenarios, scripted over the real coordinator, acceptors, learners, clients and
//! collapsed servers: the seed's four Fast Paxos charts.

use super::chart::{Chart, Column, Row, RowGroups};
use super::{Drawn, Outcome};
use std::collections::BTreeMap;
use std::sync::Arc;
use synod_core::fast::{
    Acceptor, AcceptorConfig, AcceptorState, Client, Coordinator, CoordinatorConfig, FastEffects,
    Learner, Message, Persist, Recovery, Round, Server,
};
use synod_core::quorum::FastQuorum;
use synod_core::NodeId;

const LEADER: NodeId = 1;
const CLIENT_V: NodeId = 301;
const CLIENT_W: NodeId = 302;

fn acceptor_id(i: u64) -> NodeId {
    100 + i
}

enum Proc {
    Coordinator(Coordinator<String>),
    Acceptor(Acceptor<String>),
    Learner(Learner<String>),
    Client(Client<String>),
    Server(Box<Server<String>>),
}

impl Proc {
    fn on_message(&mut self, from: NodeId, msg: Message<String>) -> FastEffects<String> {
        match self {
            Proc::Coordinator(p) => p.on_message(from, msg),
            Proc::Acceptor(p) => p.on_message(from, msg),
            Proc::Learner(p) => p.on_message(from, msg),
            Proc::Client(p) => p.on_message(from, msg),
            Proc::Server(p) => p.on_message(from, msg),
        }
    }
}

/// A scripted Fast Paxos world: messages wait in a queue until the script delivers them.
struct Script {
    chart: Chart,
    procs: BTreeMap<NodeId, Proc>,
    queue: Vec<(NodeId, NodeId, Message<String>)>,
    /// Who said what is chosen (learners, servers, clients).
    learned: BTreeMap<NodeId, String>,
    /// Every vote persisted, in order.
    votes: Vec<(NodeId, Round, String)>,
    /// Acceptors are collapsed servers (named S1.. instead of A1..).
    servers: bool,
}

fn label(m: &Message<String>) -> String {
    match m {
        Message::Propose { value } => format!("Accept!({value})"),
        Message::Prepare { round } => format!("Prepare({round})"),
        Message::Promise { round, .. } => format!("Promise({round})"),
        Message::Any { round, recovery } => format!(
            "Any({round},{})",
            match recovery {
                Recovery::Coordinated => "coordinated",
                Recovery::Uncoordinated => "uncoordinated",
            }
        ),
        Message::Accept { round, value } => format!("Accept!({round},{value})"),
        Message::Accepted { vote } => format!("Accepted({},{})", vote.round, vote.value),
        Message::Nack { promised, .. } => format!("Nack({promised})"),
        Message::Query => "Query".into(),
        Message::Chosen { value } => format!("Response({value})"),
    }
}

fn name(id: NodeId, servers: bool) -> String {
    match id {
        101..=199 if servers => format!("S{}", id - 100),
        LEADER => "Leader".into(),
        CLIENT_V => "C1".into(),
        CLIENT_W => "C2".into(),
        101..=199 => format!("A{}", id - 100),
        201..=299 => format!("L{}", id - 200),
        _ => id.to_string(),
    }
}

impl Script {
    /// Separate roles: one leader, four acceptors, two learners, two clients.
    fn separate(recovery: Recovery) -> Self {
        let acceptors: Vec<NodeId> = (1..=4).map(acceptor_id).collect();
        let learners = vec![201, 202];
        let clients = vec![CLIENT_V, CLIENT_W];
        let quorum = Arc::new(FastQuorum::majority(&acceptors).expect("4 acceptors"));
        let mut s = Script::empty();
        for &c in &clients {
            s.column(c, "Client");
        }
        s.column(LEADER, "Leader");
        let cfg = CoordinatorConfig {
            id: LEADER,
            quorum: quorum.clone(),
            recovery,
            retry_ticks: (100, 200),
            seed: 1,
            bug: None,
        };
        s.procs
            .insert(LEADER, Proc::Coordinator(Coordinator::recover(cfg, 0)));
        for &a in &acceptors {
            s.column(a, "Acceptor");
            let cfg = AcceptorConfig {
                id: a,
                quorum: quorum.clone(),
                learners: learners.clone(),
                bug: None,
            };
            let acc = Acceptor::recover(cfg, AcceptorState::default());
            s.procs.insert(a, Proc::Acceptor(acc));
        }
        for &l in &learners {
            s.column(l, "Learner");
            let learner = Learner::new(l, quorum.clone(), clients.clone(), 100);
            s.procs.insert(l, Proc::Learner(learner));
        }
        s.clients(&acceptors);
        s
    }

    /// Collapsed roles: four servers, each an acceptor and a learner; S1 also coordinates.
    fn collapsed() -> Self {
        let servers: Vec<NodeId> = (1..=4).map(acceptor_id).collect();
        let quorum = Arc::new(FastQuorum::majority(&servers).expect("4 servers"));
        let mut s = Script::empty();
        s.servers = true;
        s.column(CLIENT_V, "Client");
        s.column(CLIENT_W, "Client");
        for &id in &servers {
            s.column(id, "Servers");
            let acceptor = AcceptorConfig {
                id,
                quorum: quorum.clone(),
                learners: servers.clone(),
                bug: None,
            };
            let coordinator = (id == servers[0]).then(|| {
                let cfg = CoordinatorConfig {
                    id,
                    quorum: quorum.clone(),
                    recovery: Recovery::Uncoordinated,
                    retry_ticks: (100, 200),
                    seed: 1,
                    bug: None,
                };
                (cfg, 0)
            });
            let clients = vec![CLIENT_V, CLIENT_W];
            let server = Server::recover(
                acceptor,
                AcceptorState::default(),
                clients,
                100,
                coordinator,
            );
            s.procs.insert(id, Proc::Server(Box::new(server)));
        }
        s.clients(&servers);
        s
    }

    fn empty() -> Self {
        Script {
            chart: Chart::default(),
            procs: BTreeMap::new(),
            queue: Vec::new(),
            learned: BTreeMap::new(),
            votes: Vec::new(),
            servers: false,
        }
    }

    fn column(&mut self, node: NodeId, group: &'static str) {
        self.chart.columns.push(Column { node, group });
    }

    fn clients(&mut self, acceptors: &[NodeId]) {
        for (id, v) in [(CLIENT_V, "V"), (CLIENT_W, "W")] {
            let c = Client::new(id, v.to_string(), acceptors.to_vec(), 1000);
            self.procs.insert(id, Proc::Client(c));
        }
    }

    fn absorb(&mut self, from: NodeId, fx: FastEffects<String>) {
        for record in &fx.persist {
            if let Persist::Voted(v) = record {
                self.votes.push((from, v.round, v.value.clone()));
            }
        }
        for synod_core::fast::Output::Chosen(v) in fx.output {
            self.learned.insert(from, v);
        }
        // Records are durable at once here: every message may leave.
        for o in fx.send.into_iter().chain(fx.send_after_sync) {
            self.queue.push((from, o.to, o.msg));
        }
    }

    /// Runs the leader's phase 1 without drawing it: the seed's charts start at `Any`.
    fn prepared_off_chart(&mut self, leader: NodeId) {
        let fx = match self.procs.get_mut(&leader) {
            Some(Proc::Coordinator(c)) => c.start(),
            Some(Proc::Server(s)) => s.start(),
            _ => return,
        };
        self.absorb(leader, fx);
        // Prepare, then Promise, delivered off the chart.
        for _ in 0..2 {
            let queued: Vec<_> = std::mem::take(&mut self.queue);
            let (phase1, rest): (Vec<_>, Vec<_>) = queued.into_iter().partition(|(_, _, m)| {
                matches!(m, Message::Prepare { .. } | Message::Promise { .. })
            });
            self.queue = rest;
            for (from, to, msg) in phase1 {
                let fx = self
                    .procs
                    .get_mut(&to)
                    .expect("process")
                    .on_message(from, msg);
                self.absorb(to, fx);
            }
        }
        self.chart.push(Row::Note(
            "(phase 1 of round 1 done ahead of any request)".into(),
        ));
    }

    /// Both clients send their proposals.
    fn clients_propose(&mut self, which: &[NodeId]) {
        for &c in which {
            let fx = match self.procs.get_mut(&c) {
                Some(Proc::Client(client)) => client.start(),
                _ => continue,
            };
            self.absorb(c, fx);
        }
    }

    /// Delivers every queued message (messages they cause wait for the next call), in the
    /// order `first` sorts them: for each receiver, messages `first` prefers come first.
    fn step(&mut self, first: impl Fn(NodeId, NodeId, &Message<String>) -> bool) {
        let mut queued = std::mem::take(&mut self.queue);
        queued.sort_by_key(|(from, to, m)| !first(*from, *to, m));
        let mut rows = RowGroups::default();
        let mut effects = Vec::new();
        for (from, to, msg) in queued {
            // A collapsed server hands itself what waited for its sync: not drawn.
            if from != to {
                rows.add(from, to, label(&msg), None);
            }
            let fx = self
                .procs
                .get_mut(&to)
                .expect("process")
                .on_message(from, msg);
            effects.push((to, fx));
        }
        for row in rows.rows(",") {
            self.chart.push(row);
        }
        for (to, fx) in effects {
            self.absorb(to, fx);
        }
    }

    fn settle(&mut self) {
        for _ in 0..10 {
            if self.queue.is_empty() {
                return;
            }
            self.step(|_, _, _| true);
        }
    }

    fn drawn(self) -> Drawn {
        let mut outcome = Outcome::default();
        for (id, v) in &self.learned {
            outcome.learned.insert(name(*id, self.servers), v.clone());
        }
        let mut facts: Vec<String> = Vec::new();
        let mut rounds: Vec<Round> = self.votes.iter().map(|(_, r, _)| *r).collect();
        rounds.dedup();
        for r in rounds {
            let votes: Vec<String> = self
                .votes
                .iter()
                .filter(|(_, vr, _)| *vr == r)
                .map(|(id, _, v)| format!("{}={v}", name(*id, self.servers)))
                .collect();
            facts.push(format!("round {r}: {}", votes.join(" ")));
        }
        Drawn {
            chart: self.chart,
            outcome,
            facts,
        }
    }
}

/// A proposal from client `c` reaches the acceptors in `firsts` before the other client's.
fn race(firsts: &'static [u64]) -> impl Fn(NodeId, NodeId, &Message<String>) -> bool {
    move |from, to, _| {
        let v_first = firsts.contains(&(to % 100));
        (from == CLIENT_V) == v_first
    }
}

/// Fast Paxos without a collision: `Any`, one client's `Accept!`, `Accepted`, `Response`.
pub(super) fn non_conflicting() -> Drawn {
    let mut s = Script::separate(Recovery::Coordinated);
    s.prepared_off_chart(LEADER);
    s.step(|_, _, _| true); // Any
    s.clients_propose(&[CLIENT_W]);
    s.settle();
    s.drawn()
}

/// Two clients race after `leader` opened round 1 with `Any`: A1, A2 (or S1, S2) see V
/// first, the other two W, so no value has a fast quorum; then everything settles.
fn race_after_any(mut s: Script, leader: NodeId) -> Drawn {
    s.prepared_off_chart(leader);
    s.step(|_, _, _| true); // Any
    s.clients_propose(&[CLIENT_V, CLIENT_W]);
    s.step(race(&[1, 2]));
    s.settle();
    s.drawn()
}

/// The race with coordinated recovery: the leader, holding all four votes, picks by the rule
/// and runs the next step as a classic round.
pub(super) fn coordinated_recovery() -> Drawn {
    race_after_any(Script::separate(Recovery::Coordinated), LEADER)
}

/// The race with uncoordinated recovery: each acceptor hears the others' votes, picks by the
/// same rule, and votes in the next step on its own.
pub(super) fn uncoordinated_recovery() -> Drawn {
    race_after_any(Script::separate(Recovery::Uncoordinated), LEADER)
}

/// Collapsed roles with uncoordinated recovery: servers are acceptors and learners.
pub(super) fn collapsed() -> Drawn {
    race_after_any(Script::collapsed(), acceptor_id(1))
}
