//! The Fast Multi-Paxos leader: phase 1 once for every slot from the first one it does not
//! know chosen, a classic round for each slot phase 1 found votes in, and `Any` for the rest,
//! so that proposals go straight to the acceptors. A collision, or a slot that stops making
//! progress, sends it back to phase 1 in a new round: that recovers the slot classically and
//! lines the acceptors' next free slots up again.

use super::learner::Learner;
use super::messages::{Entry, EntryVote, FmEffects, Message, Persist, Slot, Timer};
use crate::ballot::NodeId;
use crate::bugs::PlantedBug;
use crate::fast::{pick, Pick, Recovery, Round, Value};
use crate::quorum::{FastQuorum, QuorumSystem};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How far beyond the first slot of its phase 1 a promise may report a vote. A correct acceptor
/// is never that far ahead of a leader's learner (that many proposals would be in flight at
/// once); a promise claiming it comes from a bad peer, and would have the leader fill every slot
/// in between.
pub const MAX_PROMISE_SPAN: u64 = 1 << 24;

/// What each acceptor of a quorum reported of one slot.
type Reports<V> = BTreeMap<NodeId, Option<EntryVote<V>>>;

/// A leader's settings.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// This node.
    pub id: NodeId,
    /// Every acceptor, with the quorum sizes.
    pub quorum: Arc<FastQuorum>,
    /// Ticks between heartbeats (`Any` again).
    pub heartbeat_ticks: u64,
    /// Ticks without hearing a leader before campaigning. Give each node a different value,
    /// so that campaigns rarely duel.
    pub election_ticks: u64,
    /// Heartbeats in a row with an unchosen slot and no progress before a new round.
    pub stall_beats: u32,
    /// How collisions in the fast region are resolved, announced with `Any`: by this leader
    /// in a new round (coordinated), or by the acceptors in the slot's next step.
    pub recovery: Recovery,
    /// A bug planted on purpose (simulator tests only).
    pub bug: Option<PlantedBug>,
}

/// Where the leader stands.
#[derive(Clone, Debug)]
enum Phase<V> {
    Follower,
    Preparing {
        round: Round,
        from: Slot,
        promises: BTreeMap<NodeId, Vec<(Slot, EntryVote<V>)>>,
    },
    Leading {
        round: Round,
        from: Slot,
    },
}

/// A leader (a follower most of the time, ready to campaign).
#[derive(Clone, Debug)]
pub struct Leader<V> {
    cfg: LeaderConfig,
    /// The highest round number used, or seen in a peer's round.
    number: u64,
    phase: Phase<V>,
    /// A leader was heard since the last election timer.
    heard: bool,
    /// Heartbeats in a row without progress while a slot waits.
    stalled: u32,
    last_prefix: Slot,
}

impl<V: Value> Leader<V> {
    /// A leader restarted with the highest round number it persisted.
    pub fn recover(cfg: LeaderConfig, number: u64) -> Self {
        Leader {
            cfg,
            number,
            phase: Phase::Follower,
            heard: false,
            stalled: 0,
            last_prefix: 0,
        }
    }

    /// The round it leads, once phase 1 is done.
    pub fn leading(&self) -> Option<Round> {
        match self.phase {
            Phase::Leading { round, .. } => Some(round),
            _ => None,
        }
    }

    /// Arms the election timer.
    pub fn start(&mut self) -> FmEffects<V> {
        let mut fx = FmEffects::new();
        fx.arm(Timer::Election, self.cfg.election_ticks);
        fx
    }

    /// Another node's round `round` reached this node's acceptor without being refused: some
    /// leader is alive. A higher round than this node's own ends its leadership.
    pub fn heard(&mut self, round: Round) -> FmEffects<V> {
        self.heard = true;
        self.number = self.number.max(round.number);
        if self.own_round().is_some_and(|own| own < round) {
            return self.step_down();
        }
        FmEffects::new()
    }

    /// Handles a promise or a refusal.
    pub fn on_message(
        &mut self,
        from: NodeId,
        msg: Message<V>,
        learner: &Learner<V>,
    ) -> FmEffects<V> {
        match msg {
            Message::Promise {
                round,
                from: first,
                votes,
            } => {
                if let Phase::Preparing {
                    round: r,
                    from: f,
                    promises,
                } = &mut self.phase
                {
                    let fits = votes.iter().all(|(s, v)| {
                        *s >= first && *s - first < MAX_PROMISE_SPAN && v.round < round
                    });
                    if *r == round
                        && *f == first
                        && fits
                        && self.cfg.quorum.members().contains(&from)
                    {
                        promises.insert(from, votes);
                        let voters: BTreeSet<NodeId> = promises.keys().copied().collect();
                        if self.cfg.quorum.is_phase1_quorum(&voters) {
                            return self.lead(learner);
                        }
                    }
                }
                FmEffects::new()
            }
            Message::Nack { round, promised } => {
                self.number = self.number.max(promised.number);
                if self.own_round() == Some(round) && promised > round {
                    return self.step_down();
                }
                FmEffects::new()
            }
            _ => FmEffects::new(),
        }
    }

