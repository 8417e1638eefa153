//! A PBFT client: sends each request to every replica and takes a result once `f + 1`
//! replicas sent the same one, since at least one of them is correct and a correct replica
//! replies only with what it executed in the agreed order.

use super::messages::{Message, Output, PbftEffects, Request, Timer};
use crate::auth::{Signed, Signer, Verifier};
use crate::ballot::NodeId;
use crate::bugs::PlantedBug;
use crate::quorum::ByzantineQuorum;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::sync::Arc;

/// A client with a list of operations to run one after another.
pub struct Client<V, R> {
    signer: Arc<dyn Signer>,
    verifier: Arc<dyn Verifier>,
    replicas: Vec<NodeId>,
    /// Matching replies needed.
    needed: usize,
    retry_ticks: u64,
    /// Operations not yet sent, oldest first.
    ops: VecDeque<V>,
    /// Requests sent so far.
    sent: u64,
    /// Stamps are `first_stamp + k` for the k-th operation (from 1).
    first_stamp: u64,
    current: Option<Signed<Request<V>>>,
    replies: BTreeMap<NodeId, R>,
}

impl<V: Clone + Debug + Serialize, R: Clone + Eq + Debug + Serialize> Client<V, R> {
    /// A client that will run `ops`, retrying every `retry_ticks`.
    pub fn new(
        signer: Arc<dyn Signer>,
        verifier: Arc<dyn Verifier>,
        replicas: Vec<NodeId>,
        quorum: ByzantineQuorum,
        ops: Vec<V>,
        retry_ticks: u64,
        bug: Option<PlantedBug>,
    ) -> Self {
        let needed = match bug {
            Some(PlantedBug::PbftClientTakesF) => quorum.f().max(1),
            _ => quorum.weak(),
        };
        Client {
            signer,
            verifier,
            replicas,
            needed,
            retry_ticks,
            ops: ops.into(),
            sent: 0,
            first_stamp: 0,
            current: None,
            replies: BTreeMap::new(),
        }
    }

    /// Numbers this client's requests from `stamp + 1` on. Replicas execute a client's
    /// request only if its stamp is above the last one they executed for it, so a client that
    /// restarts under the same id must start above every stamp it used before (a clock reading
    /// does). Call before the first request.
    pub fn with_first_stamp(mut self, stamp: u64) -> Self {
        self.first_stamp = stamp;
        self
    }

    /// Adds `op` to the operations to run; sends it at once if nothing is in flight.
    pub fn submit(&mut self, op: V) -> PbftEffects<V, R> {
        self.ops.push_back(op);
        let mut fx = PbftEffects::new();
        if self.current.is_none() {
            self.send_next(&mut fx);
        }
        fx
    }

    /// Gives up on the request in flight, so that the next operation can go. Its outcome is
    /// unknown: replicas may still execute it, but never after the next one, whose stamp is
    /// higher.
    pub fn cancel(&mut self) {
        self.current = None;
        self.replies.clear();
    }

    /// The request in flight, if any.
    pub fn current(&self) -> Option<&Request<V>> {
        self.current.as_ref().map(|r| &r.body)
    }

    /// Sends the first request.
    pub fn start(&mut self) -> PbftEffects<V, R> {
        let mut fx = PbftEffects::new();
        self.send_next(&mut fx);
        fx
    }

    fn send_next(&mut self, fx: &mut PbftEffects<V, R>) {
        self.replies.clear();
        let Some(op) = self.ops.pop_front() else {
            self.current = None;
            return;
        };
        self.sent += 1;
        let body = Request {
            client: self.signer.id(),
            stamp: self.first_stamp.saturating_add(self.sent),
            op,
        };
        self.current = Some(Signed::new(self.signer.as_ref(), body));
        self.send_current(fx);
    }

    fn send_current(&self, fx: &mut PbftEffects<V, R>) {
        if let Some(r) = &self.current {
            fx.broadcast(&self.replicas, Message::Request(r.clone()));
            fx.arm(Timer::Retry, self.retry_ticks);
        }
    }

    /// A replica's reply: counted if signed by a replica, for the request in flight.
    pub fn on_message(&mut self, msg: Message<V, R>) -> PbftEffects<V, R> {
        let mut fx = PbftEffects::new();
        let (Message::Reply(reply), Some(current)) = (msg, &self.current) else {
            return fx;
        };
        let b = &reply.body;
        if b.client != current.body.client
            || b.stamp != current.body.stamp
            || !self.replicas.contains(&reply.from)
            || !reply.verify(self.verifier.as_ref())
        {
            return fx;
        }
        self.replies.insert(reply.from, b.result.clone());
        let matching = self.replies.values().filter(|r| **r == b.result).count();
        if matching >= self.needed {
            fx.output(Output::Done {
                stamp: current.body.stamp,
                op: current.body.op.clone(),
                result: b.result.clone(),
            });
            self.send_next(&mut fx);
        }
        fx
    }

    /// Sends the request in flight again.
    pub fn on_timer(&mut self, _kind: Timer) -> PbftEffects<V, R> {
        let mut fx = PbftEffects::new();
        self.send_current(&mut fx);
        fx
    }
}
