//! The replicated state machine a Multi-Paxos log drives.

use std::fmt::Debug;

/// A deterministic state machine: the same commands in the same order give the same results on
/// every replica. Multi-Paxos decides the order; this trait is all it needs of the application.
pub trait StateMachine: Sized {
    /// A command, as carried in the log.
    type Command: Clone + Debug + Eq;
    /// The result returned to the client that issued the command. Serializable because the
    /// last result per client is part of a snapshot (so a retry is answered, not re-applied).
    type Output: Clone + Debug + serde::Serialize + serde::de::DeserializeOwned;

    /// Applies one command. Must be deterministic: no clocks, no randomness, no I/O whose result
    /// could differ between replicas.
    fn apply(&mut self, command: &Self::Command) -> Self::Output;

    /// The whole state as bytes, for a snapshot.
    fn snapshot(&self) -> Vec<u8>;

    /// Rebuilds the state from [`StateMachine::snapshot`]'s bytes.
    fn restore(bytes: &[u8]) -> Result<Self, String>;
}
