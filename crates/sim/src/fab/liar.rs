//! Byzantine acceptors of Fast Byzantine Paxos: a correct replica inside, and a strategy that
//! bends what it sends and adds what it invents. A liar holds only its own key: what it says
//! in its own name verifies, what it says in others' does not, and it cannot make up a
//! client's request, only move real ones around.

use crate::liars::Bender;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use synod_core::auth::{Digest, Signed, Signer, SimSigner};
use synod_core::effects::Outgoing;
use synod_core::fab::{
    value_digest, Choice, Decided, FabEffects, Lost, Message, Replica, Report, Timer, Value, Vote,
};
use synod_core::pbft::{OpLog, Request};
use synod_core::NodeId;

type Msg = Message<String, u64>;
type Fx = FabEffects<String, u64>;

/// One way of lying. A liar draws one or more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lie {
    /// Votes for different values at one slot and view to different acceptors.
    Equivocate,
    /// Pushes a real request of another slot into a slot a client just proposed at, to some
    /// acceptors, hoping they vote for it first (the seed's failure chart).
    Push,
    /// Votes for every value it hears of, whatever it voted before.
    VoteForEverything,
    /// Sends votes, reports, choices and decided proofs in other acceptors' names.
    Forge,
    /// Sends old messages of others again, to anyone.
    Replay,
    /// Drops some or all of what it should send.
    Silence,
    /// Reports false votes, enters views nobody needs, and as a leader chooses against the
    /// certificate.
    LieInRecovery,
    /// Answers clients with wrong results, and tells them falsely that their slot was lost.
    WrongReplies,
}

impl Lie {
    /// Every lie.
    pub const ALL: [Lie; 8] = [
        Lie::Equivocate,
        Lie::Push,
        Lie::VoteForEverything,
        Lie::Forge,
        Lie::Replay,
        Lie::Silence,
        Lie::LieInRecovery,
        Lie::WrongReplies,
    ];

    /// A non-empty set of lies, drawn.
    pub fn draw(rng: &mut ChaCha8Rng) -> Vec<Lie> {
        crate::liars::draw(&Lie::ALL, rng)
    }
}

impl fmt::Display for Lie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A Byzantine acceptor.
pub struct Liar {
    inner: Replica<OpLog<String>>,
    lies: Vec<Lie>,
    rng: ChaCha8Rng,
    signer: Arc<SimSigner>,
    acceptors: Vec<NodeId>,
    heard: Vec<Msg>,
    requests: Vec<Signed<Request<String>>>,
    /// Votes it already sent for everything: once each, or two such liars would answer each
    /// other's votes without end.
    voted: BTreeSet<(u64, u64, Digest)>,
    /// Slots and views it forged a decision for, and slots it pushed a request into: once
    /// each, or two such liars hearing each other's inventions would multiply them without end.
    forged: BTreeSet<(u64, u64)>,
    pushed: BTreeSet<u64>,
    drop_rate: f64,
}

impl Liar {
    /// A liar around `inner`.
    pub fn new(
        inner: Replica<OpLog<String>>,
        lies: Vec<Lie>,
        mut rng: ChaCha8Rng,
        signer: Arc<SimSigner>,
        acceptors: Vec<NodeId>,
    ) -> Self {
        let drop_rate = rng.gen_range(0.3..=1.0);
        Liar {
            inner,
            lies,
            rng,
            signer,
            acceptors,
            heard: Vec::new(),
            requests: Vec::new(),
            voted: BTreeSet::new(),
            forged: BTreeSet::new(),
            pushed: BTreeSet::new(),
            drop_rate,
        }
    }

    fn has(&self, lie: Lie) -> bool {
        self.lies.contains(&lie)
    }

    /// Starts the replica inside.
    pub fn start(&mut self) -> Fx {
        let fx = self.inner.start();
        self.bend(fx)
    }

