//! The text forms of Ed25519 keys that `synod keygen` writes and servers read: one key per line,
//! `<node id> <64 hex digits>`, with `#` comments. A secret key file holds one line; a public
//! key file one line per node. Parsing is pure (the caller reads the file), and every mistake
//! in a file is an error naming its line, never a panic.

use super::{BadPublicKey, Ed25519Signer, Ed25519Verifier};
use crate::NodeId;
use std::collections::BTreeSet;

/// What is wrong with a key file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    /// A line that is not `<id> <64 hex digits>`.
    #[error("line {line}: {reason} (expected `<node id> <64 hex digits>`)")]
    Line {
        /// 1-based.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Two keys for one node.
    #[error("line {line}: a second key for node {id}")]
    Duplicate {
        /// 1-based.
        line: usize,
        /// The node.
        id: NodeId,
    },
    /// A secret key file must hold exactly one key.
    #[error("a secret key file holds exactly one key; this one holds {0}")]
    NotOneSecret(usize),
    /// A public key file with no key.
    #[error("the public key file holds no key")]
    NoPublicKeys,
    /// A public key that is not a valid point.
    #[error(transparent)]
    BadPublicKey(#[from] BadPublicKey),
}

fn line_of(id: NodeId, key: &[u8; 32]) -> String {
    format!("{id} {}\n", hex::encode(key))
}

/// The text of node `id`'s secret key file.
pub fn secret_key_text(id: NodeId, secret: &[u8; 32]) -> String {
    format!(
        "# Synod Ed25519 secret key of node {id}. Keep it private: whoever holds it can speak as node {id}.\n{}",
        line_of(id, secret)
    )
}

/// The text of a public key file for `keys`.
pub fn public_keys_text(keys: &[(NodeId, [u8; 32])]) -> String {
    let mut text = String::from("# Synod Ed25519 public keys: <node id> <key>\n");
    for (id, key) in keys {
        text.push_str(&line_of(*id, key));
    }
    text
}

fn parse_lines(text: &str) -> Result<Vec<(NodeId, [u8; 32])>, KeyFileError> {
    let mut keys = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let body = raw.split('#').next().unwrap_or("").trim();
        if body.is_empty() {
            continue;
        }
        let bad = |reason: &str| KeyFileError::Line {
            line,
            reason: reason.to_string(),
        };
        let mut fields = body.split_whitespace();
        let (Some(id), Some(key), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(bad("not two fields"));
        };
        let id: NodeId = id.parse().map_err(|_| bad("the node id is not a number"))?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(key, &mut bytes).map_err(|_| bad("the key is not 64 hex digits"))?;
        if !seen.insert(id) {
            return Err(KeyFileError::Duplicate { line, id });
        }
        keys.push((id, bytes));
    }
    Ok(keys)
}

/// The signer in a secret key file.
pub fn parse_secret_key(text: &str) -> Result<Ed25519Signer, KeyFileError> {
    match parse_lines(text)?.as_slice() {
        [(id, secret)] => Ok(Ed25519Signer::from_secret(*id, secret)),
        keys => Err(KeyFileError::NotOneSecret(keys.len())),
    }
}

/// The verifier for the keys in a public key file, and the nodes it names.
pub fn parse_public_keys(text: &str) -> Result<(Ed25519Verifier, Vec<NodeId>), KeyFileError> {
    let keys = parse_lines(text)?;
    if keys.is_empty() {
        return Err(KeyFileError::NoPublicKeys);
    }
    let mut verifier = Ed25519Verifier::default();
    for (id, key) in &keys {
        verifier.add(*id, key)?;
    }
    Ok((verifier, keys.iter().map(|(id, _)| *id).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Signed, Signer, Tagged};
    use serde::Serialize;

    #[derive(Serialize)]
    struct Hello;

    impl Tagged for Hello {
        const TAG: &'static str = "test-hello";
    }

    fn keys() -> Vec<(Ed25519Signer, [u8; 32])> {
        (1..=4u64)
            .map(|id| {
                let secret = [id as u8 * 7; 32];
                (Ed25519Signer::from_secret(id, &secret), secret)
            })
            .collect()
    }

    #[test]
    fn written_keys_read_back_and_sign_verifiably() {
        let keys = keys();
        let publics: Vec<(NodeId, [u8; 32])> =
            keys.iter().map(|(s, _)| (s.id(), s.public())).collect();
        let (verifier, ids) = parse_public_keys(&public_keys_text(&publics)).expect("parses");
        assert_eq!(ids, vec![1, 2, 3, 4]);
        for (signer, secret) in &keys {
            let loaded = parse_secret_key(&secret_key_text(signer.id(), secret)).expect("parses");
            assert_eq!(loaded.id(), signer.id());
            let s = Signed::new(&loaded, Hello);
            assert!(s.verify(&verifier));
            // Signed as another node, it does not verify.
            let forged = Signed::forged(&loaded, signer.id() % 4 + 1, Hello);
            assert!(!forged.verify(&verifier));
        }
    }

    #[test]
    fn mistakes_are_errors_naming_the_line() {
        let k = "ab".repeat(32);
        let cases = [
            (format!("1 {k}\n1 {k}\n"), "line 2: a second key for node 1"),
            (format!("x {k}\n"), "line 1: the node id is not a number"),
            (
                "# c\n\n1 abc\n".to_string(),
                "line 3: the key is not 64 hex digits",
            ),
            (format!("1 {k} extra\n"), "line 1: not two fields"),
            (
                format!("1 {}\n", "zz".repeat(32)),
                "line 1: the key is not 64 hex",
            ),
        ];
        for (text, want) in cases {
            let err = parse_public_keys(&text)
                .err()
                .expect("an error")
                .to_string();
            assert!(err.starts_with(want), "{err:?} for {text:?}");
        }
        assert_eq!(
            parse_public_keys("# nothing\n").err(),
            Some(KeyFileError::NoPublicKeys)
        );
        let two = format!("1 {k}\n2 {k}\n");
        assert_eq!(
            parse_secret_key(&two).err(),
            Some(KeyFileError::NotOneSecret(2))
        );
    }

    #[test]
    fn a_public_key_that_is_no_point_is_refused() {
        // About half of all y coordinates have no x on the curve: find one.
        let bad = (0..=255u8)
            .map(|b| {
                let mut k = [0u8; 32];
                k[0] = b;
                k
            })
            .find(|k| ed25519_dalek::VerifyingKey::from_bytes(k).is_err())
            .expect("an invalid point among 256");
        let text = format!("3 {}\n", hex::encode(bad));
        assert_eq!(
            parse_public_keys(&text).err(),
            Some(KeyFileError::BadPublicKey(BadPublicKey(3)))
        );
    }
}
