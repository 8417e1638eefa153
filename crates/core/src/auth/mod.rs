//! Signed messages, for the protocols that tolerate lying nodes.
//!
//! A Byzantine node can claim to be anyone, so a correct node believes a statement only when it
//! carries its author's signature, and never because of which connection it came in on: a
//! relayed statement (a prepare inside a view change's certificate) is as good as a direct one,
//! and a forged one is as bad. Every signed body has a tag ([`Tagged`]) that goes into the
//! signed bytes, so a signature on a `Prepare` can never pass for one on a `Commit` with the
//! same fields.
//!
//! Two schemes implement [`Signer`] and [`Verifier`]: Ed25519 ([`Ed25519Signer`],
//! [`Ed25519Verifier`]), which the server uses, and a keyed hash ([`SimKeyring`]) for the
//! simulator, where a liar's code holds only its own secret and so cannot sign for others,
//! which is all the protocol needs of a signature, at a fraction of Ed25519's cost per step.

use crate::ballot::NodeId;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fmt;

mod key_file;

pub use key_file::{
    parse_public_keys, parse_secret_key, public_keys_text, secret_key_text, KeyFileError,
};

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// The SHA-256 digest of a value's postcard encoding.
pub fn digest_of<T: Serialize + ?Sized>(value: &T) -> Digest {
    let bytes = postcard::to_stdvec(value).expect("encoding into memory does not fail");
    Sha256::digest(bytes).into()
}

/// A signature's bytes (64 for Ed25519, 32 for the simulator's keyed hash).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Signature(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sig:")?;
        for b in self.0.iter().take(3) {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Signs as one node.
pub trait Signer: Send + Sync {
    /// The node it signs for.
    fn id(&self) -> NodeId;
    /// Signs `bytes`.
    fn sign(&self, bytes: &[u8]) -> Signature;
}

/// Checks any node's signatures.
pub trait Verifier: Send + Sync {
    /// True when `sig` is `signer`'s signature on `bytes`.
    fn verify(&self, signer: NodeId, bytes: &[u8], sig: &Signature) -> bool;
}

/// A body that can be signed: its tag separates its signatures from every other kind's.
pub trait Tagged: Serialize {
    /// The kind's name, part of the signed bytes.
    const TAG: &'static str;
}

/// A statement and its author's signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Signed<T> {
    /// Who says it.
    pub from: NodeId,
    /// What they say.
    pub body: T,
    /// Their signature over the tag, `from` and `body`.
    pub sig: Signature,
}

fn signing_bytes<T: Tagged>(from: NodeId, body: &T) -> Vec<u8> {
    postcard::to_stdvec(&(T::TAG, from, body)).expect("encoding into memory does not fail")
}

impl<T: Tagged> Signed<T> {
    /// `body`, signed by `signer`.
    pub fn new(signer: &dyn Signer, body: T) -> Self {
        let from = signer.id();
        let sig = signer.sign(&signing_bytes(from, &body));
        Signed { from, body, sig }
    }

    /// A statement that claims `from` wrote it, with whatever signature `signer` makes: what a
    /// forger sends. It verifies only if `signer` really signs for `from`.
    pub fn forged(signer: &dyn Signer, from: NodeId, body: T) -> Self {
        let sig = signer.sign(&signing_bytes(from, &body));
        Signed { from, body, sig }
    }

    /// True when the signature is `from`'s.
    pub fn verify(&self, verifier: &dyn Verifier) -> bool {
        verifier.verify(self.from, &signing_bytes(self.from, &self.body), &self.sig)
    }
}

/// Signs with an Ed25519 key.
pub struct Ed25519Signer {
    id: NodeId,
    key: SigningKey,
}

impl Ed25519Signer {
    /// The signer for `id` from its 32-byte secret key.
    pub fn from_secret(id: NodeId, secret: &[u8; 32]) -> Self {
        Ed25519Signer {
            id,
            key: SigningKey::from_bytes(secret),
        }
    }

    /// The public key that verifies this signer.
    pub fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }
}

impl Signer for Ed25519Signer {
    fn id(&self) -> NodeId {
        self.id
    }

    fn sign(&self, bytes: &[u8]) -> Signature {
        Signature(self.key.sign(bytes).to_bytes().to_vec())
    }
}

/// Checks Ed25519 signatures against each node's public key.
#[derive(Default)]
pub struct Ed25519Verifier {
    keys: BTreeMap<NodeId, VerifyingKey>,
}

/// A public key that is not a valid Ed25519 point.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("node {0}'s public key is not a valid Ed25519 key")]
pub struct BadPublicKey(pub NodeId);

