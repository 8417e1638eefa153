//! The single-decree proposer: drives one ballot at a time until its value (or the value it was
//! obliged to adopt) is chosen.

use super::messages::{BasicEffects, Message, Output, Persist, Timer};
use crate::ballot::{Ballot, NodeId};
use crate::bugs::PlantedBug;
use crate::quorum::QuorumSystem;
use crate::rng::SplitMix64;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How a proposer is set up.
#[derive(Clone, Debug)]
pub struct ProposerConfig {
    /// This proposer's id (owner of its ballots).
    pub id: NodeId,
    /// The acceptors and their quorums.
    pub quorum: Arc<dyn QuorumSystem>,
    /// A round that has not finished after a random number of ticks in this range is abandoned
    /// and retried with a higher ballot; randomness keeps two proposers from duelling forever.
    pub retry_ticks: (u64, u64),
    /// Seed of the timeout randomness (given by the driver: the core has none of its own).
    pub seed: u64,
    /// A bug planted on purpose, for the simulator's own tests.
    pub bug: Option<PlantedBug>,
}

#[derive(Clone, Debug)]
enum Phase<V> {
    Idle,
    Preparing {
        ballot: Ballot,
        promises: BTreeMap<NodeId, Option<(Ballot, V)>>,
    },
    Accepting {
        ballot: Ballot,
        value: V,
        acks: BTreeSet<NodeId>,
    },
    /// Preempted by a higher ballot; waiting out a random backoff before the next round.
    Backoff,
    Done(V),
}

/// A single-decree proposer.
#[derive(Clone, Debug)]
pub struct Proposer<V> {
    cfg: ProposerConfig,
    rng: SplitMix64,
    /// Highest round this proposer has used: persisted before any ballot of that round is sent.
    round_used: u64,
    /// Highest ballot heard of, so a retry jumps above it.
    seen: Ballot,
    /// The value a client asked this proposer to get chosen.
    own: Option<V>,
    phase: Phase<V>,
}

impl<V: Clone + Eq + std::fmt::Debug> Proposer<V> {
    /// A fresh proposer.
    pub fn new(cfg: ProposerConfig) -> Self {
        Self::recover(cfg, 0)
    }

    /// A proposer restarted with the highest round it had persisted; its next ballot is above.
    pub fn recover(cfg: ProposerConfig, round_used: u64) -> Self {
        let rng = SplitMix64::new(cfg.seed ^ cfg.id.wrapping_mul(0x9E37_79B9));
        Proposer {
            seen: Ballot::new(round_used, cfg.id),
            cfg,
            rng,
            round_used,
            own: None,
            phase: Phase::Idle,
        }
    }

    /// This proposer's id.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// The value this proposer knows to be chosen, if any.
    pub fn chosen(&self) -> Option<&V> {
        match &self.phase {
            Phase::Done(v) => Some(v),
            _ => None,
        }
    }

    /// The ballot of the round in progress, if any.
    pub fn ballot(&self) -> Option<Ballot> {
        match &self.phase {
            Phase::Preparing { ballot, .. } | Phase::Accepting { ballot, .. } => Some(*ballot),
            _ => None,
        }
    }

    /// A client asks for `value`; starts a round unless one is running or a value is chosen.
    pub fn propose(&mut self, value: V) -> BasicEffects<V> {
        self.own.get_or_insert(value);
        match self.phase {
            Phase::Idle => self.start_round(),
            _ => BasicEffects::new(),
        }
    }

    /// Handles a timer.
    pub fn on_timer(&mut self, timer: Timer) -> BasicEffects<V> {
        match (timer, &self.phase) {
            (Timer::Retry, Phase::Preparing { .. } | Phase::Accepting { .. } | Phase::Backoff) => {
                self.start_round()
            }
            _ => BasicEffects::new(),
        }
    }

    /// Handles one message from acceptor `from`.
    pub fn on_message(&mut self, from: NodeId, msg: Message<V>) -> BasicEffects<V> {
        match msg {
            Message::Promise { ballot, accepted } => self.on_promise(from, ballot, accepted),
            Message::Accepted { ballot, value } => self.on_accepted(from, ballot, value),
            Message::Nack { ballot, promised } => self.on_nack(ballot, promised),
            Message::Prepare { .. } | Message::Accept { .. } | Message::Query => {
                BasicEffects::new()
            }
        }
    }

