//! The Fast Multi-Paxos scenario, scripted over four real servers and two clients: a command
//! that takes the fast path, then two that race and collide, recovered by the leader in a new
//! round.

use super::chart::{Chart, Column, Row, RowGroups};
use super::{Drawn, Outcome};
use std::collections::BTreeMap;
use std::sync::Arc;
use synod_core::fast::Recovery;
use synod_core::fast_multi::{
    AcceptorConfig, AcceptorState, Client, Entry, FmEffects, LeaderConfig, Message, Output,
    Persist, Server, Timer,
};
use synod_core::quorum::FastQuorum;
use synod_core::NodeId;

const C1: NodeId = 101;
const C2: NodeId = 102;
const SERVERS: [NodeId; 4] = [1, 2, 3, 4];

fn entry(e: &Entry<String>) -> String {
    match e {
        Entry::Command(c) => c.clone(),
        Entry::Noop => "no-op".into(),
    }
}

fn label(m: &Message<String>) -> String {
    match m {
        Message::Propose { value } => format!("Propose({value})"),
        Message::Prepare { round, from } => format!("Prepare({round},from {from})"),
        Message::Promise { round, .. } => format!("Promise({round})"),
        Message::Any { round, from, .. } => format!("Any({round},from {from})"),
        Message::Accept { round, slot, value } => {
            format!("Accept!({round},#{slot}={})", entry(value))
        }
        Message::Accepted { slot, vote } => {
            format!("Accepted({},#{slot}={})", vote.round, entry(&vote.value))
        }
        Message::Nack { promised, .. } => format!("Nack({promised})"),
        Message::Chosen { slot, value } => format!("Chosen(#{slot}={})", entry(value)),
        Message::Query { from } => format!("Query(from {from})"),
        Message::Done { value, index } => format!("Done({value},#{index})"),
    }
}

enum Proc {
    Server(Box<Server<String>>),
    Client(Client<String>),
}

struct Script {
    chart: Chart,
    procs: BTreeMap<NodeId, Proc>,
    queue: Vec<(NodeId, NodeId, Message<String>)>,
    /// Every vote persisted: (server, slot, round, entry).
    votes: Vec<(NodeId, u64, String, String)>,
    /// What each process learned or was told: slot (or a client's command) → entry.
    learned: BTreeMap<String, String>,
}

impl Script {
    fn new() -> Self {
        let quorum = Arc::new(FastQuorum::majority(&SERVERS).expect("4 servers"));
        let mut s = Script {
            chart: Chart::default(),
            procs: BTreeMap::new(),
            queue: Vec::new(),
            votes: Vec::new(),
            learned: BTreeMap::new(),
        };
        for (c, commands) in [(C1, vec!["a", "b"]), (C2, vec!["c"])] {
            s.chart.columns.push(Column {
                node: c,
                group: "Client",
            });
            let commands = commands.into_iter().map(String::from).collect();
            let client = Client::new(SERVERS.to_vec(), commands, 1_000);
            s.procs.insert(c, Proc::Client(client));
        }
        for id in SERVERS {
            s.chart.columns.push(Column {
                node: id,
                group: "Servers",
            });
            let acceptor = AcceptorConfig {
                id,
                quorum: quorum.clone(),
                learners: SERVERS.to_vec(),
                bug: None,
            };
            let leader = LeaderConfig {
                id,
                quorum: quorum.clone(),
                heartbeat_ticks: 100,
                election_ticks: 100 * id,
                stall_beats: 3,
                recovery: Recovery::Coordinated,
                bug: None,
            };
            let server = Server::recover(acceptor, AcceptorState::default(), leader, 0, 100);
            s.procs.insert(id, Proc::Server(Box::new(server)));
        }
        s
    }

