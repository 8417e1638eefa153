//! Client lanes: how a node turns requests from many gRPC clients into the replica's exactly-once
//! sessions.
//!
//! Exactly-once needs a client id and a sequence number per command, with one command in flight
//! per client id. The node runs many "lanes": each proposal takes a free lane, so concurrency is
//! bounded by the lane count and the session table by lanes per boot. A lane's client id holds
//! the node id and the boot epoch, so no two nodes and no two boots of one node share one. A
//! lane's next command takes the next sequence number, even after one that timed out and may
//! still be chosen: the replicas skip a lane's command whose number is below one already applied,
//! and replies are matched by number, so the late one can neither run after the new one nor
//! answer it.

use crate::Ticket;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use synod_core::multi::{ClientId, Command};
use synod_core::NodeId;
use synod_kv::KvCommand;

/// Lanes per node.
pub const LANES: u64 = 4096;

/// A command waiting for its reply.
#[derive(Debug)]
struct Waiting {
    cmd: Command<KvCommand>,
    /// Who to answer (`None`: the node's own command, such as a lease expiry).
    ticket: Option<Ticket>,
    submitted_tick: u64,
    first_tick: u64,
    /// Where the replica sent it when last handed it ([`Lanes::sent`]): this node (it led or
    /// stood), the leader it followed, or nowhere yet (`None`).
    route: Option<NodeId>,
}

/// What the periodic check of waiting commands decided.
#[derive(Debug, Default)]
pub struct Due {
    /// Commands to hand to the replica again (same client id and number: applied at most once).
    pub resubmit: Vec<Command<KvCommand>>,
    /// Commands given up on: their clients are told the request timed out. The command may
    /// still be chosen later.
    pub gave_up: Vec<Option<Ticket>>,
}

/// The node's lanes.
#[derive(Debug)]
pub struct Lanes {
    node: NodeId,
    boot: u64,
    free: Vec<u64>,
    seq: Vec<u64>,
    waiting: BTreeMap<(ClientId, u64), Waiting>,
    retry: VecDeque<(ClientId, u64)>,
}

impl Lanes {
    /// Every lane free, for `node` in boot epoch `boot`.
    pub fn new(node: NodeId, boot: u64) -> Self {
        Lanes {
            node,
            boot,
            free: (0..LANES).rev().collect(),
            seq: vec![0; LANES as usize],
            waiting: BTreeMap::new(),
            retry: VecDeque::new(),
        }
    }

    /// The client id of `lane`: node, boot epoch (20 bits) and lane (24 bits).
    pub fn client_id(&self, lane: u64) -> ClientId {
        (self.node << 48) | ((self.boot & 0xF_FFFF) << 24) | lane
    }

    fn lane_of(client: ClientId) -> u64 {
        client & 0xFF_FFFF
    }

    /// Lanes free now.
    pub fn free(&self) -> usize {
        self.free.len()
    }

    /// Takes a free lane for `op` (answer `ticket`); `None` when every lane is busy.
    pub fn take(
        &mut self,
        op: KvCommand,
        ticket: Option<Ticket>,
        now: u64,
    ) -> Option<Command<KvCommand>> {
        let lane = self.free.pop()?;
        self.seq[lane as usize] += 1;
        let cmd = Command {
            client: self.client_id(lane),
            seq: self.seq[lane as usize],
            op,
        };
        self.waiting.insert(
            (cmd.client, cmd.seq),
            Waiting {
                cmd: cmd.clone(),
                ticket,
                submitted_tick: now,
                first_tick: now,
                route: None,
            },
        );
        Some(cmd)
    }

    /// The reply to `(client, seq)` arrived: frees its lane and returns who to answer, if it is
    /// still waiting (`Some(None)`: the node's own command).
    pub fn complete(&mut self, client: ClientId, seq: u64) -> Option<Option<Ticket>> {
        let w = self.waiting.remove(&(client, seq))?;
        self.free.push(Self::lane_of(client));
        Some(w.ticket)
    }

