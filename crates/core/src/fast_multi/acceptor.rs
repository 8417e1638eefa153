//! The Fast Multi-Paxos acceptor: one promise for every slot, a vote per slot, and a fast round
//! in which each client proposal takes the acceptor's next free slot. Under uncoordinated
//! recovery it also resolves a collided slot with its peers, in the slot's next step.

use super::messages::{Entry, EntryVote, FmEffects, Message, Persist, Slot};
use crate::ballot::NodeId;
use crate::bugs::PlantedBug;
use crate::fast::{collision, pick, Pick, Recovery, Round, Value, Vote};
use crate::quorum::FastQuorum;
use crate::quorum::QuorumSystem;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// Proposals an acceptor holds while no fast round is open; older ones are dropped beyond it
/// (their proposers propose again).
const PENDING_CAP: usize = 1024;

/// What an acceptor keeps on disk, rebuilt from its [`Persist`] records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptorState<V> {
    /// The highest round promised or voted in, for every slot.
    pub promised: Round,
    /// The latest vote in each slot.
    pub votes: BTreeMap<Slot, EntryVote<V>>,
}

impl<V> Default for AcceptorState<V> {
    fn default() -> Self {
        AcceptorState {
            promised: Round::ZERO,
            votes: BTreeMap::new(),
        }
    }
}

/// True when a vote also raises the acceptor's promise for every slot. A vote in a recovery
/// step of a fast round (uncoordinated recovery) is a promise for its own slot only: raised
/// for all, it would close the fast round in every other slot. Nothing can come between a
/// round and its next step, so no other slot's instance can need it.
fn raises_promise<V>(vote: &EntryVote<V>) -> bool {
    !(vote.fast && vote.round.step > 0)
}

impl<V: Value> AcceptorState<V> {
    /// Applies one persisted record, in the order written.
    pub fn apply(&mut self, record: &Persist<V>) {
        match record {
            Persist::Promised(r) => self.promised = self.promised.max(*r),
            Persist::Voted { slot, vote } => {
                if raises_promise(vote) {
                    self.promised = self.promised.max(vote.round);
                }
                self.votes.insert(*slot, vote.clone());
            }
            Persist::Number(_) => {}
        }
    }

    fn voted_at_or_above(&self, slot: Slot, round: Round) -> bool {
        self.votes.get(&slot).is_some_and(|v| v.round >= round)
    }
}

/// An acceptor's settings.
#[derive(Clone, Debug)]
pub struct AcceptorConfig {
    /// This acceptor.
    pub id: NodeId,
    /// Every acceptor, this one included, with the quorum sizes.
    pub quorum: Arc<FastQuorum>,
    /// Learners, told of every vote.
    pub learners: Vec<NodeId>,
    /// A bug planted on purpose (simulator tests only).
    pub bug: Option<PlantedBug>,
}

/// A Fast Multi-Paxos acceptor.
///
/// Every slot is a single-decree Fast Paxos instance ([`crate::fast`]) whose promise is the
/// acceptor's one promise; a `Prepare` for slots from `s` on is a promise in each of them, and
/// an `Any` opens the fast round in each slot from its `from` on.
///
/// Invariants (asserted): the promise never decreases; a vote is never below the promise, and
/// never a second one in a slot in the same round.
#[derive(Clone, Debug)]
pub struct Acceptor<V> {
    cfg: AcceptorConfig,
    state: AcceptorState<V>,
    /// The open fast round and the first slot of its fast region. Volatile: losing it in a
    /// crash costs the fast path until the next heartbeat.
    any: Option<(Round, Slot, Recovery)>,
    /// Every slot of the fast region below this one holds a vote at the open round or above
    /// (votes are never taken back), so the search for the next free slot starts here.
    cursor: Slot,
    /// Commands voted for in the open fast round, and where: a proposer's retry does not take
    /// a second slot from this acceptor, but repeats the vote to learners that may have missed it.
    voted_now: BTreeMap<V, Slot>,
    /// Proposals waiting for a fast round.
    pending: VecDeque<V>,
    /// Under uncoordinated recovery: the votes heard in each slot and fast round of the open
    /// round's lineage, this acceptor's own included.
    heard: BTreeMap<(Slot, Round), BTreeMap<NodeId, Entry<V>>>,
}

