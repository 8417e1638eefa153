//! `synod`: one binary for Synod's simulator, flow charts, checks and benchmarks.
//!
//! Exit codes: 0 success, 1 a check found a problem (a violation, a failed target), 2 bad usage
//! or environment.

mod flow_cmd;
mod sim_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Synod: the Paxos family in Rust.
#[derive(Parser)]
#[command(name = "synod", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the deterministic simulator over many seeds, checking safety after every step.
    Sim(sim_cmd::SimArgs),
    /// Draw a message-flow chart from a real run of the protocol code.
    Flow(flow_cmd::FlowArgs),
}

/// What a command concluded.
pub enum Outcome {
    /// All good.
    Ok,
    /// A check found a problem (exit 1).
    Problem,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(args) => sim_cmd::run(args),
        Command::Flow(args) => flow_cmd::run(args),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Problem) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
