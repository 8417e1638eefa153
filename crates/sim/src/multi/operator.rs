//! The operator: what an administrator does to a running cluster, mixed in with the faults.
//! Leadership transfers (etcd's `move-leader`) to a member of its choice, which may be down or
//! cut off, and forced checkpoints (etcd's `defrag`) on a node of its choice.

use super::{Event, MultiSim};
use crate::trace::TraceEvent;
use rand::seq::SliceRandom;
use rand::Rng;
use synod_core::multi::RoleKind;
use synod_core::NodeId;

impl MultiSim {
    /// Schedules the operator's first action, if this seed has one.
    pub(super) fn schedule_operator(&mut self) {
        if self.swarm.operate_every > 0 {
            let at = self.around(self.swarm.operate_every);
            self.world.after(at, Event::Operate);
        }
    }

    /// One action, then the next, while faults last.
    pub(super) fn operate(&mut self) -> Result<(), super::Violation> {
        if !self.faults_on() {
            return Ok(());
        }
        let t = self.world.now;
        if self.world.rng.gen_bool(0.5) {
            if let Some(leader) = self.leader() {
                let target = *self.ids.choose(&mut self.world.rng).expect("a node");
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