    /// Hears `msg`: the replica inside handles it, then the lies.
    pub fn on_message(&mut self, msg: Msg) -> Fx {
        self.remember(&msg);
        let extra = self.react(&msg);
        let mut fx = self.inner.on_message(msg);
        fx.send.extend(extra);
        self.bend(fx)
    }

    /// A timer of the replica inside; each round also paces replays and false reports.
    pub fn on_timer(&mut self, kind: Timer) -> Fx {
        let mut fx = self.inner.on_timer(kind);
        if kind == Timer::Round {
            fx.send.extend(self.unprompted());
        }
        self.bend(fx)
    }

    fn remember(&mut self, msg: &Msg) {
        let request = match msg {
            Message::Propose { request, .. } => Some(request.clone()),
            Message::Accepted(_, v) | Message::Report(_, v) | Message::Choice(_, _, v) => v.clone(),
            _ => None,
        };
        if let Some(r) = request {
            if !self.requests.contains(&r) && self.requests.len() < 64 {
                self.requests.push(r);
            }
        }
        if self.heard.len() < 256 {
            self.heard.push(msg.clone());
        } else {
            let i = self.rng.gen_range(0..self.heard.len());
            self.heard[i] = msg.clone();
        }
    }

    fn to_all(&self, msg: Msg) -> Vec<Outgoing<Msg>> {
        let me = self.signer.id();
        self.acceptors
            .iter()
            .filter(|&&a| a != me)
            .map(|&to| Outgoing {
                to,
                msg: msg.clone(),
            })
            .collect()
    }

    fn victims(&mut self) -> Vec<NodeId> {
        let me = self.signer.id();
        self.acceptors
            .iter()
            .copied()
            .filter(|&a| a != me)
            .filter(|_| self.rng.gen_bool(0.5))
            .collect()
    }

    /// Another value than the one with `digest`: a real request heard of, or a no-op.
    fn other_value(&mut self, digest: &Digest) -> Value<String> {
        let others: Vec<_> = self
            .requests
            .iter()
            .filter(|r| value_digest(&Some((*r).clone())) != *digest)
            .cloned()
            .collect();
        if self.rng.gen_bool(0.2) {
            return None;
        }
        others.choose(&mut self.rng).cloned()
    }

    fn vote(&self, view: u64, slot: u64, value: &Value<String>) -> Msg {
        let body = Vote {
            view,
            slot,
            digest: value_digest(value),
        };
        Message::Accepted(Signed::new(self.signer.as_ref(), body), value.clone())
    }

    /// What it adds on hearing `msg`.
    fn react(&mut self, msg: &Msg) -> Vec<Outgoing<Msg>> {
        let mut out = Vec::new();
        let (view, slot, value) = match msg {
            Message::Propose { slot, request } => (0, *slot, Some(request.clone())),
            Message::Accepted(v, value) => (v.body.view, v.body.slot, value.clone()),
            Message::Choice(c, _, value) => (c.body.view, c.body.slot, value.clone()),
            _ => return out,
        };
        let digest = value_digest(&value);
        if self.has(Lie::Push) && view == 0 && self.rng.gen_bool(0.5) && self.pushed.insert(slot) {
            let other = self.other_value(&digest);
            if other.is_some() {
                let m = self.vote(0, slot, &other);
                for to in self.victims() {
                    out.push(Outgoing { to, msg: m.clone() });
                }
            }
        }
        if self.has(Lie::VoteForEverything) && self.voted.insert((view, slot, digest)) {
            out.extend(self.to_all(self.vote(view, slot, &value)));
        }
        if self.has(Lie::Forge) && self.rng.gen_bool(0.3) && self.forged.insert((view, slot)) {
            out.extend(self.forge(view, slot, &digest));
        }
        out
    }

