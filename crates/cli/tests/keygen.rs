//! `synod keygen`: secrets readable by their owner only, public keys that check the secrets'
//! signatures, and no key overwritten without --force.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use synod_core::auth::{parse_public_keys, parse_secret_key, Signed, Signer, Tagged};

#[derive(serde::Serialize)]
struct Probe(u64);

impl Tagged for Probe {
    const TAG: &'static str = "keygen-test";
}

fn keygen(dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(["keygen", "--dir"])
        .arg(dir)
        .args(extra)
        .output()
        .expect("synod runs")
}

#[test]
fn keygen_writes_private_secrets_and_public_keys_that_check_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("keys");
    let out = keygen(&dir, &["--nodes", "4", "--clients", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = fs::read_to_string(dir.join("public.keys")).expect("public.keys");
    let (verifier, ids) = parse_public_keys(&public).expect("parses");
    assert_eq!(ids, vec![1, 2, 3, 4, 101, 102]);
    let files = [
        "node1.key",
        "node2.key",
        "node3.key",
        "node4.key",
        "client101.key",
        "client102.key",
    ];
    let mut secrets = Vec::new();
    for (file, id) in files.iter().zip(&ids) {
        let path = dir.join(file);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("exists").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let text = fs::read_to_string(&path).expect("readable");
        let signer = parse_secret_key(&text).expect("parses");
        assert_eq!(signer.id(), *id, "{file}");
        assert!(Signed::new(&signer, Probe(*id)).verify(&verifier), "{file}");
        secrets.push(text);
    }
    // Fresh randomness per key.
    secrets.sort();
    secrets.dedup();
    assert_eq!(secrets.len(), files.len());

    // A second run refuses, and leaves every key as it was.
    let again = keygen(&dir, &[]);
    assert_eq!(again.status.code(), Some(2));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("exists; pass --force"), "{err}");
    assert_eq!(
        fs::read_to_string(dir.join("public.keys")).expect("kept"),
        public
    );

    // --force replaces them.
    let forced = keygen(&dir, &["--force"]);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert_ne!(
        fs::read_to_string(dir.join("public.keys")).expect("new"),
        public
    );
}