    /// The learner saw a collision in fast round `round`: if that is the round it leads and
    /// recovery is coordinated, recover in a new one (a late vote of an older round changes
    /// nothing; under uncoordinated recovery the acceptors resolve it, and a slot they leave
    /// stuck shows up as a stall).
    pub fn on_collision(&mut self, round: Round, learner: &Learner<V>) -> FmEffects<V> {
        match self.phase {
            Phase::Leading { round: r, .. }
                if r == round && self.cfg.recovery == Recovery::Coordinated =>
            {
                self.campaign(learner)
            }
            _ => FmEffects::new(),
        }
    }

    /// Handles a timer.
    pub fn on_timer(&mut self, kind: Timer, learner: &Learner<V>) -> FmEffects<V> {
        match (kind, &self.phase) {
            (Timer::Election, Phase::Leading { .. }) => FmEffects::new(),
            (Timer::Election, Phase::Follower) if std::mem::take(&mut self.heard) => {
                let mut fx = FmEffects::new();
                fx.arm(Timer::Election, self.cfg.election_ticks);
                fx
            }
            (Timer::Election, _) => self.campaign(learner),
            (Timer::Heartbeat, Phase::Leading { round, from }) => {
                let (round, from) = (*round, *from);
                let waiting = learner
                    .highest_heard()
                    .is_some_and(|h| h >= learner.prefix());
                if waiting && learner.prefix() == self.last_prefix {
                    self.stalled += 1;
                } else {
                    self.stalled = 0;
                }
                self.last_prefix = learner.prefix();
                if self.stalled >= self.cfg.stall_beats {
                    return self.campaign(learner);
                }
                let mut fx = FmEffects::new();
                let commit = learner.prefix();
                let recovery = self.cfg.recovery;
                fx.broadcast(
                    self.cfg.quorum.members(),
                    Message::Any {
                        round,
                        from,
                        commit,
                        recovery,
                    },
                );
                fx.arm(Timer::Heartbeat, self.cfg.heartbeat_ticks);
                fx
            }
            _ => FmEffects::new(),
        }
    }

    fn own_round(&self) -> Option<Round> {
        match &self.phase {
            Phase::Follower => None,
            Phase::Preparing { round, .. } | Phase::Leading { round, .. } => Some(*round),
        }
    }

    fn step_down(&mut self) -> FmEffects<V> {
        self.phase = Phase::Follower;
        let mut fx = FmEffects::new();
        fx.arm(Timer::Election, self.cfg.election_ticks);
        fx
    }

    /// Phase 1 in a fresh round, for every slot from the first one not known chosen.
    fn campaign(&mut self, learner: &Learner<V>) -> FmEffects<V> {
        // `number` also rises with peers' rounds: only a bad peer claims the last one, and
        // this node then stays a follower instead of panicking.
        let Some(number) = self.number.checked_add(1) else {
            return self.step_down();
        };
        self.number = number;
        let round = Round::new(number, self.cfg.id);
        let from = learner.prefix();
        self.phase = Phase::Preparing {
            round,
            from,
            promises: BTreeMap::new(),
        };
        self.stalled = 0;
        let mut fx = FmEffects::new();
        fx.persist(Persist::Number(number));
        fx.broadcast_after_sync(self.cfg.quorum.members(), Message::Prepare { round, from });
        fx.arm(Timer::Election, self.cfg.election_ticks);
        fx
    }

    /// Phase 1 is done: a classic round in every slot a promise reported a vote in (with the
    /// one entry the rule allows, or a no-op where it leaves the choice free and nobody voted),
    /// and the fast round above them.
    fn lead(&mut self, learner: &Learner<V>) -> FmEffects<V> {
        let Phase::Preparing {
            round,
            from,
            promises,
        } = std::mem::replace(&mut self.phase, Phase::Follower)
        else {
            return FmEffects::new();
        };
        let mut by_slot: BTreeMap<Slot, Reports<V>> = BTreeMap::new();
        for (id, votes) in &promises {
            for (slot, vote) in votes {
                by_slot
                    .entry(*slot)
                    .or_default()
                    .insert(*id, Some(vote.clone()));
            }
        }
        let top = by_slot.keys().next_back().copied();
        let mut fx = FmEffects::new();
        let members = self.cfg.quorum.members().to_vec();
        for slot in from..top.map_or(from, |t| t.saturating_add(1)) {
            if learner.chosen(slot).is_some() {
                continue;
            }
            let mut reports = by_slot.remove(&slot).unwrap_or_default();
            for id in promises.keys() {
                reports.entry(*id).or_insert(None);
            }
            let value = match pick(&self.cfg.quorum, &reports, self.cfg.bug) {
                Pick::Constrained(v) | Pick::Free(Some(v)) => v,
                Pick::Free(None) => Entry::Noop,
            };
            fx.broadcast(&members, Message::Accept { round, slot, value });
        }
        let fast_from = match (self.cfg.bug, top) {
            (Some(PlantedBug::AnyOverVotedSlots), _) | (_, None) => from,
            (_, Some(t)) => t.saturating_add(1),
        };
        self.phase = Phase::Leading {
            round,
            from: fast_from,
        };
        self.stalled = 0;
        self.last_prefix = learner.prefix();
        let commit = learner.prefix();
        fx.broadcast(
            &members,
            Message::Any {
                round,
                from: fast_from,
                commit,
                recovery: self.cfg.recovery,
            },
        );
        fx.arm(Timer::Heartbeat, self.cfg.heartbeat_ticks);
        fx
    }
}
