//! The node layer of a Cheap Paxos auxiliary acceptor: no store, no clients, no timers. Peer
//! messages go to the [`Auxiliary`]; its records go to the log through the same durability
//! gate as a replica's, and its promises and votes leave only once durable. When the log has
//! grown by [`AUX_CHECKPOINT_RECORDS`] since the last checkpoint, the auxiliary's whole state
//! (its promise, forget point and the few votes it holds) becomes the next checkpoint, so its
//! disk stays as small as its state.

use crate::gate::Gate;
use crate::record::Checkpoint;
use crate::Action;
use synod_core::multi::auxiliary::{AuxDurable, Auxiliary};
use synod_core::multi::{Message, Persist};
use synod_core::NodeId;
use synod_kv::KvCommand;

/// Log records written after which an auxiliary folds its log into a checkpoint.
pub const AUX_CHECKPOINT_RECORDS: u64 = 1024;

/// What an auxiliary recovers from its disk.
#[derive(Debug, Default)]
pub struct AuxRecovered {
    /// Its promise, votes and forget point.
    pub durable: AuxDurable<KvCommand>,
    /// The highest boot epoch recorded; the next boot is one above.
    pub boot: u64,
}

/// An auxiliary acceptor's node: feed it peer messages, [`AuxNode::flush`] once per loop turn,
/// and carry out [`AuxNode::take_actions`] (only `Send`, `Write` and `Checkpoint`).
#[derive(Debug)]
pub struct AuxNode {
    aux: Auxiliary<KvCommand>,
    boot: u64,
    gate: Gate,
    actions: Vec<Action>,
    /// Index of the last log record written.
    appended: u64,
    /// The log record the newest checkpoint covers.
    covered: u64,
    /// A checkpoint handed to the driver and not yet reported saved.
    saving: bool,
    received: u64,
}

impl AuxNode {
    /// An auxiliary restarted from what [`crate::record::recover_aux`] read back. The driver
    /// must have written and synced the boot record of epoch `recovered.boot + 1`, which is the
    /// log's record number `log_index`.
    pub fn new(id: NodeId, recovered: AuxRecovered, log_index: u64) -> AuxNode {
        AuxNode {
            aux: Auxiliary::new(id, recovered.durable),
            boot: recovered.boot + 1,
            gate: Gate::default(),
            actions: Vec::new(),
            appended: log_index,
            // What the log holds now is as small as what a checkpoint would hold, give or
            // take 1,024 records: no checkpoint at every restart.
            covered: log_index,
            saving: false,
            received: 0,
        }
    }

    /// The acceptor.
    pub fn auxiliary(&self) -> &Auxiliary<KvCommand> {
        &self.aux
    }

    /// This boot's epoch.
    pub fn boot(&self) -> u64 {
        self.boot
    }

    /// Peer messages received since boot: in steady state, none.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// A message from peer `from`.
    pub fn on_peer(&mut self, from: NodeId, msg: Message<KvCommand>) {
        self.received += 1;
        let fx = self.aux.on_message(from, msg);
        self.gate.stage(fx.persist, !fx.send_after_sync.is_empty());
        for o in fx.send {
            self.actions.push(Action::Send {
                to: o.to,
                msg: o.msg,
            });
        }
        if !fx.send_after_sync.is_empty() {
            if self.gate.unsynced() {
                self.gate.hold(fx.send_after_sync);
            } else {
                self.send(fx.send_after_sync);
            }
        }
    }

    fn send(&mut self, out: Vec<synod_core::Outgoing<Message<KvCommand>>>) {
        for o in out {
            self.actions.push(Action::Send {
                to: o.to,
                msg: o.msg,
            });
        }
    }

