//! Multi-Paxos scenarios, scripted over real replicas with collapsed roles.

use super::chart::{Chart, Column, Row, RowGroups};
use super::Outcome;
use crate::kv::{Kv, KvOp, KvResult};
use std::collections::{BTreeMap, BTreeSet};
use synod_core::multi::auxiliary::{AuxDurable, Auxiliary};
use synod_core::multi::{
    Command, Config, MemberInfo, MemberOp, Message, MultiEffects, Output, Replica, Role, Timer,
    Value,
};
use synod_core::NodeId;

const CLIENT: NodeId = 0;
const CLIENT_ID: u64 = 7;

/// A scripted cluster of replicas and one client.
pub(super) struct Script {
    pub chart: Chart,
    replicas: BTreeMap<NodeId, Replica<Kv>>,
    queue: Vec<(NodeId, NodeId, Message<KvOp>)>,
    dead: BTreeSet<NodeId>,
    responses: Vec<(u64, KvResult)>,
    drawing: bool,
    seq: u64,
    /// A membership change chosen in slot `i` governs from `i + alpha`.
    alpha: u64,
    changes: u64,
    /// Cheap Paxos's auxiliary acceptors.
    auxes: BTreeMap<NodeId, Auxiliary<KvOp>>,
}

fn op_text(op: &KvOp) -> String {
    match op {
        KvOp::Get(k) => format!("get {k}"),
        KvOp::Put(k, v) => format!("put {k}={v}"),
        KvOp::Cas { key, new, .. } => format!("cas {key}={new}"),
    }
}

