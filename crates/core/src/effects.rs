//! The output of every protocol step.
//!
//! # The persist-before-send contract
//!
//! Everything a step puts in [`Effects::persist`] must be durable (written and synced) **before
//! any message in [`Effects::send`] leaves the node and before any output in
//! [`Effects::output`] is acted on** (for example, before a client is told its command
//! committed). An acceptor's promise or vote that a peer has counted must survive a crash of the
//! acceptor; otherwise, after a restart, it could promise or vote again differently and two values
//! could be chosen.
//!
//! Drivers may batch the persists of many steps into one sync (group commit) as long as the
//! messages and outputs of each of those steps wait for that sync. Persist records of one step
//! are applied in order.
//!
//! Timers are requests to call the instance's timer handler after a number of ticks; arming a
//! timer kind that is already armed replaces its deadline, so a driver keeps at most one
//! deadline per kind per node. A crash drops every armed timer.

/// A message addressed to one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing<M> {
    /// The destination.
    pub to: crate::NodeId,
    /// The message.
    pub msg: M,
}

/// A request to fire timer `kind` after `after` ticks (replacing an earlier request for `kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerRequest<T> {
    /// Which timer.
    pub kind: T,
    /// Ticks from now; at least 1.
    pub after: u64,
}

/// What a step asks its driver to do: persist `P`, then send `M` and act on outputs `O`; arm
/// timers `T`. See the module documentation for the ordering contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effects<M, P, O, T> {
    /// State to make durable before anything else of this step happens.
    pub persist: Vec<P>,
    /// Messages to send, after `persist` is durable.
    pub send: Vec<Outgoing<M>>,
    /// Outputs (decisions, client replies), after `persist` is durable.
    pub output: Vec<O>,
    /// Timers to (re)arm.
    pub timers: Vec<TimerRequest<T>>,
}

impl<M, P, O, T> Default for Effects<M, P, O, T> {
    fn default() -> Self {
        Effects {
            persist: Vec::new(),
            send: Vec::new(),
            output: Vec::new(),
            timers: Vec::new(),
        }
    }
}

impl<M, P, O, T> Effects<M, P, O, T> {
    /// No effects.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `msg` for `to`.
    pub fn send(&mut self, to: crate::NodeId, msg: M) {
        self.send.push(Outgoing { to, msg });
    }

    /// Queues a copy of `msg` for every node in `to`.
    pub fn broadcast<'a>(&mut self, to: impl IntoIterator<Item = &'a crate::NodeId>, msg: M)
    where
        M: Clone,
    {
        for &n in to {
            self.send(n, msg.clone());
        }
    }

    /// Asks for `record` to be made durable before this step's messages leave.
    pub fn persist(&mut self, record: P) {
        self.persist.push(record);
    }

    /// Emits an output.
    pub fn output(&mut self, out: O) {
        self.output.push(out);
    }

    /// Arms timer `kind` to fire after `after` ticks (at least one).
    pub fn arm(&mut self, kind: T, after: u64) {
        self.timers.push(TimerRequest {
            kind,
            after: after.max(1),
        });
    }

    /// True when the step asked for nothing.
    pub fn is_empty(&self) -> bool {
        self.persist.is_empty()
            && self.send.is_empty()
            && self.output.is_empty()
            && self.timers.is_empty()
    }

    /// Appends everything `other` asked for after what `self` asked for.
    pub fn extend(&mut self, other: Effects<M, P, O, T>) {
        self.persist.extend(other.persist);
        self.send.extend(other.send);
        self.output.extend(other.output);
        self.timers.extend(other.timers);
    }
}
