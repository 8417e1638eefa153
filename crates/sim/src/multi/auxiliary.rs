//! Cheap Paxos's auxiliary acceptors in the simulated world (`synod sim --cheap M+A`): each is
//! the server's own [`AuxNode`] over a simulated disk, crashed and cut off by the nemesis like
//! the mains, and its votes count in ground truth as they become durable.

use super::disk::SimDisk;
use super::{Event, MultiSim};
use crate::report::Violation;
use crate::trace::TraceEvent;
use rand::Rng;
use synod_core::multi::Message;
use synod_core::NodeId;
use synod_kv::KvCommand;
use synod_node::{Action, AuxNode};

/// An auxiliary: its node while it runs, and its disk, which outlives it.
#[derive(Default)]
pub(super) struct SimAux {
    core: Option<AuxNode>,
    disk: SimDisk,
    /// Bumped at each crash, so events meant for an earlier life never reach a later one.
    epoch: u64,
    sync_pending: bool,
    /// Peer messages delivered to it, over all its lives.
    pub(super) received: u64,
    /// Of those, accepts that carried a digest in place of the value.
    pub(super) digests: u64,
}

impl SimAux {
    /// Votes its running node holds (none if down).
    pub(super) fn votes_held(&self) -> u64 {
        self.core
            .as_ref()
            .map_or(0, |c| c.auxiliary().votes() as u64)
    }
}

impl MultiSim {
    /// The auxiliaries running now.
    pub(super) fn live_auxes(&self) -> Vec<NodeId> {
        (self.auxes.iter())
            .filter(|(_, a)| a.core.is_some())
            .map(|(&id, _)| id)
            .collect()
    }

    /// The auxiliary an event happens at, if it happens at one.
    pub(super) fn aux_target(&self, ev: &Event) -> Option<NodeId> {
        let node = match ev {
            Event::Deliver { to, .. } => *to,
            Event::Sync { node, .. }
            | Event::CheckpointDone { node, .. }
            | Event::CrashNode { node, .. }
            | Event::Restart { node } => *node,
            _ => return None,
        };
        self.auxes.contains_key(&node).then_some(node)
    }

    /// One event at auxiliary `id`.
    pub(super) fn aux_step(&mut self, id: NodeId, ev: Event) -> Result<(), Violation> {
        let alive = |s: &Self, epoch: u64| {
            let a = &s.auxes[&id];
            a.epoch == epoch && a.core.is_some()
        };
        match ev {
            Event::Deliver { from, msg, .. } => self.aux_deliver(id, from, msg),
            Event::Sync { epoch, .. } if alive(self, epoch) => self.aux_sync(id),
            Event::CheckpointDone {
                epoch,
                covered,
                checkpoint,
                ..
            } if alive(self, epoch) => {
                if self.auxes[&id].disk.unsynced() > 0 {
                    self.aux_sync(id)?;
                }
                let a = self.auxes.get_mut(&id).expect("aux");
                let Some(core) = a.core.as_mut() else {
                    return Ok(());
                };
                a.disk.save_checkpoint(covered, &checkpoint);
                core.checkpointed(covered);
                self.aux_end_turn(id)
            }
            Event::CrashNode { epoch, .. } if alive(self, epoch) && self.world.faults.crash => {
                self.crash_aux(id)
            }
            Event::Restart { .. } if self.auxes[&id].core.is_none() => {
                let t = self.world.now;
                self.world
                    .trace
                    .record(|| TraceEvent::Restart { t, node: id });
                self.boot_aux(id)
            }
            _ => Ok(()),
        }
    }

    /// Starts (or restarts) auxiliary `id` from its disk, through the server's recovery code.
    pub(super) fn boot_aux(&mut self, id: NodeId) -> Result<(), Violation> {
        let now = self.world.now;
        let a = self.auxes.entry(id).or_default();
        let recovered = a.disk.recover_aux().map_err(|e| Violation {
            check: "recovery",
            at: now,
            detail: format!("auxiliary {id} cannot read its disk back: {e}"),
        })?;
        let index = a.disk.boot(recovered.boot + 1);
        a.core = Some(AuxNode::new(id, recovered, index));
        Ok(())
    }

