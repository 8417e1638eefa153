//! Bugs that can be planted on purpose, so tests can prove the simulator's checkers have teeth.
//!
//! A checker that never fires proves nothing. Each variant breaks one rule Paxos depends on; the
//! simulator's planted-bug tests assert that it is caught within a stated number of seeds. No
//! production driver sets these: the server has no flag for them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One deliberate protocol bug.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PlantedBug {
    /// An acceptor accepts proposals whose ballot is below its promise.
    AcceptBelowPromise,
    /// A proposer ignores the values reported in promises and proposes its own.
    IgnorePromiseValues,
    /// A replica applies a slot's value as soon as it accepts it, before it is chosen.
    ApplyBeforeChosen,
    /// A leader serves reads without confirming with a quorum that it still leads.
    UnconfirmedReads,
    /// A leader counts its own vote the moment it casts it, before the vote is durable, while
    /// its accepts leave ahead of its sync: a value can look chosen with fewer durable votes
    /// than a quorum.
    OwnVoteBeforeSync,
    /// The node layer starts its read ids from zero at every boot, so an index reply meant for
    /// an earlier boot's read can answer a later read.
    ReadIdsReusedAcrossBoots,
    /// The node layer sends promises and votes to peers before their records are durable.
    SendBeforeSync,
    /// An acceptor promises without persisting the promise.
    PromiseNotPersisted,
    /// An acceptor votes without persisting the vote.
    VoteNotPersisted,
    /// Reads are served once the apply point is one short of the read index.
    ReadBelowIndex,
    /// A replica installs a snapshot older than what it has applied.
    StaleSnapshotInstall,
    /// A replica applies a retried command again (no exactly-once check).
    RetryAppliedTwice,
    /// A follower takes a leader's commit point as covering votes of other ballots.
    CommitAnyBallot,
    /// The node layer gives every boot the same epoch, so lane ids repeat across restarts.
    BootEpochReused,
    /// Catch-up hands out votes not known chosen as if they were chosen.
    CatchUpUnchosen,
    /// Multi-Paxos: a new leader learns the chosen values its promises report without
    /// applying them, so its commit point stops short of slots it knows are chosen.
    LearnedLeftUnapplied,
    /// Multi-Paxos: a new leader moves its next slot past the obligations its promises report
    /// without filling the slots it skipped, which nobody then proposes.
    SkippedSlotsLeftEmpty,
    /// Multi-Paxos: a leader does not propose its queued commands when a quorum's votes free
    /// room in its window; they wait for the next request, forwarded command or chosen notice
    /// (the heartbeat does not propose).
    QueueLeftWaiting,
    /// Multi-Paxos: a leader never registers the reads it parked while its bound was short or
    /// a membership change was under way; they wait until the client gives up.
    ParkedReadsLeft,
    /// Multi-Paxos: a follower that takes another node for the leader keeps waiting for the
    /// read indexes it asked of the previous one, which may never answer.
    OrphanedReadsLeft,
    /// Multi-Paxos: a leader does not arm its heartbeat timer again once it fires, so its
    /// followers hear from it only when it has something to send.
    HeartbeatNotRearmed,
    /// Multi-Paxos: a leader holding notices back never arms the timer that sends them; they
    /// wait for the next heartbeat.
    NoticesTimerUnarmed,
    /// The node layer holds messages that must wait for the disk on a batch written without
    /// a sync, which nothing syncs until the unsynced tail is old.
    HeldOnUnsyncedTail,
    /// The node layer leaves the commands it handed to a former leader (forwarded to it, or
    /// queued while this node led or stood) waiting for the resubmit timer once it follows
    /// another leader, or leads itself.
    ForwardedCommandsLeft,
    /// A 2PC participant uncertain for too long aborts on its own.
    UncertainParticipantAborts,
    /// A Paxos Commit leader recovering a transaction proposes `Aborted` everywhere, ignoring
    /// the votes its phase 1 found.
    RecoveryIgnoresVotes,
    /// Fast Paxos: nodes count a fast quorum one member too small.
    FastQuorumTooSmall,
    /// Fast Paxos: recovery picks a value other than the one that may have been chosen.
    RecoveryPicksUnsafe,
    /// Generalized Paxos: nodes take a read and a write of one register to commute.
    ConflictsCommute,
    /// Generalized Paxos: an acceptor tells a client its command is done once it holds it,
    /// before any quorum chose it.
    DoneBeforeChosen,
    /// Fast Multi-Paxos: a new leader opens the fast round over slots its phase 1 found votes
    /// in, instead of above them.
    AnyOverVotedSlots,
    /// Multi-Paxos: a membership change governs from the slot after its own, while leaders
    /// still run up to alpha slots ahead.
    ConfigImmediate,
    /// Multi-Paxos: a leader proposes in a new configuration's slots without a phase-1
    /// quorum of it.
    Phase1IgnoresNewConfig,
    /// Multi-Paxos: a leader counts learners' votes toward a slot's quorum.
    LearnerCounted,
    /// Multi-Paxos: a member that a chosen change made a learner or removed still stands for
    /// election until the change takes effect.
    RemovedNodeStands,
    /// Cheap Paxos: a candidate drops the votes an auxiliary acceptor reports in its promise.
    AuxVotesIgnored,
    /// Cheap Paxos: a candidate drops the digests an auxiliary reports in its promise instead
    /// of waiting to hear the values behind them.
    AuxDigestsDropped,
    /// Multi-Paxos with thrifty accepts: a leader tells the members it left out that a value
    /// is chosen when it proposes it, not once a quorum voted for it.
    ChosenPushedEarly,
    /// PBFT: replicas take `2f` matching statements as a certificate instead of `2f + 1`.
    PbftQuorumTooSmall,
    /// PBFT: replicas take statements without checking their signatures.
    PbftUnverifiedSignature,
    /// PBFT: a new view ignores the prepared certificates its view changes report.
    PbftViewChangeIgnoresPrepared,
    /// PBFT: a client takes a result on `f` matching replies instead of `f + 1`.
    PbftClientTakesF,
    /// Fast Byzantine Paxos: a learner decides on `f` matching votes instead of a fast quorum.
    FabLearnerTakesF,
}

