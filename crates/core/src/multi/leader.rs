//! The proposer role of a Multi-Paxos replica, in its two phases: a [`Scout`] runs phase 1 once
//! for the whole log suffix, and an [`Active`] leader then runs only phase 2, one slot at a time,
//! with a window of slots in flight.

use super::membership::{ChangeId, MemberOp};
use super::messages::{ClientId, Command, PromiseEntry, Slot, Value, ValueDigest};
use super::reads::Reads;
use crate::ballot::{Ballot, NodeId};
use crate::quorum::{fewest_for_phase2, QuorumSystem};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// Phase 1 in progress: gathering promises for `ballot` covering every slot from `from` on.
#[derive(Clone, Debug)]
pub struct Scout<C> {
    /// The ballot being prepared.
    pub ballot: Ballot,
    /// First slot the prepare covers (the candidate's commit point).
    pub from: Slot,
    promises: Promises<C>,
    /// Client commands that arrived during the election, proposed once it is won.
    pub queue: VecDeque<Command<C>>,
}

/// The promises for one ballot, each with the votes it reported for every slot from `from` on.
/// A leader keeps them after winning: a promise binds its acceptor for the whole suffix, so the
/// same reports serve a configuration that takes effect later, if they hold a phase-1 quorum of
/// it.
#[derive(Clone, Debug)]
pub struct Promises<C> {
    ballot: Ballot,
    from: Slot,
    reports: BTreeMap<NodeId, Vec<PromiseEntry<C>>>,
}

impl<C: Clone + Eq + std::fmt::Debug + serde::Serialize> Promises<C> {
    /// No promise yet.
    pub fn new(ballot: Ballot, from: Slot) -> Self {
        Promises {
            ballot,
            from,
            reports: BTreeMap::new(),
        }
    }

    /// Records a promise; false if it is refused. A promise that reports a vote at or above
    /// the ballot it promises cannot come from a correct acceptor (it voted in a ballot it had
    /// not yet promised, or the ballot was used twice), nor one that reports a digest as
    /// chosen (only auxiliaries hold digests, and they learn nothing): it counts for nothing.
    pub fn record(&mut self, from: NodeId, entries: Vec<PromiseEntry<C>>) -> bool {
        let bad = |e: &PromiseEntry<C>| {
            (!e.chosen && e.ballot >= self.ballot) || (e.chosen && e.value.is_digest())
        };
        if entries.iter().any(bad) {
            return false;
        }
        self.reports.insert(from, entries);
        true
    }

