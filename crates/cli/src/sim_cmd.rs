//! `synod sim`: many seeds, a progress bar, a summary, and a replay command on failure.

use crate::Outcome;
use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::time::Instant;
use synod_core::quorum::QuorumSpec;
use synod_core::PlantedBug;
use synod_sim::trace::write_jsonl;
use synod_sim::{run_many, Faults, Protocol, SimOptions};

/// Options of `synod sim`.
#[derive(Args)]
pub struct SimArgs {
    /// Protocol to simulate: `basic` (single decree, separate roles), `fast` (single-decree
    /// Fast Paxos: 2 coordinators, acceptors, 2 learners and 3 clients racing), `fast-multi`
    /// (Fast Multi-Paxos: servers that accept, learn and lead, and 3 clients proposing 4
    /// commands each straight to the acceptors), `multi`
    /// (Multi-Paxos replicas serving key-value clients), `generalized` (Generalized Paxos: 2
    /// leaders, 3 acceptors, 2 learners, 3 clients reading and writing two registers), or an atomic-commit protocol: `2pc`,
    /// `3pc`, `paxos-commit` (a coordinator, participants, and for Paxos Commit 3 acceptors),
    /// `pbft` (Byzantine Multi-Paxos: 3f+1 replicas of which the seed makes up to f lie,
    /// each its own way, and 3 clients taking results on f+1 matching replies), or
    /// `fast-byzantine` (Fast Byzantine Multi-Paxos: 5f+1 acceptors, up to f lying, and 3
    /// clients proposing straight to them).
    #[arg(long, default_value = "multi")]
    protocol: Protocol,
    /// Replicas (multi, default 5), servers (fast-multi, default 5), acceptors (basic and
    /// fast, default 5; basic adds 3
    /// proposers and 2 learners; generalized, default 3), participants (commit protocols, default 3, at most 9),
    /// replicas (pbft, default 4, at least 4), or acceptors (fast-byzantine, default 6, at
    /// least 6).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=15))]
    nodes: Option<u64>,
    /// Cheap Paxos (multi only): `M+A` runs M main replicas and A auxiliary acceptors, which
    /// vote only while a main is silent; the mains alone must be a majority of all (2+1, 3+1,
    /// 3+2...). The nemesis crashes and cuts off auxiliaries too.
    #[arg(long, value_parser = parse_cheap, conflicts_with = "nodes")]
    cheap: Option<(u64, u64)>,

    /// Lying replicas (pbft and fast-byzantine only): at most f = (nodes - 1) / 3 for pbft,
    /// (nodes - 1) / 5 for fast-byzantine. Without it each seed draws its liars, f of them in
    /// most runs, and each liar its lies.
    #[arg(long)]
    liars: Option<u64>,
    /// Compare protocols over the same seeds and fault classes instead of running one:
    /// `commit` runs 2pc, 3pc and paxos-commit (each for --seeds seeds, default 1000) and
    /// prints what each decided, blocked and split, and what each costs without faults;
    /// `latency` counts message delays from proposal to learning, hop by hop, in fault-free
    /// runs of Basic, Fast (each recovery rule, with and without collisions) and Generalized
    /// Paxos (--seeds seeds per row).
    #[arg(long, conflicts_with_all = ["seed", "bug", "trace"])]
    compare: Option<CompareWhat>,
    /// How many seeds to run.
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Run this one seed only (to replay a failure); combine with --trace.
    #[arg(long, conflicts_with_all = ["seeds", "first_seed"])]
    seed: Option<u64>,
    /// Faults allowed: a comma-separated list of loss, dup, reorder, partition, crash, pause;
    /// or `all` or `none`. With swarm testing (the default) each seed runs a mix of them.
    #[arg(long, default_value = "all")]
    faults: Faults,
    /// Plant a bug on purpose to see the checkers catch it (`synod sim --list-bugs` names
    /// them all; most exist in Multi-Paxos only).
    #[arg(long)]
    bug: Option<PlantedBug>,
    /// List the bugs that can be planted, with what each breaks, and exit.
    #[arg(long)]
    list_bugs: bool,
    /// Quorum sizes (multi only): `majority`, or `Q1,Q2` for flexible quorums (phase 1 and
    /// phase 2 sizes, which must add up to more than the node count).
    #[arg(long, default_value = "majority", value_parser = parse_quorum)]
    quorum: QuorumSpec,
    /// Run every seed with every allowed fault at fixed rates, instead of drawing a mix and
    /// rates per seed (swarm testing; multi only).
    #[arg(long)]
    no_swarm: bool,
    /// Concurrent key-value clients (multi only).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    clients: u64,
    /// Operations per client (multi only).
    #[arg(long, default_value_t = 25)]
    ops: u64,
    /// Write the events of the replayed (or first failing) run to this file, as JSON lines.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// What `--compare` compares.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum CompareWhat {
    /// 2PC, 3PC and Paxos Commit.
    Commit,
    /// Message delays of Basic, Fast and Generalized Paxos, with and without collisions.
    Latency,
}

