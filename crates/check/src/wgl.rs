//! The Wing–Gong–Lowe search with Lowe's memoization, as in Porcupine, plus reductions that
//! keep it near-linear on the histories a real system produces.
//!
//! The search walks the event list (`events.rs`) from its head: at a call it tries to
//! linearize that operation now (the register must allow its result) and, if so, lifts it out
//! of the list and starts again from the head; at a return it is stuck (that operation should
//! already have been linearized) and backtracks, taking back the last operation it linearized
//! and trying the next call after it. A configuration (`config.rs`) explored once is never
//! explored again.
//!
//! An operation with an unknown outcome never has to be linearized: the search succeeds as
//! soon as every operation with a known outcome is. Those without a deadline are kept out of
//! the list (`idle.rs`) and tried after the list's calls, only where they can matter.
//!
//! The reductions, each of which keeps "some order extends this configuration" unchanged
//! (the arguments are next to the code; `tests/properties.rs` holds the whole against a
//! brute-force checker):
//! - forced reads: a completed read whose result fits now is linearized without alternatives;
//! - doomed configurations: if an operation not yet linearized needs a value the register
//!   does not hold and nothing left can write, give up on the configuration at once
//!   (`supply.rs`);
//! - an operation with an unknown outcome is tried only when an operation that could go next
//!   needs its effect, and among interchangeable idle ones only the first.

use crate::config::Config;
use crate::events::{Events, NIL};
use crate::idle::{Idle, Sets};
use crate::model::{Action, State, ANY};
use crate::partition::KeyOp;
use crate::supply::Supply;
use crate::visited::Visited;
use std::time::Instant;

/// Why the search gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GaveUp {
    Steps,
    Time,
    Memory,
}

/// Bounds on one search.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_steps: u64,
    pub deadline: Option<Instant>,
    pub max_memory: usize,
}

/// The furthest the search got in a history that has no linearization.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Deepest {
    /// Operations (indices into the key's ops) in the order linearized.
    pub order: Vec<u32>,
    /// The operation that could not be linearized there.
    pub stuck: u32,
    /// The first operation whose return was still ahead there: the calls before that return
    /// were the candidates to go next.
    pub frontier: Option<u32>,
    /// The lowest rank not linearized there: how many returns the order got past.
    k: u32,
}

/// What one search concluded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Search {
    Linearizable,
    Violation(Deepest),
    GaveUp(GaveUp),
}

/// Where the search is.
#[derive(Clone, Copy)]
enum At {
    /// A configuration just reached: look ahead first.
    Fresh,
    /// Trying the list's calls from this node on.
    Scan(u32),
    /// Trying idle operations from this branch on (see `Idle::branch`).
    Idle(usize),
    /// The configuration failed: take back the last step.
    Backtrack,
}

/// What `look_ahead` found.
enum Ahead {
    /// Some operation can never be linearized from here.
    Doomed,
    /// This operation goes next, without alternatives.
    Forced(u32),
    Choose,
}

/// How to go on when a step is taken back.
#[derive(Clone, Copy)]
enum Resume {
    /// It was forced: the configuration before it fails too.
    Forced,
    /// With the list's next call after it.
    Scan,
    /// With this idle branch.
    Idle(usize),
}

struct Frame {
    op: u32,
    prev_state: State,
    prev_k: u32,
    prev_idle: u32,
    resume: Resume,
}

pub(crate) struct Searcher<'a> {
    ops: &'a [KeyOp],
    events: Events,
    idle: Idle,
    sets: Sets,
    config: Config,
    visited: Visited,
    stack: Vec<Frame>,
    /// Operations with a known outcome not yet linearized; the search succeeds at zero.
    remaining: usize,
    supply: Supply,
    /// Per operation, whether it is linearized.
    done: Vec<bool>,
    deepest: Option<Deepest>,
    at: At,

    /// How much of `deepest.order` still agrees with the stack, so that recording a deeper
    /// point copies only what changed (copying the whole stack each time would be O(n^2)).
    agrees: usize,
}

