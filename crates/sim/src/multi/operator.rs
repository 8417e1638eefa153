//! The operator: what an administrator does to a running cluster, mixed in with the faults.
//! Leadership transfers (etcd's `move-leader`) to a member of its choice, which may be down or
//! cut off; forced checkpoints (etcd's `defrag`) on a node of its choice; and membership
//! changes asked of the leader: demoting voters to learners and promoting learners back, one or
//! two at a time, or both in one change (which replaces voters, the case where a new
//! configuration's quorums miss the old one's promises), and taking members out, alone or
//! with learners promoted in their place (where the members taken out no longer hear of the
//! new configuration's slots at all).

use super::{Event, MultiSim};
use crate::trace::TraceEvent;
use rand::seq::SliceRandom;
use rand::Rng;
use synod_core::multi::{MemberInfo, MemberOp, Role, RoleKind};
use synod_core::NodeId;

impl MultiSim {
    /// Schedules the operator's first action, if this seed has one.
    pub(super) fn schedule_operator(&mut self) {
        if self.swarm.operate_every > 0 {
            let at = self.around(self.swarm.operate_every);
            self.world.after(at, Event::Operate);
            // Two nodes join in the middle of the run (`add_learner`), apart from the
            // operator's other actions so as not to make those rarer.
            let until = self.cfg.fault_until;
            for _ in 0..2 {
                let at = self.world.rng.gen_range(until / 5..=until * 4 / 5);
                self.world.after(at, Event::AddNode);
            }
        }
    }

    /// One action, then the next, while faults last.
    pub(super) fn operate(&mut self) -> Result<(), super::Violation> {
        if !self.faults_on() {
            return Ok(());
        }
        let t = self.world.now;
        let action = self.world.rng.gen_range(0..3);
        if action == 0 {
            if let Some(leader) = self.leader() {
                // A main member the leader knows votes: the others it would refuse.
                let core = self.nodes[&leader].core.as_ref().expect("the leader is up");
                let latest = core.replica().membership().latest();
                let voters: Vec<NodeId> = latest.mains().collect();
                let target = *voters.choose(&mut self.world.rng).expect("a voter");
                let text = format!("operator: move leader {leader} to {target}");
                self.world.trace.record(|| TraceEvent::Note { t, text });
                self.world.stats.transfers += 1;
                // Done only if the successor leads soon: later, an ordinary election may have
                // put it there.
                let by = self.world.now + 3 * self.swarm.election.1;
                self.transfer_to = (target != leader).then_some((target, by));
                self.drive(leader, |c| {
                    c.move_leader(target).expect("the leader takes a member");
                })?;
            }
        } else if action == 1 {
            self.reconfigure()?;
        } else {
            let node = *self.ids.choose(&mut self.world.rng).expect("a node");
            if self.nodes[&node].core.is_some() {
                let text = format!("operator: defragment node {node}");
                self.world.trace.record(|| TraceEvent::Note { t, text });
                self.world.stats.checkpoints += 1;
                self.drive(node, |c| c.request_checkpoint())?;
            }
        }
        let at = self.around(self.swarm.operate_every);
        self.world.after(at, Event::Operate);
        Ok(())
    }

