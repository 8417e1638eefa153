//! Running the system tools the harness drives (`ip`, `iptables`).

use crate::error::{ChaosError, Result};
use std::process::{Command, Stdio};

/// Runs `program args...` to completion; an error carries its standard error.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<()> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ChaosError::Command {
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(ChaosError::Command {
        command,
        detail: format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}

/// Whether `program` can be found and started (`program --version` runs).
pub(crate) fn available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}
