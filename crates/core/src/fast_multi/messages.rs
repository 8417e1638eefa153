//! Log entries, and everything the Fast Multi-Paxos roles say, persist and output.

use crate::ballot::NodeId;
use crate::effects::Effects;
use crate::fast::{Recovery, Round, Vote};
use crate::quorum::QuorumSystem;
use serde::{Deserialize, Serialize};

/// A log position.
pub type Slot = u64;

/// What a slot holds: a client's command, or a no-op a leader chose to fill a hole.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Entry<V> {
    /// Fills a slot nobody proposed into.
    Noop,
    /// A client's command.
    Command(V),
}

/// A vote on a log entry.
pub type EntryVote<V> = Vote<Entry<V>>;

/// Messages of Fast Multi-Paxos.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<V> {
    /// Proposer to acceptors: "put `value` in your next free slot of the fast round".
    Propose {
        /// The command.
        value: V,
    },
    /// Phase 1a for every slot from `from` on.
    Prepare {
        /// The round prepared.
        round: Round,
        /// The first slot the promise covers.
        from: Slot,
    },
    /// Phase 1b: the promise, with the acceptor's latest vote in every slot from `from` on.
    Promise {
        /// The round promised.
        round: Round,
        /// The first slot covered.
        from: Slot,
        /// The latest vote per slot, in slot order.
        votes: Vec<(Slot, EntryVote<V>)>,
    },
    /// Phase 2a of a fast round for every slot from `from` on; also the leader's heartbeat.
    Any {
        /// The fast round.
        round: Round,
        /// The first slot of the fast region: above every slot phase 1 found a vote in.
        from: Slot,
        /// Every slot below this one is chosen, as far as the leader knows.
        commit: Slot,
        /// How a collision in a slot of the fast region is resolved: by the leader in a new
        /// round, or by the acceptors in the slot's next step.
        recovery: Recovery,
    },
    /// Phase 2a of a classic round for one slot.
    Accept {
        /// The round.
        round: Round,
        /// The slot.
        slot: Slot,
        /// The entry.
        value: Entry<V>,
    },
    /// Phase 2b, acceptor to every learner.
    Accepted {
        /// The slot.
        slot: Slot,
        /// The vote.
        vote: EntryVote<V>,
    },
    /// Acceptor to leader: `round` is below its promise.
    Nack {
        /// The round refused.
        round: Round,
        /// The acceptor's promise.
        promised: Round,
    },
    /// Learner to learner: `slot` holds `value`.
    Chosen {
        /// The slot.
        slot: Slot,
        /// What was chosen there.
        value: Entry<V>,
    },
    /// Learner to learners: "tell me what was chosen from `from` on".
    Query {
        /// The first slot it does not know.
        from: Slot,
    },
    /// Server to proposer: `value` is the `index`-th distinct command of the log (from 0).
    Done {
        /// The command.
        value: V,
        /// Its position among the log's distinct commands.
        index: u64,
    },
}

/// Records to make durable before the step's `send_after_sync` messages leave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Persist<V> {
    /// Leader: the highest round number it used.
    Number(u64),
    /// Acceptor: its promise, for every slot.
    Promised(Round),
    /// Acceptor: its vote in one slot (which also raises its promise to the vote's round).
    Voted {
        /// The slot.
        slot: Slot,
        /// The vote.
        vote: EntryVote<V>,
    },
}

/// What a role reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output<V> {
    /// A learner knows `slot` holds `value`.
    Chosen {
        /// The slot.
        slot: Slot,
        /// The entry.
        value: Entry<V>,
    },
    /// A server applied `value` as the `index`-th distinct command.
    Applied {
        /// Its position among distinct commands.
        index: u64,
        /// The command.
        value: V,
    },
    /// A proposer gave `value` up: it was not applied within its time.
    GaveUp {
        /// The command.
        value: V,
    },
    /// A proposer heard that its `value` is the `index`-th distinct command.
    Done {
        /// The command.
        value: V,
        /// Its position.
        index: u64,
    },
}

/// Timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// Follower: no leader heard since the last one; campaign. Candidate: campaign again.
    Election,
    /// Leader: repeat `Any`, and recover slots that stopped making progress.
    Heartbeat,
    /// Learner: ask peers about slots it knows were chosen but not what.
    Query,
    /// Proposer: propose again what is still in flight.
    Retry,
}

/// The effects of one Fast Multi-Paxos step.
pub type FmEffects<V> = Effects<Message<V>, Persist<V>, Output<V>, Timer>;

/// True when `id` is one of `quorum`'s acceptors.
pub(super) fn is_member(quorum: &crate::quorum::FastQuorum, id: NodeId) -> bool {
    quorum.members().contains(&id)
}
