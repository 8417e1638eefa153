//! `synod flow`: message-flow charts from real runs.

use crate::Outcome;
use anyhow::{bail, Result};
use clap::Args;
use synod_sim::flow::{scenario, SCENARIOS};

/// Options of `synod flow`.
#[derive(Args)]
pub struct FlowArgs {
    /// The scenario to draw (see --list).
    scenario: Option<String>,
    /// List the scenarios.
    #[arg(long)]
    list: bool,
    /// Draw every scenario.
    #[arg(long, conflicts_with = "scenario")]
    all: bool,
}

pub fn run(args: FlowArgs) -> Result<Outcome> {
    if args.list {
        let w = SCENARIOS.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for s in SCENARIOS {
            println!("{:w$}  {}", s.name, s.title);
        }
        return Ok(Outcome::Ok);
    }
    let chosen: Vec<_> = if args.all {
        SCENARIOS.iter().collect()
    } else {
        let Some(name) = &args.scenario else {
            bail!("name a scenario, or use --list to see them, or --all to draw every one");
        };
        match scenario(name) {
            Some(s) => vec![s],
            None => bail!("unknown scenario '{name}'; `synod flow --list` shows the scenarios"),
        }
    };
    for s in chosen {
        let drawn = s.run();
        println!("== {}: {} ==\n", s.name, s.title);
        print!("{}", drawn.chart.render());
        let values = drawn.outcome.values();
        println!(
            "\nchosen: {}   learned by: {}",
            if values.is_empty() {
                "nothing yet".to_string()
            } else {
                values.join(", ")
            },
            drawn
                .outcome
                .learned
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        );
        for f in &drawn.facts {
            println!("  {f}");
        }
        println!();
    }
    Ok(Outcome::Ok)
}
