//! `synod snapshot`: reading and restoring the backups `etcdctl snapshot save` takes from a
//! Synod member.

use crate::Outcome;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use synod_server::backup;

/// Backups taken with `etcdctl snapshot save` against a Synod member.
#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    command: SnapshotCommand,
}

#[derive(Subcommand, Debug)]
enum SnapshotCommand {
    /// Check a backup and print its revision, keys, size and hash (the hash `etcdctl endpoint
    /// hashkv` reports for that revision on a member that has not compacted past it).
    Status {
        /// The backup file.
        file: PathBuf,
    },
    /// Write a new member's data directory from a backup. Restore the same file for every
    /// member of the new cluster, then start them with the usual `synod server` flags.
    Restore {
        /// The backup file.
        file: PathBuf,
        /// The new member's data directory; must be empty or missing.
        #[arg(long)]
        data_dir: PathBuf,
    },
}

fn read(file: &PathBuf) -> Result<backup::Backup> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    backup::decode(&bytes).with_context(|| file.display().to_string())
}

/// Runs `synod snapshot`.
pub fn run(args: SnapshotArgs) -> Result<Outcome> {
    match args.command {
        SnapshotCommand::Status { file } => {
            let b = read(&file)?;
            let (hash, compacted, _) = b
                .store
                .hash_kv(0)
                .context("the backup's store cannot be hashed")?;
            println!("revision:          {}", b.revision);
            println!("keys:              {}", b.store.len());
            println!("compact revision:  {compacted}");
            println!("store bytes:       {}", b.state.len());
            println!("hash:              {hash}");
        }
        SnapshotCommand::Restore { file, data_dir } => {
            let b = read(&file)?;
            backup::restore(&b, &data_dir)?;
            println!(
                "restored revision {} ({} keys) into {}",
                b.revision,
                b.store.len(),
                data_dir.display()
            );
        }
    }
    Ok(Outcome::Ok)
}
