//! The simulator as the node layer's driver: what the tokio server does with sockets, a
//! write-ahead log and blocking threads, done here with the network model, the simulated disk
//! and delayed events.

use super::clients::{Answer, Client};
use super::{Event, MultiSim};
use crate::report::Violation;
use crate::trace::TraceEvent;
use rand::Rng;
use std::collections::BTreeMap;
use synod_core::multi::{Message, Persist, RoleKind};
use synod_core::NodeId;
use synod_kv::KvCommand;
use synod_node::{Action, NodeCore, ProposeError};

impl MultiSim {
    /// Feeds one input to node `id`'s layer, ends the turn, and carries out its actions, as
    /// the server's loop does. An input to a dead node is lost.
    pub(super) fn drive(
        &mut self,
        id: NodeId,
        input: impl FnOnce(&mut NodeCore),
    ) -> Result<(), Violation> {
        let Some(core) = self.nodes.get_mut(&id).and_then(|n| n.core.as_mut()) else {
            self.world.stats.dropped += 1;
            return Ok(());
        };
        input(core);
        self.end_turn(id)
    }

    fn end_turn(&mut self, id: NodeId) -> Result<(), Violation> {
        let rerouted = |d: &Self| {
            d.nodes
                .get(&id)
                .and_then(|n| n.core.as_ref())
                .map_or(0, |c| c.counters().rerouted)
        };
        let before = rerouted(self);
        loop {
            let Some(core) = self.nodes.get_mut(&id).and_then(|n| n.core.as_mut()) else {
                return Ok(());
            };
            core.flush();
            let actions = core.take_actions();
            if actions.is_empty() {
                break;
            }
            for a in actions {
                self.act(id, a)?;
            }
        }
        self.world.stats.rerouted += rerouted(self).saturating_sub(before);
        self.note_handover(id);
        self.check_node(id)
    }

    /// The node's own invariants, after every step.
    fn check_node(&self, id: NodeId) -> Result<(), Violation> {
        let Some(core) = self.nodes[&id].core.as_ref() else {
            return Ok(());
        };
        let r = core.replica();
        if let Some((next, bound)) = r.proposal_range() {
            let known = r.applied_index() + r.membership().alpha();
            if next > bound || bound > known {
                return Err(Violation {
                    check: "node-invariants",
                    at: self.world.now,
                    detail: format!(
                        "node {id} leads with next slot {next}, prepared below {bound}, \
                         configurations known below {known}"
                    ),
                });
            }
        }
        // A member that knows it no longer votes never stands, and leads only while it hands
        // leadership to a voter.
        let voter = r.membership().latest().is_voter(id);
        let standing = match r.role_kind() {
            RoleKind::Candidate => true,
            RoleKind::Leader => r.handing_over().is_none(),
            RoleKind::Follower => false,
        };
        if standing && !voter {
            return Err(Violation {
                check: "retired-quiet",
                at: self.world.now,
                detail: format!(
                    "node {id} is a {:?} though its latest configuration (epoch {}) does not \
                     count it a voter",
                    r.role_kind(),
                    r.membership().latest().epoch()
                ),
            });
        }
        if r.applied_index() > r.commit_index() || r.log_start() > r.applied_index() {
            return Err(Violation {
                check: "node-invariants",
                at: self.world.now,
                detail: format!(
                    "node {id}: log start {} applied {} commit {}",
                    r.log_start(),
                    r.applied_index(),
                    r.commit_index()
                ),
            });
        }
        let stall = super::stalls::stalled(id, r).or_else(|| super::stalls::node_stalled(id, core));
        if let Some(detail) = stall {
            return Err(Violation {
                check: "node-invariants",
                at: self.world.now,
                detail,
            });
        }
        Ok(())
    }