/// Parses `M+A`: main replicas and auxiliary acceptors.
fn parse_cheap(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("expected MAINS+AUXILIARIES (e.g. 2+1), not '{s}'");
    let (m, a) = s.split_once('+').ok_or_else(bad)?;
    let m: u64 = m.trim().parse().map_err(|_| bad())?;
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    if m == 0 || a == 0 || m + a > 15 {
        return Err(format!(
            "'{s}': at least one main and one auxiliary, 15 nodes at most"
        ));
    }
    if m < (m + a) / 2 + 1 {
        return Err(format!(
            "'{s}': the {m} mains alone must be a majority of all {} acceptors",
            m + a
        ));
    }
    Ok((m, a))
}

/// Parses `majority` or `Q1,Q2`.
fn parse_quorum(s: &str) -> Result<QuorumSpec, String> {
    if s == "majority" {
        return Ok(QuorumSpec::Majority);
    }
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    match parts.as_slice() {
        [a, b] => {
            let n = |x: &str| {
                x.parse::<usize>()
                    .map_err(|_| format!("'{x}' is not a quorum size (a whole number)"))
            };
            Ok(QuorumSpec::Flexible {
                q1: n(a)?,
                q2: n(b)?,
            })
        }
        _ => Err(format!(
            "expected 'majority' or 'Q1,Q2' (e.g. 4,2 for five nodes), not '{s}'"
        )),
    }
}

