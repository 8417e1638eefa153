//! Who is in the cluster, slot by slot: membership as replicated state.
//!
//! A change is a value chosen in the log ([`Value::Reconfig`](super::Value::Reconfig)). Chosen
//! in slot `i`, it governs every slot from `i + α` on, where `α` (alpha) is fixed when the
//! cluster is created. So every slot has exactly one configuration, and that configuration
//! depends only on values chosen at least `α` slots earlier: every replica that knows it knows
//! the same one, and no slot is ever decided by quorums of two configurations. (Lamport, Malkhi
//! and Zhou, "Reconfiguring a State Machine"; docs/protocol.md has the argument.)
//!
//! [`Membership::apply`] is deterministic: replicas that apply the same changes in the same
//! slots hold equal memberships. A change it cannot make (a stale epoch, an unknown member, a
//! quorum that would not intersect) is rejected and starts no epoch; its slot is used up all the
//! same.

use super::messages::Slot;
use crate::ballot::NodeId;
use crate::quorum::{Quorum, QuorumError, QuorumSpec, QuorumSystem};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use thiserror::Error;

/// What a member does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Votes in both phases and may lead.
    Voter,
    /// Receives the log but never votes nor stands: a member catching up before promotion.
    Learner,
    /// Cheap Paxos: an acceptor with no state machine, never a leader. While `active` it votes
    /// (it counts in quorums) but is sent work only when a main member is unreachable; while
    /// inactive it is no part of any quorum and is sent nothing.
    Auxiliary {
        /// Counts in quorums.
        active: bool,
    },
}

impl Role {
    /// True for a role that counts in quorums.
    pub fn votes(self) -> bool {
        matches!(self, Role::Voter | Role::Auxiliary { active: true })
    }

    /// True for an auxiliary acceptor, active or not.
    pub fn is_auxiliary(self) -> bool {
        matches!(self, Role::Auxiliary { .. })
    }
}

/// One member as operators see it (etcd's `Member`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemberInfo {
    /// A human-readable name (may be empty).
    pub name: String,
    /// Where peers reach it.
    pub peer_urls: Vec<String>,
    /// Where clients reach it.
    pub client_urls: Vec<String>,
}

/// The members that govern a range of slots, with their quorum system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ConfigurationData", into = "ConfigurationData")]
pub struct Configuration {
    epoch: u64,
    members: BTreeMap<NodeId, (Role, MemberInfo)>,
    spec: QuorumSpec,
    /// Over the voters only: a learner's vote counts for nothing.
    quorum: Quorum,
}

/// The serialized form of a [`Configuration`]; the quorum is rebuilt, and checked, on decode.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ConfigurationData {
    epoch: u64,
    members: BTreeMap<NodeId, (Role, MemberInfo)>,
    spec: QuorumSpec,
}

impl TryFrom<ConfigurationData> for Configuration {
    type Error = QuorumError;

    fn try_from(d: ConfigurationData) -> Result<Self, QuorumError> {
        Configuration::build(d.epoch, d.members, d.spec)
    }
}

impl From<Configuration> for ConfigurationData {
    fn from(c: Configuration) -> Self {
        ConfigurationData {
            epoch: c.epoch,
            members: c.members,
            spec: c.spec,
        }
    }
}

impl Configuration {
    fn build(
        epoch: u64,
        members: BTreeMap<NodeId, (Role, MemberInfo)>,
        spec: QuorumSpec,
    ) -> Result<Self, QuorumError> {
        let voters: Vec<NodeId> = members
            .iter()
            .filter(|(_, (r, _))| r.votes())
            .map(|(&id, _)| id)
            .collect();
        let quorum = Quorum::from_spec(spec, &voters)?;
        // Cheap Paxos: with an auxiliary voting, the mains alone must decide in steady state,
        // which is also what lets the auxiliary stay idle (seed 002, "Cheap Paxos").
        let mains = members.values().filter(|(r, _)| *r == Role::Voter).count();
        let aux_votes = members
            .values()
            .any(|(r, _)| *r == Role::Auxiliary { active: true });
        if aux_votes && (mains < quorum.q1() || mains < quorum.q2()) {
            return Err(QuorumError::MainsTooFew {
                mains,
                q1: quorum.q1(),
                q2: quorum.q2(),
            });
        }
        Ok(Configuration {
            epoch,
            members,
            spec,
            quorum,
        })
    }