    /// The replica knew no leader for `(client, seq)`: submit it again at the next check.
    pub fn retry_later(&mut self, client: ClientId, seq: u64) {
        if let Some(w) = self.waiting.get_mut(&(client, seq)) {
            w.route = None;
        }
        self.retry.push_back((client, seq));
    }

    /// `cmds` are handed to the replica now, which sends them to `route` (see [`Lanes::reroute`]).
    pub fn sent(&mut self, cmds: &[Command<KvCommand>], route: Option<NodeId>) {
        for c in cmds {
            if let Some(w) = self.waiting.get_mut(&(c.client, c.seq)) {
                w.route = route;
            }
        }
    }

    /// The waiting commands last sent elsewhere than `route`, where the replica sends commands
    /// now: they are to be handed to it again at once (and count as submitted now). A leader
    /// that dies, or is deposed, or a candidate that loses, never answers what it was sent or
    /// queued; without this they would wait for the resubmit timer (an election timeout).
    pub fn reroute(&mut self, route: NodeId, now: u64) -> Vec<Command<KvCommand>> {
        let mut cmds = Vec::new();
        for w in self.waiting.values_mut() {
            if w.route != Some(route) {
                w.route = Some(route);
                w.submitted_tick = now;
                cmds.push(w.cmd.clone());
            }
        }
        // Those told "no leader" are among them: not again at the next check.
        self.retry.clear();
        cmds
    }

    /// How many waiting commands were last sent elsewhere than `route`.
    pub fn misrouted(&self, route: NodeId) -> usize {
        self.waiting
            .values()
            .filter(|w| w.route != Some(route))
            .count()
    }

    /// Commands submitted `resubmit_ticks` ago or told "no leader" are submitted again;
    /// those first submitted `give_up_ticks` ago are given up, and their lanes freed (kept
    /// retired, every lane of a node cut off long enough would be used up until a restart).
    /// The commands resubmitted are sent to `route`.
    pub fn due(
        &mut self,
        now: u64,
        resubmit_ticks: u64,
        give_up_ticks: u64,
        route: Option<NodeId>,
    ) -> Due {
        let stale: BTreeSet<(ClientId, u64)> = self
            .waiting
            .iter()
            .filter(|(_, w)| now - w.submitted_tick >= resubmit_ticks)
            .map(|(k, _)| *k)
            .chain(self.retry.drain(..))
            .collect();
        let mut due = Due::default();
        for key in stale {
            let Some(w) = self.waiting.get_mut(&key) else {
                continue;
            };
            if now - w.first_tick >= give_up_ticks {
                let w = self.waiting.remove(&key).expect("present");
                self.free.push(Self::lane_of(key.0));
                due.gave_up.push(w.ticket);
                continue;
            }
            w.submitted_tick = now;
            w.route = route;
            due.resubmit.push(w.cmd.clone());
        }
        due
    }