pub fn run(args: SimArgs) -> Result<Outcome> {
    if args.list_bugs {
        for b in PlantedBug::ALL {
            println!("{:<30} {}", b.name(), b.describe());
        }
        return Ok(Outcome::Ok);
    }
    match args.compare {
        Some(CompareWhat::Commit) => {
            return compare_commit(args.seeds, args.nodes.unwrap_or(3) as usize, args.json)
        }
        Some(CompareWhat::Latency) => return compare_latency(args.seeds, args.json),
        None => {}
    }
    let nodes = args
        .nodes
        .or(args.cheap.map(|(m, _)| m))
        .map(|n| n as usize)
        .unwrap_or(args.protocol.default_nodes());
    let auxiliaries = args.cheap.map_or(0, |(_, a)| a as usize);
    if auxiliaries > 0 && args.protocol != Protocol::Multi {
        anyhow::bail!("--cheap runs Multi-Paxos only (--protocol multi)");
    }
    if auxiliaries > 0 && args.quorum != QuorumSpec::Majority {
        anyhow::bail!("--cheap runs with majority quorums");
    }
    if let Some(b) = args.bug {
        let protocol = args.protocol.to_string();
        if !b.protocols().contains(&protocol.as_str()) {
            let flags: Vec<String> = b
                .protocols()
                .iter()
                .map(|p| format!("--protocol {p}"))
                .collect();
            anyhow::bail!(
                "--bug {b} is planted in {}, not in {protocol}",
                flags.join(" or ")
            );
        }
    }
    if let Some(k) = args.liars {
        let (f, rule) = match args.protocol {
            Protocol::Pbft => (nodes.saturating_sub(1) / 3, "f = (n - 1) / 3"),
            Protocol::FastByzantine => (nodes.saturating_sub(1) / 5, "f = (n - 1) / 5"),
            _ => anyhow::bail!("--liars is for --protocol pbft or fast-byzantine"),
        };
        if k as usize > f {
            anyhow::bail!("--liars {k}: {nodes} replicas tolerate at most {f} ({rule})");
        }
    }
    if args.protocol.is_commit() && nodes > 9 {
        anyhow::bail!("--nodes: commit protocols run with 1 to 9 participants");
    }
    let opts = SimOptions {
        protocol: args.protocol,
        nodes,
        faults: args.faults,
        bug: args.bug,
        clients: args.clients as usize,
        ops: args.ops as usize,
        linearizability: true,
        quorum: args.quorum,
        swarm: !args.no_swarm,
        auxiliaries,
        liars: args.liars.map(|k| k as usize),
    };
    if args.protocol == Protocol::Multi {
        let ids: Vec<u64> = (1..=nodes as u64).collect();
        synod_core::Quorum::from_spec(args.quorum, &ids)
            .map_err(|e| anyhow::anyhow!("--quorum: {e}"))?;
    }
    let (first, count) = match args.seed {
        Some(s) => (s, 1),
        None => (args.first_seed, args.seeds),
    };
    let bar = if args.json || count == 1 {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(count)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} seeds {msg}",
        )
        .expect("static template"),
    );
    let started = Instant::now();
    let mut failing = 0;
    let summary = run_many(&opts, first, count, |r| {
        bar.inc(1);
        if r.violation.is_some() {
            failing += 1;
            bar.set_message(format!("{failing} failing"));
        }
    })
    .map_err(anyhow::Error::msg)?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();

    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        let s = &summary.stats;
        println!(
            "{} seeds of {}, {} {}, faults: {}{}",
            summary.seeds,
            if opts.protocol.is_commit() {
                opts.protocol.to_string()
            } else {
                format!("{} Paxos", opts.protocol)
            },
            opts.nodes,
            match (opts.protocol.is_commit(), opts.auxiliaries) {
                (true, _) => "participants".to_string(),
                (false, 0) => "nodes".to_string(),
                (false, a) => format!("mains + {a} auxiliaries"),
            },
            opts.faults,
            opts.bug
                .map(|b| format!(", planted bug: {b}"))
                .unwrap_or_default()
        );
        println!(
            "  steps {}   messages sent {}   delivered {}   dropped {}",
            s.steps, s.sent, s.delivered, s.dropped
        );
        if opts.protocol.is_commit() {
            println!(
                "  transactions begun {}   decided {}   crashes {}   partitions {}   pauses {}",
                s.ops, s.decisions, s.crashes, s.partitions, s.pauses
            );
        } else {
            println!(
                "  decisions {}   client ops {}   crashes {}   partitions {}   held for a restart {}   \
                 commands rerouted {}",
                s.decisions, s.ops, s.crashes, s.partitions, s.redelivered, s.rerouted
            );
            if opts.auxiliaries > 0 {
                println!(
                    "  cheap paxos: configurations applied {}   messages to auxiliaries {} \
                     (accepts of a digest {})   votes they held at the end {}",
                    s.epochs, s.aux_messages, s.aux_digests, s.aux_votes_left
                );
            }
            if s.reconfigurations > 0 {
                println!(
                    "  operator: membership changes asked {}   applied {}   members removed {}   \
                     nodes added {} (joined: {})",
                    s.reconfigurations, s.epochs, s.removed, s.added, s.joined
                );
            }
            if s.transfers + s.checkpoints > 0 {
                println!(
                    "  operator: leader transfers {} (successor led: {})   forced checkpoints {}",
                    s.transfers, s.handovers, s.checkpoints
                );
            }
        }
        println!(
            "  {:.2}s wall, {:.0} deliveries/s, {:.0} steps/s",
            secs,
            s.delivered as f64 / secs,
            s.steps as f64 / secs
        );
        println!("  violations: {}", summary.failing);
    }

    let trace_seed = summary.first_failure.as_ref().map(|r| r.seed).or(args.seed);
    if let (Some(path), Some(seed)) = (&args.trace, trace_seed) {
        let (_, events) = opts.run_one(seed, true).map_err(anyhow::Error::msg)?;
        let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        write_jsonl(&events, BufWriter::new(f))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!(
            "trace of seed {seed}: {} events in {}",
            events.len(),
            path.display()
        );
    }

    match &summary.first_failure {
        None => Ok(Outcome::Ok),
        Some(r) => {
            let v = r.violation.as_ref().expect("a failure has a violation");
            eprintln!("\nFIRST VIOLATION (seed {}): {v}", r.seed);
            eprintln!("replay: {}", opts.replay_command(r.seed));
            Ok(Outcome::Problem)
        }
    }
}

