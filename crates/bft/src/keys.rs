//! Where `synod keygen` puts keys, and loading them: each node's secret in a file of its own,
//! every public key in `public.keys`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use synod_core::auth::{parse_public_keys, parse_secret_key, Ed25519Signer, KeyFileError};
use synod_core::auth::{Ed25519Verifier, Signer as _};
use synod_core::NodeId;

/// Replicas are numbered 1..=N; clients from this id on, so the two never collide.
pub const FIRST_CLIENT: NodeId = 101;

/// The secret key file of replica `id` in `dir`.
pub fn node_key(dir: &Path, id: NodeId) -> PathBuf {
    dir.join(format!("node{id}.key"))
}

/// The secret key file of client `id` in `dir`.
pub fn client_key(dir: &Path, id: NodeId) -> PathBuf {
    dir.join(format!("client{id}.key"))
}

/// The public key file in `dir`.
pub fn public_keys(dir: &Path) -> PathBuf {
    dir.join("public.keys")
}

/// A key file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read {path}: {err} (run `synod keygen` first?)")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        err: std::io::Error,
    },
    /// The file is not a key file.
    #[error("{path}: {err}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        err: KeyFileError,
    },
    /// The secret key is for another id.
    #[error("{path} holds the key of {found}, not of {wanted}")]
    WrongId {
        /// The file.
        path: PathBuf,
        /// The id asked for.
        wanted: NodeId,
        /// The id in the file.
        found: NodeId,
    },
    /// The public keys lack an id that must sign.
    #[error("{path} has no public key for {id}")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The id.
        id: NodeId,
    },
}

fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|err| KeyError::Read {
        path: path.to_owned(),
        err,
    })
}

/// The secret key of `id` from `path`, checked to be `id`'s.
pub fn load_signer(path: &Path, id: NodeId) -> Result<Arc<Ed25519Signer>, KeyError> {
    let signer = parse_secret_key(&read(path)?).map_err(|err| KeyError::Parse {
        path: path.to_owned(),
        err,
    })?;
    if signer.id() != id {
        return Err(KeyError::WrongId {
            path: path.to_owned(),
            wanted: id,
            found: signer.id(),
        });
    }
    Ok(Arc::new(signer))
}

/// Every public key in `dir`, checked to include each of `needed`.
pub fn load_verifier(dir: &Path, needed: &[NodeId]) -> Result<Arc<Ed25519Verifier>, KeyError> {
    let path = public_keys(dir);
    let (verifier, ids) = parse_public_keys(&read(&path)?).map_err(|err| KeyError::Parse {
        path: path.clone(),
        err,
    })?;
    if let Some(&id) = needed.iter().find(|id| !ids.contains(id)) {
        return Err(KeyError::Missing { path, id });
    }
    Ok(Arc::new(verifier))
}
