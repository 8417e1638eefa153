//! `synod check`: the linearizability checker on a recorded history.

use crate::Outcome;
use anyhow::{Context, Result};
use clap::Args;
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::time::Instant;
use synod_check::{check, read_history, Verdict, DEFAULT_BUDGET};

/// Options of `synod check`.
#[derive(Args)]
pub struct CheckArgs {
    /// A history as JSON lines (see the format in `synod-check`'s docs, or docs/protocol.md).
    history: PathBuf,
    /// Search steps allowed per key before giving up with "unknown".
    #[arg(long, default_value_t = DEFAULT_BUDGET)]
    budget: u64,
}

pub fn run(args: CheckArgs) -> Result<Outcome> {
    let f = File::open(&args.history)
        .with_context(|| format!("cannot open {}", args.history.display()))?;
    let history = read_history(BufReader::new(f))
        .with_context(|| format!("in {}", args.history.display()))?;
    let started = Instant::now();
    let verdict = check(&history, args.budget);
    println!("{verdict}");
    eprintln!(
        "checked {} operations in {:.2?}",
        history.len(),
        started.elapsed()
    );
    match verdict {
        Verdict::Linearizable { .. } => Ok(Outcome::Ok),
        Verdict::NotLinearizable(_) => Ok(Outcome::Problem),
        Verdict::Unknown { .. } => anyhow::bail!("no verdict within the budget"),
    }
}
