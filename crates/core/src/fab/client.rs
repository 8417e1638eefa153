//! A Fast Byzantine client: proposes each request straight to every acceptor at the slot it
//! believes free, takes a result on `f + 1` matching replies (one of them is a correct
//! acceptor's), and moves its request to a later slot when `f + 1` acceptors say its slot went
//! to another value.

use super::messages::{FabEffects, Message, Output, Slot, Timer};
use crate::auth::{Signed, Signer, Verifier};
use crate::ballot::NodeId;
use crate::pbft::Request;
use crate::quorum::FastByzantineQuorum;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

/// A client with a list of operations to run one after another.
pub struct Client<V, R> {
    signer: Arc<dyn Signer>,
    verifier: Arc<dyn Verifier>,
    acceptors: Vec<NodeId>,
    /// Matching statements needed: `f + 1`.
    needed: usize,
    retry_ticks: u64,
    ops: Vec<V>,
    next: usize,
    current: Option<Signed<Request<V>>>,
    /// The slot the request in flight is proposed at.
    slot: Slot,
    /// Replies, per acceptor: slot and result.
    replies: BTreeMap<NodeId, (Slot, R)>,
    /// Acceptors that said the slot was lost, and the next slot each named.
    lost: BTreeMap<NodeId, Slot>,
}

impl<V: Clone + Debug + Serialize, R: Clone + Eq + Debug + Serialize> Client<V, R> {
    /// A client that will run `ops`, retrying every `retry_ticks`.
    pub fn new(
        signer: Arc<dyn Signer>,
        verifier: Arc<dyn Verifier>,
        acceptors: Vec<NodeId>,
        quorum: FastByzantineQuorum,
        ops: Vec<V>,
        retry_ticks: u64,
    ) -> Self {
        Client {
            signer,
            verifier,
            acceptors,
            needed: quorum.weak(),
            retry_ticks,
            ops,
            next: 0,
            current: None,
            slot: 1,
            replies: BTreeMap::new(),
            lost: BTreeMap::new(),
        }
    }

    /// The request in flight, if any, and the slot it is proposed at.
    pub fn current(&self) -> Option<(&Request<V>, Slot)> {
        self.current.as_ref().map(|r| (&r.body, self.slot))
    }

    /// Sends the first request.
    pub fn start(&mut self) -> FabEffects<V, R> {
        let mut fx = FabEffects::new();
        self.send_next(&mut fx);
        fx
    }

    fn send_next(&mut self, fx: &mut FabEffects<V, R>) {
        self.replies.clear();
        self.lost.clear();
        let Some(op) = self.ops.get(self.next).cloned() else {
            self.current = None;
            return;
        };
        self.next += 1;
        let body = Request {
            client: self.signer.id(),
            stamp: self.next as u64,
            op,
        };
        self.current = Some(Signed::new(self.signer.as_ref(), body));
        self.send_current(fx);
    }

    fn send_current(&self, fx: &mut FabEffects<V, R>) {
        if let Some(r) = &self.current {
            let msg = Message::Propose {
                slot: self.slot,
                request: r.clone(),
            };
            fx.broadcast(&self.acceptors, msg);
            fx.arm(Timer::Retry, self.retry_ticks);
        }
    }

    /// An acceptor's reply or loss notice, counted if signed by an acceptor, for the request
    /// in flight.
    pub fn on_message(&mut self, msg: Message<V, R>) -> FabEffects<V, R> {
        let mut fx = FabEffects::new();
        let Some(current) = &self.current else {
            return fx;
        };
        let (client, stamp) = (current.body.client, current.body.stamp);
        match msg {
            Message::Reply(reply) => {
                let b = &reply.body;
                if b.client != client
                    || b.stamp != stamp
                    || !self.acceptors.contains(&reply.from)
                    || !reply.verify(self.verifier.as_ref())
                {
                    return fx;
                }
                let said = (b.slot, b.result.clone());
                self.replies.insert(reply.from, said.clone());
                let matching = self.replies.values().filter(|r| **r == said).count();
                if matching >= self.needed {
                    fx.output(Output::Done {
                        stamp,
                        op: current.body.op.clone(),
                        result: said.1,
                    });
                    self.slot = said.0 + 1;
                    self.send_next(&mut fx);
                }
            }
            Message::Lost(lost) => {
                let b = lost.body;
                if b.client != client
                    || b.stamp != stamp
                    || b.slot != self.slot
                    || !self.acceptors.contains(&lost.from)
                    || !lost.verify(self.verifier.as_ref())
                {
                    return fx;
                }
                self.lost.insert(lost.from, b.next);
                if self.lost.len() >= self.needed {
                    // The smallest of f + 1 hints is at most a correct acceptor's.
                    let hint = self.lost.values().min().copied().unwrap_or(0);
                    self.slot = (self.slot + 1).max(hint);
                    self.lost.clear();
                    self.replies.clear();
                    self.send_current(&mut fx);
                }
            }
            _ => {}
        }
        fx
    }

    /// Sends the request in flight again.
    pub fn on_timer(&mut self, _kind: Timer) -> FabEffects<V, R> {
        let mut fx = FabEffects::new();
        self.send_current(&mut fx);
        fx
    }
}
