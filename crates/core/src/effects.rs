//! The output of every protocol step.
//!
//! # The persist-before-send contract
//!
//! An acceptor's promise or vote that a peer has counted must survive a crash of the acceptor;
//! otherwise, after a restart, it could promise or vote again differently and two values could
//! be chosen. The protocol, not the driver, knows which messages reveal such state, so every
//! step sorts its messages itself:
//!
//! - [`Effects::send_after_sync`]: messages that reveal durable state (a promise, a vote, a
//!   prepare for a ballot this node just promised itself). They leave only once every record of
//!   this step **and of every earlier step** is durable (written and synced).
//! - [`Effects::send`]: messages that reveal nothing a crash could take back (an accept, which
//!   the leader's own durable promise already covers; a heartbeat; a read probe). They may
//!   leave at once, so that a leader's disk and its followers' disks write in parallel.
//!
//! Outputs ([`Effects::output`]) rest on values chosen by durable votes and may be acted on at
//! once. Drivers may batch the persists of many steps into one sync (group commit) as long as
//! each step's `send_after_sync` waits for the sync that covers it. Persist records of one step
//! are applied in order. No driver re-derives this rule from message kinds: it reads the two
//! lists.
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

/// What a step asks its driver to do: persist `P`, send `M` (some at once, some once `P` is
/// durable), act on outputs `O`, arm timers `T`. See the module documentation for the ordering
/// contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effects<M, P, O, T> {
    /// State to make durable, in order.
    pub persist: Vec<P>,
    /// Messages that may leave at once.
    pub send: Vec<Outgoing<M>>,
    /// Messages that leave only once `persist`, and every earlier step's persists, are durable.
    pub send_after_sync: Vec<Outgoing<M>>,
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
            send_after_sync: Vec::new(),
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

    /// Queues `msg` for `to`, free to leave at once.
    pub fn send(&mut self, to: crate::NodeId, msg: M) {
        self.send.push(Outgoing { to, msg });
    }

    /// Queues `msg` for `to`, to leave only once this step's records (and every earlier step's)
    /// are durable: the message reveals them.
    pub fn send_after_sync(&mut self, to: crate::NodeId, msg: M) {
        self.send_after_sync.push(Outgoing { to, msg });
    }

    /// Queues a copy of `msg` for every node in `to`, free to leave at once.
    pub fn broadcast<'a>(&mut self, to: impl IntoIterator<Item = &'a crate::NodeId>, msg: M)
    where
        M: Clone,
    {
        for &n in to {
            self.send(n, msg.clone());
        }
    }

    /// Queues a copy of `msg` for every node in `to`, each to leave once this step's records are
    /// durable.
    pub fn broadcast_after_sync<'a>(
        &mut self,
        to: impl IntoIterator<Item = &'a crate::NodeId>,
        msg: M,
    ) where
        M: Clone,
    {
        for &n in to {
            self.send_after_sync(n, msg.clone());
        }
    }

    /// Takes out the messages free to leave at once that are addressed to `me` (a process with
    /// collapsed roles hands them to itself within the step), in order; the rest stay.
    pub fn take_sends_to(&mut self, me: crate::NodeId) -> Vec<M> {
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.send)
            .into_iter()
            .partition(|o| o.to == me);
        self.send = rest;
        mine.into_iter().map(|o| o.msg).collect()
    }

    /// Every message of the step, those free to leave at once first.
    pub fn all_sends(&self) -> impl Iterator<Item = &Outgoing<M>> {
        self.send.iter().chain(&self.send_after_sync)
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
            && self.send_after_sync.is_empty()
            && self.output.is_empty()
            && self.timers.is_empty()
    }

    /// Appends everything `other` asked for after what `self` asked for.
    pub fn extend(&mut self, other: Effects<M, P, O, T>) {
        self.persist.extend(other.persist);
        self.send.extend(other.send);
        self.send_after_sync.extend(other.send_after_sync);
        self.output.extend(other.output);
        self.timers.extend(other.timers);
    }
}