    /// Numbered from 0 (the cluster's first configuration), one up per change applied.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The quorum system over the voters.
    pub fn quorum(&self) -> &Quorum {
        &self.quorum
    }

    /// How quorum sizes are chosen.
    pub fn quorum_spec(&self) -> QuorumSpec {
        self.spec
    }

    /// The voters, in id order.
    pub fn voters(&self) -> &[NodeId] {
        self.quorum.members()
    }

    /// Every member, voters and learners, in id order.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.keys().copied()
    }

    /// Every member with its role and details.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, Role, &MemberInfo)> + '_ {
        self.members.iter().map(|(&id, (r, i))| (id, *r, i))
    }

    /// A member's role, if it is one.
    pub fn role(&self, id: NodeId) -> Option<Role> {
        self.members.get(&id).map(|(r, _)| *r)
    }

    /// True if `id` votes in this configuration (a main member or an active auxiliary).
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.role(id).is_some_and(Role::votes)
    }

    /// True if `id` is a main voting member: one that may stand for election and lead.
    pub fn is_main(&self, id: NodeId) -> bool {
        self.role(id) == Some(Role::Voter)
    }

    /// The main voting members, in id order.
    pub fn mains(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.iter()
            .filter(|(_, r, _)| *r == Role::Voter)
            .map(|(id, _, _)| id)
    }

    /// The auxiliaries that vote, in id order.
    pub fn active_auxiliaries(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.iter()
            .filter(|(_, r, _)| *r == Role::Auxiliary { active: true })
            .map(|(id, _, _)| id)
    }

    /// True if the cluster runs Cheap Paxos: it has an auxiliary, active or not.
    pub fn has_auxiliaries(&self) -> bool {
        self.members.values().any(|(r, _)| r.is_auxiliary())
    }

    /// The members sent the log as a matter of course: every one but the auxiliaries.
    pub fn receivers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.iter()
            .filter(|(_, r, _)| !r.is_auxiliary())
            .map(|(id, _, _)| id)
    }

    /// True if `id` is a member in any role.
    pub fn contains(&self, id: NodeId) -> bool {
        self.members.contains_key(&id)
    }
}

/// Identifies a change request, so that the node it was asked at can answer its requester.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChangeId {
    /// The node the change was asked at.
    pub origin: NodeId,
    /// Numbered by the origin.
    pub seq: u64,
}

/// One step of a membership change.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemberOp {
    /// A new member. With no id, it gets one above every id ever used.
    Add {
        /// An explicit id, or `None` to have one assigned.
        id: Option<NodeId>,
        /// Its role from the start (etcd's `--learner` asks for [`Role::Learner`]).
        role: Role,
        /// Its name and addresses.
        info: MemberInfo,
    },
    /// Takes a member out. Its id is never used again.
    Remove(NodeId),
    /// New addresses for a member.
    Update {
        /// The member.
        id: NodeId,
        /// Where peers reach it.
        peer_urls: Vec<String>,
        /// Where clients reach it.
        client_urls: Vec<String>,
    },
    /// Promotes a learner to voter, or demotes a voter to learner.
    SetRole {
        /// The member.
        id: NodeId,
        /// Its new role.
        role: Role,
    },
}

/// A membership change, as proposed in the log.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConfigChange {
    /// Who asked.
    pub id: ChangeId,
    /// The epoch of the latest configuration the requester saw: two concurrent requests cannot
    /// both apply (compare-and-swap).
    pub expect_epoch: u64,
    /// Applied in order, all or nothing.
    pub ops: Vec<MemberOp>,
}

