//! The cluster's first members, pinned in the data directory at a member's first start.
//!
//! A replica derives its membership from the first members plus every change chosen in the
//! log, and `--peers` names those first members. After a member was added, an operator may
//! well list it in `--peers` everywhere (etcd's `--initial-cluster` is edited so, and ignored
//! once a member has data). Were the flags taken at a restart, a member that replays its log
//! from the start would begin from a different first membership than its peers, and disagree
//! with them about who decides which slots. So the first start writes the first members to
//! `genesis.json`, and every later start takes them from there.

use std::io::Write;
use std::path::Path;
use synod_core::NodeId;

const FILE: &str = "genesis.json";

/// The first members this data directory's replica must use: those pinned at its first start,
/// or `flags` if there are none. A `fresh` directory (no snapshot, no log record yet) that is
/// not joining a running cluster pins `flags` first, durably, before its first log record.
pub fn pin(data_dir: &Path, fresh: bool, flags: &[NodeId]) -> Result<Vec<NodeId>, String> {
    let path = data_dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let pinned: Vec<NodeId> = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} does not decode: {e}", path.display()))?;
            let mut given = flags.to_vec();
            given.sort_unstable();
            if given != pinned {
                tracing::info!(
                    pinned = ?pinned,
                    flags = ?given,
                    "--peers differs from the first members pinned at this member's first \
                     start; using those (membership changes since are in the log)"
                );
            }
            Ok(pinned)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if fresh {
                write(data_dir, flags)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            Ok(flags.to_vec())
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn write(data_dir: &Path, members: &[NodeId]) -> std::io::Result<()> {
    let mut sorted = members.to_vec();
    sorted.sort_unstable();
    let tmp = data_dir.join(format!("{FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(&sorted).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, data_dir.join(FILE))?;
    std::fs::File::open(data_dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_start_pins_the_members_and_later_flags_do_not_move_them() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(pin(dir.path(), true, &[3, 1, 2]), Ok(vec![3, 1, 2]));
        assert_eq!(pin(dir.path(), false, &[1, 2, 3, 4]), Ok(vec![1, 2, 3]));
        assert_eq!(pin(dir.path(), true, &[9]), Ok(vec![1, 2, 3]));
    }

    #[test]
    fn a_directory_with_data_but_no_pin_keeps_using_the_flags_without_pinning_them() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(pin(dir.path(), false, &[1, 2]), Ok(vec![1, 2]));
        assert!(!dir.path().join(FILE).exists());
        assert_eq!(pin(dir.path(), false, &[1, 2, 5]), Ok(vec![1, 2, 5]));
    }

    #[test]
    fn a_pin_that_does_not_decode_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        let e = pin(dir.path(), false, &[1]).unwrap_err();
        assert!(e.contains("genesis.json does not decode"), "{e}");
    }
}
