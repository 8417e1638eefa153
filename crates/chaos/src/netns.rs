//! One network namespace per node, joined by veth pairs to a bridge in the root namespace.
//!
//! ```text
//!   root namespace: bridge synchS 198.18.S.254/24 (the clients talk from here)
//!     ├── schSvI ══ veth ══ schSpI in namespace synod-chaosS-nI, 198.18.S.I/24
//!     └── ...
//! ```
//!
//! 198.18.0.0/15 is reserved for network benchmarks (RFC 2544), so it collides with no real
//! network, and the routes exist only on the bridge this harness creates. `S`, a slot, lets
//! runs coexist: whoever creates bridge `synchS` first owns the slot. Partitions and loss are
//! iptables rules in the nodes' namespaces on packets from other nodes, so the clients
//! (coming from the bridge address) still reach every node, also one in a minority, and see
//! what it does there. [`Netns`] removes everything it made when dropped, also on error or
//! interruption; removing a namespace removes its veth pair and its rules.

use crate::error::{ChaosError, Result};
use crate::shell::run;
use std::net::Ipv4Addr;

/// Slots tried for a bridge and subnet.
const SLOTS: u8 = 64;

/// The bridge, namespaces and veth pairs of one run.
pub struct Netns {
    slot: u8,
    ids: Vec<u64>,
    namespaces: Vec<String>,
    bridge_up: bool,
}

impl Netns {
    /// Creates the bridge and one namespace per node in `ids`.
    pub fn create(ids: &[u64]) -> Result<Netns> {
        if ids.iter().any(|&i| i == 0 || i > 250) {
            return Err(ChaosError::Config("node ids must be 1..=250".into()));
        }
        let slot = claim_bridge()?;
        let mut net = Netns {
            slot,
            ids: ids.to_vec(),
            namespaces: Vec::new(),
            bridge_up: true,
        };
        let bridge = net.bridge();
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/24", net.gateway()),
                "dev",
                &bridge,
            ],
        )?;
        run("ip", &["link", "set", &bridge, "up"])?;
        for &i in ids {
            let ns = net.namespace(i);
            let (host, inner) = (format!("sch{slot}v{i}"), format!("sch{slot}p{i}"));
            // Owning the bridge means owning the slot: whatever else carries its names is a
            // leftover of a run that was killed before it could clean up, and goes now.
            let _ = run("ip", &["link", "del", &host]);
            let _ = run("ip", &["netns", "del", &ns]);
            run("ip", &["netns", "add", &ns])?;
            net.namespaces.push(ns.clone());
            run(
                "ip",
                &["link", "add", &host, "type", "veth", "peer", "name", &inner],
            )?;
            run("ip", &["link", "set", &inner, "netns", &ns])?;
            run("ip", &["link", "set", &host, "master", &bridge])?;
            run("ip", &["link", "set", &host, "up"])?;
            let addr = format!("{}/24", net.addr(i));
            run("ip", &["-n", &ns, "addr", "add", &addr, "dev", &inner])?;
            run("ip", &["-n", &ns, "link", "set", &inner, "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    /// The bridge's name.
    pub fn bridge(&self) -> String {
        format!("synch{}", self.slot)
    }

    /// The bridge's own address, from which clients reach the nodes.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.slot, 254)
    }

    /// Node `i`'s address inside its namespace.
    pub fn addr(&self, i: u64) -> Ipv4Addr {
        // Ids are checked to be 1..=250 in `create`.
        Ipv4Addr::new(198, 18, self.slot, i as u8)
    }

    /// Node `i`'s namespace.
    pub fn namespace(&self, i: u64) -> String {
        format!("synod-chaos{}-n{i}", self.slot)
    }

    /// Cuts the directed links `(to, from)`: `to` drops every packet from `from`.
    pub fn cut(&self, links: &[(u64, u64)]) -> Result<()> {
        for &(to, from) in links {
            let src = self.addr(from).to_string();
            let ns = self.namespace(to);
            run(
                "ip",
                &[
                    "netns", "exec", &ns, "iptables", "-A", "INPUT", "-s", &src, "-j", "DROP",
                ],
            )?;
        }
        Ok(())
    }

    /// Every node drops `percent` % of the packets it gets from the other nodes, at random.
    pub fn lose(&self, percent: u32) -> Result<()> {
        let p = format!("{:.2}", f64::from(percent.min(100)) / 100.0);
        for &to in &self.ids {
            let ns = self.namespace(to);
            for &from in self.ids.iter().filter(|&&f| f != to) {
                let src = self.addr(from).to_string();
                run(
                    "ip",
                    &[
                        "netns",
                        "exec",
                        &ns,
                        "iptables",
                        "-A",
                        "INPUT",
                        "-s",
                        &src,
                        "-m",
                        "statistic",
                        "--mode",
                        "random",
                        "--probability",
                        &p,
                        "-j",
                        "DROP",
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// Removes every rule: the network is whole again.
    pub fn heal(&self) -> Result<()> {
        for ns in &self.namespaces {
            run("ip", &["netns", "exec", ns, "iptables", "-F", "INPUT"])?;
        }
        Ok(())
    }

    /// Removes the namespaces (with their veth pairs and rules) and the bridge. Processes still
    /// running inside a namespace keep it alive, so stop them first.
    pub fn teardown(&mut self) -> Result<()> {
        let mut first_error = None;
        // Deleting a namespace frees its veth pair only once the kernel drops its last
        // reference, which can be after `ip netns del` returns; deleting the host end first
        // removes both ends at once, so the next run can reuse the names.
        for &i in &self.ids {
            if self.namespaces.contains(&self.namespace(i)) {
                let _ = run("ip", &["link", "del", &format!("sch{}v{i}", self.slot)]);
            }
        }
        for ns in std::mem::take(&mut self.namespaces) {
            if let Err(e) = run("ip", &["netns", "del", &ns]) {
                first_error.get_or_insert(e);
            }
        }
        if self.bridge_up {
            self.bridge_up = false;
            if let Err(e) = run("ip", &["link", "del", &self.bridge()]) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("chaos: cleaning up the network: {e}");
        }
    }
}

/// Creates the first bridge `synchS` that does not exist yet and returns `S`: creating it is
/// what reserves the slot, so two runs never share one.
fn claim_bridge() -> Result<u8> {
    for slot in 0..SLOTS {
        match run(
            "ip",
            &["link", "add", &format!("synch{slot}"), "type", "bridge"],
        ) {
            Ok(()) => return Ok(slot),
            Err(ChaosError::Command { detail, .. }) if detail.contains("exists") => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ChaosError::NoFreeSlot)
}
