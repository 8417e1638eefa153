//! A state machine for the replica tests, and a network to run replicas in.

// Each test file uses what it needs of this.
#[allow(dead_code)]
pub mod members;
#[allow(dead_code)]
pub mod net;

use synod_core::multi::StateMachine;

/// Adds numbers; returns the running total. Applying twice would show in the total. Wraps
/// rather than panics: a command is input (tests/hostile_peers.rs delivers made-up ones).
#[derive(Default, Debug)]
pub struct Counter(pub u64);

impl StateMachine for Counter {
    type Command = u64;
    type Output = u64;
    fn apply(&mut self, add: &u64) -> u64 {
        self.0 = self.0.wrapping_add(*add);
        self.0
    }
    fn snapshot(&self) -> Vec<u8> {
        self.0.to_le_bytes().to_vec()
    }
    fn restore(bytes: &[u8]) -> Result<Self, String> {
        let b: [u8; 8] = bytes.try_into().map_err(|_| "need 8 bytes".to_string())?;
        Ok(Counter(u64::from_le_bytes(b)))
    }
}