impl PlantedBug {
    /// All bugs, for listings and exhaustive tests.
    pub const ALL: [PlantedBug; 43] = [
        PlantedBug::AcceptBelowPromise,
        PlantedBug::IgnorePromiseValues,
        PlantedBug::ApplyBeforeChosen,
        PlantedBug::UnconfirmedReads,
        PlantedBug::OwnVoteBeforeSync,
        PlantedBug::ReadIdsReusedAcrossBoots,
        PlantedBug::SendBeforeSync,
        PlantedBug::PromiseNotPersisted,
        PlantedBug::VoteNotPersisted,
        PlantedBug::ReadBelowIndex,
        PlantedBug::StaleSnapshotInstall,
        PlantedBug::RetryAppliedTwice,
        PlantedBug::CommitAnyBallot,
        PlantedBug::BootEpochReused,
        PlantedBug::CatchUpUnchosen,
        PlantedBug::LearnedLeftUnapplied,
        PlantedBug::SkippedSlotsLeftEmpty,
        PlantedBug::QueueLeftWaiting,
        PlantedBug::ParkedReadsLeft,
        PlantedBug::OrphanedReadsLeft,
        PlantedBug::HeartbeatNotRearmed,
        PlantedBug::NoticesTimerUnarmed,
        PlantedBug::HeldOnUnsyncedTail,
        PlantedBug::ForwardedCommandsLeft,
        PlantedBug::UncertainParticipantAborts,
        PlantedBug::RecoveryIgnoresVotes,
        PlantedBug::FastQuorumTooSmall,
        PlantedBug::RecoveryPicksUnsafe,
        PlantedBug::ConflictsCommute,
        PlantedBug::DoneBeforeChosen,
        PlantedBug::AnyOverVotedSlots,
        PlantedBug::ConfigImmediate,
        PlantedBug::Phase1IgnoresNewConfig,
        PlantedBug::LearnerCounted,
        PlantedBug::RemovedNodeStands,
        PlantedBug::AuxVotesIgnored,
        PlantedBug::AuxDigestsDropped,
        PlantedBug::ChosenPushedEarly,
        PlantedBug::PbftQuorumTooSmall,
        PlantedBug::PbftUnverifiedSignature,
        PlantedBug::PbftViewChangeIgnoresPrepared,
        PlantedBug::PbftClientTakesF,
        PlantedBug::FabLearnerTakesF,
    ];