impl Ed25519Verifier {
    /// Adds `id`'s public key.
    pub fn add(&mut self, id: NodeId, public: &[u8; 32]) -> Result<(), BadPublicKey> {
        let key = VerifyingKey::from_bytes(public).map_err(|_| BadPublicKey(id))?;
        self.keys.insert(id, key);
        Ok(())
    }
}

impl Verifier for Ed25519Verifier {
    fn verify(&self, signer: NodeId, bytes: &[u8], sig: &Signature) -> bool {
        let (Some(key), Ok(sig)) = (
            self.keys.get(&signer),
            ed25519_dalek::Signature::from_slice(&sig.0),
        ) else {
            return false;
        };
        key.verify_strict(bytes, &sig).is_ok()
    }
}

/// The simulator's keys: each node's secret is a hash of the run's seed and its id, and a
/// signature is a hash of the secret and the bytes. Only the keyring and the node itself know
/// a secret; a liar is handed its own [`SimSigner`] and nothing else.
#[derive(Clone, Debug)]
pub struct SimKeyring {
    secrets: BTreeMap<NodeId, Digest>,
}

/// Signs as one node of a [`SimKeyring`].
#[derive(Clone, Debug)]
pub struct SimSigner {
    id: NodeId,
    secret: Digest,
}

impl SimKeyring {
    /// Keys for `ids`, derived from `seed`.
    pub fn new(seed: u64, ids: impl IntoIterator<Item = NodeId>) -> Self {
        let secrets = ids
            .into_iter()
            .map(|id| (id, digest_of(&("sim-key", seed, id))))
            .collect();
        SimKeyring { secrets }
    }

    /// `id`'s signer (a node unknown to the ring signs with a secret no one checks).
    pub fn signer(&self, id: NodeId) -> SimSigner {
        let secret = self.secrets.get(&id).copied().unwrap_or_default();
        SimSigner { id, secret }
    }
}

fn keyed_hash(secret: &Digest, bytes: &[u8]) -> Signature {
    let mut h = Sha256::new();
    h.update(secret);
    h.update(bytes);
    Signature(h.finalize().to_vec())
}

impl Signer for SimSigner {
    fn id(&self) -> NodeId {
        self.id
    }

    fn sign(&self, bytes: &[u8]) -> Signature {
        keyed_hash(&self.secret, bytes)
    }
}

impl Verifier for SimKeyring {
    fn verify(&self, signer: NodeId, bytes: &[u8], sig: &Signature) -> bool {
        self.secrets
            .get(&signer)
            .is_some_and(|s| keyed_hash(s, bytes) == *sig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Serialize)]
    struct Vote(u64);
    impl Tagged for Vote {
        const TAG: &'static str = "vote";
    }
    #[derive(Serialize)]
    struct Other(u64);
    impl Tagged for Other {
        const TAG: &'static str = "other";
    }

    fn check_scheme(a: &dyn Signer, b: &dyn Signer, v: &dyn Verifier) {
        let good = Signed::new(a, Vote(7));
        assert!(good.verify(v));
        let forged = Signed::forged(b, a.id(), Vote(7));
        assert!(!forged.verify(v), "b cannot sign for a");
        let mut altered = good.clone();
        altered.body = Vote(8);
        assert!(!altered.verify(v), "the body is signed");
        let mut moved = good.clone();
        moved.from = b.id();
        assert!(!moved.verify(v), "the author is signed");
        let other = Signed {
            from: good.from,
            body: Other(7),
            sig: good.sig.clone(),
        };
        assert!(!other.verify(v), "the tag is signed");
        let cut = Signed {
            sig: Signature(good.sig.0[..10].to_vec()),
            ..good
        };
        assert!(!cut.verify(v), "a short signature is refused, not a panic");
    }

    #[test]
    fn ed25519_signatures_bind_author_body_and_kind() {
        let a = Ed25519Signer::from_secret(1, &[1; 32]);
        let b = Ed25519Signer::from_secret(2, &[2; 32]);
        let mut v = Ed25519Verifier::default();
        v.add(1, &a.public()).unwrap();
        v.add(2, &b.public()).unwrap();
        check_scheme(&a, &b, &v);
        let unknown = Ed25519Signer::from_secret(3, &[3; 32]);
        assert!(!Signed::new(&unknown, Vote(1)).verify(&v));
    }

    #[test]
    fn simulated_signatures_bind_author_body_and_kind() {
        let ring = SimKeyring::new(42, [1, 2]);
        check_scheme(&ring.signer(1), &ring.signer(2), &ring);
        let other_run = SimKeyring::new(43, [1, 2]);
        assert!(!Signed::new(&other_run.signer(1), Vote(1)).verify(&ring));
    }
}