/// Why a change was not applied. Deterministic: every replica rejects the same changes.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum RejectReason {
    /// Another change was applied since the requester looked.
    #[error("membership changed meanwhile: expected epoch {expected}, now {actual}")]
    StaleEpoch {
        /// What the change expected.
        expected: u64,
        /// The latest epoch.
        actual: u64,
    },
    /// A change with no operations.
    #[error("a membership change needs at least one operation")]
    Empty,
    /// The member does not exist.
    #[error("member {0} not found")]
    UnknownMember(NodeId),
    /// The id is, or was, in use.
    #[error("member id {0} is or was already in use")]
    IdInUse(NodeId),
    /// No id is left to assign.
    #[error("no member id left to assign")]
    IdsExhausted,
    /// The member already has that role.
    #[error("member {id} is already a {role:?}")]
    RoleUnchanged {
        /// The member.
        id: NodeId,
        /// Its role.
        role: Role,
    },
    /// A promotion of a learner that has not caught up with the leader; refused by the leader
    /// before proposing, never by the log (the leader's view of progress is not replicated).
    #[error("can only promote a learner member which is in sync with leader: member {id} is {behind} slots behind")]
    LearnerNotReady {
        /// The learner.
        id: NodeId,
        /// How far behind the leader's commit point it was last heard to be.
        behind: u64,
    },
    /// An auxiliary's role can only change between active and inactive.
    #[error(
        "member {0}: an auxiliary stays an auxiliary, and a main or learner cannot become one"
    )]
    AuxiliaryRole(NodeId),
    /// The new configuration's quorums would be unsafe or empty.
    #[error("the new configuration is refused: {0}")]
    Quorum(QuorumError),
}

/// What applying a change did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// A new configuration, governing slots from `effective` on.
    Applied {
        /// The new epoch.
        epoch: u64,
        /// The first slot it governs.
        effective: Slot,
        /// The ids given to members added without one, in order.
        assigned: Vec<NodeId>,
    },
    /// Nothing changed.
    Rejected(RejectReason),
}

/// Why a first configuration or a decoded membership is unusable.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MembershipError {
    /// The quorum system is unsafe or empty.
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    /// Alpha must be at least 1.
    #[error("alpha must be at least 1")]
    ZeroAlpha,
    /// A decoded membership whose epochs are out of order.
    #[error("epochs out of order: {0}")]
    Malformed(String),
}

/// Every configuration that governs a slot at or above the first one kept, plus what is needed
/// to apply the next change: alpha, the ids ever used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "MembershipData", into = "MembershipData")]
pub struct Membership {
    alpha: u64,
    /// The highest id ever used: assigned ids go above it, so an id is never reused.
    max_id: NodeId,
    removed: BTreeSet<NodeId>,
    /// `(first slot governed, configuration)`, both strictly increasing; never empty.
    epochs: Vec<(Slot, Arc<Configuration>)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct MembershipData {
    alpha: u64,
    max_id: NodeId,
    removed: BTreeSet<NodeId>,
    epochs: Vec<(Slot, Arc<Configuration>)>,
}

impl TryFrom<MembershipData> for Membership {
    type Error = MembershipError;

    /// Decoded data comes from a disk or a peer: checked, never trusted.
    fn try_from(d: MembershipData) -> Result<Self, MembershipError> {
        if d.alpha == 0 {
            return Err(MembershipError::ZeroAlpha);
        }
        if d.epochs.is_empty() {
            return Err(MembershipError::Malformed("no configuration".into()));
        }
        for w in d.epochs.windows(2) {
            let ((s0, c0), (s1, c1)) = (&w[0], &w[1]);
            if s1 <= s0 || c1.epoch <= c0.epoch {
                return Err(MembershipError::Malformed(format!(
                    "epoch {} at slot {s1} follows epoch {} at slot {s0}",
                    c1.epoch, c0.epoch
                )));
            }
        }
        let highest = d.epochs.iter().flat_map(|(_, c)| c.members()).max();
        if highest.is_some_and(|h| h > d.max_id) || d.removed.iter().any(|&r| r > d.max_id) {
            return Err(MembershipError::Malformed(
                "a member id above the highest id used".into(),
            ));
        }
        Ok(Membership {
            alpha: d.alpha,
            max_id: d.max_id,
            removed: d.removed,
            epochs: d.epochs,
        })
    }
}

impl From<Membership> for MembershipData {
    fn from(m: Membership) -> Self {
        MembershipData {
            alpha: m.alpha,
            max_id: m.max_id,
            removed: m.removed,
            epochs: m.epochs,
        }
    }
}

impl Membership {
    /// The cluster's first configuration (epoch 0, governing from slot 0).
    pub fn genesis(
        members: impl IntoIterator<Item = (NodeId, Role, MemberInfo)>,
        quorum: QuorumSpec,
        alpha: u64,
    ) -> Result<Self, MembershipError> {
        if alpha == 0 {
            return Err(MembershipError::ZeroAlpha);
        }
        let mut map = BTreeMap::new();
        for (id, role, info) in members {
            if map.insert(id, (role, info)).is_some() {
                return Err(QuorumError::DuplicateMember(id).into());
            }
        }
        let max_id = map.keys().next_back().copied().unwrap_or(0);
        let config = Configuration::build(0, map, quorum)?;
        Ok(Membership {
            alpha,
            max_id,
            removed: BTreeSet::new(),
            epochs: vec![(0, Arc::new(config))],
        })
    }

