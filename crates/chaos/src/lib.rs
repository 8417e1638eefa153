//! Fault-injection runs against real Synod clusters, checked for linearizability.
//!
//! A run starts N `synod server` processes, each in a network namespace of its own (veth
//! pairs to a bridge; see [`netns`]) or, without root, on loopback; runs clients that read,
//! write, delete and compare-and-set a handful of keys with unique values, recording every
//! operation with its invocation and completion time ([`client`], [`recorder`]); meanwhile a
//! nemesis injects faults drawn from a seed ([`schedule`], [`nemesis`]): kill -9 and restart,
//! SIGSTOP/SIGCONT, partitions and packet loss with iptables inside the namespaces. At the end
//! it heals everything, reads every key through every node ([`verify`]), and hands the whole
//! history to `synod-check`. [`run()`] does all of it; `synod chaos` is its command line.
//!
//! Delay and reordering are not injected: the kernel this was built on has no netem, and a
//! user-space proxy between peers is left for later.

pub mod client;
pub mod config;
pub mod error;
pub mod nemesis;
pub mod netns;
pub mod nodes;
pub mod recorder;
pub mod report;
mod run;
pub mod schedule;
mod shell;
pub mod status;
pub mod verify;

pub use config::{Config, Network};
pub use error::{ChaosError, Result};
pub use report::{Judgement, Report};
pub use run::{run, Event, Events};
pub use schedule::FaultKind;

/// Whether this process can create network namespaces and iptables rules: root, with `ip`
/// and `iptables` installed. `Err` says what is missing.
pub fn namespaces_available() -> std::result::Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("not root: network namespaces and iptables need root".into());
    }
    if !shell::available("ip") {
        return Err("`ip` (iproute2) is not installed".into());
    }
    if !shell::available("iptables") {
        return Err("`iptables` is not installed (apt-get install -y iptables)".into());
    }
    Ok(())
}
