//! The replicated state machine a Multi-Paxos log drives.

use std::fmt::Debug;

/// The encoding of a state machine's state, to be run later: given a progress callback, it
/// returns the bytes [`StateMachine::snapshot`] would have.
pub type StateEncoder = Box<dyn FnOnce(&mut dyn FnMut(usize)) -> Vec<u8> + Send>;

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
        let bytes = self.snapshot();
        Box::new(move |_| bytes)
    }

    /// Rebuilds the state from [`StateMachine::snapshot`]'s bytes.
    fn restore(bytes: &[u8]) -> Result<Self, String>;
}
