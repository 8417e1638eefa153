//! Who a request comes from: the replicated auth state as this node last applied it, tokens
//! signed with the cluster's secret, and password hashes.
//!
//! A token is `base64url(user, expiry) . base64url(HMAC-SHA256)`, keyed by the secret that the
//! last `auth enable` put in the log. Every member holds that secret, so a token from one member
//! works at all of them, and re-enabling auth invalidates every earlier token. The user a token
//! names is only believed, never trusted: permissions are checked against the log's state
//! when each command is applied.

use crate::jwt::JwtKeys;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use synod_kv::AuthState;
use tonic::metadata::MetadataMap;
use tonic::Status;

/// Tokens longer than this are refused unread (a token we issue is under 200 bytes).
pub const MAX_TOKEN_BYTES: usize = 4096;

/// The auth state as this node last applied it, published by the node loop to the request
/// handlers.
#[derive(Clone, Default)]
pub struct AuthView(Arc<RwLock<Arc<AuthState>>>);

impl AuthView {
    /// The state now.
    pub fn current(&self) -> Arc<AuthState> {
        self.0.read().map(|g| g.clone()).unwrap_or_default()
    }

    /// Publishes `state` if it is not what is published already (a pointer comparison, so the
    /// node loop can call this every turn).
    pub fn publish(&self, state: &Arc<AuthState>) {
        let stale = self
            .0
            .read()
            .map(|g| !Arc::ptr_eq(&g, state))
            .unwrap_or(true);
        if stale {
            if let Ok(mut g) = self.0.write() {
                *g = state.clone();
            }
        }
    }
}

/// A read someone asks for, to check where it is served, against the auth state that serves it.
#[derive(Clone, Debug)]
pub struct ReadAccess {
    /// Who asks.
    pub user: Option<String>,
    /// The first key.
    pub key: Vec<u8>,
    /// The range end (etcd's conventions).
    pub range_end: Vec<u8>,
}

impl ReadAccess {
    /// Refused with etcd's reason, or allowed.
    pub fn check(&self, auth: &AuthState) -> Result<(), synod_kv::KvError> {
        auth.check(self.user.as_deref(), &self.key, &self.range_end, false)
    }
}

/// The error etcd clients re-authenticate on.
pub fn invalid_token() -> Status {
    Status::unauthenticated("etcdserver: invalid auth token")
}

/// Which tokens a server issues.
#[derive(Clone)]
pub enum TokenKind {
    /// MACed with the secret the log holds (see the module's documentation).
    Simple,
    /// JWTs signed with keys every member is given.
    Jwt(Arc<JwtKeys>),
}

impl TokenKind {
    /// From `--auth-token`: `simple`, or `jwt,pub-key=...,priv-key=...,sign-method=...,ttl=...`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (kind, options) = spec.split_once(',').unwrap_or((spec, ""));
        match kind.trim() {
            "simple" if options.trim().is_empty() => Ok(TokenKind::Simple),
            "simple" => Err("simple tokens take no options".into()),
            "jwt" => Ok(TokenKind::Jwt(Arc::new(JwtKeys::parse(options)?))),
            other => Err(format!(
                "unknown token kind '{other}'; expected simple or jwt,..."
            )),
        }
    }
}

/// Issues and checks tokens, and finds the user behind a request.
#[derive(Clone)]
pub struct Authenticator {
    view: AuthView,
    ttl: Duration,
    kind: TokenKind,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    user: String,
    /// The user's epoch when the token was issued (see [`synod_kv::User::epoch`]).
    epoch: u64,
    expires: u64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn mac(secret: &[u8], payload: &[u8]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(payload);
    m
}

impl Authenticator {
    /// Tokens of `kind` (simple ones valid for `ttl`), checked against `view`.
    pub fn new(view: AuthView, ttl: Duration, kind: TokenKind) -> Self {
        Authenticator { view, ttl, kind }
    }

    /// The auth state now.
    pub fn state(&self) -> Arc<AuthState> {
        self.view.current()
    }

    /// A token for `user` as of the current auth state.
    pub fn issue(&self, user: &str) -> Result<String, Status> {
        self.issue_at(&self.state(), user)
    }

    /// A token for `user` as of `state`: the state its password was checked against, so a
    /// password changed while the check ran voids the token rather than blessing it.
    pub fn issue_at(&self, state: &AuthState, user: &str) -> Result<String, Status> {
        let epoch = state.user(user).map_or(0, |u| u.epoch);
        match &self.kind {
            TokenKind::Simple => Ok(self.issue_simple(state, user, epoch)),
            TokenKind::Jwt(keys) => keys.issue(user, epoch).map_err(Status::failed_precondition),
        }
    }