    fn aux_deliver(
        &mut self,
        id: NodeId,
        from: NodeId,
        msg: Message<KvCommand>,
    ) -> Result<(), Violation> {
        let a = self.auxes.get_mut(&id).expect("aux");
        let Some(core) = a.core.as_mut() else {
            self.world.stats.dropped += 1;
            return Ok(());
        };
        self.world.stats.delivered += 1;
        a.received += 1;
        if matches!(&msg, Message::Accept { value, .. } if value.is_digest()) {
            a.digests += 1;
        }
        core.on_peer(from, msg);
        self.aux_end_turn(id)
    }

    fn aux_end_turn(&mut self, id: NodeId) -> Result<(), Violation> {
        loop {
            let a = self.auxes.get_mut(&id).expect("aux");
            let Some(core) = a.core.as_mut() else {
                return Ok(());
            };
            core.flush();
            let actions = core.take_actions();
            if actions.is_empty() {
                return Ok(());
            }
            for action in actions {
                self.aux_act(id, action);
            }
        }
    }

    fn aux_act(&mut self, id: NodeId, action: Action) {
        let epoch = self.auxes[&id].epoch;
        match action {
            Action::Send { to, msg } => {
                let vote = matches!(msg, Message::Promise { .. } | Message::Accepted { .. });
                self.world
                    .send(id, to, msg, super::driver::summarize, |msg| {
                        Event::Deliver { from: id, to, msg }
                    });
                let aim = self.swarm.crash_after_vote;
                if vote && self.world.faults.crash && aim > 0.0 && self.world.rng.gen_bool(aim) {
                    self.world.after(0, Event::CrashNode { node: id, epoch });
                }
            }
            Action::Write { batch, records, .. } => {
                let a = self.auxes.get_mut(&id).expect("aux");
                a.disk.write(batch, records);
                if !a.sync_pending {
                    a.sync_pending = true;
                    let delay = self.world.rng.gen_range(0..=self.swarm.sync_delay);
                    self.world.after(delay, Event::Sync { node: id, epoch });
                }
            }
            Action::Checkpoint {
                covered,
                checkpoint,
            } => {
                let delay = self.world.rng.gen_range(0..=20);
                let node = id;
                let ev = Event::CheckpointDone {
                    node,
                    epoch,
                    covered,
                    checkpoint,
                };
                self.world.after(delay, ev);
            }
            // An auxiliary has no clients, store or snapshots.
            _ => {}
        }
    }

    fn aux_sync(&mut self, id: NodeId) -> Result<(), Violation> {
        let a = self.auxes.get_mut(&id).expect("aux");
        a.sync_pending = false;
        let (batch, records) = a.disk.sync();
        self.durable(id, &records)?;
        if batch == 0 {
            return Ok(());
        }
        let a = self.auxes.get_mut(&id).expect("aux");
        if let Some(core) = a.core.as_mut() {
            core.synced(batch);
        }
        self.aux_end_turn(id)
    }

    /// Auxiliary `id` dies: the disk keeps what was synced and a random prefix of the rest.
    pub(super) fn crash_aux(&mut self, id: NodeId) -> Result<(), Violation> {
        let a = self.auxes.get_mut(&id).expect("aux");
        let keep = self.world.rng.gen_range(0..=a.disk.unsynced());
        let kept = a.disk.crash(keep);
        a.core = None;
        a.epoch += 1;
        a.sync_pending = false;
        self.durable(id, &kept)?;
        self.world.stats.crashes += 1;
        let t = self.world.now;
        self.world.trace.record(|| TraceEvent::Crash {
            t,
            node: id,
            mid_step: false,
        });
        let (lo, hi) = self.swarm.restart;
        let at = self.world.rng.gen_range(lo..=hi);
        self.world.after(at, Event::Restart { node: id });
        Ok(())
    }

    /// Bytes on auxiliary `id`'s disk.
    pub fn aux_disk_bytes(&self, id: NodeId) -> Option<u64> {
        self.auxes.get(&id).map(|a| a.disk.bytes())
    }
}