    fn act(&mut self, id: NodeId, action: Action) -> Result<(), Violation> {
        match action {
            Action::Send { to, msg } => {
                let vote = matches!(msg, Message::Promise { .. } | Message::Accepted { .. });
                let promise = matches!(msg, Message::Promise { .. });
                let ask = matches!(msg, Message::ReadIndexRequest { .. });
                self.world
                    .send(id, to, msg, summarize, |msg| Event::Deliver {
                        from: id,
                        to,
                        msg,
                    });
                let aim = if promise && self.world.partition.bridge == Some(id) {
                    self.swarm
                        .crash_bridge_promise
                        .max(self.swarm.crash_after_vote)
                } else if vote {
                    self.swarm.crash_after_vote
                } else if ask {
                    self.swarm.crash_after_ask
                } else {
                    0.0
                };
                if aim > 0.0 && self.world.faults.crash && self.world.rng.gen_bool(aim) {
                    let epoch = self.nodes[&id].epoch;
                    self.world.after(0, Event::CrashNode { node: id, epoch });
                }
            }
            Action::Write {
                batch,
                records,
                sync,
            } => self.write(id, batch, records, sync),
            Action::Reply { ticket, result } => self.answer(id, ticket, Answer::Write(result)),
            Action::ReadReply { ticket, result } => {
                let n = self.nodes.get_mut(&id).expect("node");
                let req = n.reads.remove(&ticket);
                match (result, req) {
                    // No leader known: order the read through the log instead, as the gRPC
                    // layer does.
                    (Err(ProposeError::NotLeader), Some(req)) => {
                        let core = n.core.as_mut().expect("acting node is alive");
                        core.propose(ticket, KvCommand::Range(Box::new(req)));
                    }
                    (result, _) => self.answer(id, ticket, Answer::Read(result)),
                }
            }
            Action::BuildSnapshot { pending, .. } => {
                let epoch = self.nodes[&id].epoch;
                let delay = self.world.rng.gen_range(0..=20);
                let snapshot = pending.build();
                self.world.after(
                    delay,
                    Event::SnapshotBuilt {
                        node: id,
                        epoch,
                        snapshot,
                    },
                );
            }
            Action::Checkpoint {
                covered,
                checkpoint,
            } => {
                let epoch = self.nodes[&id].epoch;
                let delay = self.world.rng.gen_range(0..=20);
                self.world.after(
                    delay,
                    Event::CheckpointDone {
                        node: id,
                        epoch,
                        covered,
                        checkpoint,
                    },
                );
            }
            // The operator asks without a ticket: its changes show in ground truth's membership.
            Action::Free(_) | Action::MemberReply { .. } => {}
            // A node's own command (its auto-compaction): asked for, by the node.
            Action::Issued(op) => self.truth.issued(&op),
            Action::Chosen { slot, value } => {
                self.truth
                    .confirm(self.world.now, id, "learned", slot, &value)?;
                let t = self.world.now;
                self.world.trace.record(|| TraceEvent::Chosen {
                    t,
                    node: id,
                    slot,
                    value: format!("{} cmds", value.commands().len()),
                });
            }
            Action::Applied { slot, value } => {
                self.truth
                    .confirm(self.world.now, id, "applied", slot, &value)?;
            }
        }
        Ok(())
    }

    /// Sends a node's answer back to the client that asked.
    fn answer(&mut self, id: NodeId, ticket: u64, answer: Answer) {
        let client = Client::of(ticket);
        self.world.send_stream(
            id,
            client,
            answer,
            |a| format!("answer {ticket:#x}: {}", short(a)),
            |answer| Event::Reply { ticket, answer },
        );
    }

    /// Records reach the disk's cache; a sync follows within the seed's sync delay, or, while
    /// faults last, a stall. Sometimes the node dies right here, between the write and its sync.
    /// A batch that needs no sync gets none of its own: it stays volatile until a later
    /// batch's sync (or a checkpoint's) covers it, as on the server.
    fn write(&mut self, id: NodeId, batch: u64, records: Vec<Persist<KvCommand>>, sync: bool) {
        let n = self.nodes.get_mut(&id).expect("node");
        n.disk.write(batch, records);
        let epoch = n.epoch;
        if self.world.faults.crash && self.world.rng.gen_bool(self.swarm.crash_at_write) {
            self.world.after(0, Event::CrashNode { node: id, epoch });
        }
        if !sync {
            let bytes = n.disk.log_bytes();
            if let Some(core) = n.core.as_mut() {
                core.written(bytes);
            }
            return;
        }
        if !n.sync_pending {
            n.sync_pending = true;
            let mut delay = self.world.rng.gen_range(0..=self.swarm.sync_delay);
            // A stalled disk is a fault like the others: it stops when they do, or a run whose
            // every slot needs every node (flexible quorums, q2 = n) may crawl past the
            // liveness bound with nothing wrong.
            if self.faults_on() && self.world.rng.gen_bool(self.swarm.stall_chance) {
                delay += self.world.rng.gen_range(1..=self.swarm.stall.max(1));
            }
            self.world.after(delay, Event::Sync { node: id, epoch });
        }
    }

    /// What was written becomes durable (and ground truth sees the votes); then the node is
    /// told, unless a crash strikes between the two.
    pub(super) fn sync(&mut self, id: NodeId) -> Result<(), Violation> {
        let n = self.nodes.get_mut(&id).expect("node");
        n.sync_pending = false;
        let (batch, records) = n.disk.sync();
        self.durable(id, &records)?;
        if batch == 0 {
            return Ok(());
        }
        if self.world.faults.crash && self.world.rng.gen_bool(self.swarm.crash_at_sync) {
            return self.crash(id, true);
        }
        let bytes = self.nodes[&id].disk.log_bytes();
        self.drive(id, |c| c.synced(batch, bytes))
    }

    /// Records became durable on `id`'s disk: every vote among them counts now.
    pub(super) fn durable(
        &mut self,
        id: NodeId,
        records: &[Persist<KvCommand>],
    ) -> Result<(), Violation> {
        for r in records {
            if let Persist::Accept {
                slot,
                ballot,
                value,
            } = r
            {
                self.truth.vote(self.world.now, id, *slot, *ballot, value)?;
            }
        }
        Ok(())
    }