    /// The protocols (as `synod sim --protocol` names them) in which this bug is planted.
    pub fn protocols(self) -> &'static [&'static str] {
        match self {
            PlantedBug::AcceptBelowPromise | PlantedBug::IgnorePromiseValues => &["basic", "multi"],
            PlantedBug::UncertainParticipantAborts => &["2pc"],
            PlantedBug::RecoveryIgnoresVotes => &["paxos-commit"],
            PlantedBug::FastQuorumTooSmall | PlantedBug::RecoveryPicksUnsafe => {
                &["fast", "fast-multi"]
            }
            PlantedBug::AnyOverVotedSlots => &["fast-multi"],
            PlantedBug::ConflictsCommute | PlantedBug::DoneBeforeChosen => &["generalized"],
            PlantedBug::PbftQuorumTooSmall
            | PlantedBug::PbftUnverifiedSignature
            | PlantedBug::PbftViewChangeIgnoresPrepared
            | PlantedBug::PbftClientTakesF => &["pbft"],
            PlantedBug::FabLearnerTakesF => &["fast-byzantine"],
            _ => &["multi"],
        }
    }

    /// What the bug breaks, in one line.
    pub fn describe(self) -> &'static str {
        match self {
            PlantedBug::AcceptBelowPromise => "an acceptor votes below its promise",
            PlantedBug::IgnorePromiseValues => "a new leader ignores votes reported in promises",
            PlantedBug::ApplyBeforeChosen => "a replica applies a value before it is chosen",
            PlantedBug::UnconfirmedReads => "a leader serves reads without a quorum round",
            PlantedBug::OwnVoteBeforeSync => "a leader counts its own vote before it is durable",
            PlantedBug::ReadIdsReusedAcrossBoots => {
                "the node layer reuses read ids after a restart"
            }
            PlantedBug::SendBeforeSync => "the node layer sends votes before they are durable",
            PlantedBug::PromiseNotPersisted => "an acceptor promises without persisting it",
            PlantedBug::VoteNotPersisted => "an acceptor votes without persisting the vote",
            PlantedBug::ReadBelowIndex => "reads are served one slot short of their index",
            PlantedBug::StaleSnapshotInstall => {
                "a replica installs a snapshot older than its state"
            }
            PlantedBug::RetryAppliedTwice => "a retried command is applied twice",
            PlantedBug::CommitAnyBallot => "a follower commits votes of any ballot",
            PlantedBug::BootEpochReused => "the node layer reuses lane ids after a restart",
            PlantedBug::CatchUpUnchosen => "catch-up sends votes not known chosen",
            PlantedBug::LearnedLeftUnapplied => {
                "a new leader learns values its promises report without applying them"
            }
            PlantedBug::SkippedSlotsLeftEmpty => {
                "a new leader skips slots below its obligations without filling them"
            }
            PlantedBug::QueueLeftWaiting => {
                "a leader leaves queued commands waiting when votes free room in its window"
            }
            PlantedBug::ParkedReadsLeft => "a leader never registers the reads it parked",
            PlantedBug::OrphanedReadsLeft => {
                "a follower waits on read indexes asked of a leader it no longer follows"
            }
            PlantedBug::HeartbeatNotRearmed => "a leader's heartbeat timer is not armed again",
            PlantedBug::NoticesTimerUnarmed => {
                "a leader holding notices back never arms the timer that sends them"
            }
            PlantedBug::HeldOnUnsyncedTail => {
                "the node layer holds messages on a batch that nothing syncs"
            }
            PlantedBug::ForwardedCommandsLeft => {
                "the node layer leaves commands with a former leader until the resubmit timer"
            }
            PlantedBug::UncertainParticipantAborts => {
                "a 2PC participant uncertain too long aborts alone"
            }
            PlantedBug::RecoveryIgnoresVotes => {
                "a Paxos Commit recovery leader ignores the votes it found"
            }
            PlantedBug::FastQuorumTooSmall => "Fast Paxos nodes count a fast quorum one too small",
            PlantedBug::RecoveryPicksUnsafe => {
                "Fast Paxos recovery picks a value that was not possibly chosen"
            }
            PlantedBug::ConflictsCommute => {
                "Generalized Paxos takes a read and a write of one register to commute"
            }
            PlantedBug::DoneBeforeChosen => {
                "a Generalized Paxos acceptor acknowledges a command before it is chosen"
            }
            PlantedBug::AnyOverVotedSlots => {
                "a Fast Multi-Paxos leader opens the fast round over slots with votes"
            }
            PlantedBug::ConfigImmediate => {
                "a membership change takes effect in the next slot, not alpha slots later"
            }
            PlantedBug::Phase1IgnoresNewConfig => {
                "a leader proposes in a new configuration without a phase-1 quorum of it"
            }
            PlantedBug::LearnerCounted => "a leader counts learners' votes toward a quorum",
            PlantedBug::RemovedNodeStands => {
                "a member voted out stands for election until the change takes effect"
            }
            PlantedBug::AuxVotesIgnored => {
                "a candidate ignores the votes an auxiliary acceptor reports"
            }
            PlantedBug::AuxDigestsDropped => {
                "a candidate drops the digests an auxiliary reports instead of resolving them"
            }
            PlantedBug::ChosenPushedEarly => {
                "a thrifty leader tells the members it left out a value is chosen before it is"
            }
            PlantedBug::PbftQuorumTooSmall => "PBFT replicas take 2f statements as a certificate",
            PlantedBug::PbftUnverifiedSignature => "PBFT replicas do not check signatures",
            PlantedBug::PbftViewChangeIgnoresPrepared => {
                "a PBFT new view ignores the prepared certificates reported to it"
            }
            PlantedBug::PbftClientTakesF => "a PBFT client takes a result on f matching replies",
            PlantedBug::FabLearnerTakesF => {
                "a Fast Byzantine learner decides on f matching votes, not a fast quorum"
            }
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PlantedBug::AcceptBelowPromise => "accept-below-promise",
            PlantedBug::IgnorePromiseValues => "ignore-promise-values",
            PlantedBug::ApplyBeforeChosen => "apply-before-chosen",
            PlantedBug::UnconfirmedReads => "unconfirmed-reads",
            PlantedBug::OwnVoteBeforeSync => "own-vote-before-sync",
            PlantedBug::ReadIdsReusedAcrossBoots => "read-ids-reused-across-boots",
            PlantedBug::SendBeforeSync => "send-before-sync",
            PlantedBug::PromiseNotPersisted => "promise-not-persisted",
            PlantedBug::VoteNotPersisted => "vote-not-persisted",
            PlantedBug::ReadBelowIndex => "read-below-index",
            PlantedBug::StaleSnapshotInstall => "stale-snapshot-install",
            PlantedBug::RetryAppliedTwice => "retry-applied-twice",
            PlantedBug::CommitAnyBallot => "commit-any-ballot",
            PlantedBug::BootEpochReused => "boot-epoch-reused",
            PlantedBug::CatchUpUnchosen => "catch-up-unchosen",
            PlantedBug::LearnedLeftUnapplied => "learned-left-unapplied",
            PlantedBug::SkippedSlotsLeftEmpty => "skipped-slots-left-empty",
            PlantedBug::QueueLeftWaiting => "queue-left-waiting",
            PlantedBug::ParkedReadsLeft => "parked-reads-left",
            PlantedBug::OrphanedReadsLeft => "orphaned-reads-left",
            PlantedBug::HeartbeatNotRearmed => "heartbeat-not-rearmed",
            PlantedBug::NoticesTimerUnarmed => "notices-timer-unarmed",
            PlantedBug::HeldOnUnsyncedTail => "held-on-unsynced-tail",
            PlantedBug::ForwardedCommandsLeft => "forwarded-commands-left",
            PlantedBug::UncertainParticipantAborts => "uncertain-participant-aborts",
            PlantedBug::RecoveryIgnoresVotes => "recovery-ignores-votes",
            PlantedBug::FastQuorumTooSmall => "fast-quorum-too-small",
            PlantedBug::RecoveryPicksUnsafe => "recovery-picks-unsafe",
            PlantedBug::ConflictsCommute => "conflicts-commute",
            PlantedBug::DoneBeforeChosen => "done-before-chosen",
            PlantedBug::AnyOverVotedSlots => "any-over-voted-slots",
            PlantedBug::ConfigImmediate => "config-immediate",
            PlantedBug::Phase1IgnoresNewConfig => "phase1-ignores-new-config",
            PlantedBug::LearnerCounted => "learner-counted",
            PlantedBug::RemovedNodeStands => "removed-node-stands",
            PlantedBug::AuxVotesIgnored => "aux-votes-ignored",
            PlantedBug::AuxDigestsDropped => "aux-digests-dropped",
            PlantedBug::ChosenPushedEarly => "chosen-pushed-early",
            PlantedBug::PbftQuorumTooSmall => "pbft-quorum-too-small",
            PlantedBug::PbftUnverifiedSignature => "pbft-unverified-signature",
            PlantedBug::PbftViewChangeIgnoresPrepared => "pbft-view-change-ignores-prepared",
            PlantedBug::PbftClientTakesF => "pbft-client-takes-f",
            PlantedBug::FabLearnerTakesF => "fab-learner-takes-f",
        }
    }
}

impl fmt::Display for PlantedBug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PlantedBug {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PlantedBug::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = PlantedBug::ALL.iter().map(|b| b.name()).collect();
                format!("unknown bug '{s}'; expected one of: {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::PlantedBug;
    use std::collections::HashSet;

    /// `synod sim --bug NAME` finds each bug by its name, and `--list-bugs` tells them apart.
    #[test]
    fn every_bug_parses_back_from_its_name_and_has_its_own_description() {
        let mut names = HashSet::new();
        let mut descriptions = HashSet::new();
        for bug in PlantedBug::ALL {
            assert_eq!(bug.name().parse::<PlantedBug>(), Ok(bug));
            assert!(names.insert(bug.name()), "{bug}: name used twice");
            assert!(
                bug.name().len() > 5 && bug.name().contains('-'),
                "{bug}: bare name"
            );
            assert!(
                bug.describe().len() > 20 && descriptions.insert(bug.describe()),
                "{bug}: description empty or used twice"
            );
            assert!(!bug.protocols().is_empty(), "{bug}: planted nowhere");
        }
        assert!("no-such-bug".parse::<PlantedBug>().is_err());
    }
}
