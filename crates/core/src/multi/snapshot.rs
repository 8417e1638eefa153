//! A snapshot taken in two steps, so that encoding a large state can happen off the caller's
//! thread: [`Replica::begin_snapshot`](super::Replica::begin_snapshot) copies the state,
//! [`PendingSnapshot::build`] encodes it, and
//! [`Replica::finish_snapshot`](super::Replica::finish_snapshot) compacts the log below it.

use super::log::Entry;
use super::membership::Membership;
use super::messages::{Slot, Snapshot, SnapshotHead};
use std::collections::BTreeMap;

/// Log entries a snapshot replaced, handed back so the driver chooses where to free them.
#[derive(Debug)]
pub struct Compacted<C>(pub BTreeMap<Slot, Entry<C>>);

/// The applied state at one slot, not yet encoded.
pub struct PendingSnapshot {
    pub(crate) slot: Slot,
    pub(crate) sessions: Vec<u8>,
    pub(crate) membership: Membership,
    pub(crate) state: super::state_machine::StateEncoder,
    /// The state of the snapshot before this one, if the replica has one: the encoding may
    /// build on it ([`super::EncodeState::to_writer_after`]).
    pub(crate) base: Option<bytes::Bytes>,
}

impl PendingSnapshot {
    /// The first slot the snapshot does not cover.
    pub fn slot(&self) -> Slot {
        self.slot
    }

    /// Encodes the state: the costly part, safe to run on any thread.
    pub fn build(self) -> Snapshot {
        self.build_with(&mut |_| {})
    }

    /// As [`PendingSnapshot::build`], calling `progress` with the bytes of state encoded so far
    /// as the encoding goes (see [`super::StateMachine::snapshot_later`]).
    pub fn build_with(self, progress: &mut dyn FnMut(usize)) -> Snapshot {
        Snapshot {
            slot: self.slot,
            state: match &self.base {
                Some(base) => self.state.to_vec_after(base, progress),
                None => self.state.to_vec(progress),
            }
            .into(),
            sessions: self.sessions,
            membership: Some(self.membership),
        }
    }

    /// As [`PendingSnapshot::build_with`], writing the state's bytes to `out` as they are made
    /// rather than holding them: a driver writes them straight into a file, reads them back
    /// from there (a mapping) and completes the snapshot with [`StateWritten::with_state`].
    pub fn build_into(
        self,
        out: &mut dyn std::io::Write,
        progress: &mut dyn FnMut(usize),
    ) -> std::io::Result<StateWritten> {
        let len = match &self.base {
            Some(base) => self.state.to_writer_after(base, out, progress)?,
            None => self.state.to_writer(out, progress)?,
        };
        Ok(StateWritten {
            slot: self.slot,
            len,
            head: SnapshotHead {
                sessions: self.sessions,
                membership: Some(self.membership),
            },
        })
    }
}

/// A snapshot whose state went to a writer ([`PendingSnapshot::build_into`]): all of it but
/// the state's bytes.
#[derive(Debug)]
pub struct StateWritten {
    /// The first slot the snapshot does not cover.
    pub slot: Slot,
    /// How many bytes of state were written.
    pub len: u64,
    /// The session table and the membership.
    pub head: SnapshotHead,
}

impl StateWritten {
    /// The snapshot, given the state's bytes as written (`len` of them).
    pub fn with_state(self, state: bytes::Bytes) -> Snapshot {
        debug_assert_eq!(state.len() as u64, self.len, "the state as it was written");
        Snapshot {
            slot: self.slot,
            state,
            sessions: self.head.sessions,
            membership: self.head.membership,
        }
    }
}

impl std::fmt::Debug for PendingSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSnapshot")
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}