    /// A first configuration of voters with no details: majority or flexible quorums.
    pub fn of_voters(
        voters: &[NodeId],
        quorum: QuorumSpec,
        alpha: u64,
    ) -> Result<Self, MembershipError> {
        Self::genesis(
            voters
                .iter()
                .map(|&id| (id, Role::Voter, MemberInfo::default())),
            quorum,
            alpha,
        )
    }

    /// How many slots after its own a change takes effect.
    pub fn alpha(&self) -> u64 {
        self.alpha
    }

    /// The highest member id ever used.
    pub fn max_id(&self) -> NodeId {
        self.max_id
    }

    /// The configuration that governs slot `s`. Slots below the first configuration kept were
    /// compacted away and are never decided again; for them this is the oldest one kept.
    pub fn at(&self, s: Slot) -> &Configuration {
        let i = self.epochs.partition_point(|(start, _)| *start <= s);
        &self.epochs[i.saturating_sub(1)].1
    }

    /// The configuration after every change applied so far (it may not govern any slot yet).
    pub fn latest(&self) -> &Configuration {
        &self.epochs[self.epochs.len() - 1].1
    }

    /// Every configuration kept, with the first slot it governs.
    pub fn epochs(&self) -> impl Iterator<Item = (Slot, &Configuration)> + '_ {
        self.epochs.iter().map(|(s, c)| (*s, &**c))
    }