    /// What the promises tell about the digests some of them report: the whole values behind
    /// them, and which promises count.
    ///
    /// A digest is resolved when some promise reports, in the same slot, a whole value (a vote
    /// in any ballot, or a value known chosen) that hashes to it: the hash pins the value. A
    /// promise counts if each of its digests is resolved, or covered: some promise that counts
    /// by the first rule reports, in that slot, a value known chosen or a vote in a higher
    /// ballot, which any obligation prefers to the digest's vote, so its value never matters.
    /// Leaving a promise out is always safe; counting one whose digest could be the highest
    /// vote in its slot would leave the candidate unable to re-propose that value, and tempt it
    /// to fill the slot with something else.
    fn digests(&self) -> Digests<'_, C> {
        let entries = || self.reports.values().flatten();
        let slots: BTreeSet<Slot> = (entries().filter(|e| e.value.is_digest()))
            .map(|e| e.slot)
            .collect();
        if slots.is_empty() {
            let usable = self.reports.keys().copied().collect();
            return Digests {
                known: HashMap::new(),
                usable,
            };
        }
        let known: HashMap<(Slot, ValueDigest), &Value<C>> = entries()
            .filter(|e| !e.value.is_digest() && slots.contains(&e.slot))
            .filter_map(|e| Some(((e.slot, e.value.digest()?.0), &e.value)))
            .collect();
        let resolved = |e: &PromiseEntry<C>| match e.value {
            Value::Digest(d) => known.contains_key(&(e.slot, d)),
            _ => true,
        };
        let sure: BTreeSet<NodeId> = (self.reports.iter())
            .filter(|(_, es)| es.iter().all(resolved))
            .map(|(&n, _)| n)
            .collect();
        // Per slot with a digest: whether a sure promise knows it chosen, and the highest
        // ballot a sure promise voted in there.
        let mut top: BTreeMap<Slot, (bool, Ballot)> = BTreeMap::new();
        for e in sure.iter().flat_map(|n| &self.reports[n]) {
            if slots.contains(&e.slot) {
                let t = top.entry(e.slot).or_insert((false, Ballot::ZERO));
                *t = (t.0 || e.chosen, t.1.max(e.ballot));
            }
        }
        let covered = |e: &PromiseEntry<C>| {
            (top.get(&e.slot)).is_some_and(|&(chosen, b)| chosen || b > e.ballot)
        };
        let usable = (self.reports.iter())
            .filter(|(n, es)| sure.contains(n) || es.iter().all(|e| resolved(e) || covered(e)))
            .map(|(&n, _)| n)
            .collect();
        Digests { known, usable }
    }

    /// The first slot the promises cover.
    pub fn from(&self) -> Slot {
        self.from
    }

    /// The highest slot at or above `at` (and `from`) that some promise reports a vote in.
    pub fn last_reported_from(&self, at: Slot) -> Option<Slot> {
        let first = at.max(self.from);
        let slots = self.reports.values().flatten().map(|e| e.slot);
        slots.filter(|&s| s >= first).max()
    }

    /// True if `node` promised.
    pub fn has(&self, node: NodeId) -> bool {
        self.reports.contains_key(&node)
    }

    /// True if the promises that count ([`Promises::digests`]) hold a phase-1 quorum of
    /// `quorum`.
    pub fn is_quorum_of(&self, quorum: &dyn QuorumSystem) -> bool {
        quorum.is_phase1_quorum(&self.digests().usable)
    }

    /// What the promises oblige a leader to do in the slots of `range`: per slot, the
    /// highest-ballot vote reported (a value reported chosen wins), and a no-op in a hole below
    /// the last slot any promise mentions. `ignore_votes` is the planted `IgnorePromiseValues`
    /// bug.
    pub fn obligations(
        &self,
        range: std::ops::Range<Slot>,
        ignore_votes: bool,
    ) -> BTreeMap<Slot, Obligation<C>> {
        let first = range.start.max(self.from);
        let digests = self.digests();
        let mut best: BTreeMap<Slot, (bool, Ballot, &Value<C>)> = BTreeMap::new();
        for e in (digests.usable.iter()).flat_map(|n| &self.reports[n]) {
            if e.slot < first {
                continue;
            }
            let value = match e.value {
                Value::Digest(d) => match digests.known.get(&(e.slot, d)) {
                    Some(v) => *v,
                    // Covered: a counted promise reports that slot chosen or voted in a higher
                    // ballot, which wins over this vote.
                    None => continue,
                },
                _ => &e.value,
            };
            let cand = (e.chosen, e.ballot, value);
            match best.get(&e.slot) {
                Some((true, _, _)) => {}
                Some((false, b, _)) if !e.chosen && *b >= e.ballot => {}
                _ => {
                    best.insert(e.slot, cand);
                }
            }
        }
        if ignore_votes {
            best.retain(|_, (chosen, _, _)| *chosen);
        }
        let Some(&last) = best.keys().next_back() else {
            return BTreeMap::new();
        };
        (first..range.end.min(last.saturating_add(1)))
            .map(|slot| {
                let ob = match best.get(&slot) {
                    Some((true, _, v)) => Obligation::Learn((*v).clone()),
                    Some((false, _, v)) => Obligation::Propose((*v).clone()),
                    None => Obligation::Propose(Value::Noop),
                };
                (slot, ob)
            })
            .collect()
    }
}