/// `--compare commit`: the table of the three commit protocols.
fn compare_commit(seeds: u64, participants: usize, json: bool) -> Result<Outcome> {
    if !(1..=9).contains(&participants) {
        anyhow::bail!("--nodes: commit protocols run with 1 to 9 participants");
    }
    let started = Instant::now();
    let (rows, costs) =
        synod_sim::commit::compare(seeds, participants).map_err(anyhow::Error::msg)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"rows": rows, "costs": costs}))?
        );
        return Ok(Outcome::Ok);
    }
    println!(
        "{seeds} seeds per row, {participants} participants (Paxos Commit: 3 acceptors), 12 \
         transactions per seed;\none process may fail for good (a crash that never restarts)\n"
    );
    println!(
        "{:<13} {:<17} {:>7} {:>8} {:>8} {:>6} {:>8} {:>8} {:>8}",
        "protocol",
        "faults",
        "begun",
        "decided",
        "unheard",
        "blocked",
        "split",
        "invalid",
        "failing"
    );
    for r in &rows {
        println!(
            "{:<13} {:<17} {:>7} {:>8} {:>8} {:>8} {:>6} {:>8} {:>8}",
            r.protocol,
            r.faults,
            r.begun,
            r.decided,
            r.unheard,
            r.blocked,
            r.split,
            r.invalid,
            format!("{}/{}", r.failing_seeds, r.seeds)
        );
    }
    println!("\nwithout faults, a committing transaction costs:\n");
    println!(
        "{:<13} {:>15} {:>13}",
        "protocol", "message delays", "messages"
    );
    for c in &costs {
        println!("{:<13} {:>15} {:>13.1}", c.protocol, c.delays, c.messages);
    }
    println!(
        "\nunheard: no participant voted or learned an outcome (nobody waits); blocked: a live \
         participant voted yes\nand never learned the outcome; split: one participant \
         committed, another aborted (atomicity broken);\nfailing: seeds with any violation. \
         {:.1}s.",
        started.elapsed().as_secs_f64()
    );
    Ok(Outcome::Ok)
}

