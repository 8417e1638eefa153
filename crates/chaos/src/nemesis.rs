//! The nemesis: applies each planned fault to the real cluster and heals it.

use crate::error::Result;
use crate::netns::Netns;
use crate::nodes::Cluster;
use crate::schedule::{cut_links, Fault, Split, Target};
use crate::status;
use serde::Serialize;
use std::time::Duration;

/// A fault as it happened.
#[derive(Clone, Debug, Serialize)]
pub struct FaultRecord {
    /// Its kind, as counted in the summary (`kill-leader`, ...).
    pub name: String,
    /// What exactly was done (`kill -9 node 2 (the leader)`).
    pub detail: String,
    /// When it started, in the history's microseconds.
    pub start_us: u64,
    /// When it was healed.
    pub end_us: Option<u64>,
}

/// What has to be undone to heal a fault.
pub enum Applied {
    /// Restart these nodes.
    Killed(Vec<u64>),
    /// SIGCONT these nodes.
    Paused(Vec<u64>),
    /// Flush the iptables rules.
    Network,
    /// Nothing to undo.
    Nothing,
}

/// Asks the running nodes who leads; `None` if none can tell.
pub async fn find_leader(cluster: &Cluster) -> Option<u64> {
    let asks = cluster
        .ids()
        .into_iter()
        .filter(|&i| cluster.is_up(i))
        .filter_map(|i| cluster.placement(i).map(|p| p.admin))
        .map(|a| status::fetch(a, Duration::from_millis(300), cluster.admin_tls().cloned()));
    let found: Vec<status::Status> = futures_join(asks).await.into_iter().flatten().collect();
    // The servers name members; a replacement runs under another id than its node's.
    status::leader(&found).and_then(|server| cluster.node_of(server))
}