    /// Every waiting command's ticket, for a node that stops.
    pub fn drain(&mut self) -> Vec<Ticket> {
        let tickets = self.waiting.values().filter_map(|w| w.ticket).collect();
        self.waiting.clear();
        tickets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_kv::PutRequest;

    fn put() -> KvCommand {
        KvCommand::Put(PutRequest::default())
    }

    #[test]
    fn client_ids_differ_across_nodes_and_boots() {
        let a = Lanes::new(1, 1).client_id(5);
        let b = Lanes::new(1, 2).client_id(5);
        let c = Lanes::new(2, 1).client_id(5);
        assert!(a != b && a != c && b != c);
    }

    #[test]
    fn a_lane_is_reused_with_the_next_number_after_a_reply_or_a_give_up() {
        let mut l = Lanes::new(1, 1);
        let c1 = l.take(put(), Some(10), 0).unwrap();
        assert_eq!(l.free(), LANES as usize - 1);
        assert_eq!(l.complete(c1.client, c1.seq), Some(Some(10)));
        assert_eq!(l.complete(c1.client, c1.seq), None, "answered once");
        let c2 = l.take(put(), Some(11), 0).unwrap();
        assert_eq!((c2.client, c2.seq), (c1.client, c1.seq + 1));
        // Resubmitted after 5 ticks, given up after 20.
        assert!(l.due(4, 5, 20, None).resubmit.is_empty());
        let d = l.due(5, 5, 20, None);
        assert_eq!(d.resubmit, vec![c2.clone()]);
        assert!(
            l.due(6, 5, 20, None).resubmit.is_empty(),
            "not again at once"
        );
        let d = l.due(20, 5, 20, None);
        assert_eq!(d.gave_up, vec![Some(11)]);
        assert_eq!(l.free(), LANES as usize);
        let c3 = l.take(put(), None, 21).unwrap();
        assert_eq!((c3.client, c3.seq), (c1.client, c1.seq + 2));
    }

    #[test]
    fn a_freed_lane_is_the_one_taken_next_and_busy_lanes_never_share_a_client_id() {
        let mut l = Lanes::new(1, 1);
        let a = l.take(put(), Some(1), 0).unwrap();
        let b = l.take(put(), Some(2), 0).unwrap();
        assert_ne!(a.client, b.client);
        // Freeing the second lane (a reply, then a give-up) hands that very lane out again,
        // while the first is still busy.
        assert_eq!(l.complete(b.client, b.seq), Some(Some(2)));
        let c = l.take(put(), Some(3), 1).unwrap();
        assert_eq!((c.client, c.seq), (b.client, b.seq + 1));
        assert_ne!(c.client, a.client);
        assert_eq!(l.complete(a.client, a.seq), Some(Some(1)));
        assert_eq!(l.due(100, 50, 50, None).gave_up, vec![Some(3)]);
        let d = l.take(put(), None, 101).unwrap();
        let e = l.take(put(), None, 101).unwrap();
        assert_eq!(
            [(d.client, d.seq), (e.client, e.seq)],
            [(b.client, b.seq + 2), (a.client, a.seq + 1)]
        );
    }

    #[test]
    fn a_stopping_node_answers_every_waiting_client_once() {
        let mut l = Lanes::new(1, 1);
        l.take(put(), Some(7), 0).unwrap();
        l.take(put(), None, 0).unwrap();
        l.take(put(), Some(9), 0).unwrap();
        let mut t = l.drain();
        t.sort();
        assert_eq!(t, vec![7, 9], "the node's own command has no client");
        assert!(l.drain().is_empty());
    }

    #[test]
    fn a_command_told_no_leader_is_resubmitted_at_the_next_check() {
        let mut l = Lanes::new(1, 1);
        let c = l.take(put(), Some(1), 0).unwrap();
        l.retry_later(c.client, c.seq);
        assert_eq!(l.due(1, 100, 1000, None).resubmit, vec![c]);
    }

    #[test]
    fn commands_sent_elsewhere_are_handed_back_once_when_the_route_changes() {
        let mut l = Lanes::new(1, 1);
        let a = l.take(put(), Some(1), 0).unwrap();
        let b = l.take(put(), Some(2), 0).unwrap();
        let c = l.take(put(), Some(3), 0).unwrap();
        l.sent(&[a.clone(), b.clone()], Some(2));
        l.sent(std::slice::from_ref(&c), Some(3));
        assert_eq!(l.misrouted(2), 1, "only the one sent to 3");
        assert_eq!(l.reroute(2, 7), vec![c.clone()]);
        assert_eq!(l.misrouted(2), 0);
        assert!(l.reroute(2, 8).is_empty(), "handed back once");
        // A new leader: everything still waiting goes to it, and counts as submitted then.
        assert_eq!(l.complete(a.client, a.seq), Some(Some(1)));
        assert_eq!(l.reroute(3, 9), vec![b.clone(), c.clone()]);
        assert!(l.due(9 + 4, 5, 100, Some(3)).resubmit.is_empty());
        assert_eq!(l.due(9 + 5, 5, 100, Some(3)).resubmit, vec![b.clone(), c]);
        // Told "no leader": nowhere, so a known route takes it again.
        l.retry_later(b.client, b.seq);
        assert_eq!(l.misrouted(3), 1);
        assert_eq!(l.reroute(3, 20), vec![b]);
        assert!(l.due(21, 10, 100, Some(3)).resubmit.is_empty(), "sent once");
    }
}
