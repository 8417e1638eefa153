//! The learner role of a Multi-Paxos replica: tracks the chosen prefix of the log, applies it to
//! the state machine exactly once per client command, and answers the clients waiting here. It
//! also applies membership changes, so the membership is a function of the chosen prefix.

use super::log::Entry;
use super::membership::Membership;
use super::messages::{ClientId, MultiEffects, Output, Persist, Slot, Snapshot, Value};
use super::snapshot::PendingSnapshot;
use super::state_machine::StateMachine;
use crate::bugs::PlantedBug;
use std::collections::{BTreeMap, BTreeSet};

/// The learner: commit point, applied point, state machine, and client sessions.
///
/// Invariants (asserted): `applied <= commit`; every slot below `commit` is chosen in the log;
/// slots are applied in order, each once.
#[derive(Debug)]
pub struct Learner<S: StateMachine> {
    commit: Slot,
    applied: Slot,
    sm: S,
    /// Per client: the highest sequence number applied and its result. Part of the replicated
    /// state (every replica builds the same table), so a retry is answered, not re-applied.
    sessions: BTreeMap<ClientId, (u64, S::Output)>,
    /// Who governs which slots, after every change applied so far.
    membership: Membership,
    /// The cluster's first configuration: what a snapshot without a membership (restored from a
    /// backup, or written before changes existed) stands for.
    genesis: Membership,
    /// Commands whose clients wait on this replica for an answer.
    pending: BTreeSet<(ClientId, u64)>,
    bug: Option<PlantedBug>,
}

impl<S: StateMachine> Learner<S> {
    /// A learner over `sm`, which reflects nothing yet: [`Learner::catch_up`] replays the log.
    pub fn new(sm: S, genesis: Membership, bug: Option<PlantedBug>) -> Self {
        Learner {
            commit: 0,
            applied: 0,
            sm,
            sessions: BTreeMap::new(),
            membership: genesis.clone(),
            genesis,
            pending: BTreeSet::new(),
            bug,
        }
    }

    /// First slot not known chosen.
    pub fn commit(&self) -> Slot {
        self.commit
    }

    /// Next slot to apply.
    pub fn applied(&self) -> Slot {
        self.applied
    }

    /// The state machine.
    pub fn state_machine(&self) -> &S {
        &self.sm
    }

    /// The membership after every applied slot.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Forgets the configurations of compacted slots only.
    pub fn compacted_below(&mut self, slot: Slot) {
        self.membership.trim_below(slot);
    }

    /// If `(client, seq)` was already applied, its cached result; `Err(())` if it is older than
    /// the client's latest applied command (a stale duplicate to drop).
    pub fn applied_result(&self, client: ClientId, seq: u64) -> Option<Result<S::Output, ()>> {
        match self.sessions.get(&client) {
            Some((s, out)) if *s == seq => Some(Ok(out.clone())),
            Some((s, _)) if *s > seq => Some(Err(())),
            _ => None,
        }
    }

    /// Remembers that a client waits here for `(client, seq)`.
    pub fn wait_for(&mut self, client: ClientId, seq: u64) {
        self.pending.insert((client, seq));
    }

    /// Forgets a waiting client (it was told to go elsewhere).
    pub fn forget(&mut self, client: ClientId, seq: u64) {
        self.pending.remove(&(client, seq));
    }