    fn absorb(&mut self, from: NodeId, fx: FmEffects<String>) {
        for record in &fx.persist {
            if let Persist::Voted { slot, vote } = record {
                let round = vote.round.to_string();
                self.votes.push((from, *slot, round, entry(&vote.value)));
            }
        }
        for out in fx.output {
            match out {
                Output::Chosen { slot, value } => {
                    self.learned
                        .insert(format!("S{from} #{slot}"), entry(&value));
                }
                Output::Done { value, index } => {
                    self.learned
                        .insert(format!("C{} #{index}", from - 100), value);
                }
                Output::Applied { .. } | Output::GaveUp { .. } => {}
            }
        }
        // Records are durable at once here: every message may leave.
        for o in fx.send.into_iter().chain(fx.send_after_sync) {
            self.queue.push((from, o.to, o.msg));
        }
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, msg: Message<String>) -> FmEffects<String> {
        match self.procs.get_mut(&to).expect("process") {
            Proc::Server(s) => s.on_message(from, msg),
            Proc::Client(c) => c.on_message(msg),
        }
    }

    /// Delivers every queued message, those `first` prefers first for each receiver; what they
    /// cause waits for the next call. A server's messages to itself are not drawn.
    fn step(&mut self, first: impl Fn(NodeId, NodeId) -> bool) {
        let mut queued = std::mem::take(&mut self.queue);
        queued.sort_by_key(|(from, to, _)| !first(*from, *to));
        let mut rows = RowGroups::default();
        let mut effects = Vec::new();
        for (from, to, msg) in queued {
            if from != to {
                rows.add(from, to, label(&msg), None);
            }
            effects.push((to, self.deliver(from, to, msg)));
        }
        for row in rows.rows(",") {
            self.chart.push(row);
        }
        for (to, fx) in effects {
            self.absorb(to, fx);
        }
    }

    fn settle(&mut self) {
        for _ in 0..12 {
            if self.queue.is_empty() {
                return;
            }
            self.step(|_, _| true);
        }
    }

    fn start(&mut self, id: NodeId) {
        let fx = match self.procs.get_mut(&id).expect("process") {
            Proc::Server(s) => s.start(),
            Proc::Client(c) => c.start(),
        };
        self.absorb(id, fx);
    }

    /// S1's election timer fires: phase 1 of its first round, off the chart.
    fn elect_off_chart(&mut self) {
        for id in SERVERS {
            self.start(id);
        }
        let fx = match self.procs.get_mut(&1).expect("S1") {
            Proc::Server(s) => s.on_timer(Timer::Election),
            Proc::Client(_) => unreachable!("S1 is a server"),
        };
        self.absorb(1, fx);
        for _ in 0..2 {
            let queued = std::mem::take(&mut self.queue);
            for (from, to, msg) in queued {
                let fx = self.deliver(from, to, msg);
                self.absorb(to, fx);
            }
        }
        self.chart
            .push(Row::Note("(S1 won round 1.1 ahead of any request)".into()));
    }
}

/// Fast Multi-Paxos: C1's `a` takes the fast path (Propose, Accepted: 2 delays); then C1's
/// `b` and C2's `c` race, S1 and S2 seeing `b` first and S3 and S4 `c`, so slots 1 and 2
/// both split 2-2 with a fast quorum of 3. S1 hears it, prepares round 2, finishes both slots
/// classically, and reopens the fast round above them.
pub(super) fn collision() -> Drawn {
    let mut s = Script::new();
    s.elect_off_chart();
    s.start(C1);
    // Any and Propose(a) travel together; Any first at every server.
    s.step(|from, _| from == 1);
    s.step(|_, _| true); // Accepted
    s.step(|_, _| true); // Done(a); C1 proposes b at once
    s.queue
        .retain(|(from, _, m)| *from == C1 || !matches!(m, Message::Done { .. }));
    s.start(C2);
    s.step(|from, to| (from == C1) == (to <= 2));
    s.settle();
    let mut facts = Vec::new();
    for slot in 0..3 {
        let votes: Vec<String> = s
            .votes
            .iter()
            .filter(|v| v.1 == slot)
            .map(|(id, _, round, e)| format!("S{id}={e}@{round}"))
            .collect();
        facts.push(format!("#{slot}: {}", votes.join(" ")));
    }
    Drawn {
        chart: s.chart,
        outcome: Outcome { learned: s.learned },
        facts,
    }
}