    /// Asks the leader, if there is one, to demote voters, promote learners, both at once,
    /// replace voters (take them out and promote learners in their place), or take members
    /// out, always keeping a majority of the members voting. At most (n - 1) / 2 of the n
    /// nodes are ever taken out, so a run keeps a cluster worth the name.
    fn reconfigure(&mut self) -> Result<(), super::Violation> {
        // A Cheap Paxos cluster reshapes itself: mains out and back, auxiliaries on and off.
        if self.cheap() {
            return Ok(());
        }
        let Some(leader) = self.leader() else {
            return Ok(());
        };
        let core = self.nodes[&leader].core.as_ref().expect("the leader is up");
        let latest = core.replica().membership().latest();
        let mut voters: Vec<NodeId> = latest.voters().to_vec();
        let mut learners: Vec<NodeId> = latest
            .iter()
            .filter(|(_, r, _)| *r == Role::Learner)
            .map(|(id, _, _)| id)
            .collect();
        let members = voters.len() + learners.len();
        let budget = ((self.ids.len() - 1) / 2).saturating_sub(self.ids.len() - members);
        let floor = |members: usize| members / 2 + 1;
        let rng = &mut self.world.rng;
        voters.shuffle(rng);
        learners.shuffle(rng);
        let k = rng.gen_range(1..=2usize);
        let set = |id, role| MemberOp::SetRole { id, role };
        let demote = |ids: &[NodeId]| ids.iter().map(|&id| set(id, Role::Learner)).collect();
        let promote = |ids: &[NodeId]| ids.iter().map(|&id| set(id, Role::Voter)).collect();
        let remove = |ids: &[NodeId]| ids.iter().map(|&id| MemberOp::Remove(id)).collect();
        let ops: Vec<MemberOp> = match rng.gen_range(0..5) {
            0 => demote(&voters[..k.min(voters.len().saturating_sub(floor(members)))]),
            1 => promote(&learners[..k.min(learners.len())]),
            2 => {
                let k = k.min(learners.len()).min(voters.len());
                [demote(&voters[..k]), promote(&learners[..k])].concat()
            }
            // The new voters never promised anything in the old configuration, and the old
            // ones no longer hear of the new one's slots.
            3 => {
                let k = k.min(learners.len()).min(voters.len()).min(budget);
                [remove(&voters[..k]), promote(&learners[..k])].concat()
            }
            _ => {
                let (mut out, mut left) = (Vec::new(), (voters.len(), members));
                for &id in learners.iter().chain(&voters).take(budget.min(k)) {
                    let voter = voters.contains(&id);
                    let after = (left.0 - usize::from(voter), left.1 - 1);
                    if after.0 >= floor(after.1) {
                        out.push(id);
                        left = after;
                    }
                }
                remove(&out)
            }
        };
        if ops.is_empty() {
            return Ok(());
        }
        // Asked at the leader or, as etcdctl may, at any node, which passes it on.
        let at = match self.world.rng.gen_bool(0.5) {
            true => leader,
            false => *self.ids.choose(&mut self.world.rng).expect("a node"),
        };
        if self.nodes[&at].core.is_none() {
            return Ok(());
        }
        let t = self.world.now;
        let text = format!("operator: at node {at} (leader {leader}), membership change {ops:?}");
        self.world.trace.record(|| TraceEvent::Note { t, text });
        self.world.stats.reconfigurations += 1;
        self.drive(at, |c| c.change_membership(None, ops))
    }

    /// Starts a new node, with an empty disk, to join the running cluster, and asks the leader
    /// to add it as a learner (the random promotions then make it a voter, and removals may
    /// take out the node it replaces). It asks the members of the moment for a snapshot, and
    /// keeps asking until one has applied the change. Nothing happens if no node leads then.
    pub(super) fn add_learner(&mut self) -> Result<(), super::Violation> {
        let Some(leader) = self.leader() else {
            return Ok(());
        };
        if self.joiners.len() >= 2 || !self.faults_on() || self.cheap() {
            return Ok(());
        }
        let id = self.ids.iter().max().expect("a node") + 1;
        let seeds = self.members().into_iter().filter(|&m| m != id).collect();
        let t = self.world.now;
        let text = format!("operator: start node {id} to join, and add it as a learner");
        self.world.trace.record(|| TraceEvent::Note { t, text });
        self.world.stats.reconfigurations += 1;
        self.world.stats.added += 1;
        self.joiners.insert(id, seeds);
        self.ids.push(id);
        self.add_node(id)?;
        let op = MemberOp::Add {
            id: Some(id),
            role: Role::Learner,
            info: MemberInfo::default(),
        };
        self.drive(leader, |c| c.change_membership(None, vec![op]))
    }

    /// Counts a transfer done once its successor leads, within three election timeouts.
    pub(super) fn note_handover(&mut self, id: NodeId) {
        let Some((target, by)) = self.transfer_to else {
            return;
        };
        if self.world.now > by {
            self.transfer_to = None;
            return;
        }
        if target != id {
            return;
        }
        let leads = self.nodes[&id]
            .core
            .as_ref()
            .is_some_and(|c| c.replica().role_kind() == RoleKind::Leader);
        if leads {
            self.transfer_to = None;
            self.world.stats.handovers += 1;
        }
    }
}