    /// Ends a loop turn: one [`Action::Write`] for the turn's records, and a checkpoint when
    /// the log has grown enough.
    pub fn flush(&mut self) {
        if let Some((batch, records, sync)) = self.gate.cut() {
            debug_assert!(sync, "an auxiliary writes only promises, votes and forgets");
            self.appended += records.len() as u64;
            self.actions.push(Action::Write {
                batch,
                records,
                sync,
            });
        }
        if !self.saving && self.appended - self.covered >= AUX_CHECKPOINT_RECORDS {
            self.saving = true;
            let mut records = vec![
                Persist::Promise(self.aux.promised()),
                Persist::Forget(self.aux.forgotten()),
            ];
            records.extend(
                self.aux
                    .votes_held()
                    .map(|(slot, ballot, value)| Persist::Accept {
                        slot,
                        ballot,
                        value: value.clone(),
                    }),
            );
            self.actions.push(Action::Checkpoint {
                covered: self.appended,
                checkpoint: Checkpoint {
                    boot: self.boot,
                    records,
                },
            });
        }
    }

    /// Batch `batch` of [`Action::Write`] (and every earlier one) is durable.
    pub fn synced(&mut self, batch: u64) {
        let out = self.gate.synced(batch);
        self.send(out);
    }

    /// The checkpoint covering log record `covered` is saved.
    pub fn checkpointed(&mut self, covered: u64) {
        self.saving = false;
        self.covered = self.covered.max(covered);
    }

    /// The actions queued so far, in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{encode_checkpoint, encode_persist, recover_aux};
    use synod_core::multi::Value;
    use synod_core::Ballot;

    fn accept(slot: u64) -> Message<KvCommand> {
        Message::Accept {
            ballot: Ballot::new(1, 1),
            slot,
            value: Value::Noop,
            commit: 0,
        }
    }

    #[test]
    fn a_vote_leaves_only_once_durable_and_the_log_folds_into_a_checkpoint() {
        let mut node = AuxNode::new(3, AuxRecovered::default(), 1);
        node.on_peer(1, accept(0));
        node.flush();
        let actions = node.take_actions();
        assert!(
            matches!(&actions[..], [Action::Write { batch: 1, .. }]),
            "{actions:?}"
        );
        node.synced(1);
        let actions = node.take_actions();
        assert!(matches!(
            &actions[..],
            [Action::Send {
                to: 1,
                msg: Message::Accepted { slot: 0, .. }
            }]
        ));
        // Enough votes and forget points make a checkpoint of what is left: one vote.
        let mut log = Vec::new();
        for slot in 1..AUX_CHECKPOINT_RECORDS {
            node.on_peer(1, accept(slot));
        }
        let commit = AUX_CHECKPOINT_RECORDS - 1;
        node.on_peer(
            1,
            Message::Heartbeat {
                ballot: Ballot::new(1, 1),
                commit,
            },
        );
        node.flush();
        let mut checkpoint = None;
        for a in node.take_actions() {
            match a {
                Action::Write { records, .. } => log.extend(records),
                Action::Checkpoint {
                    covered,
                    checkpoint: c,
                } => checkpoint = Some((covered, c)),
                _ => {}
            }
        }
        let (covered, cp) = checkpoint.expect("a checkpoint");
        assert_eq!(covered, 1 + 1 + AUX_CHECKPOINT_RECORDS);
        assert_eq!(
            cp.records.len(),
            3,
            "promise, forget point, one vote: {:?}",
            cp.records
        );
        let bytes = encode_checkpoint(&cp);
        let back = recover_aux(Some((covered, bytes.into())), []).unwrap();
        assert_eq!(back.durable.votes.len(), 1);
        assert_eq!(back.durable.forgotten, commit);
        // The log alone rebuilds the same state.
        let encoded: Vec<Vec<u8>> = log.iter().map(encode_persist).collect();
        let replayed = recover_aux(
            None,
            encoded.iter().enumerate().map(|(i, r)| (i as u64, &r[..])),
        )
        .unwrap();
        assert_eq!(replayed.durable, back.durable);
        node.checkpointed(covered);
        node.flush();
        assert!(node.take_actions().is_empty(), "nothing new to save");
    }
}
