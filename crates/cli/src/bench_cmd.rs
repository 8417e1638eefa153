//! `synod bench`: measurements on this machine.

use crate::Outcome;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use synod_storage::bench::{bench_with_progress, BenchOptions};

/// Options of `synod bench`.
#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Subcommand)]
enum BenchWhat {
    /// The write-ahead log: records/s and MB/s with 1, 16 and 64 writers sharing fsyncs
    /// (group commit), records per fsync, and the disk's raw fdatasync rate for comparison.
    Storage {
        /// Seconds per case.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Bytes per record.
        #[arg(long, default_value_t = 256)]
        record_size: usize,
        /// Writer counts to measure, comma-separated.
        #[arg(long, default_value = "1,16,64", value_delimiter = ',')]
        writers: Vec<usize>,
        /// A directory on the disk to measure (default: the system's temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: BenchArgs) -> Result<Outcome> {
    match args.what {
        BenchWhat::Storage {
            seconds,
            record_size,
            writers,
            dir,
            json,
        } => {
            anyhow::ensure!(seconds > 0.0, "--seconds must be positive");
            anyhow::ensure!(
                !writers.is_empty() && writers.iter().all(|&w| w > 0),
                "--writers needs positive counts"
            );
            let opts = BenchOptions {
                dir,
                duration: Duration::from_secs_f64(seconds),
                record_size,
                writers,
                ..BenchOptions::default()
            };
            let report = bench_with_progress(&opts, |what| eprintln!("measuring {what} ..."))
                .context("storage benchmark failed")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
            Ok(Outcome::Ok)
        }
    }
}