/// The digests the promises report, resolved ([`Promises::digests`]).
struct Digests<'a, C> {
    /// Whole values reported in slots where some promise reports a digest, by slot and digest.
    known: HashMap<(Slot, ValueDigest), &'a Value<C>>,
    /// The promises that count.
    usable: BTreeSet<NodeId>,
}

/// What a won election obliges the new leader to do, slot by slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Obligation<C> {
    /// Some acceptor knows this value is chosen: just learn it.
    Learn(Value<C>),
    /// Re-propose: the highest-ballot vote among the promises, or a no-op for a hole.
    Propose(Value<C>),
}

impl<C: Clone + Eq + std::fmt::Debug + serde::Serialize> Scout<C> {
    /// Starts phase 1.
    pub fn new(ballot: Ballot, from: Slot, queue: VecDeque<Command<C>>) -> Self {
        Scout {
            ballot,
            from,
            promises: Promises::new(ballot, from),
            queue,
        }
    }

    /// True if `node` already promised.
    pub fn has_promise(&self, node: NodeId) -> bool {
        self.promises.has(node)
    }

    /// Records a promise; returns true when the promises now form a phase-1 quorum of
    /// `quorum`. A promise reporting a vote at or above its ballot is refused
    /// ([`Promises::record`]).
    pub fn promise(
        &mut self,
        from: NodeId,
        entries: Vec<PromiseEntry<C>>,
        quorum: &dyn QuorumSystem,
    ) -> bool {
        self.promises.record(from, entries) && self.promises.is_quorum_of(quorum)
    }

    /// The promises gathered so far.
    pub fn promises(&self) -> &Promises<C> {
        &self.promises
    }

    /// Records a promise without judging a quorum: false if refused.
    pub fn record(&mut self, from: NodeId, entries: Vec<PromiseEntry<C>>) -> bool {
        self.promises.record(from, entries)
    }

    /// The new leader's obligations for every slot from `from` to the highest slot any promise
    /// mentions. `ignore_votes` is the planted `IgnorePromiseValues` bug.
    pub fn obligations(&self, ignore_votes: bool) -> BTreeMap<Slot, Obligation<C>> {
        self.promises
            .obligations(self.from..Slot::MAX, ignore_votes)
    }

    /// The promises and the queued commands, for the leader this candidate becomes.
    pub fn into_parts(self) -> (Promises<C>, VecDeque<Command<C>>) {
        (self.promises, self.queue)
    }
}

/// A leadership transfer in progress (see [`super::Replica::transfer_leadership`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handover {
    /// The successor.
    pub target: NodeId,
    /// An election timeout has passed since the transfer began; at the next the leader gives
    /// up and takes writes again.
    pub aged: bool,
}

/// A slot proposed in the current ballot and not yet known chosen.
#[derive(Clone, Debug)]
pub struct InFlight<C> {
    /// The value proposed.
    pub value: Value<C>,
    /// Who voted for it in this ballot.
    pub acks: BTreeSet<NodeId>,
    /// The heartbeat round it was proposed in: only a slot a whole round old is sent to an
    /// auxiliary acceptor (Cheap Paxos), so that a quick main's vote spares it the work.
    pub beat: u64,
    /// Members the accept was not sent to ([`super::Config::thrifty_writes`]): they are told
    /// the value once it is chosen, or sent the accept if it is still in flight a whole
    /// heartbeat round later.
    pub left_out: Vec<NodeId>,
}