    /// The state after every applied slot, as a snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_later().build()
    }

    /// The state after every applied slot, to be encoded later ([`PendingSnapshot::build`]).
    pub fn snapshot_later(&self) -> PendingSnapshot {
        let sessions: Vec<(&ClientId, &(u64, S::Output))> = self.sessions.iter().collect();
        PendingSnapshot {
            slot: self.applied,
            state: self.sm.snapshot_later(),
            sessions: postcard::to_stdvec(&sessions).expect("sessions serialize"),
            membership: self.membership.trimmed_below(self.applied),
            base: None,
        }
    }

    /// Replaces the state with `snap`'s (which must be ahead of what is applied), and answers
    /// the clients waiting here whose commands it covers. A snapshot that does not decode, or
    /// whose membership could not have been built below its slot, changes nothing.
    pub fn install(
        &mut self,
        snap: &Snapshot,
        fx: &mut MultiEffects<S::Command, S::Output>,
    ) -> Result<(), String> {
        assert!(
            snap.slot >= self.applied,
            "installing a snapshot behind the applied state"
        );
        let membership = match &snap.membership {
            Some(m) => {
                m.check_covers(snap.slot)
                    .map_err(|e| format!("membership: {e}"))?;
                m.clone()
            }
            None => self.genesis.clone(),
        };
        let sm = S::restore(&snap.state)?;
        let sessions: Vec<(ClientId, (u64, S::Output))> =
            postcard::from_bytes(&snap.sessions).map_err(|e| format!("session table: {e}"))?;
        self.sm = sm;
        self.membership = membership;
        self.sessions = sessions.into_iter().collect();
        self.applied = snap.slot;
        self.commit = self.commit.max(snap.slot);
        let waiting: Vec<(ClientId, u64)> = self.pending.iter().copied().collect();
        for (client, seq) in waiting {
            if let Some((done, result)) = self.sessions.get(&client) {
                if *done >= seq {
                    self.pending.remove(&(client, seq));
                    if *done == seq {
                        fx.output(Output::Reply {
                            client,
                            seq,
                            result: result.clone(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Advances the commit point over chosen slots, then applies everything committed.
    pub fn catch_up(
        &mut self,
        log: &BTreeMap<Slot, Entry<S::Command>>,
        fx: &mut MultiEffects<S::Command, S::Output>,
    ) {
        let before = self.commit;
        while log.get(&self.commit).is_some_and(|e| e.chosen) {
            self.commit += 1;
        }
        if self.commit > before {
            fx.persist(Persist::Commit(self.commit));
        }
        let limit = if self.bug == Some(PlantedBug::ApplyBeforeChosen) {
            // The bug: anything voted for counts as decided.
            let mut s = self.applied;
            while log.contains_key(&s) {
                s += 1;
            }
            s.max(self.commit)
        } else {
            self.commit
        };
        while self.applied < limit {
            let slot = self.applied;
            let entry = &log[&slot];
            assert!(
                entry.chosen || self.bug.is_some(),
                "applying slot {slot} that is not chosen"
            );
            self.apply_value(slot, entry, fx);
            self.applied += 1;
            fx.output(Output::Applied { slot });
        }
        assert!(self.applied <= self.commit || self.bug.is_some());
    }

    fn apply_value(
        &mut self,
        slot: Slot,
        entry: &Entry<S::Command>,
        fx: &mut MultiEffects<S::Command, S::Output>,
    ) {
        if let Value::Reconfig(change) = &entry.value {
            let outcome = if self.bug == Some(PlantedBug::ConfigImmediate) {
                self.membership.apply_after(slot, change, 1)
            } else {
                self.membership.apply(slot, change)
            };
            fx.output(Output::Reconfigured {
                slot,
                id: change.id,
                outcome,
            });
            return;
        }
        for cmd in entry.value.commands() {
            let result = match self.sessions.get(&cmd.client) {
                // Exactly once: a retry that made it into the log twice is not applied again.
                Some((seq, _))
                    if *seq >= cmd.seq && self.bug != Some(PlantedBug::RetryAppliedTwice) =>
                {
                    continue
                }
                _ => self.sm.apply(&cmd.op),
            };
            self.sessions.insert(cmd.client, (cmd.seq, result.clone()));
            if self.pending.remove(&(cmd.client, cmd.seq)) {
                fx.output(Output::Reply {
                    client: cmd.client,
                    seq: cmd.seq,
                    result,
                });
            }
            // A client has one command in flight: older waits are answered or abandoned.
            let stale: Vec<_> = self
                .pending
                .range((cmd.client, 0)..=(cmd.client, cmd.seq))
                .copied()
                .collect();
            for k in stale {
                self.pending.remove(&k);
            }
        }
    }
}