impl<V: Value> Acceptor<V> {
    /// An acceptor restarted from what it persisted (or fresh, from the default state).
    pub fn recover(cfg: AcceptorConfig, state: AcceptorState<V>) -> Self {
        Acceptor {
            cfg,
            state,
            any: None,
            cursor: 0,
            voted_now: BTreeMap::new(),
            pending: VecDeque::new(),
            heard: BTreeMap::new(),
        }
    }

    /// The promise and votes as they stand.
    pub fn state(&self) -> &AcceptorState<V> {
        &self.state
    }

    /// The slot this acceptor gave `value` in the open fast round, if any.
    pub fn slot_of(&self, value: &V) -> Option<Slot> {
        self.voted_now.get(value).copied()
    }

    /// `value` lost the slot it had here (another entry was chosen there): a proposal of it
    /// again gets a new slot instead of a repeat of the lost vote.
    pub fn release(&mut self, value: &V) {
        self.voted_now.remove(value);
    }

    /// Handles one message.
    pub fn on_message(&mut self, from: NodeId, msg: Message<V>) -> FmEffects<V> {
        let mut fx = FmEffects::new();
        match msg {
            Message::Prepare { round, from: slot } => self.on_prepare(from, round, slot, &mut fx),
            Message::Any {
                round,
                from: slot,
                recovery,
                ..
            } => self.on_any(round, slot, recovery, &mut fx),
            Message::Accepted { slot, vote } => self.on_peer_vote(from, slot, vote, &mut fx),
            Message::Accept { round, slot, value } => {
                if round < self.state.promised {
                    self.nack(from, round, &mut fx);
                } else if !self.state.voted_at_or_above(slot, round) {
                    self.vote(slot, round, false, value, &mut fx);
                }
            }
            Message::Propose { value } => {
                if self.open_round().is_some() {
                    self.vote_fast(value, &mut fx);
                } else if !self.pending.contains(&value) {
                    if self.pending.len() == PENDING_CAP {
                        self.pending.pop_front();
                    }
                    self.pending.push_back(value);
                }
            }
            _ => {}
        }
        fx
    }

    fn on_prepare(&mut self, from: NodeId, round: Round, slot: Slot, fx: &mut FmEffects<V>) {
        if round < self.state.promised {
            return self.nack(from, round, fx);
        }
        if round > self.state.promised {
            self.state.promised = round;
            fx.persist(Persist::Promised(round));
        }
        let votes = self
            .state
            .votes
            .range(slot..)
            .map(|(&s, v)| (s, v.clone()))
            .collect();
        let msg = Message::Promise {
            round,
            from: slot,
            votes,
        };
        fx.send_after_sync(from, msg);
    }

    fn on_any(&mut self, round: Round, slot: Slot, recovery: Recovery, fx: &mut FmEffects<V>) {
        if round < self.state.promised || self.any.is_some_and(|(r, _, _)| r >= round) {
            return;
        }
        self.any = Some((round, slot, recovery));
        self.cursor = slot;
        self.voted_now.clear();
        self.heard.clear();
        while self.open_round().is_some() {
            let Some(value) = self.pending.pop_front() else {
                break;
            };
            self.vote_fast(value, fx);
        }
    }

    /// The fast round open for votes, if any: one whose `Any` came and that no promise has
    /// overtaken since.
    fn open_round(&self) -> Option<(Round, Slot)> {
        self.any
            .filter(|(r, _, _)| *r >= self.state.promised)
            .map(|(r, s, _)| (r, s))
    }

    /// True when `round` is a fast round (or a recovery step of one) of the open round's
    /// lineage with uncoordinated recovery.
    fn uncoordinated(&self, round: Round) -> bool {
        matches!(self.any, Some((r, _, Recovery::Uncoordinated)) if r.same_lineage(round))
    }

    /// A peer's vote: under uncoordinated recovery, one more report towards resolving a
    /// collision in its slot.
    fn on_peer_vote(
        &mut self,
        from: NodeId,
        slot: Slot,
        vote: EntryVote<V>,
        fx: &mut FmEffects<V>,
    ) {
        // A step with no successor cannot be recovered from; only a bad peer sends one.
        let last_step = vote.round.step == u32::MAX;
        let member = self.cfg.quorum.members().contains(&from);
        if !member || !vote.fast || last_step || !self.uncoordinated(vote.round) {
            return;
        }
        self.heard
            .entry((slot, vote.round))
            .or_default()
            .insert(from, vote.value);
        self.try_recover(slot, vote.round, fx);
    }

