//! Backups: what `etcdctl snapshot save` receives from a member, and how
//! `synod snapshot restore` turns one into a new member's data directory.
//!
//! A backup is Synod's own format, not etcd's bbolt file (etcd's `snapshot restore` cannot read
//! it, and ours cannot read etcd's). It holds one member's store as applied at one point:
//!
//! | bytes | what |
//! |---|---|
//! | 8 | `SYNODBAK` |
//! | 4 | format version, little-endian (1) |
//! | 8 | the store's revision, little-endian |
//! | 8 | length of the store's bytes, little-endian |
//! | n | the store, as a snapshot holds it |
//! | p | zeros, fewer than 512, so the file's size is 32 more than a multiple of 512 |
//! | 32 | SHA-256 of everything before |
//!
//! The padding is for etcdctl, whose `snapshot save` checks that a backup's size is a multiple
//! of 512 bytes plus an appended SHA-256, as etcd's page-aligned files are.

use sha2::{Digest, Sha256};
use std::path::Path;
use synod_core::multi::{Persist, Snapshot, StateMachine};
use synod_kv::{KvOutput, Store};
use synod_node::record::{encode_checkpoint, Checkpoint};
use synod_storage::SnapshotStore;
use thiserror::Error;

const MAGIC: &[u8; 8] = b"SYNODBAK";
const VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 8 + 8;
const DIGEST: usize = 32;
/// The size, less the digest, is a multiple of this.
const ALIGN: usize = 512;

/// The log slot a restored member starts from: its snapshot covers slot 0, so every restored
/// member begins from the same state at the same place in the log.
const RESTORED_SLOT: u64 = 1;

/// Why a backup cannot be read or restored.
#[derive(Debug, Error)]
pub enum BackupError {
    /// Not a Synod backup, or one cut short or altered.
    #[error("not a usable Synod backup: {0}")]
    Invalid(String),
    /// The data directory already holds a member's data.
    #[error("{0} already holds data; restore into a new, empty directory")]
    NotEmpty(std::path::PathBuf),
    /// Writing the data directory failed.
    #[error(transparent)]
    Storage(#[from] synod_storage::StorageError),
    /// Reading or creating files failed.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
}

/// A backup's contents.
pub struct Backup {
    /// The store's revision.
    pub revision: i64,
    /// The store.
    pub store: Store,
    /// The store's bytes, as a snapshot holds them.
    pub state: Vec<u8>,
}

/// Encodes a backup of `store`.
pub fn encode(store: &Store) -> Vec<u8> {
    let state = store.snapshot();
    let mut out = Vec::with_capacity(HEADER + state.len() + DIGEST);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&store.revision().to_le_bytes());
    out.extend_from_slice(&(state.len() as u64).to_le_bytes());
    out.extend_from_slice(&state);
    out.resize(out.len().next_multiple_of(ALIGN), 0);
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// Reads a backup, checking its digest and that its store decodes.
pub fn decode(bytes: &[u8]) -> Result<Backup, BackupError> {
    let bad = |why: &str| BackupError::Invalid(why.to_string());
    if bytes.len() < HEADER + DIGEST || &bytes[..8] != MAGIC {
        return Err(bad("it does not start with SYNODBAK"));
    }
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(BackupError::Invalid(format!(
            "format version {version}; this synod reads version {VERSION}"
        )));
    }
    let revision = word(12) as i64;
    let len = word(20);
    let body = (bytes.len() - HEADER - DIGEST) as u64;
    if len > body || body - len >= ALIGN as u64 || !(bytes.len() - DIGEST).is_multiple_of(ALIGN) {
        return Err(BackupError::Invalid(format!(
            "it says {len} bytes of store but holds {body} bytes after its header: cut short \
             or altered"
        )));
    }
    let (signed, digest) = bytes.split_at(bytes.len() - DIGEST);
    if Sha256::digest(signed).as_slice() != digest {
        return Err(bad("its SHA-256 does not match: damaged or altered"));
    }
    let (state, padding) = signed[HEADER..].split_at(len as usize);
    if padding.iter().any(|b| *b != 0) {
        return Err(bad("its padding is not zeros"));
    }
    let state = state.to_vec();
    let store = Store::restore(&state).map_err(|e| BackupError::Invalid(e.to_string()))?;
    if store.revision() != revision {
        return Err(bad("its header and its store disagree on the revision"));
    }
    Ok(Backup {
        revision,
        store,
        state,
    })
}

