//! Auto-compaction, as etcd's `--auto-compaction-mode` and `--auto-compaction-retention`.
//!
//! The store keeps every revision until a compaction, so without one its memory and its
//! snapshots grow with every write. Only the leader acts: it proposes
//! [`synod_kv::KvCommand::Compact`] through the log like any client, so every replica compacts
//! at the same point of the log. Every node samples the store's revision, so that a new
//! leader can go on where the old one stopped.

use std::collections::VecDeque;
use synod_kv::{CompactionRequest, KvCommand, Store, ROOT_USER};

/// What auto-compaction keeps, in node ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Never compact unasked (etcd's default).
    #[default]
    Off,
    /// Keep the newest `keep` revisions; look every `every` ticks (etcd's `revision` mode,
    /// which looks every 5 minutes).
    Revisions {
        /// Revisions kept.
        keep: i64,
        /// Ticks between looks.
        every: u64,
    },
    /// Keep what was written in the last `keep` ticks (etcd's `periodic` mode). The revision
    /// is sampled every tenth of that, and a look compacts to the newest sample at least
    /// `keep` old, so it keeps between `keep` and 1.1 × `keep` of history.
    Window {
        /// Ticks of history kept.
        keep: u64,
    },
}

/// The schedule and the samples it needs.
#[derive(Debug)]
pub struct Compactor {
    policy: AutoCompaction,
    /// `(tick, revision)`, oldest first: the window policy's samples.
    samples: VecDeque<(u64, i64)>,
    /// When to look next.
    next: u64,
    /// The revision last proposed, so a look before it was applied does not propose it again.
    proposed: i64,
}

impl Compactor {
    /// A compactor following `policy`, starting at tick `now`.
    pub fn new(policy: AutoCompaction, now: u64) -> Self {
        Compactor {
            policy,
            samples: VecDeque::new(),
            next: now.saturating_add(Self::step(policy)),
            proposed: 0,
        }
    }

    /// Ticks between looks (and between samples).
    fn step(policy: AutoCompaction) -> u64 {
        match policy {
            AutoCompaction::Off => u64::MAX,
            AutoCompaction::Revisions { every, .. } => every.max(1),
            AutoCompaction::Window { keep } => (keep / 10).max(1),
        }
    }

    /// Called every tick with the node's `store`: the command this node, if `leading`, should
    /// propose now. It runs as root, as etcd's own compactor: with auth on, a compaction needs
    /// a known user.
    pub fn due(&mut self, store: &Store, leading: bool, now: u64) -> Option<KvCommand> {
        let revision = self.observe(store.revision(), store.compacted(), leading, now)?;
        Some(KvCommand::Compact(CompactionRequest { revision }).run_as(Some(ROOT_USER.into())))
    }

    /// Called every tick with the store's `revision` and `compacted` revision: the revision
    /// this node, if `leading`, should propose compacting to now.
    pub fn observe(
        &mut self,
        revision: i64,
        compacted: i64,
        leading: bool,
        now: u64,
    ) -> Option<i64> {
        if self.policy == AutoCompaction::Off || now < self.next {
            return None;
        }
        self.next = now.saturating_add(Self::step(self.policy));
        let target = match self.policy {
            AutoCompaction::Off => return None,
            AutoCompaction::Revisions { keep, .. } => revision.saturating_sub(keep.max(0)),
            AutoCompaction::Window { keep } => {
                self.samples.push_back((now, revision));
                // The oldest sample is needed only while the next one is not yet old enough.
                while self.samples.len() > 1 && self.samples[1].0.saturating_add(keep) <= now {
                    self.samples.pop_front();
                }
                match self.samples.front() {
                    Some(&(at, rev)) if at.saturating_add(keep) <= now => rev,
                    _ => return None,
                }
            }
        };
        // A proposal lost with a leadership is made anew once the target moves past it.
        if !leading || target <= compacted.max(self.proposed) {
            return None;
        }
        self.proposed = target;
        Some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::{AutoCompaction, Compactor};

    /// Drives `c` from tick 1 to `until` with the revision `rev(tick)`, applying each proposal
    /// at once; returns the ticks and revisions proposed.
    fn run(
        c: &mut Compactor,
        until: u64,
        leading: bool,
        rev: impl Fn(u64) -> i64,
    ) -> Vec<(u64, i64)> {
        let mut compacted = 0;
        let mut out = Vec::new();
        for now in 1..=until {
            if let Some(r) = c.observe(rev(now), compacted, leading, now) {
                out.push((now, r));
                compacted = r;
            }
        }
        out
    }

    #[test]
    fn off_never_proposes() {
        let mut c = Compactor::new(AutoCompaction::Off, 0);
        assert!(run(&mut c, 10_000, true, |t| t as i64 * 5).is_empty());
    }

    #[test]
    fn revisions_keeps_the_newest_and_looks_on_schedule() {
        let mut c = Compactor::new(
            AutoCompaction::Revisions {
                keep: 100,
                every: 50,
            },
            0,
        );
        let got = run(&mut c, 200, true, |t| t as i64 * 3);
        // At tick 50 the revision is 150: compact to 50; then every 50 ticks.
        assert_eq!(got, vec![(50, 50), (100, 200), (150, 350), (200, 500)]);
    }

    #[test]
    fn revisions_waits_until_there_is_more_than_it_keeps() {
        let mut c = Compactor::new(
            AutoCompaction::Revisions {
                keep: 1_000,
                every: 10,
            },
            0,
        );
        assert!(run(&mut c, 100, true, |t| t as i64).is_empty());
    }

    #[test]
    fn window_compacts_to_the_revision_of_keep_ticks_ago() {
        let mut c = Compactor::new(AutoCompaction::Window { keep: 100 }, 0);
        let got = run(&mut c, 300, true, |t| t as i64 * 2);
        assert!(!got.is_empty());
        for &(now, r) in &got {
            // Everything written in the last `keep` ticks is kept, and no more than a tenth
            // more than that.
            let at = r as u64 / 2;
            assert!(
                at + 100 <= now,
                "tick {now}: compacted to tick {at}'s revision"
            );
            assert!(at + 110 >= now, "tick {now}: kept since tick {at}");
        }
        assert_eq!(got.first().map(|g| g.0), Some(110));
    }

    #[test]
    fn only_the_leader_proposes_but_every_node_samples() {
        let mut c = Compactor::new(AutoCompaction::Window { keep: 100 }, 0);
        assert!(run(&mut c, 150, false, |t| t as i64).is_empty());
        // Elected at 151: the samples taken as a follower let it compact at its first look.
        let mut compacted = 0;
        let mut first = None;
        for now in 151..=170 {
            if let Some(r) = c.observe(now as i64, compacted, true, now) {
                first.get_or_insert((now, r));
                compacted = r;
            }
        }
        assert_eq!(first, Some((160, 60)));
    }

    #[test]
    fn a_proposal_not_yet_applied_is_not_made_again() {
        let mut c = Compactor::new(AutoCompaction::Revisions { keep: 10, every: 1 }, 0);
        assert_eq!(c.observe(100, 0, true, 1), Some(90));
        // Not applied yet (compacted still 0), the revision unchanged: nothing new to ask.
        assert_eq!(c.observe(100, 0, true, 2), None);
        assert_eq!(c.observe(101, 0, true, 3), Some(91));
        // Applied: nothing new until more is written.
        assert_eq!(c.observe(101, 91, true, 4), None);
    }
}