    /// Uncoordinated recovery of `slot`: once the votes heard there in fast round `round` come
    /// from a classic quorum and no entry can still reach a fast quorum, pick by the Fast Paxos
    /// rule and vote in the slot's next step, fast, as if a leader had sent that entry. Peers
    /// that pick differently only collide again, one step further.
    fn try_recover(&mut self, slot: Slot, round: Round, fx: &mut FmEffects<V>) {
        // A step with no successor cannot be recovered from; only a bad leader announces one.
        if round.step == u32::MAX {
            return;
        }
        let next = round.next_step();
        if self.state.promised > next || self.state.voted_at_or_above(slot, next) {
            return;
        }
        let Some(votes) = self.heard.get(&(slot, round)) else {
            return;
        };
        let q = &self.cfg.quorum;
        let voters: BTreeSet<NodeId> = votes.keys().copied().collect();
        if !q.is_phase1_quorum(&voters) || !collision(q, votes) {
            return;
        }
        let reports = votes
            .iter()
            .map(|(&id, v)| {
                let vote = Vote {
                    round,
                    fast: true,
                    value: v.clone(),
                };
                (id, Some(vote))
            })
            .collect();
        let value = match pick(q, &reports, self.cfg.bug) {
            Pick::Constrained(v) | Pick::Free(Some(v)) => v,
            Pick::Free(None) => return,
        };
        self.vote(slot, next, true, value, fx);
    }

    fn vote_fast(&mut self, value: V, fx: &mut FmEffects<V>) {
        let Some((round, _)) = self.open_round() else {
            return;
        };
        let entry = Entry::Command(value.clone());
        if let Some(&slot) = self.voted_now.get(&value) {
            // Still its vote there (in the round or a recovery step of it): repeat it. Gone,
            // because an uncoordinated recovery gave the slot to another command: a new slot.
            if let Some(vote) = self.state.votes.get(&slot).filter(|v| v.value == entry) {
                let vote = vote.clone();
                let to = self.reported_to(vote.round);
                fx.broadcast_after_sync(&to, Message::Accepted { slot, vote });
                return;
            }
        }
        let mut slot = self.cursor;
        while self.state.voted_at_or_above(slot, round) {
            // Only a bad leader opens the fast region so near the end of the slot space.
            let Some(next) = slot.checked_add(1) else {
                return;
            };
            slot = next;
        }
        self.cursor = slot.saturating_add(1);
        // Collisions far behind the fast region's front are resolved or for the leader now.
        if self.heard.len() > 4096 {
            let keep = self.cursor.saturating_sub(1024);
            self.heard.retain(|(s, _), _| *s >= keep);
        }
        self.voted_now.insert(value.clone(), slot);
        self.vote(slot, round, true, Entry::Command(value), fx);
    }

    /// Who hears of a vote in `round`: the learners and the round's leader, not this acceptor
    /// (its server's learner hears of it once it is durable).
    fn reported_to(&self, round: Round) -> BTreeSet<NodeId> {
        let mut to: BTreeSet<NodeId> = self.cfg.learners.iter().copied().collect();
        to.insert(round.coordinator);
        to.remove(&self.cfg.id);
        to
    }

    fn nack(&self, to: NodeId, round: Round, fx: &mut FmEffects<V>) {
        let promised = self.state.promised;
        fx.send(to, Message::Nack { round, promised });
    }

    fn vote(
        &mut self,
        slot: Slot,
        round: Round,
        fast: bool,
        value: Entry<V>,
        fx: &mut FmEffects<V>,
    ) {
        assert!(round >= self.state.promised, "vote below the promise");
        assert!(
            !self.state.voted_at_or_above(slot, round),
            "a second vote in a slot and round"
        );
        let vote = Vote { round, fast, value };
        if raises_promise(&vote) {
            self.state.promised = round;
        }
        self.state.votes.insert(slot, vote.clone());
        fx.persist(Persist::Voted {
            slot,
            vote: vote.clone(),
        });
        let mut to = self.reported_to(round);
        if fast && self.uncoordinated(round) {
            // Every peer hears it too, and so does this acceptor's own recovery.
            to.extend(self.cfg.quorum.members().iter().copied());
            to.remove(&self.cfg.id);
            self.heard
                .entry((slot, round))
                .or_default()
                .insert(self.cfg.id, vote.value.clone());
        }
        fx.broadcast_after_sync(&to, Message::Accepted { slot, vote });
        if fast && self.uncoordinated(round) {
            self.try_recover(slot, round, fx);
        }
    }
}