    /// A simple token for `user` at `epoch`, signed with `state`'s secret.
    fn issue_simple(&self, state: &AuthState, user: &str, epoch: u64) -> String {
        let claims = Claims {
            user: user.to_string(),
            epoch,
            expires: unix_now() + self.ttl.as_secs().max(1),
        };
        let payload = postcard::to_stdvec(&claims).expect("claims serialize");
        let tag = mac(state.secret(), &payload).finalize().into_bytes();
        format!("{}.{}", B64.encode(&payload), B64.encode(tag))
    }

    /// The user `token` names, if it is ours, unexpired and the user still exists.
    pub fn verify(&self, token: &str) -> Result<String, Status> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid_token());
        }
        let state = self.state();
        if let TokenKind::Jwt(keys) = &self.kind {
            let (user, epoch) = keys.verify(token).ok_or_else(invalid_token)?;
            return match state.user(&user) {
                Some(u) if u.epoch == epoch => Ok(user),
                _ => Err(invalid_token()),
            };
        }
        let (payload, tag) = token.split_once('.').ok_or_else(invalid_token)?;
        let payload = B64.decode(payload).map_err(|_| invalid_token())?;
        let tag = B64.decode(tag).map_err(|_| invalid_token())?;
        if state.secret().is_empty() {
            return Err(invalid_token());
        }
        mac(state.secret(), &payload)
            .verify_slice(&tag)
            .map_err(|_| invalid_token())?;
        let claims: Claims = postcard::from_bytes(&payload).map_err(|_| invalid_token())?;
        let current = state
            .user(&claims.user)
            .is_some_and(|u| u.epoch == claims.epoch);
        if claims.expires < unix_now() || !current {
            return Err(invalid_token());
        }
        Ok(claims.user)
    }

    /// The user a request runs as: the one its `token` names; without a token, the common
    /// name of the client certificate it came with (`cert_user`, only given where the CA
    /// vouched for the certificate), as etcd does; else none. While auth is off a token is
    /// ignored, as etcd ignores it; while it is on, a bad token is an error (clients
    /// re-authenticate on it).
    pub fn user(
        &self,
        md: &MetadataMap,
        cert_user: impl FnOnce() -> Option<String>,
    ) -> Result<Option<String>, Status> {
        let Some(token) = md.get("token").or_else(|| md.get("authorization")) else {
            // While auth is off, naming no user keeps the log's commands unwrapped (and the
            // certificate unparsed).
            return Ok(if self.state().enabled() {
                cert_user()
            } else {
                None
            });
        };
        let Ok(token) = token.to_str() else {
            return Err(invalid_token());
        };
        match self.verify(token) {
            Ok(user) => Ok(Some(user)),
            Err(_) if !self.state().enabled() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The subject's common name in a DER certificate.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// At most this many password hashes are computed at once, so a flood of logins (which anyone
/// may send) queues up instead of taking every core from the requests being served.
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Runs `f` (a password hash or check) on a blocking thread, one at a time.
pub async fn hashing<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let _turn = HASHING.acquire().await.ok()?;
    tokio::task::spawn_blocking(f).await.ok()
}

/// Checks `password` against `hash`, or, for a user that does not exist or has no password,
/// against a fixed hash, so a login takes as long whether or not the user exists.
pub fn verify_login(password: &str, hash: Option<&str>) -> bool {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    match hash {
        Some(h) => verify_password(password, h),
        None => {
            let decoy = DECOY.get_or_init(|| hash_password("synod decoy password"));
            let _ = verify_password(password, decoy);
            false
        }
    }
}

/// Hashes a password (Argon2id with a random salt) into a PHC string. Slow on purpose: run it
/// through [`hashing`].
pub fn hash_password(password: &str) -> String {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 hashes any password with a generated salt")
        .to_string()
}

/// True if `password` matches `hash` (a PHC string). A hash that does not parse never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// True if `hash` is a PHC string Synod can verify against (what `hashedPassword` must be):
/// Argon2id with costs no higher than 64 MiB, 4 passes and 4 lanes. A login checks a password
/// with the costs its hash names, so a hash with huge ones would make every login of that user
/// exhaust the node's memory or time.
pub fn is_usable_hash(hash: &str) -> bool {
    let Ok(h) = argon2::password_hash::PasswordHash::new(hash) else {
        return false;
    };
    let Ok(p) = argon2::Params::try_from(&h) else {
        return false;
    };
    h.algorithm.as_str() == "argon2id"
        && p.m_cost() <= 64 * 1024
        && p.t_cost() <= 4
        && p.p_cost() <= 4
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use synod_core::multi::StateMachine;
    use synod_kv::{AuthCommand, KvCommand, Store};

    /// A store with a root user and auth on, tokens keyed by `secret`.
    pub(crate) fn store_with_root(secret: &[u8]) -> Store {
        let mut s = Store::new();
        for c in [
            AuthCommand::UserAdd {
                name: "root".into(),
                password_hash: None,
            },
            AuthCommand::UserGrantRole {
                user: "root".into(),
                role: "root".into(),
            },
            AuthCommand::Enable {
                secret: secret.to_vec(),
            },
        ] {
            assert!(s.apply(&KvCommand::Auth(c)).result.is_ok());
        }
        s
    }

    fn enabled_store() -> Store {
        store_with_root(b"0123456789abcdef")
    }

    #[test]
    fn a_token_names_its_user_and_nothing_else_passes() {
        let mut store = enabled_store();
        let view = AuthView::default();
        view.publish(store.auth());
        let a = Authenticator::new(view.clone(), Duration::from_secs(60), TokenKind::Simple);
        let t = a.issue("root").unwrap();
        assert_eq!(a.verify(&t).unwrap(), "root");
        // Flip one character of the tag, of the payload; truncate; oversize.
        let mut bad = t.clone().into_bytes();
        let last = bad.len() - 1;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        assert!(a.verify(std::str::from_utf8(&bad).unwrap()).is_err());
        assert!(a.verify(&format!("x{t}")).is_err());
        assert!(a.verify(&t[..t.len() / 2]).is_err());
        assert!(a.verify(&"a".repeat(MAX_TOKEN_BYTES + 1)).is_err());
        assert!(a.verify("").is_err());
        // Another cluster's (another secret's) token fails.
        let other = store_with_root(b"another");
        let ov = AuthView::default();
        ov.publish(other.auth());
        let foreign = Authenticator::new(ov, Duration::from_secs(60), TokenKind::Simple)
            .issue("root")
            .unwrap();
        assert!(a.verify(&foreign).is_err());
        // A password change voids the user's earlier tokens.
        let as_root = |c: AuthCommand| KvCommand::Auth(c).run_as(Some("root".into()));
        let changed = store.apply(&as_root(AuthCommand::UserChangePassword {
            name: "root".into(),
            password_hash: None,
        }));
        assert!(changed.result.is_ok(), "{changed:?}");
        view.publish(store.auth());
        assert!(a.verify(&t).is_err());
        let t = a.issue("root").unwrap();
        assert!(a.verify(&t).is_ok());
        // Disabling and enabling again draws a new secret: the old token dies.
        assert!(store.apply(&as_root(AuthCommand::Disable)).result.is_ok());
        let on = AuthCommand::Enable {
            secret: b"fresh".to_vec(),
        };
        assert!(store.apply(&KvCommand::Auth(on)).result.is_ok());
        view.publish(store.auth());
        assert!(a.verify(&t).is_err());
    }

    #[test]
    fn an_expired_token_fails() {
        let store = enabled_store();
        let view = AuthView::default();
        view.publish(store.auth());
        let a = Authenticator::new(view, Duration::ZERO, TokenKind::Simple);
        let payload = postcard::to_stdvec(&Claims {
            user: "root".into(),
            epoch: 1,
            expires: unix_now() - 1,
        })
        .unwrap();
        let tag = mac(b"0123456789abcdef", &payload).finalize().into_bytes();
        let t = format!("{}.{}", B64.encode(&payload), B64.encode(tag));
        assert!(a.verify(&t).is_err());
        assert!(a.verify(&a.issue("root").unwrap()).is_ok());
    }

    #[test]
    fn passwords_verify_against_their_hash_only() {
        let h = hash_password("s3cret");
        assert!(is_usable_hash(&h));
        let costly = h.replacen("m=19456", "m=4194304", 1);
        assert_ne!(costly, h);
        assert!(
            !is_usable_hash(&costly),
            "a hash naming 4 GiB per check is refused"
        );
        assert!(!is_usable_hash(&h.replacen("t=2", "t=1000", 1)));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("s3cret ", &h));
        assert!(!verify_password("s3cret", "not a hash"));
        assert_ne!(h, hash_password("s3cret"), "salted");
        assert!(verify_login("s3cret", Some(&h)));
        assert!(
            !verify_login("synod decoy password", None),
            "no user, no login"
        );
    }
}
