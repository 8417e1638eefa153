//! The Fast Paxos coordinator: prepares rounds, opens fast ones with `Any`, proposes the one
//! safe value in classic ones, and (with coordinated recovery) resolves collisions.

use super::acceptor::collision;
use super::learner::Learner;
use super::messages::{FastEffects, Message, Persist, Recovery, Round, Timer, Value, Vote};
use super::pick::{pick, Pick};
use crate::ballot::NodeId;
use crate::bugs::PlantedBug;
use crate::quorum::{FastQuorum, QuorumSystem};
use crate::rng::SplitMix64;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How a coordinator is set up.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// Its id; it owns every round with this id.
    pub id: NodeId,
    /// The acceptors and quorum sizes.
    pub quorum: Arc<FastQuorum>,
    /// The recovery rule it announces with `Any`.
    pub recovery: Recovery,
    /// Bounds of the random wait before it prepares a higher round.
    pub retry_ticks: (u64, u64),
    /// Seeds the retry jitter.
    pub seed: u64,
    /// A bug planted on purpose (simulator tests only).
    pub bug: Option<PlantedBug>,
}

#[derive(Clone, Debug)]
enum Phase<V> {
    Idle,
    Preparing {
        round: Round,
        promises: BTreeMap<NodeId, Option<Vote<V>>>,
    },
    Fast {
        round: Round,
        votes: BTreeMap<NodeId, V>,
    },
    Classic {
        round: Round,
    },
}

/// Client proposals a coordinator remembers, for classic rounds with a free choice.
const MAX_PROPOSALS: usize = 16;

/// A Fast Paxos coordinator (the seed's "Leader"). Several may run; rounds keep them apart.
#[derive(Clone, Debug)]
pub struct Coordinator<V> {
    cfg: CoordinatorConfig,
    /// The highest round number used (persisted before its prepare leaves).
    number: u64,
    /// The highest round number seen in a refusal.
    seen: u64,
    phase: Phase<V>,
    proposals: Vec<V>,
    /// Its last round was fast and did not choose: the next free choice goes classic.
    fast_failed: bool,
    learner: Learner<V>,
    rng: SplitMix64,
}

impl<V: Value> Coordinator<V> {
    /// A coordinator restarted with the highest round number it persisted (0 when fresh).
    pub fn recover(cfg: CoordinatorConfig, number: u64) -> Self {
        let rng = SplitMix64::new(cfg.seed ^ cfg.id.wrapping_mul(0x9E37_79B9));
        let learner = Learner::new(cfg.id, cfg.quorum.clone(), Vec::new(), u64::MAX);
        Coordinator {
            cfg,
            number,
            seen: number,
            phase: Phase::Idle,
            proposals: Vec::new(),
            fast_failed: false,
            learner,
            rng,
        }
    }

    /// This coordinator's id.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// The value it knows is chosen.
    pub fn learned(&self) -> Option<&V> {
        self.learner.learned()
    }

    /// Prepares its first round.
    pub fn start(&mut self) -> FastEffects<V> {
        let mut fx = FastEffects::new();
        self.prepare(&mut fx);
        fx
    }

    fn prepare(&mut self, fx: &mut FastEffects<V>) {
        if self.learned().is_some() {
            self.phase = Phase::Idle;
            return;
        }
        self.fast_failed = matches!(self.phase, Phase::Fast { .. });
        self.number = self.number.max(self.seen) + 1;
        let round = Round::new(self.number, self.cfg.id);
        fx.persist(Persist::Number(self.number));
        fx.broadcast_after_sync(self.cfg.quorum.members(), Message::Prepare { round });
        self.phase = Phase::Preparing {
            round,
            promises: BTreeMap::new(),
        };
        let (lo, hi) = self.cfg.retry_ticks;
        fx.arm(Timer::Retry, self.rng.range(lo, hi));
    }

