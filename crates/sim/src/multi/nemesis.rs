//! The nemesis: crashes (the leader half the time) and network splits, at the seed's rates,
//! until faults stop; then everything heals and every dead node restarts.

use super::{Event, MultiSim};
use crate::faults::Faults;
use crate::report::Violation;
use crate::trace::TraceEvent;
use rand::seq::SliceRandom;
use rand::Rng;
use synod_core::multi::RoleKind;
use synod_core::NodeId;

impl MultiSim {
    /// Schedules the first crash and the first split, for the fault classes this seed runs.
    pub(super) fn schedule_faults(&mut self) {
        if self.world.faults.crash {
            let at = self.around(self.swarm.crash_every);
            self.world.after(at, Event::Crash);
        }
        if self.world.faults.partition {
            let at = self.around(self.swarm.partition_every);
            self.world.after(at, Event::Partition);
        }
        if self.world.faults.pause {
            let at = self.around(self.swarm.pause_every);
            self.world.after(at, Event::Pause);
        }
    }

    /// Stalls a node (the leader half the time): everything that reaches it waits until it
    /// resumes, and then it acts on stale news, as a process back from a long pause does.
    pub(super) fn nemesis_pause(&mut self) {
        if !self.world.faults.pause || !self.faults_on() {
            return;
        }
        let victim = match self.leader() {
            Some(l) if self.world.rng.gen_bool(0.5) => l,
            _ => *self.ids.choose(&mut self.world.rng).expect("a node"),
        };
        let d = self.world.rng.gen_range(1..=self.swarm.pause.max(1));
        let until = self.world.now + d;
        let n = self.nodes.get_mut(&victim).expect("node");
        n.paused_until = n.paused_until.max(until);
        self.world.stats.pauses += 1;
        let (t, text) = (self.world.now, format!("pause node {victim} for {d} ticks"));
        self.world.trace.record(|| TraceEvent::Note { t, text });
        let at = self.around(self.swarm.pause_every);
        self.world.after(at, Event::Pause);
    }

    /// A delay around `mean` ticks: half to one and a half times it.
    pub(super) fn around(&mut self, mean: u64) -> u64 {
        let mean = mean.max(2);
        self.world.rng.gen_range(mean / 2..=mean + mean / 2)
    }

    pub(super) fn faults_on(&self) -> bool {
        self.world.now < self.cfg.fault_until
    }

    /// The leader with the highest ballot, if any node leads.
    pub(super) fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|(&id, n)| {
                let r = n.core.as_ref()?.replica();
                (r.role_kind() == RoleKind::Leader).then(|| (r.ballot(), id))
            })
            .max()
            .map(|(_, id)| id)
    }

    pub(super) fn nemesis_crash(&mut self) -> Result<(), Violation> {
        if !self.world.faults.crash || !self.faults_on() {
            return Ok(());
        }
        let mut live: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.core.is_some())
            .map(|(&id, _)| id)
            .collect();
        live.extend(self.live_auxes());
        let victim = match self.leader() {
            Some(l) if self.world.rng.gen_bool(0.5) => Some(l),
            _ => live.choose(&mut self.world.rng).copied(),
        };
        match victim {
            Some(v) if self.auxes.contains_key(&v) => self.crash_aux(v)?,
            Some(v) => self.crash(v, false)?,
            None => {}
        }
        let at = self.around(self.swarm.crash_every);
        self.world.after(at, Event::Crash);
        Ok(())
    }

    pub(super) fn nemesis_partition(&mut self) {
        if !self.world.faults.partition || !self.faults_on() {
            return;
        }
        let leader = self.leader();
        let mut ids = self.ids.clone();
        ids.extend(self.auxes.keys());
        self.world.partition_randomly(&ids, leader);
        let at = self.world.rng.gen_range(100..600);
        self.world.after(at, Event::Heal);
    }

    pub(super) fn nemesis_heal(&mut self) {
        self.world.heal();
        if self.world.faults.partition && self.faults_on() {
            let at = self.around(self.swarm.partition_every);
            self.world.after(at, Event::Partition);
        }
    }

    /// Faults stop: the network heals and every dead node restarts.
    pub(super) fn faults_end(&mut self) -> Result<(), Violation> {
        self.world.faults = Faults::NONE;
        self.world.heal();
        let t = self.world.now;
        self.world.trace.record(|| TraceEvent::Note {
            t,
            text: "faults stop: network healed, crashed nodes restart".into(),
        });
        for id in self.ids.clone() {
            if self.nodes[&id].core.is_none() {
                self.world
                    .trace
                    .record(|| TraceEvent::Restart { t, node: id });
                self.boot(id)?;
            }
        }
        let down: Vec<NodeId> = (self.auxes.keys())
            .filter(|id| !self.live_auxes().contains(id))
            .copied()
            .collect();
        for id in down {
            self.world
                .trace
                .record(|| TraceEvent::Restart { t, node: id });
            self.boot_aux(id)?;
        }
        Ok(())
    }
}