/// Awaits all futures concurrently (a handful of status requests).
async fn futures_join<F>(fs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

/// Waits up to `within` for a leader that the running nodes report.
pub async fn wait_for_leader(cluster: &Cluster, within: Duration) -> Option<u64> {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if let Some(l) = find_leader(cluster).await {
            return Some(l);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

fn list(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// Starts `fault`; returns what to undo and a description. "The leader" is whoever the nodes
/// say leads now, or a node drawn from `fallback` when none can tell (said in the description).
pub async fn apply(
    fault: &Fault,
    cluster: &mut Cluster,
    net: Option<&Netns>,
    fallback: u64,
    tls: Option<&etcd_client::TlsOptions>,
) -> Result<(Applied, String)> {
    let ids = cluster.ids();
    if let Fault::MoveLeader { to } = fault {
        return Ok((Applied::Nothing, move_leader(cluster, *to, tls).await));
    }
    if let Fault::Replace { node } = fault {
        return Ok((Applied::Nothing, replace(cluster, *node).await?));
    }
    let leader = match fault {
        Fault::Kill(Target::Leader) | Fault::Pause(Target::Leader) => {
            Some(find_leader(cluster).await)
        }
        Fault::Partition(Split::LeaderAlone) => Some(find_leader(cluster).await),
        _ => None,
    };
    let (leader, who) = match leader {
        Some(Some(l)) => (l, format!("node {l} (the leader)")),
        Some(None) => (fallback, format!("node {fallback} (no leader known)")),
        None => (fallback, String::new()),
    };
    let victims = |t: &Target| match t {
        Target::Node(i) => (vec![*i], format!("node {i}")),
        Target::Leader => (vec![leader], who.clone()),
        Target::Majority(m) => (m.clone(), format!("nodes {}", list(m))),
    };
    match fault {
        Fault::Kill(t) => {
            let (v, d) = victims(t);
            for &i in &v {
                cluster.kill(i)?;
            }
            Ok((Applied::Killed(v), format!("kill -9 {d}")))
        }
        Fault::Pause(t) => {
            let (v, d) = victims(t);
            for &i in &v {
                cluster.pause(i, true)?;
            }
            Ok((Applied::Paused(v), format!("SIGSTOP {d}")))
        }
        Fault::Partition(split) => {
            let net = net.ok_or_else(no_net)?;
            net.cut(&cut_links(split, &ids, leader))?;
            let d = match split {
                Split::Halves { minority } => {
                    let rest: Vec<u64> = ids
                        .iter()
                        .copied()
                        .filter(|i| !minority.contains(i))
                        .collect();
                    format!("partition {} | {}", list(minority), list(&rest))
                }
                Split::LeaderAlone => {
                    let rest: Vec<u64> = ids.iter().copied().filter(|&i| i != leader).collect();
                    format!("partition {who} alone | {}", list(&rest))
                }
                Split::Bridge {
                    bridge,
                    left,
                    right,
                } => format!(
                    "partition {} | {}, node {bridge} bridges both",
                    list(left),
                    list(right)
                ),
                Split::OneWay { deaf, from } => format!(
                    "one-way: {} hear nothing from {} (which still hear them)",
                    list(deaf),
                    list(from)
                ),
            };
            Ok((Applied::Network, d))
        }
        Fault::MoveLeader { .. } | Fault::Replace { .. } => unreachable!("handled above"),
        Fault::Loss { percent } => {
            let net = net.ok_or_else(no_net)?;
            net.lose(*percent)?;
            Ok((
                Applied::Network,
                format!("{percent}% loss on every link between nodes"),
            ))
        }
    }
}

fn no_net() -> crate::error::ChaosError {
    crate::error::ChaosError::Config(
        "network faults need network namespaces (run as root, without --no-netns)".into(),
    )
}

/// Undoes `applied`.
pub fn heal(applied: &Applied, cluster: &mut Cluster, net: Option<&Netns>) -> Result<()> {
    match applied {
        Applied::Killed(v) => {
            for &i in v {
                cluster.start(i)?;
            }
        }
        Applied::Paused(v) => {
            for &i in v {
                cluster.pause(i, false)?;
            }
        }
        Applied::Network => {
            if let Some(net) = net {
                net.heal()?;
            }
        }
        Applied::Nothing => {}
    }
    Ok(())
}

/// Asks the leader, as `etcdctl move-leader` does, to hand leadership to `to` (or to the node
/// after it, if `to` leads); says what happened. A refusal or a timeout is not an error of the
/// run: the checkers judge what clients saw meanwhile.
async fn move_leader(cluster: &Cluster, to: u64, tls: Option<&etcd_client::TlsOptions>) -> String {
    let Some(leader) = find_leader(cluster).await else {
        return "move leader: no leader known, nothing asked".into();
    };
    let ids = cluster.ids();
    let to = if to == leader {
        let at = ids.iter().position(|&i| i == leader).unwrap_or(0);
        ids[(at + 1) % ids.len()]
    } else {
        to
    };
    let Some(addr) = cluster.placement(leader).map(|p| p.client) else {
        return format!("move leader: node {leader} has no address");
    };
    let Some(to_member) = cluster.server_id(to) else {
        return format!("move leader: no node {to}");
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let began = std::time::Instant::now();
    let timeout = Duration::from_secs(5);
    let outcome =
        match crate::client::connect(leader, &format!("{scheme}://{addr}"), timeout, tls).await {
            Some(mut c) => match tokio::time::timeout(timeout, c.move_leader(to_member)).await {
                Ok(Ok(_)) => format!("done in {} ms", began.elapsed().as_millis()),
                Ok(Err(e)) => format!("refused: {e}"),
                Err(_) => "no answer within 5 s".into(),
            },
            None => "could not connect".into(),
        };
    format!("move leader from node {leader} to node {to}: {outcome}")
}

/// Evaluates `$call` (an etcd client call) until it succeeds or `$within` has passed (an
/// answer cut off by a leader change, or a refusal worth retrying). Gives the last outcome,
/// and, when it took more than one try, how many and the first error (for the fault log).
macro_rules! retry {
    ($within:expr, $call:expr) => {{
        let deadline = tokio::time::Instant::now() + $within;
        let (mut tries, mut first) = (0u32, None::<String>);
        loop {
            let out = $call.await;
            tries += 1;
            if let Err(e) = &out {
                first.get_or_insert_with(|| e.to_string());
            }
            if out.is_ok() || tokio::time::Instant::now() >= deadline {
                let note = match (tries, first) {
                    (1, _) | (_, None) => String::new(),
                    (n, Some(e)) => format!(" after {n} tries (first: {e})"),
                };
                break (out, note);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }};
}

/// Replaces the member at `node`'s place as an operator replaces one whose disk failed: asks
/// another node to remove it, kills it and wipes its data directory, adds a learner at the same
/// peer address (the log assigns it a new id), starts it empty to join, and promotes it once the
/// leader finds it in sync. Says what happened; a step that fails ends the replacement there
/// (the checkers judge what clients saw meanwhile), except that a node taken out and not added
/// back is an error of the run: it would leave a place nobody can heal.
async fn replace(cluster: &mut Cluster, node: u64) -> Result<String> {
    let Some(old) = cluster.server_id(node) else {
        return Ok(format!("replace: no node {node}"));
    };
    let Some(at) = cluster.placement(node).cloned() else {
        return Ok(format!("replace: node {node} has no address"));
    };
    let began = std::time::Instant::now();
    let others: Vec<u64> = (cluster.ids().into_iter())
        .filter(|&i| i != node && cluster.is_up(i))
        .collect();
    let eps: Vec<String> = others
        .iter()
        .filter_map(|&i| cluster.placement(i).map(|p| format!("http://{}", p.client)))
        .collect();
    let timeout = Duration::from_secs(5);
    let opts = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_millis(500))
        .with_timeout(timeout);
    let Ok(Ok(mut c)) =
        tokio::time::timeout(timeout, etcd_client::Client::connect(eps, Some(opts))).await
    else {
        return Ok(format!(
            "replace member {old} at node {node}: could not connect"
        ));
    };
    let ms = |b: std::time::Instant| b.elapsed().as_millis();
    // One replacement at a time: a learner left from an earlier one that never got promoted
    // would make this one take a voter out without giving one back.
    if let Some(m) = members(&mut c).await {
        if let Some((l, _, _)) = m.iter().find(|(_, learner, _)| *learner) {
            return Ok(format!(
                "replace member {old} at node {node}: skipped, member {l} is still a learner"
            ));
        }
    }
    // Each step's answer may be lost (a leader change) after the change was made, and a retry
    // is then refused ("member not found", "Peer URLs already exists"): the member list says
    // what really happened.
    let (removed, mut remove_note) = retry!(timeout, c.member_remove(old));
    if let Err(e) = removed {
        let listed = members(&mut c).await;
        if !listed.is_some_and(|m| m.iter().all(|(id, _, _)| *id != old)) {
            return Ok(format!(
                "replace member {old} at node {node}: remove refused: {e}"
            ));
        }
        remove_note = format!(" (answered {e}, but the member list shows it gone)");
    }
    cluster.kill(node)?;
    let url = format!("http://{}", at.peer);
    let learner = || Some(etcd_client::MemberAddOptions::new().with_is_learner());
    let (added, add_note) = retry!(
        Duration::from_secs(20),
        c.member_add([url.as_str()], learner())
    );
    let listed_at_url = |m: Vec<(u64, bool, Vec<String>)>| {
        m.into_iter()
            .find(|(_, _, urls)| urls.contains(&url))
            .map(|(id, _, _)| id)
    };
    let new = match added.map(|r| r.member().map(|m| m.id())) {
        Ok(Some(id)) => id,
        other => match members(&mut c).await.and_then(listed_at_url) {
            Some(id) => id,
            None => {
                return Err(crate::error::ChaosError::NotReady(format!(
                    "member {old} at node {node} was removed, but adding its replacement failed: \
                 {other:?}"
                )))
            }
        },
    };
    cluster.replace(node, new)?;
    cluster.start(node)?;
    let joined = ms(began);
    // The leader refuses a learner it has not heard in sync with it; the learner catches up
    // from a snapshot and the log first.
    let (promoted, _) = retry!(Duration::from_secs(20), c.member_promote(new));
    let voter = |m: Vec<(u64, bool, Vec<String>)>| m.iter().any(|(id, l, _)| *id == new && !l);
    let outcome = match promoted {
        Ok(_) => format!("promoted at {} ms", ms(began)),
        Err(_) if members(&mut c).await.is_some_and(voter) => {
            format!("promoted by {} ms (its answer lost)", ms(began))
        }
        Err(e) => format!("not promoted within 20 s: {e}"),
    };
    // Promotions are refused until the learner is in sync: their retries are expected.
    Ok(format!(
        "replace member {old} at node {node} by member {new}: removed{remove_note}, wiped, \
         added{add_note} and started at {joined} ms, {outcome}"
    ))
}

/// (id, is learner, peer URLs) of every member, as `member list` answers; `None` if it cannot.
async fn members(c: &mut etcd_client::Client) -> Option<Vec<(u64, bool, Vec<String>)>> {
    let listed = tokio::time::timeout(Duration::from_secs(5), c.member_list()).await;
    let r = listed.ok()?.ok()?;
    let m = r.members().iter();
    Some(
        m.map(|m| (m.id(), m.is_learner(), m.peer_urls().to_vec()))
            .collect(),
    )
}