    /// Handles one message.
    pub fn on_message(&mut self, from: NodeId, msg: Message<V>) -> FastEffects<V> {
        let mut fx = FastEffects::new();
        match msg {
            Message::Propose { value }
                if self.proposals.len() < MAX_PROPOSALS && !self.proposals.contains(&value) =>
            {
                self.proposals.push(value);
            }
            Message::Promise { round, vote } => self.on_promise(from, round, vote, &mut fx),
            Message::Nack { promised, .. } => self.seen = self.seen.max(promised.number),
            Message::Query => {
                if let Some(value) = self.learned().cloned() {
                    fx.send(from, Message::Chosen { value });
                }
            }
            Message::Accepted { vote } => {
                let known = self.learned().is_some();
                self.learner.on_vote(from, vote.clone(), &mut fx);
                if !known && self.learned().is_some() {
                    self.phase = Phase::Idle;
                } else {
                    self.on_fast_vote(from, vote, &mut fx);
                }
            }
            _ => {}
        }
        fx
    }

    fn on_promise(
        &mut self,
        from: NodeId,
        round: Round,
        vote: Option<Vote<V>>,
        fx: &mut FastEffects<V>,
    ) {
        let q = self.cfg.quorum.clone();
        let Phase::Preparing {
            round: current,
            promises,
        } = &mut self.phase
        else {
            return;
        };
        if round != *current || !q.members().contains(&from) {
            return;
        }
        // A vote at or above the round it promises is not a promise an honest peer makes.
        if vote.as_ref().is_some_and(|v| v.round >= round) {
            return;
        }
        promises.insert(from, vote);
        let voters: BTreeSet<NodeId> = promises.keys().copied().collect();
        if !q.is_phase1_quorum(&voters) {
            return;
        }
        let round = *current;
        match pick(&q, promises, self.cfg.bug) {
            Pick::Constrained(value) => self.accept(round, value, fx),
            Pick::Free(suggested) => {
                let fallback = suggested.or_else(|| self.proposals.first().cloned());
                match fallback {
                    Some(value) if self.fast_failed => self.accept(round, value, fx),
                    _ => {
                        let recovery = self.cfg.recovery;
                        fx.broadcast(q.members(), Message::Any { round, recovery });
                        self.phase = Phase::Fast {
                            round,
                            votes: BTreeMap::new(),
                        };
                    }
                }
            }
        }
    }

    fn accept(&mut self, round: Round, value: V, fx: &mut FastEffects<V>) {
        fx.broadcast(self.cfg.quorum.members(), Message::Accept { round, value });
        self.phase = Phase::Classic { round };
    }

    /// Coordinated recovery: the colliding votes of fast round `round` stand in for promises in
    /// its next step, which nobody else can own, so no phase 1 is needed.
    fn on_fast_vote(&mut self, from: NodeId, vote: Vote<V>, fx: &mut FastEffects<V>) {
        if self.cfg.recovery != Recovery::Coordinated {
            return;
        }
        let q = self.cfg.quorum.clone();
        let Phase::Fast { round, votes } = &mut self.phase else {
            return;
        };
        if vote.round != *round || !vote.fast || !q.members().contains(&from) {
            return;
        }
        votes.insert(from, vote.value);
        let voters: BTreeSet<NodeId> = votes.keys().copied().collect();
        if !q.is_phase1_quorum(&voters) || !collision(&q, votes) {
            return;
        }
        let round = *round;
        let reports = votes
            .iter()
            .map(|(&id, v)| {
                let value = v.clone();
                (
                    id,
                    Some(Vote {
                        round,
                        fast: true,
                        value,
                    }),
                )
            })
            .collect();
        if let Pick::Constrained(v) | Pick::Free(Some(v)) = pick(&q, &reports, self.cfg.bug) {
            self.accept(round.next_step(), v, fx);
        }
    }

    /// Handles a timer: a round that chose nothing in time gives way to a higher one.
    pub fn on_timer(&mut self, kind: Timer) -> FastEffects<V> {
        let mut fx = FastEffects::new();
        if kind == Timer::Retry {
            self.prepare(&mut fx);
        }
        fx
    }

    /// The round it is working on, for traces and tests.
    pub fn round(&self) -> Option<Round> {
        match &self.phase {
            Phase::Idle => None,
            Phase::Preparing { round, .. }
            | Phase::Fast { round, .. }
            | Phase::Classic { round } => Some(*round),
        }
    }
}