impl<'a> Searcher<'a> {
    /// A search for a linearization of `ops` from a register holding `initial`.
    pub(crate) fn new(ops: &'a [KeyOp], initial: State) -> Searcher<'a> {
        Searcher {
            ops,
            events: Events::new(ops, |i| !Idle::is_idle(&ops[i])),
            idle: Idle::new(ops),
            sets: Sets::new(),
            config: Config::new(initial),
            visited: Visited::new(),
            stack: Vec::new(),
            remaining: ops.iter().filter(|o| o.known).count(),
            supply: Supply::new(ops),
            done: vec![false; ops.len()],
            deepest: None,
            agrees: 0,
            at: At::Fresh,
        }
    }

    /// Searches until a verdict or a limit, counting into `steps`. After giving up on
    /// [`GaveUp::Steps`] it may be called again with a larger limit, and goes on where it
    /// stopped.
    pub(crate) fn run(&mut self, limits: &Limits, steps: &mut u64) -> Search {
        self.search(limits, steps).unwrap_or_else(Search::GaveUp)
    }

    fn search(&mut self, limits: &Limits, steps: &mut u64) -> Result<Search, GaveUp> {
        while self.remaining > 0 {
            if *steps >= limits.max_steps {
                return Err(GaveUp::Steps);
            }
            if *steps & 0xFFF == 0 && limits.deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(GaveUp::Time);
            }
            *steps += 1;
            self.at = match self.at {
                At::Fresh => match self.look_ahead() {
                    Ahead::Doomed => {
                        self.record_dead_end(|s| {
                            let done = |op: u32| s.done[op as usize];
                            s.supply.a_starved_reader(s.config.state(), done)
                        });
                        At::Backtrack
                    }
                    Ahead::Forced(op) => match self.linearize(op, Resume::Forced, limits)? {
                        true => At::Fresh,
                        // Explored before from here, and it failed: so does this one.
                        false => At::Backtrack,
                    },
                    Ahead::Choose => At::Scan(self.events.first()),
                },
                // No return ahead: impossible while a known operation is pending, but
                // harmless.
                At::Scan(NIL) => At::Idle(0),
                At::Scan(e) => {
                    let node = self.events.node(e);
                    if !node.call {
                        // The return of an operation not yet linearized: a dead end for the
                        // list's calls.
                        self.record_dead_end(|_| node.op);
                        At::Idle(0)
                    } else if (self.ops[node.op as usize].known || self.wanted(node.op))
                        && self.linearize(node.op, Resume::Scan, limits)?
                    {
                        At::Fresh
                    } else {
                        At::Scan(self.events.next(e))
                    }
                }
                At::Idle(i) => match self.idle.branch(self.config.state(), i) {
                    None => At::Backtrack,
                    Some(Some(op)) if self.invoked(op) && self.wanted(op) => {
                        match self.linearize(op, Resume::Idle(i + 1), limits)? {
                            true => At::Fresh,
                            false => At::Idle(i + 1),
                        }
                    }
                    Some(_) => At::Idle(i + 1),
                },
                At::Backtrack => match self.undo() {
                    None => return Ok(Search::Violation(self.deepest.take().unwrap_or_default())),
                    Some((_, Resume::Forced)) => At::Backtrack,
                    Some((op, Resume::Scan)) => {
                        At::Scan(self.events.next(self.events.call_node[op as usize]))
                    }
                    Some((_, Resume::Idle(i))) => At::Idle(i),
                },
            };
        }
        Ok(Search::Linearizable)
    }

