//! Byzantine replicas: a correct replica inside, and a strategy that bends what it sends and
//! adds what it invents. A liar holds only its own signing key, so what it says in its own name
//! verifies and what it says in others' does not (unless a planted bug stops the checks).

use crate::liars::Bender;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use synod_core::auth::{digest_of, Digest, Signed, Signer, SimSigner};
use synod_core::effects::Outgoing;
use synod_core::pbft::{
    order_digest, Checkpoint, Commit, Message, OpLog, PbftEffects, PrePrepare, Prepare, Prepared,
    Replica, Request, Status, Timer, ViewChange, NULL_DIGEST,
};
use synod_core::NodeId;

type Msg = Message<String, u64>;
type Fx = PbftEffects<String, u64>;

/// One way of lying. A liar draws one or more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lie {
    /// As primary, orders different requests at one slot for different replicas.
    Equivocate,
    /// Sends prepares and commits for every order it hears of, whatever it says.
    VoteForEverything,
    /// Sends orders, prepares, commits and checkpoints in other replicas' names, and orders
    /// whose digest is not their request's.
    Forge,
    /// Sends old messages of others again, to anyone.
    Replay,
    /// Drops some or all of what it should send.
    Silence,
    /// Reports false certificates in view changes, or a new view that drops orders; asks for
    /// view changes nobody needs.
    LieInViewChange,
    /// Answers clients with wrong results.
    WrongReplies,
}