/// Phase 2 only: a leader that won phase 1 for `ballot`.
///
/// Invariant (asserted): at most one value per slot per ballot: a slot is proposed once.
#[derive(Clone, Debug)]
pub struct Active<C> {
    /// The leader's ballot.
    pub ballot: Ballot,
    /// The next slot to propose a new batch in.
    pub next_slot: Slot,
    /// Slots proposed in this ballot, not yet chosen. Changed only through [`Active::proposed`],
    /// [`Active::vote`] and [`Active::withdraw`], which keep `present` in step.
    in_flight: BTreeMap<Slot, InFlight<C>>,
    /// Client commands waiting for a free slot in the window.
    queue: VecDeque<Command<C>>,
    /// How many times each `(client, seq)` is in `queue` and `in_flight` together, so that a
    /// retry is recognised without scanning both: with hundreds of clients that scan, once per
    /// command, grew with the square of the load.
    present: BTreeMap<(ClientId, u64), usize>,
    /// Linearizable reads waiting for a confirmation round or for the apply point.
    pub reads: Reads,
    /// A transfer in progress: no new batch is started while it lasts.
    pub handover: Option<Handover>,
    /// The promises that won this ballot, and those that arrived later: they serve each
    /// configuration whose phase-1 quorum they hold.
    pub promises: Promises<C>,
    /// Every slot below this is prepared under its own configuration and its obligations are
    /// taken care of; nothing at or above it is proposed in this ballot.
    pub bound: Slot,
    /// Membership changes asked here, proposed one at a time.
    pub changes: VecDeque<(ChangeId, Vec<MemberOp>)>,
    /// The slot of the change proposed and not yet applied, if any.
    pub change_at: Option<Slot>,
    /// Reads that arrived while a configuration boundary was in reach, with their origin.
    pub parked_reads: Vec<(super::reads::ReadId, Option<NodeId>)>,
    /// The latest configuration's epoch when the reads waiting were registered: a read must
    /// not be served across a change applied meanwhile, however quickly its boundary passed.
    pub read_epoch: u64,
    /// Heartbeat rounds sent in this ballot.
    pub beats: u64,
    /// What each learner (and, in a Cheap Paxos cluster, each main) last said it has learned
    /// (its commit point), and in which heartbeat round: the promotion gate, and how a leader
    /// of a Cheap Paxos cluster knows which mains are up.
    pub progress: BTreeMap<NodeId, (Slot, u64)>,
    /// Cheap Paxos: the auxiliaries that voted in this ballot, with the slot after the highest
    /// they voted in; told to forget once every main has learned up to there.
    pub aux_held: BTreeMap<NodeId, Slot>,
    /// The highest slot each member voted for in this ballot: thrifty accepts go to those
    /// that voted latest.
    voted: BTreeMap<NodeId, Slot>,
    /// What is held back for followers, and who must be told at once.
    pub notices: super::notices::Notices<C>,
}

fn key<C>(c: &Command<C>) -> (ClientId, u64) {
    (c.client, c.seq)
}

impl<C: Clone + Eq + std::fmt::Debug + serde::Serialize> Active<C> {
    /// A new leader proposing fresh batches from `next_slot` on.
    pub fn new(ballot: Ballot, next_slot: Slot, queue: VecDeque<Command<C>>) -> Self {
        // A candidate queues what reaches it without looking, so a command forwarded again
        // while it stood may be there twice; one copy is enough, as [`Active::enqueue`] keeps.
        let mut present = BTreeMap::new();
        let queue = queue
            .into_iter()
            .filter(|c| present.insert(key(c), 1).is_none())
            .collect();
        Active {
            ballot,
            next_slot,
            in_flight: BTreeMap::new(),
            queue,
            present,
            reads: Reads::default(),
            handover: None,
            promises: Promises::new(ballot, next_slot),
            bound: next_slot,
            changes: VecDeque::new(),
            change_at: None,
            beats: 0,
            progress: BTreeMap::new(),
            aux_held: BTreeMap::new(),
            parked_reads: Vec::new(),
            read_epoch: 0,
            voted: BTreeMap::new(),
            notices: Default::default(),
        }
    }

    /// Slots proposed in this ballot and not yet known chosen.
    pub fn in_flight(&self) -> &BTreeMap<Slot, InFlight<C>> {
        &self.in_flight
    }

    /// Commands waiting for a slot, oldest first.
    pub fn queued(&self) -> &VecDeque<Command<C>> {
        &self.queue
    }

    /// The waiting commands, for a leader that steps down and hands them on.
    pub fn into_queue(self) -> VecDeque<Command<C>> {
        self.queue
    }

