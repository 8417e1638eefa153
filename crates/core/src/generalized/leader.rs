//! The Generalized Paxos leader: opens rounds with a history proved safe, and when acceptors'
//! histories conflict, resolves the conflict by opening the next step of the round with one
//! order for everything they hold.

use super::cstruct::CStruct;
use super::learner::Learner;
use super::messages::{GenEffects, Message, Persist, Round, Timer};
use super::relation::{Command, Relation};
use super::safe::proved_safe;
use crate::ballot::NodeId;
use crate::quorum::{FastQuorum, QuorumSystem};
use crate::rng::SplitMix64;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Commands a leader remembers, to put in the next round's base.
const MAX_KNOWN: usize = 1024;

/// How a leader is set up.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// Its id; it owns every round with this id.
    pub id: NodeId,
    /// The acceptors and quorum sizes.
    pub quorum: Arc<FastQuorum>,
    /// Which commands conflict.
    pub relation: Arc<dyn Relation>,
    /// Bounds of the random wait before it checks for stuck commands.
    pub retry_ticks: (u64, u64),
    /// Seeds the jitter.
    pub seed: u64,
}

#[derive(Clone, Debug)]
enum Phase {
    Idle,
    Preparing {
        round: Round,
        promises: BTreeMap<NodeId, Option<(Round, CStruct)>>,
    },
    Open {
        round: Round,
        votes: BTreeMap<NodeId, CStruct>,
    },
}

/// A Generalized Paxos leader. Several may run; rounds keep them apart.
#[derive(Clone, Debug)]
pub struct Leader {
    cfg: LeaderConfig,
    number: u64,
    seen: u64,
    phase: Phase,
    known: Vec<Command>,
    learner: Learner,
    rng: SplitMix64,
    /// What was still unlearned at the last check: a command waiting two checks in a row
    /// gets a new round.
    waiting: BTreeSet<Command>,
}

impl Leader {
    /// A leader restarted with the highest round number it persisted (0 when fresh).
    pub fn recover(cfg: LeaderConfig, number: u64) -> Self {
        let rng = SplitMix64::new(cfg.seed ^ cfg.id.wrapping_mul(0x9E37_79B9));
        let learner = Learner::new(cfg.id, cfg.quorum.clone(), cfg.relation.clone(), vec![], 1);
        Leader {
            cfg,
            number,
            seen: number,
            phase: Phase::Idle,
            known: Vec::new(),
            learner,
            rng,
            waiting: BTreeSet::new(),
        }
    }

    /// What it has learned.
    pub fn learned(&self) -> &CStruct {
        self.learner.learned()
    }

    /// The round it works in.
    pub fn round(&self) -> Option<Round> {
        match &self.phase {
            Phase::Idle => None,
            Phase::Preparing { round, .. } | Phase::Open { round, .. } => Some(*round),
        }
    }

    /// Prepares its first round.
    pub fn start(&mut self) -> GenEffects {
        let mut fx = GenEffects::new();
        self.prepare(&mut fx);
        fx
    }

    fn arm(&mut self, fx: &mut GenEffects) {
        let (lo, hi) = self.cfg.retry_ticks;
        fx.arm(Timer::Retry, self.rng.range(lo, hi));
    }

    fn prepare(&mut self, fx: &mut GenEffects) {
        self.number = self.number.max(self.seen) + 1;
        let round = Round::new(self.number, self.cfg.id);
        fx.persist(Persist::Number(self.number));
        fx.broadcast_after_sync(self.cfg.quorum.members(), Message::Prepare { round });
        self.phase = Phase::Preparing {
            round,
            promises: BTreeMap::new(),
        };
        self.arm(fx);
    }

    /// Handles one message.
    pub fn on_message(&mut self, from: NodeId, msg: Message) -> GenEffects {
        let mut fx = GenEffects::new();
        match msg {
            Message::Propose { cmd }
                if !self.known.contains(&cmd) && self.known.len() < MAX_KNOWN =>
            {
                self.known.push(cmd);
            }
            Message::Promise { round, vote } => self.on_promise(from, round, vote, &mut fx),
            Message::Nack { promised, .. } => self.seen = self.seen.max(promised.number),
            Message::Accepted { round, value } => {
                // What acceptors hold counts as proposed: a leader back from a crash learns of
                // commands that wait from their histories.
                for c in value.commands() {
                    if !self.known.contains(c) && self.known.len() < MAX_KNOWN {
                        self.known.push(c.clone());
                    }
                }
                self.learner.on_vote(from, round, value.clone(), &mut fx);
                self.on_vote(from, round, value, &mut fx);
            }
            Message::Query if !self.learned().is_empty() => {
                let value = self.learned().clone();
                fx.send(from, Message::Learned { value });
            }
            _ => {}
        }
        fx
    }