    /// A whole forged decision for another value at `slot`: everyone's votes in their names,
    /// sent one by one and as a proof, to a victim.
    fn forge(&mut self, view: u64, slot: u64, digest: &Digest) -> Vec<Outgoing<Msg>> {
        let value = self.other_value(digest);
        let mut d = value_digest(&value);
        if self.rng.gen_bool(0.2) {
            d[0] ^= 1;
        }
        let Some(&to) = self.victims().first() else {
            return Vec::new();
        };
        let body = Vote {
            view,
            slot,
            digest: d,
        };
        let votes: Vec<Signed<Vote>> = self
            .acceptors
            .iter()
            .map(|&a| Signed::forged(self.signer.as_ref(), a, body))
            .collect();
        let mut out: Vec<Outgoing<Msg>> = votes
            .iter()
            .map(|v| Outgoing {
                to,
                msg: Message::Accepted(v.clone(), value.clone()),
            })
            .collect();
        out.push(Outgoing {
            to,
            msg: Message::Decided(vec![Decided { votes, value }]),
        });
        out
    }

    /// What it sends of its own accord, every round.
    fn unprompted(&mut self) -> Vec<Outgoing<Msg>> {
        let mut out = Vec::new();
        if self.has(Lie::Replay) && !self.heard.is_empty() {
            for _ in 0..3 {
                let msg = self.heard[self.rng.gen_range(0..self.heard.len())].clone();
                if let Some(&to) = self.victims().first() {
                    out.push(Outgoing { to, msg });
                }
            }
        }
        if self.has(Lie::LieInRecovery) && self.rng.gen_bool(0.2) {
            let slot = self.inner.executed() + 1 + self.rng.gen_range(0..3);
            let view = if self.rng.gen_bool(0.1) {
                u64::MAX
            } else {
                self.inner.view_at(slot) + 1
            };
            let report = self.false_report(slot, view);
            out.extend(self.to_all(report));
        }
        out
    }

    /// A report entering `view` at `slot` that names a value it never voted for (or none).
    fn false_report(&mut self, slot: u64, view: u64) -> Msg {
        let value = self.other_value(&[0xff; 32]);
        let last = if self.rng.gen_bool(0.3) {
            None
        } else {
            Some((view.saturating_sub(1), value_digest(&value)))
        };
        let value = if last.is_some() { value } else { None };
        let body = Report { view, slot, last };
        Message::Report(Signed::new(self.signer.as_ref(), body), value)
    }
}

impl Bender<Msg> for Liar {
    fn drops(&mut self) -> bool {
        self.has(Lie::Silence) && self.rng.gen_bool(self.drop_rate)
    }

    fn bend_one(&mut self, msg: Msg) -> Msg {
        let signer = self.signer.clone();
        match msg {
            Message::Accepted(v, value) if self.has(Lie::Equivocate) && self.rng.gen_bool(0.5) => {
                let other = self.other_value(&v.body.digest);
                let _ = value;
                self.vote(v.body.view, v.body.slot, &other)
            }
            Message::Report(r, _) if self.has(Lie::LieInRecovery) && self.rng.gen_bool(0.5) => {
                self.false_report(r.body.slot, r.body.view)
            }
            Message::Choice(c, evidence, _)
                if self.has(Lie::LieInRecovery) && self.rng.gen_bool(0.5) =>
            {
                // Chooses another value under the same certificate.
                let other = self.other_value(&c.body.digest);
                let body = Choice {
                    digest: value_digest(&other),
                    ..c.body
                };
                Message::Choice(Signed::new(signer.as_ref(), body), evidence, other)
            }
            Message::Reply(r) if self.has(Lie::WrongReplies) => {
                let mut body = r.body;
                body.result += 1 + self.rng.gen_range(0..2);
                Message::Reply(Signed::new(signer.as_ref(), body))
            }
            Message::Lost(l) if self.has(Lie::WrongReplies) => {
                let body = Lost {
                    next: l.body.next + self.rng.gen_range(0..50),
                    ..l.body
                };
                Message::Lost(Signed::new(signer.as_ref(), body))
            }
            other => other,
        }
    }
}