    /// Looks at the calls that could go next.
    ///
    /// Doomed: some operation can no longer be linearized (see `supply.rs`).
    ///
    /// Forced: a completed read-only operation (a get, a failed CAS) whose result fits the
    /// register now. If any order extends the current one, so does one that puts it next: it
    /// may go now (every operation that returned before its call is already in the order),
    /// and, since wherever it fits it leaves the register as it is, moving it forward changes
    /// no state that others see. This is what keeps many concurrent readers from multiplying
    /// the orders to explore. (A write of the current value is not forced: where the order
    /// puts it, the register may hold something else.)
    fn look_ahead(&self) -> Ahead {
        let state = self.config.state();
        if self.supply.doomed(state) {
            return Ahead::Doomed;
        }
        self.events
            .candidates()
            .find(|n| {
                let op = &self.ops[n.op as usize];
                // From an unknown start a read is not read-only: it learns the value.
                state != ANY
                    && op.known
                    && op.action.is_read()
                    && op.action.step(state, true).is_some()
            })
            .map_or(Ahead::Choose, |n| Ahead::Forced(n.op))
    }

    /// Whether `op` has been invoked: its call comes before the first return still pending.
    fn invoked(&self, op: u32) -> bool {
        self.events.call_node[op as usize] < self.events.frontier()
    }

    /// Whether `op`, whose outcome is unknown, should be tried now: only if it would change
    /// the register and an operation that could go next needs that change: one that reads
    /// the new value, or a failed CAS that expects the old one. Otherwise it can wait: in any
    /// order where it goes now, it can instead go just before the first operation that needs
    /// it (or never, if none does), since everything in between sees the register the same
    /// either way. (Nothing in between writes, and anything that read the new value would be
    /// the first that needs it.) Waiting never misses a deadline: one comes from an operation
    /// that saw the new value, so it is not before the first that needs it. That first
    /// operation may itself be an idle CAS expecting the new value, which in turn waits for
    /// whatever needs it.
    ///
    /// Without this, an operation with an unknown outcome would be tried at every point from
    /// its call to its deadline (or the end of the history), multiplying the search.
    fn wanted(&self, op: u32) -> bool {
        let from = self.config.state();
        let Some(to) = self.ops[op as usize].action.step(from, false) else {
            return false;
        };
        if to == from {
            return false; // the same as never
        }
        let needs = |x: &KeyOp| match x.action {
            Action::Get(v) => x.known && v == to,
            Action::Cas { expected, ok, .. } => {
                (expected == to && (ok || !x.known)) || (x.known && !ok && expected == from)
            }
            Action::Put(_) => false,
        };
        self.events
            .candidates()
            .any(|n| n.op != op && needs(&self.ops[n.op as usize]))
            || self.idle.cas_expecting(to, |o| o != op && self.invoked(o))
    }

    /// Linearizes `op` next, if its result fits and the configuration it leads to is new.
    fn linearize(&mut self, op: u32, resume: Resume, limits: &Limits) -> Result<bool, GaveUp> {
        let o = &self.ops[op as usize];
        let (prev_state, prev_k, prev_idle) =
            (self.config.state(), self.config.k(), self.config.idle());
        let Some(next) = o.action.step(prev_state, o.known) else {
            return Ok(false);
        };
        let idle = Idle::is_idle(o);
        if idle {
            let set = self.sets.with(prev_idle, op);
            self.config.set_idle(set);
        } else {
            self.config.add(self.events.rank[op as usize]);
        }
        self.config.set_state(next);
        let new = self
            .visited
            .insert(self.config.key())
            .map_err(|_| GaveUp::Memory)?;
        if !new {
            self.restore(op, prev_state, prev_k, prev_idle);
            return Ok(false);
        }
        if self.visited.bytes() > limits.max_memory {
            return Err(GaveUp::Memory);
        }
        self.stack.push(Frame {
            op,
            prev_state,
            prev_k,
            prev_idle,
            resume,
        });
        if idle {
            self.idle.went(op, 1);
        } else {
            self.events.lift(op);
        }
        self.remaining -= usize::from(o.known);
        self.supply.went(o, 1);
        self.done[op as usize] = true;
        Ok(true)
    }

