//! `synod chaos`: fault-injection runs against real server processes.

use crate::Outcome;
use anyhow::{bail, Result};
use clap::Args;

/// Options of `synod chaos`.
#[derive(Args, Debug)]
pub struct ChaosArgs {}

pub fn run(_args: ChaosArgs) -> Result<Outcome> {
    bail!("synod chaos is not built yet")
}