impl Lie {
    const ALL: [Lie; 7] = [
        Lie::Equivocate,
        Lie::VoteForEverything,
        Lie::Forge,
        Lie::Replay,
        Lie::Silence,
        Lie::LieInViewChange,
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

/// A Byzantine replica.
pub struct Liar {
    inner: Replica<OpLog<String>>,
    lies: Vec<Lie>,
    rng: ChaCha8Rng,
    signer: Arc<SimSigner>,
    replicas: Vec<NodeId>,
    /// Genuine messages it heard, for replays.
    heard: Vec<Msg>,
    /// Genuine client requests it heard, to order or to forge orders of.
    requests: Vec<Signed<Request<String>>>,
    /// Orders it already voted for everywhere: it votes once for each, or two liars voting for
    /// everything would answer each other's votes without end.
    voted: BTreeSet<(u64, u64, Digest)>,
    /// Share of its messages a silent liar drops.
    drop_rate: f64,
}

impl Liar {
    /// A liar around `inner`.
    pub fn new(
        inner: Replica<OpLog<String>>,
        lies: Vec<Lie>,
        rng: ChaCha8Rng,
        signer: Arc<SimSigner>,
        replicas: Vec<NodeId>,
    ) -> Self {
        let mut liar = Liar {
            inner,
            lies,
            rng,
            signer,
            replicas,
            heard: Vec::new(),
            requests: Vec::new(),
            voted: BTreeSet::new(),
            drop_rate: 1.0,
        };
        liar.drop_rate = liar.rng.gen_range(0.3..=1.0);
        liar
    }

    /// The replica inside.
    pub fn inner(&self) -> &Replica<OpLog<String>> {
        &self.inner
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

    /// A timer of the replica inside; the status timer also paces replays and spurious view
    /// changes.
    pub fn on_timer(&mut self, kind: Timer) -> Fx {
        let mut fx = self.inner.on_timer(kind);
        if kind == Timer::Status {
            fx.send.extend(self.unprompted());
        }
        self.bend(fx)
    }

    fn remember(&mut self, msg: &Msg) {
        if let Message::Request(r) = msg {
            if !self.requests.contains(r) && self.requests.len() < 64 {
                self.requests.push(r.clone());
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
        self.replicas
            .iter()
            .filter(|&&r| r != self.signer.id())
            .map(|&to| Outgoing {
                to,
                msg: msg.clone(),
            })
            .collect()
    }

    fn victim(&mut self) -> NodeId {
        let me = self.signer.id();
        let others: Vec<NodeId> = self.replicas.iter().copied().filter(|&r| r != me).collect();
        *others.choose(&mut self.rng).expect("other replicas")
    }

    /// Another request than the one with `digest`, or none (a null order).
    fn other_request(&mut self, digest: &Digest) -> Option<Signed<Request<String>>> {
        let others: Vec<_> = self
            .requests
            .iter()
            .filter(|r| digest_of(&r.body) != *digest)
            .cloned()
            .collect();
        others.choose(&mut self.rng).cloned()
    }

    /// The primary of `view`.
    fn primary(&self, view: u64) -> NodeId {
        self.replicas[(view % self.replicas.len() as u64) as usize]
    }

    /// What it adds on hearing `msg`.
    fn react(&mut self, msg: &Msg) -> Vec<Outgoing<Msg>> {
        let mut out = Vec::new();
        let order = match msg {
            Message::PrePrepare(pp, _) => Some((pp.body.view, pp.body.seq, pp.body.digest)),
            Message::Prepare(p) => Some((p.body.view, p.body.seq, p.body.digest)),
            Message::Commit(c) => Some((c.body.view, c.body.seq, c.body.digest)),
            _ => None,
        };
        let Some((view, seq, digest)) = order else {
            return out;
        };
        let signer = self.signer.clone();
        if self.has(Lie::VoteForEverything) && self.voted.insert((view, seq, digest)) {
            let p = Signed::new(signer.as_ref(), Prepare { view, seq, digest });
            let c = Signed::new(signer.as_ref(), Commit { view, seq, digest });
            out.extend(self.to_all(Message::Prepare(p)));
            out.extend(self.to_all(Message::Commit(c)));
        }
        if self.has(Lie::Forge) && self.rng.gen_bool(0.3) {
            out.extend(self.forge_order(view, seq, digest));
        }
        out
    }

    /// A whole forged certificate for another request at `(view, seq)`, sent to one victim:
    /// the primary's order, everyone's prepares and commits, in their names.
    fn forge_order(&mut self, view: u64, seq: u64, digest: Digest) -> Vec<Outgoing<Msg>> {
        let request = self.other_request(&digest);
        let mut forged = order_digest(&request);
        let signer = self.signer.clone();
        let primary = self.primary(view);
        if self.rng.gen_bool(0.2) {
            // A wrong digest: the order names a digest its request does not have.
            forged[0] ^= 1;
        }
        let victim = self.victim();
        let mut out = Vec::new();
        let pp = PrePrepare {
            view,
            seq,
            digest: forged,
        };
        let pp = Signed::forged(signer.as_ref(), primary, pp);
        out.push(Outgoing {
            to: victim,
            msg: Message::PrePrepare(pp, request),
        });
        for &r in &self.replicas {
            let body = Prepare {
                view,
                seq,
                digest: forged,
            };
            let p = Signed::forged(signer.as_ref(), r, body);
            out.push(Outgoing {
                to: victim,
                msg: Message::Prepare(p),
            });
            let body = Commit {
                view,
                seq,
                digest: forged,
            };
            let c = Signed::forged(signer.as_ref(), r, body);
            out.push(Outgoing {
                to: victim,
                msg: Message::Commit(c),
            });
        }
        out
    }

    /// What it sends of its own accord, every status round.
    fn unprompted(&mut self) -> Vec<Outgoing<Msg>> {
        let mut out = Vec::new();
        if self.has(Lie::Replay) && !self.heard.is_empty() {
            for _ in 0..3 {
                let msg = self.heard[self.rng.gen_range(0..self.heard.len())].clone();
                let to = self.victim();
                out.push(Outgoing { to, msg });
            }
        }
        if self.has(Lie::LieInViewChange) && self.rng.gen_bool(0.2) {
            let (view, _) = self.inner.view();
            let vc = self.false_view_change(view + 1);
            out.extend(self.to_all(Message::ViewChange(vc)));
            // Claims to wait for the next view, which makes others relay their view changes
            // and new views for it, perhaps before the records behind them are durable.
            let status = Status {
                view: view + 1,
                changing: true,
                executed: self.inner.executed(),
                stable: self.inner.stable(),
            };
            let status = Signed::new(self.signer.as_ref(), status);
            out.extend(self.to_all(Message::Status(status)));
        }
        if self.has(Lie::LieInViewChange) && self.rng.gen_bool(0.05) {
            // A well-formed view change for the last view there is.
            let body = ViewChange {
                view: u64::MAX,
                stable: 0,
                proof: Vec::new(),
                prepared: Vec::new(),
            };
            let vc = Signed::new(self.signer.as_ref(), body);
            out.extend(self.to_all(Message::ViewChange(vc)));
        }
        if self.has(Lie::Equivocate) {
            out.extend(self.orders_below());
        }
        if self.has(Lie::Forge) && self.rng.gen_bool(0.3) {
            out.extend(self.forged_state());
        }
        out
    }

    /// As primary of a started view: fresh orders for slots already decided (at or below what
    /// it executed), each for another request, to a victim. A replica that lacks the state up
    /// to the new view's low-water mark must refuse them.
    fn orders_below(&mut self) -> Vec<Outgoing<Msg>> {
        let (view, changing) = self.inner.view();
        let me = self.signer.id();
        let primary = self.primary(view);
        let top = self.inner.executed();
        if changing || primary != me || top == 0 {
            return Vec::new();
        }
        let signer = self.signer.clone();
        let mut out = Vec::new();
        for _ in 0..2 {
            let seq = self.rng.gen_range(top.saturating_sub(8).max(1)..=top);
            let request = self.other_request(&NULL_DIGEST);
            let body = PrePrepare {
                view,
                seq,
                digest: order_digest(&request),
            };
            let pp = Signed::new(signer.as_ref(), body);
            out.extend(self.to_all(Message::PrePrepare(pp, request)));
        }
        out
    }

    /// A view change for `view` whose certificates claim another request at a slot, with
    /// prepares in others' names.
    fn false_view_change(&mut self, view: u64) -> Signed<ViewChange<String>> {
        let signer = self.signer.clone();
        let seq = self.inner.executed() + 1;
        let request = self.other_request(&NULL_DIGEST);
        let digest = order_digest(&request);
        let old = view.saturating_sub(1);
        let primary = self.primary(old);
        let pre_prepare = Signed::forged(
            signer.as_ref(),
            primary,
            PrePrepare {
                view: old,
                seq,
                digest,
            },
        );
        let prepares = self
            .replicas
            .iter()
            .filter(|&&r| r != primary)
            .map(|&r| {
                let body = Prepare {
                    view: old,
                    seq,
                    digest,
                };
                Signed::forged(signer.as_ref(), r, body)
            })
            .collect();
        let body = ViewChange {
            view,
            stable: self.inner.stable(),
            proof: Vec::new(),
            prepared: vec![Prepared {
                pre_prepare,
                request,
                prepares,
            }],
        };
        Signed::new(signer.as_ref(), body)
    }

    /// A state for a slot far ahead, with a forged proof.
    fn forged_state(&mut self) -> Vec<Outgoing<Msg>> {
        let signer = self.signer.clone();
        let mut fake = OpLog::<String>::default();
        fake.ops.push("forged".into());
        let state = postcard::to_stdvec(&(
            synod_core::pbft::Service::encode(&fake),
            std::collections::BTreeMap::<NodeId, ()>::new(),
        ))
        .expect("in memory");
        let seq = self.inner.executed() + 2;
        let body = Checkpoint {
            seq,
            state: digest_of(&state),
        };
        let proof = self
            .replicas
            .iter()
            .map(|&r| Signed::forged(signer.as_ref(), r, body))
            .collect();
        let to = self.victim();
        vec![Outgoing {
            to,
            msg: Message::State { proof, state },
        }]
    }
}

impl Bender<Msg> for Liar {
    fn drops(&mut self) -> bool {
        self.has(Lie::Silence) && self.rng.gen_bool(self.drop_rate)
    }

    fn bend_one(&mut self, msg: Msg) -> Msg {
        let signer = self.signer.clone();
        match msg {
            Message::PrePrepare(pp, request)
                if self.has(Lie::Equivocate) && self.rng.gen_bool(0.5) =>
            {
                let other = self.other_request(&pp.body.digest);
                let body = PrePrepare {
                    digest: order_digest(&other),
                    ..pp.body
                };
                let _ = request;
                Message::PrePrepare(Signed::new(signer.as_ref(), body), other)
            }
            Message::Reply(r) if self.has(Lie::WrongReplies) => {
                let mut body = r.body;
                body.result += 1 + self.rng.gen_range(0..2);
                Message::Reply(Signed::new(signer.as_ref(), body))
            }
            Message::ViewChange(vc) if self.has(Lie::LieInViewChange) && self.rng.gen_bool(0.5) => {
                if self.rng.gen_bool(0.5) {
                    // Omit every certificate.
                    let mut body = vc.body;
                    body.prepared.clear();
                    Message::ViewChange(Signed::new(signer.as_ref(), body))
                } else {
                    Message::ViewChange(self.false_view_change(vc.body.view))
                }
            }
            Message::NewView(nv) if self.has(Lie::LieInViewChange) && self.rng.gen_bool(0.5) => {
                // Re-issue every slot as a null request.
                let mut body = nv.body;
                for pp in &mut body.pre_prepares {
                    let b = PrePrepare {
                        digest: NULL_DIGEST,
                        ..pp.body
                    };
                    *pp = Signed::new(signer.as_ref(), b);
                }
                Message::NewView(Signed::new(signer.as_ref(), body))
            }
            other => other,
        }
    }
}
