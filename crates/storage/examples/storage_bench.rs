//! Runs the storage benchmark (what `synod bench storage` shows).
//!
//! `cargo run --release -p synod-storage --example storage_bench -- [SECONDS_PER_CASE] [DIR] [--json]`

use std::time::Duration;
use synod_storage::bench::{bench_with_progress, BenchOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let mut plain = args.iter().filter(|a| !a.starts_with("--"));
    let mut opts = BenchOptions::default();
    if let Some(secs) = plain.next() {
        match secs.parse::<f64>() {
            Ok(s) if s > 0.0 => opts.duration = Duration::from_secs_f64(s),
            _ => {
                eprintln!("usage: storage_bench [SECONDS_PER_CASE] [DIR] [--json]");
                std::process::exit(2);
            }
        }
    }
    opts.dir = plain.next().map(Into::into);
    match bench_with_progress(&opts, |what| eprintln!("measuring {what} ...")) {
        Ok(report) if json => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        Ok(report) => print!("{report}"),
        Err(e) => {
            eprintln!("storage benchmark failed: {e}");
            std::process::exit(1);
        }
    }
}