    fn on_promise(
        &mut self,
        from: NodeId,
        round: Round,
        vote: Option<(Round, CStruct)>,
        fx: &mut GenEffects,
    ) {
        let q = self.cfg.quorum.clone();
        let Phase::Preparing {
            round: current,
            promises,
        } = &mut self.phase
        else {
            return;
        };
        let honest = vote.as_ref().is_none_or(|(r, _)| *r < round);
        if round != *current || !q.members().contains(&from) || !honest {
            return;
        }
        promises.insert(from, vote);
        let voters: BTreeSet<NodeId> = promises.keys().copied().collect();
        if !q.is_phase1_quorum(&voters) {
            return;
        }
        let safe = proved_safe(&q, promises, self.cfg.relation.as_ref());
        let round = *current;
        self.open(round, safe, fx);
    }

    /// Opens `round` with `base` extended by every command it knows of.
    fn open(&mut self, round: Round, mut base: CStruct, fx: &mut GenEffects) {
        for c in &self.known {
            base.append(c.clone());
        }
        fx.broadcast(
            self.cfg.quorum.members(),
            Message::Phase2Start { round, base },
        );
        self.phase = Phase::Open {
            round,
            votes: BTreeMap::new(),
        };
    }

    /// A conflict: two acceptors of the open round hold incompatible histories, so no quorum
    /// can choose past their common prefix. The leader prepares the round's next step, which
    /// nothing can precede. Unlike a single-decree fast round, an acceptor's vote here is not
    /// its last word in the round (it goes on appending), so the votes cannot stand in for
    /// promises: a real phase 1 stops the round. That is the seed's two extra round trips.
    fn on_vote(&mut self, from: NodeId, round: Round, value: CStruct, fx: &mut GenEffects) {
        let rel = self.cfg.relation.clone();
        let members = self.cfg.quorum.members().to_vec();
        let Phase::Open {
            round: current,
            votes,
        } = &mut self.phase
        else {
            return;
        };
        if round != *current || !members.contains(&from) {
            return;
        }
        let newer = votes
            .get(&from)
            .is_none_or(|old| !value.is_prefix_of(old, rel.as_ref()));
        if newer {
            votes.insert(from, value);
        }
        let hs: Vec<&CStruct> = votes.values().collect();
        let conflict = hs
            .iter()
            .enumerate()
            .any(|(i, a)| hs[i + 1..].iter().any(|b| !a.compatible(b, rel.as_ref())));
        if !conflict {
            return;
        }
        // Everything the acceptors hold goes into the next base, in one order.
        for h in hs {
            for c in h.commands() {
                if !self.known.contains(c) && self.known.len() < MAX_KNOWN {
                    self.known.push(c.clone());
                }
            }
        }
        let next = round.next_step();
        fx.broadcast(&members, Message::Prepare { round: next });
        self.phase = Phase::Preparing {
            round: next,
            promises: BTreeMap::new(),
        };
    }

    /// Handles a timer: commands that stayed unlearned since the last check get a new round.
    pub fn on_timer(&mut self, kind: Timer) -> GenEffects {
        let mut fx = GenEffects::new();
        if kind != Timer::Retry {
            return fx;
        }
        let unlearned: BTreeSet<Command> = self
            .known
            .iter()
            .filter(|c| !self.learned().contains(c))
            .cloned()
            .collect();
        let stuck = unlearned.iter().any(|c| self.waiting.contains(c));
        let preparing = matches!(self.phase, Phase::Preparing { .. });
        self.waiting = unlearned;
        if stuck || preparing {
            self.prepare(&mut fx);
        } else {
            // Ask the acceptors what they hold, so that commands nobody told it of (it may have
            // restarted) still get a round if they stay unlearned.
            fx.broadcast(self.cfg.quorum.members(), Message::Query);
            self.arm(&mut fx);
        }
        fx
    }
}
