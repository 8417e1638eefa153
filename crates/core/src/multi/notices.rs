//! Notices a leader holds back for up to [`Config::notice_ticks`](super::Config::notice_ticks):
//! chosen values for the members left out of thrifty accepts, and a commit point that no accept
//! carried.
//!
//! Told at once, every write costs each of those members a message of its own: one wake-up of
//! its node, and one send of the leader's, per write. At one client, on 3 nodes, that was about a
//! fifth of the cluster's CPU per put, for news nobody waits for: the client waits for the
//! leader, and the voters' next accept carries the commit point anyway. Held for a tick, a
//! member gets them all in one message ([`super::Message::CatchUp`]) and the commit point in
//! another ([`super::Message::Heartbeat`]), in the same turn.
//!
//! Someone may wait at a member, though: a client whose write the member forwarded, or a read
//! the member asked the leader's read index for. So a member that forwarded commands or asked
//! for a read index in the current or the previous heartbeat round is told at once, as
//! before; what was held for it goes out the moment it forwards or asks (what it waits for may
//! come after it), and again before the answer to its read index. Held values are chosen, so
//! a leader stepping down sends them rather than leave them to the next leader's catch-up; a
//! member gets them in catch-up messages of at most `Config::catch_up_batch` slots.
//! Watchers at a member hear of a write at most one tick later than they would otherwise.
//! Nothing here bears on safety: a held notice says only what is already chosen.

use super::messages::{Slot, Value};
use crate::NodeId;
use std::collections::{BTreeMap, BTreeSet};

/// Values chosen, in slot order.
pub type Held<C> = Vec<(Slot, Value<C>)>;

/// What a leader has yet to tell, and whom it must tell at once.
#[derive(Clone, Debug)]
pub struct Notices<C> {
    /// Chosen values for members left out of their accepts, by member, in slot order.
    pushes: BTreeMap<NodeId, Held<C>>,
    /// The commit point moved with no accept carrying it.
    commit: bool,
    /// Members told the commit point alone since it last moved (before a read's answer).
    commit_told: BTreeSet<NodeId>,
    /// The timer is armed.
    armed: bool,
    /// The heartbeat round in which each member last forwarded commands or asked for a read
    /// index.
    busy: BTreeMap<NodeId, u64>,
    /// The planted bug `notices-timer-unarmed`: the timer is never armed.
    pub(super) unarmed: bool,
}

impl<C> Default for Notices<C> {
    fn default() -> Self {
        Notices {
            pushes: BTreeMap::new(),
            commit: false,
            commit_told: BTreeSet::new(),
            armed: false,
            busy: BTreeMap::new(),
            unarmed: false,
        }
    }
}

impl<C: Clone> Notices<C> {
    /// Notes that `member` has someone waiting on it, in heartbeat round `beat`.
    pub fn busy(&mut self, member: NodeId, beat: u64) {
        self.busy.insert(member, beat);
    }

    /// Whether `member` must be told at once in heartbeat round `beat`.
    pub fn eager(&self, member: NodeId, beat: u64) -> bool {
        self.busy.get(&member).is_some_and(|&b| b + 1 >= beat)
    }

    /// Holds `value`, chosen in `slot`, for `member`. True if the timer must be armed.
    pub fn hold(&mut self, member: NodeId, slot: Slot, value: Value<C>) -> bool {
        self.pushes.entry(member).or_default().push((slot, value));
        self.arm()
    }

    /// Notes a commit point that no accept carried. True if the timer must be armed.
    pub fn hold_commit(&mut self) -> bool {
        self.commit = true;
        self.commit_told.clear();
        self.arm()
    }

    fn arm(&mut self) -> bool {
        !std::mem::replace(&mut self.armed, true) && !self.unarmed
    }

    /// Everything held, to be sent now: the pushes by member, and whether the commit point
    /// must be announced. The timer counts as fired.
    pub fn take(&mut self) -> (BTreeMap<NodeId, Held<C>>, bool) {
        self.armed = false;
        self.commit_told.clear();
        let commit = std::mem::replace(&mut self.commit, false);
        (std::mem::take(&mut self.pushes), commit)
    }

    /// What is held for `member` alone, to be sent before an answer it waits for: its pushes,
    /// and whether it must be told the commit point (once since it last moved; it stays held
    /// for the others).
    pub fn take_for(&mut self, member: NodeId) -> (Held<C>, bool) {
        let commit = self.commit && self.commit_told.insert(member);
        (self.pushes.remove(&member).unwrap_or_default(), commit)
    }

    /// Every member's held values, for a leader stepping down: they are chosen, so whoever
    /// leads next need not be asked for them. The commit point is dropped (it is told in a
    /// ballot that is over).
    pub fn take_values(&mut self) -> BTreeMap<NodeId, Held<C>> {
        self.commit = false;
        std::mem::take(&mut self.pushes)
    }

    /// Nothing is held.
    pub fn is_empty(&self) -> bool {
        self.pushes.is_empty() && !self.commit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timer_is_armed_once_until_taken() {
        let mut n = Notices::<u8>::default();
        assert!(n.hold(2, 5, Value::Noop));
        assert!(!n.hold(2, 6, Value::Noop));
        assert!(!n.hold_commit());
        let (for_two, commit) = n.take_for(2);
        assert_eq!(for_two.iter().map(|e| e.0).collect::<Vec<_>>(), vec![5, 6]);
        assert!(
            commit && !n.is_empty(),
            "the commit point stays held for the others"
        );
        assert!(!n.take_for(2).1, "told the commit point once");
        assert!(n.take_for(3).1);
        assert!(!n.hold_commit(), "armed already");
        assert!(n.take_for(2).1, "the commit point moved again");
        let (pushes, commit) = n.take();
        assert!(pushes.is_empty() && commit && n.is_empty());
        assert!(
            n.hold(3, 7, Value::Noop),
            "armed again after the timer fired"
        );
    }

    #[test]
    fn a_member_is_eager_for_the_round_it_was_busy_in_and_the_next() {
        let mut n = Notices::<u8>::default();
        assert!(!n.eager(2, 0));
        n.busy(2, 4);
        assert!(n.eager(2, 4) && n.eager(2, 5));
        assert!(!n.eager(2, 6) && !n.eager(3, 4));
    }
}