/// Writes into `data_dir`, which must be empty or missing, the data a member starts from to
/// serve `backup`'s store. Every member of the new cluster restores the same backup.
pub fn restore(backup: &Backup, data_dir: &Path) -> Result<(), BackupError> {
    let io = |what: &str, e| BackupError::Io(format!("{what} {}", data_dir.display()), e);
    if data_dir.exists() {
        let mut entries = std::fs::read_dir(data_dir).map_err(|e| io("cannot read", e))?;
        if entries.next().is_some() {
            return Err(BackupError::NotEmpty(data_dir.to_path_buf()));
        }
    }
    std::fs::create_dir_all(data_dir).map_err(|e| io("cannot create", e))?;
    // No client sessions: the new cluster's clients are new.
    let sessions: Vec<(u64, (u64, KvOutput))> = Vec::new();
    let snapshot = Snapshot {
        slot: RESTORED_SLOT,
        state: backup.state.clone().into(),
        sessions: postcard::to_stdvec(&sessions).expect("an empty table serializes"),
        // The new cluster's members are those its flags name.
        membership: None,
    };
    // Lease ids carry the boot epoch of the member that granted them: a restored member's
    // first boot must be above every epoch in the backup, or its grants collide with them.
    let boot = backup
        .store
        .leases()
        .map(|l| (l.id as u64 >> 32) & 0xF_FFFF)
        .max()
        .unwrap_or(0);
    let checkpoint = Checkpoint {
        boot,
        records: vec![Persist::Snapshot(snapshot), Persist::Commit(RESTORED_SLOT)],
    };
    let (snapshots, _) = SnapshotStore::open(data_dir.join("snap"), 2)?;
    snapshots.save(1, b"", &encode_checkpoint(&checkpoint))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_kv::{KvCommand, PutRequest};

    /// The boot epoch of the lease the test store holds.
    const GRANTED_AT_BOOT: i64 = 7;

    fn store() -> Store {
        let mut s = Store::new();
        s.apply(&KvCommand::LeaseGrant {
            id: (2 << 52) | (GRANTED_AT_BOOT << 32) | 5,
            ttl: 60,
        });
        for i in 0..20u8 {
            s.apply(&KvCommand::Put(PutRequest {
                key: vec![b'k', i],
                value: vec![i; 100].into(),
                ..Default::default()
            }));
        }
        s
    }

    #[test]
    fn a_backup_reads_back_and_any_damage_is_refused() {
        let s = store();
        let bytes = encode(&s);
        assert_eq!(bytes.len() % ALIGN, DIGEST, "the size etcdctl checks for");
        let b = decode(&bytes).unwrap();
        assert_eq!(b.store, s);
        assert_eq!(b.revision, s.revision());
        // Every single flipped byte is caught: magic, version, lengths, store or digest.
        for i in (0..bytes.len()).step_by(7) {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad).is_err(), "a flipped byte at {i} passed");
        }
        for cut in [0, 10, HEADER, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut} passed");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }

    #[test]
    fn a_restored_directory_recovers_the_store_and_refuses_a_second_restore() {
        let s = store();
        let b = decode(&encode(&s)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("node1");
        restore(&b, &data).unwrap();
        let opened = synod_storage::open(&data, &Default::default()).unwrap();
        let snap = opened.snapshot.as_ref().expect("a snapshot");
        let recovered = synod_node::record::recover(
            Some((snap.index, snap.data.clone().into())),
            opened.records.iter().map(|r| (r.index, &r.data[..])),
        )
        .unwrap();
        assert!(
            recovered.boot >= (GRANTED_AT_BOOT as u64),
            "the next boot is above the backup's lease epochs"
        );
        let restored = recovered.durable.snapshot.expect("the backup's snapshot");
        assert_eq!(restored.slot, RESTORED_SLOT);
        assert_eq!(Store::restore(&restored.state).unwrap(), s);
        drop(opened);
        assert!(matches!(restore(&b, &data), Err(BackupError::NotEmpty(_))));
    }
}
