//! The replicated state machine a Multi-Paxos log drives.

use std::fmt::Debug;

/// The encoding of a state machine's state, to be run later ([`StateMachine::snapshot_later`]).
pub type StateEncoder = Box<dyn EncodeState>;

/// A state machine's state as of some moment, to be encoded later, possibly on another thread,
/// into the bytes [`StateMachine::snapshot`] would have given at that moment. Both ways call
/// `progress` with the bytes encoded so far about every [`crate::encode::PROGRESS_STEP`] (a
/// driver may pace the encoding there).
pub trait EncodeState: Send {
    /// Encodes into a vector.
    fn to_vec(self: Box<Self>, progress: &mut dyn FnMut(usize)) -> Vec<u8>;

    /// Encodes into `out` as the bytes are made, so that they are never held whole in memory
    /// (a driver writes a large state straight into its checkpoint file). Returns how many
    /// bytes were written. The default encodes into a vector first.
    fn to_writer(
        self: Box<Self>,
        out: &mut dyn std::io::Write,
        progress: &mut dyn FnMut(usize),
    ) -> std::io::Result<u64> {
        let bytes = self.to_vec(progress);
        out.write_all(&bytes)?;
        Ok(bytes.len() as u64)
    }

    /// As [`EncodeState::to_vec`], given `base`: the state of the snapshot before this one,
    /// which the machine reached this state from by applying commands. A machine may lay what
    /// changed since on top of `base` instead of encoding the whole state again, so its bytes
    /// need not be those of [`StateMachine::snapshot`], only restore to the same state. The
    /// default ignores `base`.
    fn to_vec_after(self: Box<Self>, base: &[u8], progress: &mut dyn FnMut(usize)) -> Vec<u8> {
        let _ = base;
        self.to_vec(progress)
    }

    /// As [`EncodeState::to_writer`], given `base` as for [`EncodeState::to_vec_after`].
    fn to_writer_after(
        self: Box<Self>,
        base: &[u8],
        out: &mut dyn std::io::Write,
        progress: &mut dyn FnMut(usize),
    ) -> std::io::Result<u64> {
        let _ = base;
        self.to_writer(out, progress)
    }
}

/// A state encoded already: what [`StateMachine::snapshot_later`] hands out by default.
struct Encoded(Vec<u8>);

impl EncodeState for Encoded {
    fn to_vec(self: Box<Self>, _: &mut dyn FnMut(usize)) -> Vec<u8> {
        self.0
    }
}

/// A deterministic state machine: the same commands in the same order give the same results on
/// every replica. Multi-Paxos decides the order; this trait is all it needs of the application.
pub trait StateMachine: Sized {
    /// A command, as carried in the log. Serializable so that a leader can send an auxiliary
    /// acceptor a batch's digest ([`super::Value::for_auxiliary`]).
    type Command: Clone + Debug + Eq + serde::Serialize;
    /// The result returned to the client that issued the command. Serializable because the
    /// last result per client is part of a snapshot (so a retry is answered, not re-applied).
    type Output: Clone + Debug + serde::Serialize + serde::de::DeserializeOwned;

    /// Applies one command. Must be deterministic: no clocks, no randomness, no I/O whose result
    /// could differ between replicas.
    fn apply(&mut self, command: &Self::Command) -> Self::Output;

    /// The whole state as bytes, for a snapshot.
    fn snapshot(&self) -> Vec<u8>;

    /// The state as of now, encoded later, possibly on another thread: what a driver uses to
    /// take a snapshot without stalling. The default encodes at once; a machine whose state is
    /// cheap to copy (shared, copy-on-write) overrides it to copy now and encode in the closure,
    /// calling the progress callback it is given with the bytes encoded so far every
    /// [`crate::encode::PROGRESS_STEP`] or so (a driver may pace the encoding there).
    fn snapshot_later(&self) -> StateEncoder {
        Box::new(Encoded(self.snapshot()))
    }

    /// Rebuilds the state from [`StateMachine::snapshot`]'s bytes.
    fn restore(bytes: &[u8]) -> Result<Self, String>;
}