    fn start_round(&mut self) -> BasicEffects<V> {
        let mut fx = BasicEffects::new();
        if self.own.is_none() {
            return fx;
        }
        let ballot = Ballot::next_after(self.seen, self.cfg.id);
        // `seen` starts at (round_used, id) and only grows, so every new ballot is in a fresh
        // round: no ballot is ever used twice, even across restarts.
        assert!(
            ballot.round > self.round_used,
            "ballot {ballot} reuses a round"
        );
        self.round_used = ballot.round;
        fx.persist(Persist::Round(ballot.round));
        self.seen = ballot;
        self.phase = Phase::Preparing {
            ballot,
            promises: BTreeMap::new(),
        };
        // The round is durable before anyone sees the ballot: a restart never reuses it.
        fx.broadcast_after_sync(self.cfg.quorum.members(), Message::Prepare { ballot });
        self.arm_retry(&mut fx);
        fx
    }

    fn arm_retry(&mut self, fx: &mut BasicEffects<V>) {
        let (lo, hi) = self.cfg.retry_ticks;
        fx.arm(Timer::Retry, self.rng.range(lo, hi));
    }

    fn on_promise(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        accepted: Option<(Ballot, V)>,
    ) -> BasicEffects<V> {
        let mut fx = BasicEffects::new();
        let Phase::Preparing {
            ballot: mine,
            promises,
        } = &mut self.phase
        else {
            return fx;
        };
        if ballot != *mine {
            return fx;
        }
        if let Some((b, _)) = &accepted {
            // An acceptor that promised `mine` cannot have voted at or above it.
            debug_assert!(*b < *mine, "vote {b} reported under promise {mine}");
            self.seen = self.seen.max(*b);
        }
        promises.insert(from, accepted);
        let voters: BTreeSet<NodeId> = promises.keys().copied().collect();
        if !self.cfg.quorum.is_phase1_quorum(&voters) {
            return fx;
        }
        // Paxos' one obligation: propose the value of the highest-ballot vote reported, if any.
        let reported = promises
            .values()
            .flatten()
            .max_by_key(|(b, _)| *b)
            .map(|(_, v)| v.clone());
        let own = self
            .own
            .clone()
            .expect("a round runs only with a value to propose");
        let value = match (reported, self.cfg.bug) {
            (Some(_), Some(PlantedBug::IgnorePromiseValues)) | (None, _) => own,
            (Some(v), _) => v,
        };
        let ballot = *mine;
        self.phase = Phase::Accepting {
            ballot,
            value: value.clone(),
            acks: BTreeSet::new(),
        };
        fx.broadcast(self.cfg.quorum.members(), Message::Accept { ballot, value });
        fx
    }

    fn on_accepted(&mut self, from: NodeId, ballot: Ballot, value: V) -> BasicEffects<V> {
        let mut fx = BasicEffects::new();
        let Phase::Accepting {
            ballot: mine,
            value: proposed,
            acks,
        } = &mut self.phase
        else {
            return fx;
        };
        if ballot != *mine {
            return fx;
        }
        debug_assert_eq!(
            &value, proposed,
            "an acceptor echoed a value we did not propose"
        );
        acks.insert(from);
        if self.cfg.quorum.is_phase2_quorum(acks) {
            let v = proposed.clone();
            self.phase = Phase::Done(v.clone());
            fx.output(Output::Chosen(v));
        }
        fx
    }

    fn on_nack(&mut self, ballot: Ballot, promised: Ballot) -> BasicEffects<V> {
        let mut fx = BasicEffects::new();
        self.seen = self.seen.max(promised);
        if self.ballot() == Some(ballot) && promised > ballot {
            // Preempted: stop this round now rather than wait for the timeout, and back off a
            // random while before the next one so the competitor can finish.
            self.phase = Phase::Backoff;
            self.arm_retry(&mut fx);
        }
        fx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::Quorum;

    fn proposer(id: NodeId) -> Proposer<&'static str> {
        Proposer::new(ProposerConfig {
            id,
            quorum: Arc::new(Quorum::majority(&[10, 11, 12]).unwrap()),
            retry_ticks: (10, 20),
            seed: 1,
            bug: None,
        })
    }

    fn b(r: u64, n: NodeId) -> Ballot {
        Ballot::new(r, n)
    }

    #[test]
    fn happy_path_persists_round_then_prepares_accepts_and_decides() {
        let mut p = proposer(1);
        assert_eq!(p.id(), 1);
        let fx = p.propose("v");
        assert_eq!(fx.persist, vec![Persist::Round(1)]);
        assert!(fx.send.is_empty(), "prepares wait for the round's record");
        assert_eq!(fx.send_after_sync.len(), 3);
        assert_eq!(fx.timers[0].kind, Timer::Retry);
        p.on_message(
            10,
            Message::Promise {
                ballot: b(1, 1),
                accepted: None,
            },
        );
        let fx = p.on_message(
            11,
            Message::Promise {
                ballot: b(1, 1),
                accepted: None,
            },
        );
        assert_eq!(
            fx.send[0].msg,
            Message::Accept {
                ballot: b(1, 1),
                value: "v"
            }
        );
        assert_eq!(fx.send.len(), 3);
        p.on_message(
            10,
            Message::Accepted {
                ballot: b(1, 1),
                value: "v",
            },
        );
        let fx = p.on_message(
            12,
            Message::Accepted {
                ballot: b(1, 1),
                value: "v",
            },
        );
        assert_eq!(fx.output, vec![Output::Chosen("v")]);
        assert_eq!(p.chosen(), Some(&"v"));
    }

