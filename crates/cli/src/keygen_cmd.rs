//! `synod keygen`: Ed25519 keys for the Byzantine protocols' replicas and clients. Each node's
//! secret goes to a file of its own, readable by its owner only; every public key goes to
//! `public.keys`, which every replica and client loads to check signatures.

use crate::Outcome;
use anyhow::{bail, Context, Result};
use clap::Args;
use rand::rngs::OsRng;
use rand::RngCore;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use synod_bft::keys::{client_key, node_key, public_keys, FIRST_CLIENT};
use synod_core::auth::{public_keys_text, secret_key_text, Ed25519Signer};
use synod_core::NodeId;

/// `synod keygen`'s flags.
#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Directory to write the keys to (created if missing).
    #[arg(long, default_value = "keys")]
    pub dir: PathBuf,
    /// Replicas, numbered 1..=N (at least 4 for PBFT to tolerate one liar).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub nodes: u64,
    /// Clients, numbered 101, 102...
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=100))]
    pub clients: u64,
    /// Overwrite keys that already exist.
    #[arg(long)]
    pub force: bool,
}

fn write_new(path: &Path, text: &str, secret: bool, force: bool) -> Result<()> {
    let mut options = OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!("{} exists; pass --force to replace it", path.display())
        } else {
            anyhow::Error::new(e).context(format!("creating {}", path.display()))
        }
    })?;
    #[cfg(unix)]
    if secret && force {
        // A file that existed keeps its mode through `truncate`: narrow it.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
    }
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes the keys.
pub fn run(args: KeygenArgs) -> Result<Outcome> {
    fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let ids: Vec<(NodeId, PathBuf)> = (1..=args.nodes)
        .map(|id| (id, node_key(&args.dir, id)))
        .chain((0..args.clients).map(|i| {
            let id = FIRST_CLIENT + i;
            (id, client_key(&args.dir, id))
        }))
        .collect();
    if !args.force {
        // All or nothing: check before writing any.
        for path in ids.iter().map(|(_, p)| p).chain([&public_keys(&args.dir)]) {
            if path.exists() {
                bail!("{} exists; pass --force to replace it", path.display());
            }
        }
    }
    let mut publics = Vec::new();
    for (id, path) in &ids {
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        publics.push((*id, Ed25519Signer::from_secret(*id, &secret).public()));
        write_new(path, &secret_key_text(*id, &secret), true, args.force)?;
    }
    let public = public_keys(&args.dir);
    write_new(&public, &public_keys_text(&publics), false, args.force)?;
    println!(
        "wrote {} replica and {} client secret keys, and {}",
        args.nodes,
        args.clients,
        public.display()
    );
    Ok(Outcome::Ok)
}
