//! Synod's protocol core: the Paxos family as pure state machines.
//!
//! Nothing in this crate does I/O, reads a clock, spawns a thread or draws randomness it was not
//! given. Every protocol instance takes an input (a message from a peer, a timer firing, a client
//! proposal) and returns [`Effects`]: messages to send, state to persist, outputs, and timers to
//! arm. Three drivers run the same code: the deterministic simulator (`synod-sim`), the server,
//! and hand-written tests.
//!
//! - [`ballot`]: totally ordered `(round, node)` ballots.
//! - [`quorum`]: quorum systems behind one trait (majority, flexible Q1/Q2).
//! - [`effects`]: the output of every step, and the persist-before-send contract.
//! - [`basic`]: single-decree Paxos with separate proposer, acceptor and learner roles.
//! - [`fast`]: single-decree Fast Paxos: fast rounds, collisions, both recoveries.
//! - [`fast_multi`]: Fast Multi-Paxos: a log whose commands skip the leader when they do not collide.
//! - [`generalized`]: Generalized Paxos: command histories, commuting commands, conflicts.
//! - [`multi`]: Multi-Paxos for state machine replication, roles collapsed into one replica.
//! - [`pbft`]: Byzantine Multi-Paxos in the PBFT form: replicas of which a third may lie.
//! - [`fab`]: Fast Byzantine Multi-Paxos: clients propose straight to acceptors, of which a
//!   fifth may lie.
//! - [`auth`]: signatures (Ed25519, and a keyed hash for the simulator) for the Byzantine protocols.
//! - [`commit`]: atomic commit: 2PC, 3PC and Paxos Commit, the foils and the fix.

pub mod auth;
pub mod ballot;
pub mod basic;
pub mod bugs;
pub mod commit;
pub mod effects;
pub mod encode;
pub mod fab;
pub mod fast;
pub mod fast_multi;
pub mod generalized;
pub mod multi;
pub mod pbft;
pub mod quorum;
pub mod rng;

pub use ballot::{Ballot, NodeId};
pub use bugs::PlantedBug;
pub use effects::{Effects, Outgoing, TimerRequest};
pub use quorum::{Quorum, QuorumError, QuorumSystem};