    /// Takes the waiting commands out, for a leader that hands them to its successor.
    pub fn take_queue(&mut self) -> Vec<Command<C>> {
        let queue: Vec<_> = self.queue.drain(..).collect();
        self.count(&queue, false);
        queue
    }

    fn count(&mut self, commands: &[Command<C>], up: bool) {
        for c in commands {
            let k = key(c);
            if up {
                *self.present.entry(k).or_insert(0) += 1;
            } else if let Some(n) = self.present.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    self.present.remove(&k);
                }
            }
        }
    }

    /// Records that `value` is proposed for `slot` in this ballot, its accept sent to every
    /// member but `left_out`.
    pub fn proposed(&mut self, slot: Slot, value: Value<C>, left_out: Vec<NodeId>) {
        self.count(value.commands(), true);
        let prev = self.in_flight.insert(
            slot,
            InFlight {
                value,
                acks: BTreeSet::new(),
                beat: self.beats,
                left_out,
            },
        );
        assert!(
            prev.is_none(),
            "slot {slot} proposed twice in {}",
            self.ballot
        );
    }

    /// Records a vote; returns the slot's record if the slot just reached a phase-2 quorum.
    pub fn vote(
        &mut self,
        from: NodeId,
        slot: Slot,
        quorum: &dyn QuorumSystem,
    ) -> Option<InFlight<C>> {
        let f = self.in_flight.get_mut(&slot)?;
        f.acks.insert(from);
        let latest = self.voted.entry(from).or_insert(slot);
        *latest = (*latest).max(slot);
        if quorum.is_phase2_quorum(&f.acks) {
            self.withdraw(slot)
        } else {
            None
        }
    }

    /// Thrifty accepts (seed 002's second optimisation, for writes): of `voters`, those that
    /// make a phase-2 quorum with `me` and the fewest others, the ones that voted for the
    /// latest slots first (then those whose promise won this ballot, then in the order given),
    /// so the choice stays put while they keep voting and moves to a member that answered a
    /// retransmission once a chosen one falls silent. `None` if all of them do not make one.
    pub fn accept_targets(
        &self,
        me: NodeId,
        voters: &[NodeId],
        quorum: &dyn QuorumSystem,
    ) -> Option<BTreeSet<NodeId>> {
        let mut ranked: Vec<(Reverse<Option<Slot>>, bool, NodeId)> = voters
            .iter()
            .filter(|&&m| m != me)
            .map(|&m| {
                (
                    Reverse(self.voted.get(&m).copied()),
                    !self.promises.has(m),
                    m,
                )
            })
            .collect();
        ranked.sort();
        let mut members: BTreeSet<NodeId> = voters.iter().copied().filter(|&m| m == me).collect();
        let ranked = ranked.into_iter().map(|(_, _, m)| m);
        members.extend(fewest_for_phase2(members.clone(), ranked, quorum)?);
        Some(members)
    }

    /// Takes `slot` out of the slots in flight (it is chosen, by this ballot or another).
    pub fn withdraw(&mut self, slot: Slot) -> Option<InFlight<C>> {
        let f = self.in_flight.remove(&slot)?;
        self.count(f.value.commands(), false);
        Some(f)
    }

    /// True if a new slot may be proposed: the window has room, no transfer is in progress,
    /// and the next slot lies below `limit` (the first slot whose configuration is not known or
    /// not prepared).
    pub fn has_room(&self, window: usize, limit: Slot) -> bool {
        self.in_flight.len() < window && self.handover.is_none() && self.next_slot < limit
    }

    /// Takes the next batch of queued commands if [`Active::has_room`], skipping commands
    /// already queued or in flight (a client's retry).
    pub fn next_batch(
        &mut self,
        window: usize,
        max_batch: usize,
        limit: Slot,
    ) -> Option<Vec<Command<C>>> {
        if self.queue.is_empty() || !self.has_room(window, limit) {
            return None;
        }
        let n = self.queue.len().min(max_batch);
        let batch: Vec<Command<C>> = self.queue.drain(..n).collect();
        self.count(&batch, false);
        Some(batch)
    }

    /// Queues a command unless the same `(client, seq)` is already queued or in flight.
    pub fn enqueue(&mut self, cmd: Command<C>) {
        if !self.present.contains_key(&key(&cmd)) {
            self.count(std::slice::from_ref(&cmd), true);
            self.queue.push_back(cmd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::Quorum;

    fn entry(slot: Slot, r: u64, v: u32, chosen: bool) -> PromiseEntry<u32> {
        PromiseEntry {
            slot,
            ballot: Ballot::new(r, 1),
            value: Value::batch(vec![Command {
                client: 1,
                seq: v as u64,
                op: v,
            }]),
            chosen,
        }
    }

    fn val(v: u32) -> Value<u32> {
        Value::batch(vec![Command {
            client: 1,
            seq: v as u64,
            op: v,
        }])
    }

    #[test]
    fn obligations_pick_highest_vote_prefer_chosen_and_fill_holes() {
        let q = Quorum::majority(&[1, 2, 3]).unwrap();
        let mut s: Scout<u32> = Scout::new(Ballot::new(9, 2), 5, VecDeque::new());
        assert!(!s.promise(
            1,
            vec![
                entry(4, 1, 40, false),
                entry(5, 1, 50, false),
                entry(8, 3, 80, false)
            ],
            &q
        ));
        assert!(s.promise(
            2,
            vec![
                entry(5, 2, 51, false),
                entry(6, 1, 60, true),
                entry(8, 2, 81, false)
            ],
            &q
        ));
        let ob = s.obligations(false);
        assert_eq!(ob.keys().copied().collect::<Vec<_>>(), vec![5, 6, 7, 8]);
        assert_eq!(ob[&5], Obligation::Propose(val(51)));
        assert_eq!(ob[&6], Obligation::Learn(val(60)));
        assert_eq!(ob[&7], Obligation::Propose(Value::Noop));
        assert_eq!(ob[&8], Obligation::Propose(val(80)));
    }

    #[test]
    fn a_chosen_report_beats_a_higher_vote() {
        let q = Quorum::majority(&[1, 2, 3]).unwrap();
        let mut s: Scout<u32> = Scout::new(Ballot::new(9, 2), 0, VecDeque::new());
        s.promise(1, vec![entry(0, 1, 1, true)], &q);
        s.promise(2, vec![entry(0, 5, 2, false)], &q);
        assert_eq!(s.obligations(false)[&0], Obligation::Learn(val(1)));
    }

    #[test]
    fn no_votes_no_obligations() {
        let s: Scout<u32> = Scout::new(Ballot::new(1, 1), 3, VecDeque::new());
        assert!(s.obligations(false).is_empty());
    }

    #[test]
    fn a_command_a_candidate_queued_twice_fills_one_place_in_one_batch() {
        let cmd = |client| Command {
            client,
            seq: 1,
            op: 0,
        };
        let queue = VecDeque::from([cmd(7), cmd(8), cmd(7)]);
        let mut a: Active<u32> = Active::new(Ballot::new(1, 1), 0, queue);
        assert_eq!(
            a.queued().iter().map(|c| c.client).collect::<Vec<_>>(),
            [7, 8]
        );
        let batch = a.next_batch(2, 10, Slot::MAX).expect("a batch");
        assert_eq!(batch.len(), 2);
        a.proposed(0, Value::batch(batch), Vec::new());
        a.enqueue(cmd(7));
        assert!(a.queued().is_empty(), "in flight: not queued again");
    }

    #[test]
    fn thrifty_accepts_go_to_the_fewest_that_voted_latest() {
        let q = Quorum::majority(&[1, 2, 3, 4, 5]).unwrap();
        let mut a: Active<u32> = Active::new(Ballot::new(1, 1), 0, VecDeque::new());
        let all = [1, 2, 3, 4, 5];
        let ids = |t: Option<BTreeSet<NodeId>>| t.map(|t| t.into_iter().collect::<Vec<_>>());
        // Before any vote: the lowest ids, with us.
        assert_eq!(ids(a.accept_targets(1, &all, &q)), Some(vec![1, 2, 3]));
        for slot in 0..3 {
            a.proposed(slot, Value::Noop, Vec::new());
        }
        a.vote(5, 0, &q);
        a.vote(4, 2, &q);
        assert_eq!(ids(a.accept_targets(1, &all, &q)), Some(vec![1, 4, 5]));
        // Not a voter ourselves: a whole quorum of the others.
        assert_eq!(ids(a.accept_targets(9, &all, &q)), Some(vec![1, 4, 5]));
        a.vote(2, 1, &q);
        assert_eq!(ids(a.accept_targets(9, &all, &q)), Some(vec![2, 4, 5]));
        let two = Quorum::majority(&[1, 2]).unwrap();
        assert_eq!(ids(a.accept_targets(1, &[1, 2], &two)), Some(vec![1, 2]));
        assert_eq!(
            ids(a.accept_targets(1, &[1], &two)),
            None,
            "no quorum among them"
        );
    }

    #[test]
    fn window_limits_batches_and_retries_are_not_queued_twice() {
        let q = Quorum::majority(&[1, 2, 3]).unwrap();
        let mut a: Active<u32> = Active::new(Ballot::new(1, 1), 0, VecDeque::new());
        for i in 0..5 {
            a.enqueue(Command {
                client: i,
                seq: 1,
                op: 0,
            });
        }
        a.enqueue(Command {
            client: 0,
            seq: 1,
            op: 0,
        });
        assert_eq!(a.queued().len(), 5);
        let batch = a.next_batch(1, 3, Slot::MAX).unwrap();
        assert_eq!(batch.len(), 3);
        a.proposed(0, Value::batch(batch), Vec::new());
        assert!(
            a.next_batch(1, 3, Slot::MAX).is_none(),
            "window of one is full"
        );
        a.enqueue(Command {
            client: 1,
            seq: 1,
            op: 0,
        });
        assert_eq!(a.queued().len(), 2, "in-flight command not queued again");
        assert!(a.vote(1, 0, &q).is_none());
        assert!(a.vote(2, 0, &q).is_some());
        let rest = a.next_batch(1, 3, Slot::MAX).unwrap();
        assert_eq!(rest.len(), 2);
        a.proposed(1, Value::batch(rest), Vec::new());
        // A new leader re-proposing an old value may hold a command twice: counted, not lost.
        a.proposed(
            2,
            Value::batch(vec![Command {
                client: 3,
                seq: 1,
                op: 0,
            }]),
            Vec::new(),
        );
        a.enqueue(Command {
            client: 3,
            seq: 1,
            op: 0,
        });
        assert!(a.queued().is_empty(), "still in flight in slot 1 and 2");
        assert!(a.withdraw(2).is_some());
        a.enqueue(Command {
            client: 3,
            seq: 1,
            op: 0,
        });
        assert!(a.queued().is_empty(), "still in flight in slot 1");
        assert!(a.vote(1, 1, &q).is_none());
        assert!(a.vote(3, 1, &q).is_some());
        assert!(
            a.present.is_empty(),
            "nothing queued or in flight: {:?}",
            a.present
        );
        a.enqueue(Command {
            client: 3,
            seq: 1,
            op: 0,
        });
        assert_eq!(
            a.queued().len(),
            1,
            "chosen and gone: a retry is queued again"
        );
        assert_eq!(
            a.into_queue().len(),
            1,
            "a leader standing again keeps its queue"
        );
    }

    #[test]
    fn a_promise_reporting_a_vote_at_or_above_the_ballot_is_refused() {
        let q = Quorum::majority(&[1, 2, 3]).unwrap();
        let mut s: Scout<u32> = Scout::new(Ballot::new(2, 2), 0, VecDeque::new());
        assert!(!s.promise(1, vec![entry(0, 3, 1, false)], &q));
        assert!(!s.has_promise(1), "a refused promise is not recorded");
        let at_ballot = PromiseEntry {
            ballot: Ballot::new(2, 2),
            ..entry(0, 0, 1, false)
        };
        assert!(!s.promise(3, vec![at_ballot], &q));
        assert!(!s.promise(2, vec![], &q), "one valid promise is no quorum");
        assert!(s.promise(1, vec![entry(0, 1, 1, false)], &q));
        assert!(s.has_promise(1) && s.has_promise(2) && !s.has_promise(3));
    }

    fn digest_of(v: u32) -> Value<u32> {
        let (d, _) = val(v).digest().expect("encodes");
        Value::Digest(d)
    }

    #[test]
    fn a_digest_counts_once_another_promise_holds_its_value_or_outranks_it() {
        let q = Quorum::majority(&[1, 2, 3]).unwrap();
        let q135 = Quorum::majority(&[1, 3, 5]).unwrap();
        let mut s: Scout<u32> = Scout::new(Ballot::new(9, 2), 0, VecDeque::new());
        let digest = |slot, ballot, v| PromiseEntry {
            value: digest_of(v),
            ..entry(slot, ballot, 0, false)
        };
        // The auxiliary's digest of slot 0 is the highest vote; nobody has the value yet.
        assert!(!s.promise(3, vec![digest(0, 4, 70)], &q));
        assert!(
            !s.promise(2, vec![], &q),
            "an unresolved digest counted toward the quorum"
        );
        assert!(
            s.obligations(false).is_empty(),
            "{:?}",
            s.obligations(false)
        );
        // Two mains are a quorum without the auxiliary, whose report is left out.
        assert!(s.promise(1, vec![], &q));
        assert!(s.obligations(false).is_empty());
        // Another value in the same ballot resolves nothing.
        let fresh = || Scout::<u32>::new(Ballot::new(9, 2), 0, VecDeque::new());
        let mut t = fresh();
        t.record(3, vec![digest(0, 4, 70)]);
        t.record(1, vec![entry(0, 4, 71, false)]);
        assert!(!t.promises().is_quorum_of(&q135));
        // The value itself, even voted in another ballot (the hash pins it): the digest counts,
        // and its value is what the new leader must propose.
        t.record(1, vec![entry(0, 3, 70, false)]);
        assert!(t.promises().is_quorum_of(&q135));
        assert_eq!(t.obligations(false)[&0], Obligation::Propose(val(70)));
        // A higher vote elsewhere outranks an unknown digest: it counts, and that vote wins.
        let mut t = fresh();
        t.record(3, vec![digest(0, 4, 70), digest(1, 4, 72)]);
        t.record(1, vec![entry(0, 5, 80, false), entry(1, 4, 72, false)]);
        assert!(t.promises().is_quorum_of(&q135));
        assert_eq!(t.obligations(false)[&0], Obligation::Propose(val(80)));
        assert_eq!(t.obligations(false)[&1], Obligation::Propose(val(72)));
        // As does a value known chosen, in any ballot; a vote in the same ballot does not.
        let mut t = fresh();
        t.record(3, vec![digest(0, 4, 70)]);
        t.record(1, vec![entry(0, 4, 90, false)]);
        assert!(!t.promises().is_quorum_of(&q135));
        t.record(1, vec![entry(0, 1, 90, true)]);
        assert!(t.promises().is_quorum_of(&q135));
        assert_eq!(t.obligations(false)[&0], Obligation::Learn(val(90)));
        // Only a promise that counts by its own digests outranks: the auxiliary at 5 holds an
        // unknown digest too, so its higher one cannot cover the one at 3.
        let mut t = fresh();
        t.record(3, vec![digest(0, 4, 70)]);
        t.record(5, vec![digest(0, 6, 60)]);
        t.record(1, vec![]);
        assert!(!t.promises().is_quorum_of(&q135));
        // A digest reported as chosen cannot come from a correct acceptor.
        let chosen = PromiseEntry {
            chosen: true,
            ..digest(1, 4, 70)
        };
        assert!(!t.record(5, vec![chosen]));
    }
}