    /// Saves a checkpoint as the server does: once every record written is durable, then the
    /// log below it is dropped.
    pub(super) fn checkpoint(
        &mut self,
        id: NodeId,
        covered: u64,
        checkpoint: &synod_node::Checkpoint,
    ) -> Result<(), Violation> {
        if self.nodes[&id].disk.unsynced() > 0 {
            self.sync(id)?;
            if self.nodes[&id].core.is_none() {
                return Ok(());
            }
        }
        let n = self.nodes.get_mut(&id).expect("node");
        let bytes = n.disk.save_checkpoint(covered, checkpoint);
        let log_bytes = n.disk.log_bytes();
        // As the server does: the replica's snapshot then lives in the checkpoint's bytes.
        let saved = n.disk.snapshot_state();
        let mut rebased = false;
        self.drive(id, |c| {
            c.checkpointed(covered, bytes, log_bytes);
            if let Some((slot, state)) = saved {
                rebased = c.rebase_snapshot(slot, state);
            }
        })?;
        self.world.stats.rebased += rebased as u64;
        Ok(())
    }

    /// Starts (or restarts) node `id` from its disk, through the server's recovery code.
    pub(super) fn boot(&mut self, id: NodeId) -> Result<(), Violation> {
        let cfg = self.node_config(id);
        let now = self.world.now;
        let recovered = self.nodes[&id].disk.recover().map_err(|e| Violation {
            check: "recovery",
            at: now,
            detail: format!("node {id} cannot read its disk back: {e}"),
        })?;
        // What survived on disk below the commit point must be exactly what was chosen.
        let d = &recovered.durable;
        for (&slot, e) in d.log.range(d.log_start()..d.commit) {
            self.truth.confirm(now, id, "recovered", slot, &e.value)?;
        }
        let n = self.nodes.get_mut(&id).expect("node");
        let index = n.disk.boot(recovered.boot + 1);
        let bytes = n.disk.log_bytes();
        let mut core = NodeCore::new(cfg, recovered, index, bytes).map_err(|e| Violation {
            check: "recovery",
            at: now,
            detail: format!("node {id} cannot restart: {e}"),
        })?;
        core.start();
        n.core = Some(core);
        let epoch = n.epoch;
        let held = std::mem::take(&mut n.held);
        self.world.stats.redelivered += held.len() as u64;
        // What the peers queued for the dead node arrives once each of them reconnects.
        let mut reconnect = BTreeMap::new();
        for (from, msg) in held {
            let at = *reconnect
                .entry(from)
                .or_insert_with(|| self.world.rng.gen_range(1..=self.swarm.reconnect.max(1)));
            self.world.after(at, Event::Deliver { from, to: id, msg });
        }
        if self.swarm.rejoin > 0.0 {
            for c in &mut self.clients {
                if self.world.rng.gen_bool(self.swarm.rejoin) {
                    c.target = id;
                }
            }
        }
        self.world.after(1, Event::Tick { node: id, epoch });
        self.end_turn(id)
    }

    /// Node `id` dies: the disk keeps what was synced and a random prefix of the rest; every
    /// message and reply still waiting for a sync dies with it.
    pub(super) fn crash(&mut self, id: NodeId, aimed: bool) -> Result<(), Violation> {
        let n = self.nodes.get_mut(&id).expect("node");
        let keep = self.world.rng.gen_range(0..=n.disk.unsynced());
        let kept = n.disk.crash(keep);
        n.core = None;
        n.epoch += 1;
        n.sync_pending = false;
        n.reads.clear();
        self.durable(id, &kept)?;
        self.world.stats.crashes += 1;
        let t = self.world.now;
        self.world.trace.record(|| TraceEvent::Crash {
            t,
            node: id,
            mid_step: aimed,
        });
        let (lo, hi) = self.swarm.restart;
        let at = self.world.rng.gen_range(lo..=hi);
        self.world.after(at, Event::Restart { node: id });
        Ok(())
    }
}

fn short(a: &Answer) -> String {
    match a {
        Answer::Read(Ok((rev, _))) => format!("read at revision {rev}"),
        Answer::Write(Ok(o)) => format!("ok at revision {}", o.revision),
        Answer::Read(Err(e)) | Answer::Write(Err(e)) => e.to_string(),
    }
}

/// A one-line description of a message for traces.
pub(super) fn summarize(m: &Message<KvCommand>) -> String {
    match m {
        Message::Accept {
            ballot,
            slot,
            value,
            commit,
        } => format!(
            "accept(b={ballot}, slot={slot}, {} cmds, commit={commit})",
            value.commands().len()
        ),
        Message::Promise {
            ballot, entries, ..
        } => format!("promise(b={ballot}, {} votes)", entries.len()),
        Message::CatchUp { entries } => format!("catchup({} slots)", entries.len()),
        Message::Chosen { slot, .. } => format!("chosen(slot={slot})"),
        Message::Forward { commands } => format!("forward({} cmds)", commands.len()),
        Message::InstallSnapshot { snapshot } => {
            format!("install-snapshot(slot={})", snapshot.slot)
        }
        Message::SnapshotChunk {
            slot, offset, data, ..
        } => format!("snapshot-chunk(slot={slot}, {offset}+{})", data.len()),
        other => format!("{other:?}"),
    }
}
