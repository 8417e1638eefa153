//! The replicated state machine a Multi-Paxos log drives.

use std::fmt::Debug;

/// A deterministic state machine: the same commands in the same order give the same results on
/// every replica. Multi-Paxos decides the order; this trait is all it needs of the application.
pub trait StateMachine {
    /// A command, as carried in the log.
    type Command: Clone + Debug + Eq;
    /// The result returned to the client that issued the command.
    type Output: Clone + Debug;

    /// Applies one command. Must be deterministic: no clocks, no randomness, no I/O whose result
    /// could differ between replicas.
    fn apply(&mut self, command: &Self::Command) -> Self::Output;
}