    /// The configurations that govern some slot in `from..to`, oldest first.
    pub fn over(&self, from: Slot, to: Slot) -> impl Iterator<Item = &Configuration> + '_ {
        let first = self.epochs.partition_point(|(start, _)| *start <= from);
        self.epochs[first.saturating_sub(1)..]
            .iter()
            .take_while(move |(start, _)| *start < to.max(from + 1))
            .map(|(_, c)| &**c)
    }

    /// The first slot of the configuration after the one governing `s`, if one is scheduled.
    pub fn next_start_after(&self, s: Slot) -> Option<Slot> {
        let i = self.epochs.partition_point(|(start, _)| *start <= s);
        self.epochs.get(i).map(|(start, _)| *start)
    }

    /// Every member but the auxiliaries ([`Configuration::receivers`]) of the configurations
    /// governing `from..to`, each once, in id order. Called per heartbeat and commit
    /// announcement: with one configuration in the range (all but a few slots' worth of a
    /// change) it collects nothing.
    pub fn members_over(&self, from: Slot, to: Slot) -> impl Iterator<Item = NodeId> + '_ {
        let mut configs = self.over(from, to);
        let first = configs
            .next()
            .expect("some configuration governs every slot");
        let union: Option<BTreeSet<NodeId>> = configs.next().map(|second| {
            let rest = std::iter::once(second).chain(configs);
            first
                .receivers()
                .chain(rest.flat_map(|c| c.receivers()))
                .collect()
        });
        let single = union.is_none().then(|| first.receivers());
        single
            .into_iter()
            .flatten()
            .chain(union.into_iter().flatten())
    }

    /// The voters of the configurations governing `from..to`.
    pub fn voters_over(&self, from: Slot, to: Slot) -> BTreeSet<NodeId> {
        self.over(from, to)
            .flat_map(|c| c.voters().iter().copied())
            .collect()
    }

    /// True if `id` is a member of some configuration kept: whom a replica listens to.
    pub fn knows(&self, id: NodeId) -> bool {
        self.epochs.iter().any(|(_, c)| c.contains(id))
    }

    /// True if an applied change took `id` out (for good: ids are never reused).
    pub fn was_removed(&self, id: NodeId) -> bool {
        self.removed.contains(&id)
    }

    /// Applies the change chosen in `slot`: it builds on [`Membership::latest`], so changes
    /// pending within one alpha window compose in log order.
    ///
    /// # Panics
    /// If `slot` is below a change applied before: the learner applies slots in order.
    pub fn apply(&mut self, slot: Slot, change: &ConfigChange) -> ChangeOutcome {
        self.apply_after(slot, change, self.alpha)
    }

    /// [`Membership::apply`] with another delay: the planted `ConfigImmediate` bug.
    pub(crate) fn apply_after(
        &mut self,
        slot: Slot,
        change: &ConfigChange,
        delay: u64,
    ) -> ChangeOutcome {
        let start = slot.saturating_add(delay);
        let last_start = self.epochs[self.epochs.len() - 1].0;
        assert!(
            start > last_start,
            "membership change at slot {slot} applied out of order (last epoch starts at {last_start})"
        );
        match self.next_configuration(change) {
            Ok((config, assigned, removed, max_id)) => {
                let epoch = config.epoch;
                self.max_id = max_id;
                self.removed.extend(removed);
                self.epochs.push((start, Arc::new(config)));
                ChangeOutcome::Applied {
                    epoch,
                    effective: start,
                    assigned,
                }
            }
            Err(reason) => ChangeOutcome::Rejected(reason),
        }
    }

    /// Whether `change` would be applied now, and if not why; changes nothing.
    pub fn check(&self, change: &ConfigChange) -> Result<(), RejectReason> {
        self.next_configuration(change).map(|_| ())
    }

    /// The configuration `change` would make, without applying it.
    #[allow(clippy::type_complexity)]
    fn next_configuration(
        &self,
        change: &ConfigChange,
    ) -> Result<(Configuration, Vec<NodeId>, Vec<NodeId>, NodeId), RejectReason> {
        let latest = self.latest();
        if change.expect_epoch != latest.epoch {
            return Err(RejectReason::StaleEpoch {
                expected: change.expect_epoch,
                actual: latest.epoch,
            });
        }
        if change.ops.is_empty() {
            return Err(RejectReason::Empty);
        }
        let mut members = latest.members.clone();
        let (mut assigned, mut removed, mut max_id) = (Vec::new(), Vec::new(), self.max_id);
        let used = |id: NodeId, removed: &[NodeId], members: &BTreeMap<NodeId, _>| {
            self.removed.contains(&id) || removed.contains(&id) || members.contains_key(&id)
        };
        for op in &change.ops {
            match op {
                MemberOp::Add { id, role, info } => {
                    let id = match id {
                        Some(id) if used(*id, &removed, &members) => {
                            return Err(RejectReason::IdInUse(*id))
                        }
                        Some(id) => *id,
                        None => {
                            let id = max_id.checked_add(1).ok_or(RejectReason::IdsExhausted)?;
                            assigned.push(id);
                            id
                        }
                    };
                    max_id = max_id.max(id);
                    members.insert(id, (*role, info.clone()));
                }
                MemberOp::Remove(id) => {
                    members.remove(id).ok_or(RejectReason::UnknownMember(*id))?;
                    removed.push(*id);
                }
                MemberOp::Update {
                    id,
                    peer_urls,
                    client_urls,
                } => {
                    let (_, info) = members
                        .get_mut(id)
                        .ok_or(RejectReason::UnknownMember(*id))?;
                    info.peer_urls.clone_from(peer_urls);
                    info.client_urls.clone_from(client_urls);
                }
                MemberOp::SetRole { id, role } => {
                    let (r, _) = members
                        .get_mut(id)
                        .ok_or(RejectReason::UnknownMember(*id))?;
                    if r == role {
                        return Err(RejectReason::RoleUnchanged {
                            id: *id,
                            role: *role,
                        });
                    }
                    // An auxiliary keeps no state machine: it can never become a main or a
                    // learner, nor a main an auxiliary (whose log would be thrown away).
                    if r.is_auxiliary() != role.is_auxiliary() {
                        return Err(RejectReason::AuxiliaryRole(*id));
                    }
                    *r = *role;
                }
            }
        }
        let config = Configuration::build(latest.epoch + 1, members, latest.spec)
            .map_err(RejectReason::Quorum)?;
        Ok((config, assigned, removed, max_id))
    }

    /// Checks a membership that came with a snapshot covering the slots below `slot`: the
    /// changes it holds were chosen below `slot`, so none may start at `slot + α` or later.
    pub fn check_covers(&self, slot: Slot) -> Result<(), MembershipError> {
        let last_start = self.epochs[self.epochs.len() - 1].0;
        if last_start >= slot.saturating_add(self.alpha) {
            return Err(MembershipError::Malformed(format!(
                "an epoch starts at slot {last_start}, beyond what changes below slot {slot} \
                 can schedule with alpha {}",
                self.alpha
            )));
        }
        Ok(())
    }

    /// Forgets the configurations that govern no slot at or above `s`.
    pub fn trim_below(&mut self, s: Slot) {
        let keep_from = self
            .epochs
            .partition_point(|(start, _)| *start <= s)
            .saturating_sub(1);
        self.epochs.drain(..keep_from);
    }

    /// A copy holding only what slots at or above `s` need.
    pub fn trimmed_below(&self, s: Slot) -> Membership {
        let mut m = self.clone();
        m.trim_below(s);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Membership {
        Membership::of_voters(&[1, 2, 3], QuorumSpec::Majority, 4).unwrap()
    }

    fn change(expect_epoch: u64, ops: Vec<MemberOp>) -> ConfigChange {
        ConfigChange {
            id: ChangeId { origin: 1, seq: 1 },
            expect_epoch,
            ops,
        }
    }

    fn add(role: Role) -> MemberOp {
        MemberOp::Add {
            id: None,
            role,
            info: MemberInfo::default(),
        }
    }

    #[test]
    fn a_change_governs_alpha_slots_after_its_own() {
        let mut m = three();
        let out = m.apply(10, &change(0, vec![add(Role::Voter)]));
        assert_eq!(
            out,
            ChangeOutcome::Applied {
                epoch: 1,
                effective: 14,
                assigned: vec![4]
            }
        );
        assert_eq!(m.at(13).voters(), &[1, 2, 3]);
        assert_eq!(m.at(14).voters(), &[1, 2, 3, 4]);
        assert_eq!(m.latest().epoch(), 1);
        assert_eq!(m.over(12, 15).count(), 2);
        assert_eq!(m.over(12, 14).count(), 1);
        assert_eq!(
            m.over(14, 14).count(),
            1,
            "an empty range still has a configuration"
        );
        assert_eq!(m.next_start_after(0), Some(14));
        assert_eq!(m.next_start_after(13), Some(14));
        assert_eq!(m.next_start_after(14), None);
        let members = |a, b| m.members_over(a, b).collect::<Vec<_>>();
        assert_eq!(members(12, 14), [1, 2, 3], "one configuration: its members");
        assert_eq!(
            members(12, 15),
            [1, 2, 3, 4],
            "two: each member once, in order"
        );
    }

    #[test]
    fn rejected_changes_start_no_epoch_and_name_the_reason() {
        let cases: Vec<(ConfigChange, RejectReason)> = vec![
            (
                change(3, vec![add(Role::Voter)]),
                RejectReason::StaleEpoch {
                    expected: 3,
                    actual: 0,
                },
            ),
            (change(0, vec![]), RejectReason::Empty),
            (
                change(0, vec![MemberOp::Remove(9)]),
                RejectReason::UnknownMember(9),
            ),
            (
                change(
                    0,
                    vec![MemberOp::Add {
                        id: Some(2),
                        role: Role::Learner,
                        info: MemberInfo::default(),
                    }],
                ),
                RejectReason::IdInUse(2),
            ),
            (
                change(
                    0,
                    vec![MemberOp::SetRole {
                        id: 1,
                        role: Role::Voter,
                    }],
                ),
                RejectReason::RoleUnchanged {
                    id: 1,
                    role: Role::Voter,
                },
            ),
            (
                change(
                    0,
                    vec![
                        MemberOp::Remove(1),
                        MemberOp::Remove(2),
                        MemberOp::Remove(3),
                    ],
                ),
                RejectReason::Quorum(QuorumError::NoMembers),
            ),
        ];
        for (c, want) in cases {
            let mut m = three();
            let before = m.clone();
            assert_eq!(m.apply(5, &c), ChangeOutcome::Rejected(want));
            assert_eq!(m, before, "a rejected change left a trace");
        }
    }

    #[test]
    fn removed_ids_are_never_used_again() {
        let mut m = three();
        m.apply(1, &change(0, vec![MemberOp::Remove(3)]));
        let again = MemberOp::Add {
            id: Some(3),
            role: Role::Voter,
            info: MemberInfo::default(),
        };
        assert_eq!(
            m.apply(2, &change(1, vec![again])),
            ChangeOutcome::Rejected(RejectReason::IdInUse(3))
        );
        let out = m.apply(3, &change(1, vec![add(Role::Learner)]));
        assert!(
            matches!(out, ChangeOutcome::Applied { ref assigned, .. } if assigned == &[4]),
            "{out:?}"
        );
        assert_eq!(m.latest().role(4), Some(Role::Learner));
        assert_eq!(m.latest().voters(), &[1, 2], "a learner does not vote");
    }

    #[test]
    fn a_flexible_quorum_that_would_stop_intersecting_is_refused() {
        let mut m =
            Membership::of_voters(&[1, 2, 3, 4], QuorumSpec::Flexible { q1: 3, q2: 2 }, 2).unwrap();
        let out = m.apply(0, &change(0, vec![add(Role::Voter)]));
        assert!(
            matches!(
                out,
                ChangeOutcome::Rejected(RejectReason::Quorum(QuorumError::NoIntersection { .. }))
            ),
            "{out:?}"
        );
    }

    #[test]
    fn trimming_keeps_the_configuration_in_force() {
        let mut m = three();
        m.apply(1, &change(0, vec![add(Role::Voter)]));
        m.apply(2, &change(1, vec![MemberOp::Remove(1)]));
        // Epochs start at 0, 5 and 6.
        m.trim_below(5);
        assert_eq!(m.epochs().map(|(s, _)| s).collect::<Vec<_>>(), [5, 6]);
        assert_eq!(m.at(0).epoch(), 1, "below the kept epochs: the oldest kept");
        assert!(m.knows(1), "1 still votes in slot 5");
        m.trim_below(100);
        assert!(!m.knows(1));
    }

    #[test]
    fn decoding_checks_what_it_is_given() {
        let mut m = three();
        m.apply(1, &change(0, vec![add(Role::Voter)]));
        let bytes = postcard::to_stdvec(&m).unwrap();
        assert_eq!(postcard::from_bytes::<Membership>(&bytes).unwrap(), m);
        let good = MembershipData::from(m);
        let malformed = |d: MembershipData| {
            matches!(Membership::try_from(d), Err(MembershipError::Malformed(_)))
        };
        let mut d = good.clone();
        d.epochs.swap(0, 1);
        assert!(malformed(d), "epochs out of order");
        let mut d = good.clone();
        d.epochs[1].0 = d.epochs[0].0;
        assert!(malformed(d), "two epochs starting in one slot");
        let mut d = good.clone();
        let second = (*d.epochs[1].1).clone();
        d.epochs[1].1 = Arc::new(Configuration { epoch: 0, ..second });
        assert!(malformed(d), "an epoch number repeated");
        let mut d = good.clone();
        d.removed.insert(99);
        assert!(malformed(d), "a removed id above the highest id used");
        let mut d = good.clone();
        d.max_id = 3;
        assert!(malformed(d), "a member id above the highest id used");
        let mut d = good.clone();
        d.alpha = 0;
        assert_eq!(Membership::try_from(d), Err(MembershipError::ZeroAlpha));
        let mut d = good;
        d.epochs.truncate(0);
        assert!(malformed(d));
    }

    #[test]
    fn a_configuration_lists_roles_and_keeps_its_quorum_rule() {
        let spec = QuorumSpec::Flexible { q1: 3, q2: 2 };
        let mut m = Membership::of_voters(&[1, 2, 3, 4], spec, 2).unwrap();
        m.apply(0, &change(0, vec![add(Role::Learner)]));
        let c = m.latest();
        assert_eq!(c.quorum_spec(), spec, "a change keeps the quorum rule");
        let roles: Vec<(NodeId, Role)> = c.iter().map(|(id, r, _)| (id, r)).collect();
        assert_eq!(
            roles,
            vec![
                (1, Role::Voter),
                (2, Role::Voter),
                (3, Role::Voter),
                (4, Role::Voter),
                (5, Role::Learner)
            ]
        );
        assert!(c.contains(5) && !c.is_voter(5) && c.is_voter(4));
    }

    fn cheap(mains: &[NodeId], auxes: &[NodeId]) -> Result<Membership, MembershipError> {
        let m = mains.iter().map(|&id| (id, Role::Voter));
        let a = auxes
            .iter()
            .map(|&id| (id, Role::Auxiliary { active: true }));
        let all = m.chain(a).map(|(id, r)| (id, r, MemberInfo::default()));
        Membership::genesis(all, QuorumSpec::Majority, 2)
    }

    #[test]
    fn an_active_auxiliary_needs_mains_that_are_a_quorum_alone() {
        // 2 + 1 and the seed's 3 + 1 are fine; 1 + 1 and 2 + 2 would need an auxiliary's vote
        // in steady state.
        let ok = cheap(&[1, 2], &[3]).unwrap();
        assert_eq!(ok.latest().voters(), &[1, 2, 3]);
        assert_eq!(ok.latest().mains().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(ok.latest().receivers().collect::<Vec<_>>(), vec![1, 2]);
        assert!(ok.latest().is_voter(3) && !ok.latest().is_main(3));
        assert!(cheap(&[1, 2, 3], &[4]).is_ok());
        for (mains, auxes) in [(&[1][..], &[2][..]), (&[1, 2], &[3, 4])] {
            let e = cheap(mains, auxes).unwrap_err();
            assert!(
                matches!(e, MembershipError::Quorum(QuorumError::MainsTooFew { .. })),
                "{mains:?} + {auxes:?}: {e}"
            );
        }
    }

    #[test]
    fn shrinking_to_one_main_needs_the_auxiliary_inactive() {
        let mut m = cheap(&[1, 2], &[3]).unwrap();
        let demote = MemberOp::SetRole {
            id: 2,
            role: Role::Learner,
        };
        let sleep = MemberOp::SetRole {
            id: 3,
            role: Role::Auxiliary { active: false },
        };
        let alone = m.check(&change(0, vec![demote.clone()]));
        assert!(matches!(
            alone,
            Err(RejectReason::Quorum(QuorumError::MainsTooFew { .. }))
        ));
        let out = m.apply(5, &change(0, vec![demote, sleep]));
        assert!(
            matches!(out, ChangeOutcome::Applied { effective: 7, .. }),
            "{out:?}"
        );
        assert_eq!(
            m.latest().voters(),
            &[1],
            "an inactive auxiliary does not vote"
        );
        assert!(!m.latest().is_voter(3) && m.latest().has_auxiliaries());
        assert_eq!(m.latest().receivers().collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn an_auxiliary_never_becomes_a_main_nor_a_main_an_auxiliary() {
        let m = cheap(&[1, 2, 3], &[4]).unwrap();
        for (id, role) in [
            (4, Role::Voter),
            (4, Role::Learner),
            (1, Role::Auxiliary { active: true }),
        ] {
            let out = m.check(&change(0, vec![MemberOp::SetRole { id, role }]));
            assert_eq!(out, Err(RejectReason::AuxiliaryRole(id)));
        }
    }
}