fn value_text(v: &Value<KvOp>) -> String {
    match v {
        Value::Noop => "no-op".into(),
        Value::Digest(d) => format!("{d:?}"),
        Value::Batch(b) => b
            .iter()
            .map(|c| op_text(&c.op))
            .collect::<Vec<_>>()
            .join("; "),
        Value::Reconfig(c) => c
            .ops
            .iter()
            .map(|op| match op {
                MemberOp::Add { role, info, .. } => format!("add {} as {role:?}", info.name),
                MemberOp::Remove(id) => format!("remove S{id}"),
                MemberOp::SetRole { id, role } => format!("S{id} becomes {role:?}"),
                MemberOp::Update { id, .. } => format!("update S{id}"),
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

fn label(m: &Message<KvOp>) -> (String, Option<String>) {
    match m {
        Message::Prepare { ballot, from } => (format!("Prepare({ballot}, I>={from})"), None),
        Message::Promise {
            ballot, entries, ..
        } => (
            format!("Promise({ballot}"),
            Some(if entries.is_empty() {
                "-".into()
            } else {
                entries
                    .iter()
                    .map(|e| format!("I={}:{}@{}", e.slot, value_text(&e.value), e.ballot))
                    .collect::<Vec<_>>()
                    .join(" ")
            }),
        ),
        Message::Accept {
            ballot,
            slot,
            value,
            ..
        } => (
            format!("Accept!({ballot}, I={slot}, {})", value_text(value)),
            None,
        ),
        Message::Accepted { ballot, slot } => (format!("Accepted({ballot}, I={slot})"), None),
        Message::Heartbeat { ballot, commit } => (
            format!("Heartbeat({ballot}, chosen below I={commit})"),
            None,
        ),
        Message::Nack { promised, .. } => (format!("Nack({promised})"), None),
        Message::Chosen { slot, value } => {
            (format!("Chosen(I={slot}, {})", value_text(value)), None)
        }
        Message::CatchUpRequest { from } => (format!("CatchUp?(I>={from})"), None),
        Message::CatchUp { entries } => (format!("CatchUp({} slots)", entries.len()), None),
        Message::Forward { commands } => (format!("Forward({} cmds)", commands.len()), None),
        Message::StandNow { ballot, commit } => {
            (format!("StandNow({ballot}, chosen below I={commit})"), None)
        }
        Message::ForwardChange { ops, .. } => (format!("ForwardChange({ops:?})"), None),
        Message::Progress { commit, .. } => (format!("Progress(learned below I={commit})"), None),
        Message::PromotionRefused {
            learner, behind, ..
        } => (
            format!("PromotionRefused({learner}, {behind} behind)"),
            None,
        ),
        Message::JoinRequest => ("JoinRequest".into(), None),
        Message::ReadProbe { ballot, round } => (format!("ReadProbe({ballot}, #{round})"), None),
        Message::ReadAck { ballot, round } => (format!("ReadAck({ballot}, #{round})"), None),
        Message::ReadIndexRequest { id } => (format!("ReadIndex?(#{id})"), None),
        Message::ReadIndexReply { id, index } => (
            match index {
                Some(i) => format!("ReadIndex(#{id}, I<{i})"),
                None => format!("ReadIndex(#{id}, not leader)"),
            },
            None,
        ),
        Message::InstallSnapshot { snapshot } => (format!("Snapshot(I<{})", snapshot.slot), None),
        Message::SnapshotChunk {
            slot,
            offset,
            total,
            data,
            ..
        } => (
            format!("Snapshot(I<{slot}, {offset}+{} of {total})", data.len()),
            None,
        ),
        Message::SnapshotRequest { slot, offset } => {
            (format!("Snapshot?(I<{slot}, from {offset})"), None)
        }
    }
}

impl Script {
    pub fn new(n: u64) -> Self {
        Self::with_alpha(n, Config::new(1, vec![1]).alpha)
    }

    /// `n` servers whose membership changes govern `alpha` slots after their own.
    pub fn with_alpha(n: u64, alpha: u64) -> Self {
        Self::cheap(n, 0, alpha)
    }

    /// `n` servers whose leader sends accepts to a quorum's worth of them only
    /// (`Config::thrifty_writes`).
    pub fn thrifty(n: u64) -> Self {
        Self::build(n, 0, Config::new(1, vec![1]).alpha, true, 0)
    }

    /// As [`Script::thrifty`], with notices held back for a tick (`Config::notice_ticks`).
    pub fn held_notices(n: u64) -> Self {
        Self::build(n, 0, Config::new(1, vec![1]).alpha, true, 1)
    }

    /// `n` main servers and `aux` auxiliary acceptors (numbered after them), with `alpha`.
    pub fn cheap(n: u64, aux: u64, alpha: u64) -> Self {
        Self::build(n, aux, alpha, false, 0)
    }

    fn build(n: u64, aux: u64, alpha: u64, thrifty_writes: bool, notice_ticks: u64) -> Self {
        let ids: Vec<NodeId> = (1..=n).collect();
        let aux_ids: Vec<NodeId> = (n + 1..=n + aux).collect();
        let mut chart = Chart::default();
        chart.columns.push(Column {
            node: CLIENT,
            group: "Client",
        });
        let mut replicas = BTreeMap::new();
        for &id in &ids {
            chart.columns.push(Column {
                node: id,
                group: "Servers",
            });
            let mut cfg = Config::new(id, ids.clone());
            cfg.alpha = alpha;
            cfg.window = cfg.window.min(alpha as usize);
            cfg.auxiliaries = aux_ids.clone();
            // Every batch goes to an auxiliary as its digest, as large ones do in the server.
            cfg.aux_digest_min = Some(0);
            // Reads' probes to a quorum's worth of members, as the server sends them.
            cfg.thrifty_reads = true;
            cfg.thrifty_writes = thrifty_writes;
            cfg.notice_ticks = notice_ticks;
            let mut r = Replica::new(cfg, Kv::default()).expect("valid config");
            let _ = r.start();
            replicas.insert(id, r);
        }
        let mut auxes = BTreeMap::new();
        for &id in &aux_ids {
            chart.columns.push(Column {
                node: id,
                group: "Aux",
            });
            auxes.insert(id, Auxiliary::new(id, AuxDurable::default()));
        }
        Script {
            chart,
            replicas,
            queue: Vec::new(),
            dead: BTreeSet::new(),
            responses: Vec::new(),
            drawing: true,
            seq: 0,
            alpha,
            changes: 0,
            auxes,
        }
    }

    /// Server `id` starts with an empty disk to join the running cluster, asking `peers`.
    pub fn start_joiner(&mut self, id: NodeId, peers: Vec<NodeId>) {
        self.chart.columns.push(Column {
            node: id,
            group: "Servers",
        });
        self.row(Row::Note(format!(
            "!! S{id} starts with an empty disk, to join"
        )));
        let mut cfg = Config::new(id, peers);
        cfg.alpha = self.alpha;
        cfg.window = cfg.window.min(self.alpha as usize);
        cfg.join = true;
        let mut r = Replica::new(cfg, Kv::default()).expect("valid config");
        let fx = r.start();
        self.replicas.insert(id, r);
        self.absorb(id, fx);
    }

    /// The operator asks server `at` for a membership change (`what` says which, for the chart).
    pub fn change(&mut self, at: NodeId, what: &str, ops: Vec<MemberOp>) {
        self.changes += 1;
        self.row(Row::Note(format!("!! operator: {what} (asked at S{at})")));
        let seq = self.changes;
        let r = self.replicas.get_mut(&at).expect("replica");
        let fx = r.propose_change(seq, ops);
        self.absorb(at, fx);
    }

    /// Stops or resumes drawing (to set a scene without showing it).
    pub fn draw(&mut self, on: bool) {
        self.drawing = on;
    }

    fn row(&mut self, row: Row) {
        if self.drawing {
            self.chart.push(row);
        }
    }

    fn absorb(&mut self, from: NodeId, fx: MultiEffects<KvOp, KvResult>) {
        let mut own = Vec::new();
        // Records are durable at once here: every message may leave.
        for o in fx.send.into_iter().chain(fx.send_after_sync) {
            if o.to == from {
                own.push(o.msg);
            } else {
                self.queue.push((from, o.to, o.msg));
            }
        }
        for out in fx.output {
            match out {
                Output::Reply { seq, result, .. } => {
                    self.responses.push((seq, result.clone()));
                    self.row(Row::Msg {
                        senders: [from].into(),
                        receivers: [CLIENT].into(),
                        label: format!("Response({result:?})"),
                    });
                }
                Output::ReadReady { id } => {
                    let x = self.replicas[&from].state_machine().get("x").cloned();
                    self.row(Row::Msg {
                        senders: [from].into(),
                        receivers: [CLIENT].into(),
                        label: format!("Response(read #{id}: x={})", x.as_deref().unwrap_or("-")),
                    });
                }
                Output::Reconfigured { slot, id, .. } if id.origin == from => {
                    let gov = slot + self.alpha;
                    self.row(Row::Note(format!(
                        "S{from}: the change in I={slot} is applied; it governs I>={gov}"
                    )));
                }
                _ => {}
            }
        }
        // A replica's own promise and votes come back to it once written: local steps, not drawn.
        for msg in own {
            let fx = self
                .replicas
                .get_mut(&from)
                .expect("replica")
                .on_message(from, msg);
            self.absorb(from, fx);
        }
    }

    /// Server `s`'s election timer fires until it stands for election.
    pub fn election_timeout(&mut self, s: NodeId) {
        self.row(Row::Note(format!("!! S{s}'s election timer fires")));
        for _ in 0..2 {
            let r = self.replicas.get_mut(&s).expect("replica");
            if r.ballot().is_some() {
                break;
            }
            let fx = r.on_timer(Timer::Election);
            self.absorb(s, fx);
        }
    }

    /// The operator asks leader `from` to hand leadership to `to` (etcd's move-leader).
    pub fn transfer(&mut self, from: NodeId, to: NodeId) {
        self.row(Row::Note(format!(
            "!! operator: move leader S{from} -> S{to}"
        )));
        let fx = self
            .replicas
            .get_mut(&from)
            .expect("replica")
            .transfer_leadership(to)
            .expect("the scripted leader leads");
        self.absorb(from, fx);
    }

    /// Server `s`'s notice timer fires: it sends what it held back.
    pub fn notices(&mut self, s: NodeId) {
        self.row(Row::Note(format!("!! S{s}'s notice timer fires (a tick)")));
        let fx = self
            .replicas
            .get_mut(&s)
            .expect("replica")
            .on_timer(Timer::Notices);
        self.absorb(s, fx);
    }

    /// Server `s`'s heartbeat timer fires.
    pub fn heartbeat(&mut self, s: NodeId) {
        let fx = self
            .replicas
            .get_mut(&s)
            .expect("replica")
            .on_timer(Timer::Heartbeat);
        self.absorb(s, fx);
    }

    /// The client sends a new command (or, with `retry`, the same one again) to server `s`.
    pub fn request(&mut self, s: NodeId, op: KvOp, retry: bool) {
        if !retry {
            self.seq += 1;
        }
        let text = op_text(&op);
        self.row(Row::Msg {
            senders: [CLIENT].into(),
            receivers: [s].into(),
            label: format!("Request({text}){}", if retry { " retry" } else { "" }),
        });
        let cmd = Command {
            client: CLIENT_ID,
            seq: self.seq,
            op,
        };
        let fx = self
            .replicas
            .get_mut(&s)
            .expect("replica")
            .on_client_request(cmd);
        self.absorb(s, fx);
    }

    /// The client asks server `s` for a linearizable read of x, numbered `id`.
    pub fn read(&mut self, s: NodeId, id: u64) {
        self.row(Row::Msg {
            senders: [CLIENT].into(),
            receivers: [s].into(),
            label: format!("Read(#{id}: x, linearizable)"),
        });
        let fx = self.replicas.get_mut(&s).expect("replica").on_reads([id]);
        self.absorb(s, fx);
    }

    /// Delivers every queued message `keep` selects; draws one row per kind.
    pub fn deliver(&mut self, keep: impl Fn(NodeId, NodeId, &Message<KvOp>) -> bool) {
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|(f, t, m)| keep(*f, *t, m));
        self.queue = later;
        let mut groups = RowGroups::default();
        let mut effects = Vec::new();
        for (from, to, msg) in now {
            if self.dead.contains(&to) || self.dead.contains(&from) {
                continue;
            }
            let (key, part) = label(&msg);
            groups.add(from, to, key, part);
            if let Some(aux) = self.auxes.get_mut(&to) {
                let fx = aux.on_message(from, msg);
                for o in fx.send.into_iter().chain(fx.send_after_sync) {
                    self.queue.push((to, o.to, o.msg));
                }
                continue;
            }
            let fx = self
                .replicas
                .get_mut(&to)
                .expect("replica")
                .on_message(from, msg);
            effects.push((to, fx));
        }
        for row in groups.rows(", ") {
            self.row(row);
        }
        for (to, fx) in effects {
            self.absorb(to, fx);
        }
    }

    /// Delivers everything queued.
    pub fn deliver_all(&mut self) {
        self.deliver(|_, _, _| true);
    }

    /// Drops queued messages that `drop` selects (lost).
    pub fn lose(&mut self, drop: impl Fn(NodeId, NodeId, &Message<KvOp>) -> bool) {
        self.queue.retain(|(f, t, m)| !drop(*f, *t, m));
    }

    /// Server `s` fails.
    pub fn fail(&mut self, s: NodeId) {
        self.dead.insert(s);
        self.queue.retain(|(f, _, _)| *f != s);
        self.row(Row::Fail {
            node: s,
            note: "!! FAIL !!".into(),
        });
    }

    /// What the client was told, by sequence number.
    pub fn responses(&self) -> &[(u64, KvResult)] {
        &self.responses
    }

    /// The live replicas.
    pub fn replicas(&self) -> impl Iterator<Item = (&NodeId, &Replica<Kv>)> {
        self.replicas
            .iter()
            .filter(|(id, _)| !self.dead.contains(id))
    }

    /// Which live server knows which value for `slot`.
    pub fn outcome(&self, slot: u64) -> Outcome {
        let learned = self
            .replicas()
            .filter_map(|(id, r)| {
                let e = r.log().get(&slot).filter(|e| e.chosen)?;
                Some((format!("S{id}"), value_text(&e.value)))
            })
            .collect();
        Outcome { learned }
    }
}

pub(super) fn put(k: &str, v: &str) -> KvOp {
    KvOp::Put(k.into(), v.into())
}

/// Sets up S1 as leader without drawing it.
fn with_leader() -> Script {
    let mut s = Script::new(3);
    s.draw(false);
    s.election_timeout(1);
    s.deliver_all();
    s.deliver_all();
    s.deliver_all();
    s.draw(true);
    s
}

/// `s` with S1 elected and x=1 written, neither drawn.
fn led_with_a_write(mut s: Script) -> Script {
    s.draw(false);
    s.election_timeout(1);
    for _ in 0..3 {
        s.deliver_all();
    }
    s.request(1, put("x", "1"), false);
    s.deliver_all();
    s.deliver_all();
    s.draw(true);
    s
}

/// The first request: phase 1 (once) and phase 2.
pub(super) fn first_request() -> Script {
    let mut s = Script::new(3);
    s.chart.push(Row::Note("--- First Request ---".into()));
    s.election_timeout(1);
    s.request(1, put("x", "1"), false);
    s.deliver_all(); // Prepare
    s.deliver_all(); // Promise -> Heartbeat + Accept!
    s.deliver_all(); // Accepted -> chosen, applied, Response
    s.deliver_all();
    s
}

/// A steady leader: phase 1 is skipped, each request needs only phase 2.
pub(super) fn steady_state() -> Script {
    let mut s = with_leader();
    s.chart.push(Row::Note("--- Following Requests ---".into()));
    s.request(1, put("x", "2"), false);
    s.deliver_all();
    s.deliver_all();
    s.request(1, put("y", "3"), false);
    s.deliver_all();
    s.deliver_all();
    s.heartbeat(1);
    s.deliver_all();
    s
}

/// Leadership transfer (etcd's move-leader): S1 hands over to S3 with a write in flight and
/// another arriving meanwhile. S1 starts no new slot, lets the first be chosen, and tells S3 to
/// stand; S3 wins at once, and S1 forwards the write it held instead of failing it.
pub(super) fn move_leader() -> Script {
    let mut s = with_leader();
    s.request(1, put("x", "1"), false);
    s.deliver_all(); // Accept!
    s.transfer(1, 3);
    s.request(1, put("y", "2"), false); // held: no Accept! for it
    s.deliver_all(); // Accepted: x=1 chosen, so S1 asks S3 to stand
    s.deliver_all(); // StandNow: S3 stands
    s.deliver_all(); // Prepare: S1 steps down and forwards y=2
    s.deliver_all(); // Promises and the forward: S3 wins and proposes y=2
    s.deliver_all(); // Accept!
    s.deliver_all(); // Accepted: y=2 chosen, S3 announces it
    s.deliver_all(); // S1 learns y=2 is chosen and answers the client
    s
}

/// Thrifty accepts (seed 002's second optimisation): the leader sends each Accept! to S2 only,
/// which makes a quorum with it, and tells S3 the value once it is chosen. S2 fails; a write
/// still in flight after a whole heartbeat round goes to S3 too, whose vote chooses it, and
/// the next write goes to S3 alone.
pub(super) fn thrifty_writes() -> Script {
    let mut s = Script::thrifty(3);
    s.draw(false);
    s.election_timeout(1);
    for _ in 0..3 {
        s.deliver_all();
    }
    s.draw(true);
    s.chart
        .push(Row::Note("--- Accept! to a quorum only ---".into()));
    s.request(1, put("x", "1"), false);
    s.deliver_all(); // Accept! to S2
    s.deliver_all(); // Accepted: chosen; the response
    s.deliver_all(); // Chosen to S3, the commit point to S2
    s.fail(2);
    s.request(1, put("y", "2"), false);
    s.deliver_all(); // Accept! to S2, which is down
    s.heartbeat(1); // not yet a whole round old: heartbeats only
    s.deliver_all();
    s.heartbeat(1); // a whole round: the accept goes to S3
    s.deliver_all();
    s.deliver_all(); // Accepted: chosen
    s.deliver_all(); // the commit point to S3
    s.chart.push(Row::Note(
        "--- S3 voted last: it takes S2's place ---".into(),
    ));
    s.request(1, put("x", "3"), false);
    for _ in 0..3 {
        s.deliver_all();
    }
    s
}

/// Notices held for a tick: with thrifty accepts, the leader tells S3 the values chosen without
/// its vote, and S2 a commit point no accept carried, once a tick, all together; writes that S3
/// forwarded (a client waits at it) are told to S3 at once.
pub(super) fn held_notices() -> Script {
    let mut s = Script::held_notices(3);
    s.draw(false);
    s.election_timeout(1);
    for _ in 0..3 {
        s.deliver_all();
    }
    s.draw(true);
    s.chart.push(Row::Note(
        "--- two writes at the leader: nobody waits at S2 or S3 ---".into(),
    ));
    for (k, v) in [("x", "1"), ("y", "2")] {
        s.request(1, put(k, v), false);
        s.deliver_all(); // Accept! to S2 (with the commit point so far)
        s.deliver_all(); // Accepted: chosen; the response. S3 hears nothing yet
    }
    s.notices(1);
    s.deliver_all(); // CatchUp(2 slots) and the commit point to S3; the commit point to S2
    s.chart.push(Row::Note(
        "--- a write at S3: forwarded, so S3 is told at once ---".into(),
    ));
    s.request(3, put("z", "3"), false);
    for _ in 0..4 {
        s.deliver_all(); // Forward, Accept!, Accepted, Chosen to S3 and its response
    }
    s
}

/// Collapsed roles: the leader fails mid-accept; another server re-proposes the command found in
/// a promise, and the client's retry is answered once, not applied twice.
pub(super) fn collapsed_roles() -> Script {
    let mut s = with_leader();
    s.request(1, put("x", "1"), false);
    s.deliver(|_, to, _| to == 2); // Accept! reaches S2 only
    s.lose(|f, _, _| f == 1);
    s.fail(1); // before S2's vote reaches it: the client gets no answer
    s.election_timeout(2);
    s.deliver_all(); // Prepare
    s.deliver_all(); // Promise -> S2 re-proposes
    s.deliver_all(); // Accept!/Heartbeat
    s.deliver_all(); // Accepted
    s.request(2, put("x", "1"), true);
    s.heartbeat(2);
    s.deliver_all();
    s
}

/// A member's name and addresses, as `member add` gives them.
fn info(name: &str) -> MemberInfo {
    MemberInfo {
        name: name.into(),
        peer_urls: vec![format!("http://{name}:2380")],
        client_urls: vec![],
    }
}

/// Reconfiguration through the log, with α = 2: S4 is added as a learner, joins from a peer's
/// snapshot (it knows no membership before), catches up, and is promoted once in sync; then S3
/// is taken out. Each change governs only from α slots after its own, so the writes in between
/// are still voted on by the configuration before it.
pub(super) fn reconfigure() -> Script {
    let mut s = led_with_a_write(Script::with_alpha(3, 2));
    s.chart.push(Row::Note(
        "--- A learner joins: the change in slot I governs from I+2 ---".into(),
    ));
    let add = MemberOp::Add {
        id: None,
        role: Role::Learner,
        info: info("s4"),
    };
    s.change(1, "member add s4 --learner", vec![add]);
    s.deliver_all(); // Accept!
    s.deliver_all(); // Accepted: chosen and applied at S1
    s.start_joiner(4, vec![2]);
    s.deliver_all(); // JoinRequest
    s.deliver_all(); // Snapshot: S4 installs it, membership included
    s.heartbeat(1);
    s.deliver_all(); // Heartbeat
    s.deliver_all(); // S4 asks for the slots after its snapshot, and reports its progress
    s.deliver_all(); // CatchUp
    s.chart
        .push(Row::Note("--- S4 is in sync: promoted to voter ---".into()));
    let promote = MemberOp::SetRole {
        id: 4,
        role: Role::Voter,
    };
    s.change(1, "member promote s4", vec![promote]);
    s.deliver_all();
    s.deliver_all();
    s.request(1, put("x", "2"), false);
    s.deliver_all();
    s.deliver_all();
    s.chart.push(Row::Note("--- S3 is taken out ---".into()));
    s.change(1, "member remove s3", vec![MemberOp::Remove(3)]);
    s.deliver_all();
    s.deliver_all();
    for v in ["3", "4"] {
        s.request(1, put("x", v), false);
        s.deliver_all();
        s.deliver_all();
    }
    s.heartbeat(1);
    s.deliver_all();
    s
}

/// Linearizable reads without a log slot (ReadIndex), with thrifty probes: the leader serves a
/// read once a quorum (itself and one follower) confirms after the read arrived that it still
/// leads. It probes only S2, the one follower a quorum needs. S2 fails; the next read's probe
/// goes unanswered until the heartbeat sends the round to S3, whose answer confirms it, and S3,
/// now the member that answered the latest round, gets the next read's probe at once.
pub(super) fn read_index() -> Script {
    let mut s = led_with_a_write(Script::new(3));
    s.chart.push(Row::Note(
        "--- A read: one follower's probe is enough ---".into(),
    ));
    s.read(1, 1);
    s.deliver_all(); // ReadProbe to S2
    s.deliver_all(); // ReadAck: confirmed, served
    s.fail(2);
    s.read(1, 2);
    s.deliver_all(); // ReadProbe to S2, lost
    s.chart.push(Row::Note(
        "--- #2's probe went to S2, which is down; the heartbeat sends it to S3 ---".into(),
    ));
    s.heartbeat(1);
    s.deliver_all();
    s.deliver_all();
    s.chart
        .push(Row::Note("--- S3 answered last: probed first ---".into()));
    s.read(1, 3);
    s.deliver_all();
    s.deliver_all();
    s
}

/// Cheap Multi-Paxos (the seed's chart): three mains, one auxiliary, majorities of all four
/// (3). The mains alone are a quorum, so the auxiliary hears nothing while they answer. A main
/// fails; the slot in flight has only two votes; at the retransmission the leader includes the
/// auxiliary, whose vote completes the quorum: it is sent the batch's digest, not the batch
/// (seed 002's fourth optimisation). Once the main has been silent for three election
/// timeouts, the leader makes it a learner through the log (chosen with the auxiliary's help,
/// as are the α − 1 slots after it); from then on the two live mains are a quorum of three,
/// and accepts go to the mains only again.
pub(super) fn cheap_multi() -> Script {
    let mut s = led_with_a_write(Script::cheap(3, 1, 2));
    s.chart
        .push(Row::Note("--- Phase 2: the mains alone ---".into()));
    s.request(1, put("x", "2"), false);
    s.deliver_all(); // Accept! to the mains
    s.fail(3); // before its vote leaves
    s.deliver_all(); // Accepted from S2 only: two of the three a quorum needs
    s.chart.push(Row::Note(
        "--- Failure detected: a heartbeat round later, only 2 accepted ---".into(),
    ));
    s.heartbeat(1);
    s.deliver_all();
    s.deliver_all();
    s.heartbeat(1); // re-transmit, include the auxiliary
    s.deliver_all();
    s.deliver_all();
    s.draw(false);
    for _ in 0..40 {
        s.heartbeat(1);
        if s.receives_accepts_for_change() {
            break;
        }
        s.deliver_all();
        s.deliver_all();
    }
    s.draw(true);
    s.chart.push(Row::Note(
        "--- S3 silent for 3 election timeouts: reconfigure, quorum = 2 ---".into(),
    ));
    for _ in 0..4 {
        s.deliver_all();
    }
    s.heartbeat(1);
    s.deliver_all();
    s.deliver_all();
    s.chart.push(Row::Note(
        "--- Reconfigured: S3 a learner, the auxiliary idle ---".into(),
    ));
    s.request(1, put("x", "3"), false);
    s.deliver_all();
    s.deliver_all();
    s.deliver_all();
    s
}

impl Script {
    /// True once the leader's membership change is queued to go out.
    fn receives_accepts_for_change(&self) -> bool {
        self.queue.iter().any(|(_, _, m)| {
            matches!(
                m,
                Message::Accept {
                    value: Value::Reconfig(_),
                    ..
                }
            )
        })
    }
}