    #[test]
    fn adopts_highest_ballot_value_from_promises() {
        let mut p = proposer(3);
        p.propose("mine");
        let bl = b(1, 3);
        p.on_message(
            10,
            Message::Promise {
                ballot: bl,
                accepted: None,
            },
        );
        let fx = p.on_message(
            11,
            Message::Promise {
                ballot: bl,
                accepted: Some((b(0, 9), "old")),
            },
        );
        // b(0,9) < b(1,3), and it is the only vote: it must be adopted.
        assert_eq!(
            fx.send[0].msg,
            Message::Accept {
                ballot: bl,
                value: "old"
            }
        );
    }

    #[test]
    fn picks_the_highest_of_several_reported_votes() {
        let mut p = proposer(3);
        p.seen = b(5, 1);
        p.propose("mine");
        let bl = p.ballot().unwrap();
        assert_eq!(bl, b(5, 3));
        p.on_message(
            10,
            Message::Promise {
                ballot: bl,
                accepted: Some((b(2, 1), "a")),
            },
        );
        p.on_message(
            11,
            Message::Promise {
                ballot: bl,
                accepted: Some((b(4, 2), "b")),
            },
        );
        let fx = p.on_message(
            12,
            Message::Promise {
                ballot: bl,
                accepted: Some((b(3, 1), "c")),
            },
        );
        // A quorum of two was already reached at acceptor 11: "b" (ballot 4.2) beats "a".
        assert!(fx.all_sends().next().is_none(), "already in phase 2");
        assert_eq!(p.ballot(), Some(bl));
        match &p.phase {
            Phase::Accepting { value, .. } => assert_eq!(*value, "b"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn nack_stops_the_round_and_the_retry_goes_above_the_promise() {
        let mut p = proposer(1);
        p.propose("v");
        let fx = p.on_message(
            10,
            Message::Nack {
                ballot: b(1, 1),
                promised: b(7, 2),
            },
        );
        assert_eq!(fx.timers.len(), 1);
        let fx = p.on_timer(Timer::Retry);
        assert_eq!(fx.persist, vec![Persist::Round(8)]);
        assert_eq!(p.ballot(), Some(b(8, 1)));
    }

    #[test]
    fn restart_never_reuses_a_round() {
        let mut p = Proposer::recover(proposer(1).cfg.clone(), 4);
        let fx = p.propose("v");
        assert_eq!(fx.persist, vec![Persist::Round(5)]);
    }

    #[test]
    fn planted_bug_ignores_reported_values() {
        let mut p = proposer(3);
        p.cfg.bug = Some(PlantedBug::IgnorePromiseValues);
        p.propose("mine");
        let bl = p.ballot().unwrap();
        p.on_message(
            10,
            Message::Promise {
                ballot: bl,
                accepted: Some((b(0, 9), "old")),
            },
        );
        let fx = p.on_message(
            11,
            Message::Promise {
                ballot: bl,
                accepted: None,
            },
        );
        assert_eq!(
            fx.send[0].msg,
            Message::Accept {
                ballot: bl,
                value: "mine"
            }
        );
    }

    #[test]
    fn only_a_nack_of_the_current_ballot_from_above_interrupts_the_round() {
        let mut p = proposer(1);
        p.propose("v");
        let mine = p.ballot().expect("preparing");
        // A late nack of an older ballot, and a nack that names no higher promise, change
        // nothing: the round goes on.
        let old = Ballot::new(mine.round - 1, 1);
        assert!(p
            .on_message(
                10,
                Message::Nack {
                    ballot: old,
                    promised: b(9, 2)
                }
            )
            .is_empty());
        assert!(p
            .on_message(
                10,
                Message::Nack {
                    ballot: mine,
                    promised: mine
                }
            )
            .is_empty());
        assert_eq!(p.ballot(), Some(mine));
        let fx = p.on_message(
            10,
            Message::Nack {
                ballot: mine,
                promised: b(9, 2),
            },
        );
        assert_eq!(fx.timers[0].kind, Timer::Retry, "backs off");
        assert_eq!(p.ballot(), None);
    }
}