/// `--compare latency`: Fast Paxos's message delays, counted hop by hop from runs.
fn compare_latency(seeds: u64, json: bool) -> Result<Outcome> {
    let rows = synod_sim::latency::compare(seeds).map_err(anyhow::Error::msg)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(Outcome::Ok);
    }
    let spread = |m: &std::collections::BTreeMap<u32, u64>| -> String {
        if m.is_empty() {
            return "-".into();
        }
        let parts: Vec<String> = m.iter().map(|(d, n)| format!("{d}:{n}")).collect();
        parts.join(" ")
    };
    println!(
        "No faults, {seeds} seeds per row. Basic Paxos: 5 acceptors, 2 learners. Fast Paxos: 5 acceptors (or servers), 1 coordinator; \
         Fast Multi-Paxos: 5 servers, 4 commands per client;\nGeneralized Paxos: 3 acceptors, 1 leader, \
         4 reads and writes of two registers per client. Message delays from a client's proposal\n\
         to the first learner learning it (delays:seeds for Fast Paxos, delays:commands for Fast Multi- and Generalized Paxos;\n\
         for Fast Multi-Paxos the columns split commands chosen in a fast round from those chosen in a classic one).\n"
    );
    println!(
        "{:<12} {:<14} {:<9} {:>7} {:>9} {:>10} {:<20} {:<20}",
        "protocol",
        "recovery",
        "roles",
        "clients",
        "collided",
        "recovered",
        "without recovery",
        "with recovery"
    );
    let mut failing = 0;
    for r in &rows {
        failing += r.failing;
        println!(
            "{:<12} {:<14} {:<9} {:>7} {:>9} {:>10} {:<20} {:<20}",
            r.protocol,
            r.rule,
            if r.collapsed { "collapsed" } else { "separate" },
            r.clients,
            r.collided,
            r.recovered,
            spread(&r.fast),
            spread(&r.recovering)
        );
    }
    println!(
        "\nBasic Paxos counts from a proposer's first Prepare (phase 1 included; its `clients` are \
         proposers, and\n`recovered` counts decisions reached through a retry, not counted). \
         Multi-Paxos with a stable leader skips\nphase 1: 3 delays (client to leader, Accept, \
         Accepted), counted on the requests `synod flow multi-steady` draws. collided:\nacceptors split their votes \
         (Fast) or hold conflicting histories (Generalized); recovered: a recovery\nround ran. \
         PBFT: 4 replicas, no liars, 6 requests per client, delays to the first replica executing a request\n\
         (request, pre-prepare, prepare, commit; a step counts the hops of the message that completed it, so a backup\n\
         that heard a prepare before the order shows 3). violations: {failing}"
    );
    println!("\nPBFT messages per request (fault-free, no liars, one client, {seeds} seeds; status rounds and checkpoints are periodic):");
    for replicas in [4, 7] {
        let per = synod_sim::latency::pbft_messages(replicas, seeds).map_err(anyhow::Error::msg)?;
        let on_path = ["Request", "PrePrepare", "Prepare", "Commit", "Reply"];
        print_kinds(&format!("{replicas} replicas"), &per, &on_path);
    }
    println!(
        "\nFast Byzantine: delays to the first acceptor executing a request (Propose, Accepted). Messages per request\n\
         (fault-free, no liars, one client, {seeds} seeds; status rounds are periodic):"
    );
    for acceptors in [6, 11] {
        let per = synod_sim::latency::fab_messages(acceptors, seeds).map_err(anyhow::Error::msg)?;
        print_kinds(
            &format!("{acceptors} acceptors"),
            &per,
            &["Propose", "Accepted", "Reply"],
        );
    }
    Ok(if failing == 0 {
        Outcome::Ok
    } else {
        Outcome::Problem
    })
}

/// One line of messages per request: the kinds on a request's path, their sum, and the rest.
fn print_kinds(who: &str, per: &std::collections::BTreeMap<String, f64>, on_path: &[&str]) {
    let parts: Vec<String> = on_path
        .iter()
        .map(|k| format!("{k} {:.1}", per.get(*k).copied().unwrap_or(0.0)))
        .collect();
    let total: f64 = on_path.iter().filter_map(|k| per.get(*k)).sum();
    let rest: Vec<String> = per
        .iter()
        .filter(|(k, _)| !on_path.contains(&k.as_str()))
        .map(|(k, n)| format!("{k} {n:.1}"))
        .collect();
    println!(
        "  {who}: {} = {total:.1} on the request's path; besides: {}",
        parts.join(", "),
        rest.join(", ")
    );
}
