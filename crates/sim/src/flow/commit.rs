//! Atomic-commit scenarios, scripted step by step over the real 2PC, 3PC and Paxos Commit
//! processes: the short lesson of why Paxos.

use super::chart::{Chart, Column, Row, RowGroups};
use super::{Drawn, Outcome};
use crate::commit::name;
use std::collections::{BTreeMap, BTreeSet};
use synod_core::commit::{
    paxos_commit, three_pc, two_pc, CommitEffects, CommitNode, CommitOutput, CommitTimer, Decision,
    Setup, TxId,
};
use synod_core::NodeId;

const TX: TxId = 1;
const C: NodeId = crate::commit::COORDINATOR;

fn p(i: u64) -> NodeId {
    10 + i
}

/// A scripted commit world: messages wait until the script delivers them.
struct Script<N: CommitNode> {
    chart: Chart,
    setup: Setup,
    nodes: BTreeMap<NodeId, N>,
    dead: BTreeSet<NodeId>,
    queue: Vec<(NodeId, NodeId, N::Msg)>,
    decided: BTreeMap<NodeId, Decision>,
    voted_yes: BTreeSet<NodeId>,
    /// One side of a partition: nothing crosses between it and the rest.
    cut: Option<BTreeSet<NodeId>>,
}

impl<N: CommitNode> Script<N> {
    fn new(participants: u64, acceptors: u64) -> Self {
        let setup = Setup {
            coordinator: C,
            participants: (1..=participants).map(p).collect(),
            acceptors: (1..=acceptors).map(|i| 20 + i).collect(),
            refuse: BTreeSet::new(),
            timeout: 20,
            bug: None,
        };
        let mut columns = vec![Column {
            node: C,
            group: "Coordinator",
        }];
        columns.extend(setup.participants.iter().map(|&node| Column {
            node,
            group: "Participants",
        }));
        columns.extend(setup.acceptors.iter().map(|&node| Column {
            node,
            group: "Acceptors",
        }));
        let mut s = Script {
            chart: Chart {
                columns,
                rows: Vec::new(),
            },
            nodes: BTreeMap::new(),
            dead: BTreeSet::new(),
            queue: Vec::new(),
            decided: BTreeMap::new(),
            voted_yes: BTreeSet::new(),
            cut: None,
            setup,
        };
        let ids: Vec<NodeId> = s.chart.columns.iter().map(|c| c.node).collect();
        for id in ids {
            let (n, fx) = N::boot(&s.setup, id, &[]);
            s.nodes.insert(id, n);
            s.apply(id, fx);
        }
        s
    }

    fn apply(&mut self, id: NodeId, fx: CommitEffects<N::Msg, N::Record>) {
        for o in &fx.output {
            match o {
                CommitOutput::Decided { decision, .. } => {
                    self.decided.insert(id, *decision);
                }
                CommitOutput::Voted {
                    vote: synod_core::commit::Vote::Yes,
                    ..
                } => {
                    self.voted_yes.insert(id);
                }
                CommitOutput::Voted { .. } => {}
            }
        }
        for o in fx.send.into_iter().chain(fx.send_after_sync) {
            self.queue.push((id, o.to, o.msg));
        }
    }

    fn begin(&mut self) {
        let fx = self.nodes.get_mut(&C).expect("coordinator").begin(TX);
        self.apply(C, fx);
    }

    /// Delivers every queued message `keep` accepts (in one chart step; messages they cause
    /// wait for the next step) and leaves the others queued. Messages to dead processes vanish.
    fn deliver(&mut self, keep: impl Fn(NodeId, NodeId, &N::Msg) -> bool) {
        let queued = std::mem::take(&mut self.queue);
        let mut rows = RowGroups::default();
        let mut later = Vec::new();
        let mut effects = Vec::new();
        for (from, to, msg) in queued {
            if !keep(from, to, &msg) {
                later.push((from, to, msg));
                continue;
            }
            let crosses = self
                .cut
                .as_ref()
                .is_some_and(|side| side.contains(&from) != side.contains(&to));
            if self.dead.contains(&to) || crosses {
                continue;
            }
            rows.add(from, to, N::label(&msg), None);
            let fx = self.nodes.get_mut(&to).expect("node").on_message(from, msg);
            effects.push((to, fx));
        }
        self.queue = later;
        for row in rows.rows(",") {
            self.chart.push(row);
        }
        for (to, fx) in effects {
            self.apply(to, fx);
        }
    }

    fn deliver_all(&mut self) {
        self.deliver(|_, _, _| true);
    }

    /// Delivers until nothing is queued.
    fn settle(&mut self) {
        for _ in 0..20 {
            if self.queue.is_empty() {
                return;
            }
            self.deliver_all();
        }
    }