    /// Takes back the last step; `None` if there is none (the whole search failed).
    fn undo(&mut self) -> Option<(u32, Resume)> {
        let f = self.stack.pop()?;
        self.agrees = self.agrees.min(self.stack.len());
        let o = &self.ops[f.op as usize];
        if Idle::is_idle(o) {
            self.idle.went(f.op, -1);
        } else {
            self.events.unlift(f.op);
        }
        self.restore(f.op, f.prev_state, f.prev_k, f.prev_idle);
        self.remaining += usize::from(o.known);
        self.supply.went(o, -1);
        self.done[f.op as usize] = false;
        Some((f.op, f.resume))
    }

    /// Notes a dead end, where `stuck(self)` names the operation that could not go.
    /// Puts the configuration back as it was before `op` was added to it.
    fn restore(&mut self, op: u32, state: State, k: u32, idle: u32) {
        if Idle::is_idle(&self.ops[op as usize]) {
            self.config.set_idle(idle);
        } else {
            self.config.remove(self.events.rank[op as usize], k);
        }
        self.config.set_state(state);
    }

    fn record_dead_end(&mut self, stuck: impl Fn(&Self) -> u32) {
        // The furthest return reached (`k`) is what says how much of the history could be
        // explained; among orders that got as far, the one with the fewest operations
        // linearized ahead of time reads most naturally.
        let k = self.config.k();
        let better = match &self.deepest {
            Some(d) => k > d.k || (k == d.k && self.stack.len() < d.order.len()),
            None => true,
        };
        if !better {
            return;
        }
        let stuck = stuck(self);
        let f = self.events.frontier();
        let frontier = (f != NIL).then(|| self.events.node(f).op);
        let d = self.deepest.get_or_insert_with(Deepest::default);
        d.k = k;
        d.frontier = frontier;
        d.order.truncate(self.agrees);
        d.order
            .extend(self.stack[self.agrees..].iter().map(|f| f.op));
        self.agrees = self.stack.len();
        d.stuck = stuck;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(action: Action, call: u64, ret: Option<u64>) -> KeyOp {
        KeyOp {
            entry: 0,
            action,
            known: ret.is_some(),
            call,
            ret,
        }
    }

    fn search(ops: &[KeyOp], limits: &Limits, steps: &mut u64) -> Search {
        Searcher::new(ops, crate::model::ABSENT).run(limits, steps)
    }

    fn limits(max_steps: u64) -> Limits {
        Limits {
            max_steps,
            deadline: None,
            max_memory: 1 << 30,
        }
    }

    #[test]
    fn stale_read_reports_the_read_and_the_order_before_it() {
        let ops = [
            op(Action::Put(1), 0, Some(10)),
            op(Action::Put(2), 20, Some(30)),
            op(Action::Get(1), 40, Some(50)),
        ];
        let Search::Violation(d) = search(&ops, &limits(1000), &mut 0) else {
            panic!("accepted a stale read")
        };
        assert_eq!(d.order, [0, 1]);
        assert_eq!(d.stuck, 2);
    }

    #[test]
    fn an_idle_write_is_tried_where_it_is_needed() {
        let ops = [
            op(Action::Put(1), 0, Some(10)),
            op(Action::Put(2), 5, None),
            op(Action::Get(1), 20, Some(30)),
            op(Action::Get(2), 40, Some(50)),
            op(Action::Get(1), 60, Some(70)),
        ];
        assert!(matches!(
            search(&ops[..4], &limits(1000), &mut 0),
            Search::Linearizable
        ));
        assert!(matches!(
            search(&ops, &limits(1000), &mut 0),
            Search::Violation(_)
        ));
    }

    #[test]
    fn budget_runs_out() {
        let ops: Vec<KeyOp> = (0..100)
            .map(|i| op(Action::Put(1), i * 10, Some(i * 10 + 5)))
            .collect();
        assert_eq!(
            search(&ops, &limits(10), &mut 0),
            Search::GaveUp(GaveUp::Steps)
        );
    }
}
