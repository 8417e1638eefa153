//! Client traffic: picking operations, sending them, and judging the answers (durability of
//! acknowledged writes; the history for the linearizability check).

use super::clients::{Answer, ClientOp, Request, CLIENT_BASE};
use super::{Event, MultiSim};
use crate::history::OpRecord;
use crate::report::Violation;
use crate::trace::TraceEvent;
use rand::seq::SliceRandom;
use rand::Rng;
use synod_node::Ticket;

impl MultiSim {
    fn client_index(client: u64) -> usize {
        (client - CLIENT_BASE) as usize
    }

    /// The client picks its next operation and sends it.
    pub(super) fn client_next(&mut self, client: u64) {
        let i = Self::client_index(client);
        if self.clients[i].done >= self.cfg.ops_per_client || self.clients[i].pending.is_some() {
            return;
        }
        let key = self.keys.choose(&mut self.world.rng).expect("keys").clone();
        let read = self.world.rng.gen_bool(self.swarm.reads);
        let put = self.world.rng.gen_bool(0.5);
        let by_index = self.world.rng.gen_bool(self.swarm.index_reads);
        if self.world.rng.gen_bool(self.swarm.wander) {
            let members = self.members();
            self.clients[i].target = *members.choose(&mut self.world.rng).expect("a member");
        }
        let c = &mut self.clients[i];
        let op = match (read, put) {
            (true, _) => ClientOp::Get(key),
            (false, true) => ClientOp::Put(key, c.fresh_value()),
            (false, false) => ClientOp::Cas {
                expected: c.last_seen.get(&key).cloned().flatten(),
                new: c.fresh_value(),
                key,
            },
        };
        // Ground truth accepts in the log only what some client asked for.
        if let Request::Propose(cmd) = op.request(false) {
            self.truth.issued(&cmd);
        }
        let by_index = by_index && !op.is_write();
        let t = self.world.now;
        let what = format!("invoke {op:?}");
        self.world
            .trace
            .record(|| TraceEvent::Client { t, client, what });
        c.pending = Some(super::clients::Pending {
            op,
            call: t,
            ticket: 0,
            by_index,
            floor: self.seen_revision,
        });
        self.client_send(i);
    }

    fn client_send(&mut self, i: usize) {
        let c = &mut self.clients[i];
        let ticket = c.next_ticket();
        let Some(p) = c.pending.as_mut() else { return };
        p.ticket = ticket;
        let req = p.op.request(p.by_index);
        let (from, to) = (c.id, c.target);
        self.world.send_stream(
            from,
            to,
            req,
            |r| format!("request {ticket:#x}: {r:?}"),
            |req| Event::Request {
                node: to,
                ticket,
                req,
            },
        );
        let timeout = self.cfg.client_timeout;
        self.world.after(timeout, Event::ClientTimeout { ticket });
    }

    /// The pending operation of the client `ticket` belongs to, if `ticket` is its current
    /// attempt (not a late or duplicate answer).
    fn current(&self, ticket: Ticket) -> Option<usize> {
        let client = super::clients::Client::of(ticket);
        if client < CLIENT_BASE {
            return None;
        }
        let i = Self::client_index(client);
        let c = self.clients.get(i)?;
        (c.pending.as_ref()?.ticket == ticket).then_some(i)
    }

    pub(super) fn client_resend(&mut self, ticket: Ticket) {
        if let Some(i) = self.current(ticket) {
            self.client_send(i);
        }
    }

    pub(super) fn client_timeout(&mut self, ticket: Ticket) -> Result<(), Violation> {
        let Some(i) = self.current(ticket) else {
            return Ok(());
        };
        self.failed(i)
    }

    /// The attempt failed or went unanswered. A read is asked again of the next node; a write
    /// may or may not have taken effect: it is recorded as such, and the client moves on.
    fn failed(&mut self, i: usize) -> Result<(), Violation> {
        let members = self.members();
        let c = &mut self.clients[i];
        c.next_target(&members);
        let p = c.pending.as_ref().expect("pending");
        if !p.op.is_write() {
            let ticket = p.ticket;
            self.world.after(10, Event::ClientResend { ticket });
            return Ok(());
        }
        let p = c.pending.take().expect("pending");
        let op =
            p.op.history(None)
                .map_err(|detail| self.bad_answer(detail))?;
        self.history.push(OpRecord {
            client: self.clients[i].id,
            op,
            call: p.call,
            ret: None,
        });
        let think = self.world.rng.gen_range(0..=self.swarm.think);
        let client = self.clients[i].id;
        self.world.after(think, Event::ClientNext { client });
        Ok(())
    }

    fn bad_answer(&self, detail: String) -> Violation {
        Violation {
            check: "client",
            at: self.world.now,
            detail,
        }
    }

    /// A node's answer reaches its client.
    pub(super) fn on_answer(&mut self, ticket: Ticket, answer: Answer) -> Result<(), Violation> {
        let Some(i) = self.current(ticket) else {
            return Ok(()); // a late or duplicate answer
        };
        if matches!(answer, Answer::Read(Err(_)) | Answer::Write(Err(_))) {
            return self.failed(i);
        }
        let p = self.clients[i].pending.take().expect("current");
        let op =
            p.op.history(Some(&answer))
                .map_err(|d| self.bad_answer(d))?;
        // Freshness: every answer carries the store revision it was served at (etcd's response
        // header). An operation that began after another was answered must be served from a
        // state at least as new, on any key: a linearizable store has one timeline.
        let revision = match &answer {
            Answer::Read(Ok((rev, _))) => *rev,
            Answer::Write(Ok(o)) => o.revision,
            _ => unreachable!("failures were handled above"),
        };
        if revision < p.floor {
            return Err(Violation {
                check: "linearizability",
                at: self.world.now,
                detail: format!(
                    "client {} began {:?} at t={} after an answer at revision {}, but was \
                     answered from revision {revision}: a stale state",
                    self.clients[i].id, p.op, p.call, p.floor
                ),
            });
        }
        self.seen_revision = self.seen_revision.max(revision);
        // Durability: an acknowledged write is chosen, hence in every later decided log.
        if let (true, Request::Propose(cmd)) = (p.op.is_write(), p.op.request(false)) {
            if self.truth.placed(&cmd).is_none() {
                return Err(Violation {
                    check: "durability",
                    at: self.world.now,
                    detail: format!(
                        "client {} was told {:?} committed, but it was never chosen",
                        self.clients[i].id, p.op
                    ),
                });
            }
        }
        let c = &mut self.clients[i];
        match &op {
            crate::history::HistoryOp::Get { key, value } => {
                c.last_seen.insert(key.clone(), value.clone());
            }
            crate::history::HistoryOp::Put { key, value } => {
                c.last_seen.insert(key.clone(), Some(value.clone()));
            }
            crate::history::HistoryOp::Cas { key, new, ok, .. } if *ok => {
                c.last_seen.insert(key.clone(), Some(new.clone()));
            }
            _ => {}
        }
        c.done += 1;
        let client = c.id;
        self.world.stats.ops += 1;
        let t = self.world.now;
        let what = format!("ok {op:?}");
        self.world
            .trace
            .record(|| TraceEvent::Client { t, client, what });
        self.history.push(OpRecord {
            client,
            op,
            call: p.call,
            ret: Some(t),
        });
        let think = self.world.rng.gen_range(0..=self.swarm.think);
        self.world.after(think, Event::ClientNext { client });
        Ok(())
    }
}