    /// `node` crashes and stays down; what it had queued to send is lost.
    fn fail(&mut self, node: NodeId, note: &str) {
        self.dead.insert(node);
        self.queue.retain(|(from, _, _)| *from != node);
        self.chart.push(Row::Fail {
            node,
            note: note.into(),
        });
    }

    /// Splits the network: `side` on one side, everyone else on the other.
    fn partition(&mut self, side: &[NodeId], note: &str) {
        self.cut = Some(side.iter().copied().collect());
        self.chart.push(Row::Note(note.into()));
    }

    /// `node`'s timer for the transaction fires.
    fn timeout(&mut self, node: NodeId, note: &str) {
        self.chart
            .push(Row::Note(format!("{}: {note}", name(node))));
        let fx = self
            .nodes
            .get_mut(&node)
            .expect("node")
            .on_timer(CommitTimer { tx: TX });
        self.apply(node, fx);
    }

    fn drawn(self, lesson: &str) -> Drawn {
        let mut outcome = Outcome::default();
        let mut facts = Vec::new();
        for &id in &self.setup.participants {
            match self.decided.get(&id) {
                Some(d) => {
                    outcome.learned.insert(name(id), d.to_string());
                }
                None if self.voted_yes.contains(&id) && !self.dead.contains(&id) => {
                    facts.push(format!("{} blocked: voted yes, outcome unknown", name(id)))
                }
                None => {}
            }
        }
        facts.push(lesson.to_string());
        Drawn {
            chart: self.chart,
            outcome,
            facts,
        }
    }
}

/// 2PC without failures: prepare, votes, outcome, acknowledgements.
pub(super) fn two_pc_success() -> Drawn {
    let mut s = Script::<two_pc::Node>::new(3, 0);
    s.begin();
    s.settle();
    s.drawn("3 message delays to commit; the coordinator alone knows the outcome until it says")
}

/// 2PC blocked: the coordinator dies after the votes, before anyone hears the outcome.
pub(super) fn two_pc_blocked() -> Drawn {
    let mut s = Script::<two_pc::Node>::new(3, 0);
    s.begin();
    s.deliver_all(); // prepare
    s.deliver_all(); // votes: the coordinator decides commit and persists it
    s.fail(C, "coordinator fails before sending the outcome");
    for i in 1..=3 {
        s.timeout(p(i), "no outcome: ask everyone");
    }
    s.settle();
    s.drawn("every participant voted yes and nobody else knows: they wait for the coordinator")
}

/// 3PC without failures: can-commit, pre-commit, do-commit.
pub(super) fn three_pc_success() -> Drawn {
    let mut s = Script::<three_pc::Node>::new(3, 0);
    s.begin();
    s.settle();
    s.drawn("5 message delays to commit: one round more than 2PC, so nobody blocks on a crash")
}

/// 3PC split: pre-commit reaches P1 only, then the network splits P1 (with the coordinator)
/// from P2 and P3. Each side runs the termination protocol on the states it can see.
pub(super) fn three_pc_split() -> Drawn {
    let mut s = Script::<three_pc::Node>::new(3, 0);
    s.begin();
    s.deliver_all(); // can-commit
    s.deliver_all(); // votes: the coordinator sends pre-commit
    s.partition(&[C, p(1)], "partition: {C, P1} | {P2, P3}");
    s.deliver_all(); // pre-commit reaches P1 only
    s.deliver_all(); // P1's pre-ack
    s.timeout(C, "pre-acks missing: P2, P3 crashed? commit");
    s.deliver_all();
    s.timeout(p(2), "no word from C: lead the termination");
    s.deliver_all(); // state request reaches P3 only
    s.deliver_all(); // P3: uncertain
    s.timeout(p(2), "P2, P3 uncertain, P1 silent: abort");
    s.settle();
    s.drawn("one side committed and the other aborted: the silence was a partition, not a crash")
}

/// Paxos Commit: the coordinator dies after the participants voted; an acceptor recovers the
/// transaction with a higher ballot and every participant learns the same outcome.
pub(super) fn paxos_commit_survives() -> Drawn {
    let mut s = Script::<paxos_commit::Node>::new(3, 3);
    s.begin();
    s.deliver_all(); // prepare
    s.deliver_all(); // 2a(0): each participant's vote to the acceptors
    s.fail(C, "coordinator fails; the 2b votes sent to it are lost");
    s.deliver_all(); // 2b to the dead coordinator: lost
    s.timeout(p(1), "no outcome: ask the coordinator");
    s.deliver_all();
    s.timeout(p(1), "still none: ask A1");
    s.settle();
    s.drawn("A1 found every vote in a quorum of acceptors: the outcome is the one the coordinator would have sent")
}
