//! JWT auth tokens, as etcd's `--auth-token jwt,pub-key=...,priv-key=...,sign-method=...,ttl=...`
//! offers them: signed with a key pair every member is given, so any member can check a token
//! any member signed, with nothing shared through the log. A member given only the public key
//! checks tokens but cannot issue them.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The keys and rules for JWT tokens.
pub struct JwtKeys {
    alg: Algorithm,
    sign: Option<EncodingKey>,
    check: DecodingKey,
    ttl: Duration,
}

/// What a Synod JWT claims, named as etcd names it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

fn read(option: &str, path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(Path::new(path)).map_err(|e| format!("cannot read {option} {path}: {e}"))
}

/// A token's lifetime as etcd writes it (`300s`, `5m`, `1h`, or bare seconds); never zero.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let ttl = crate::config::parse_duration(s).map_err(|e| format!("ttl={s}: {e}"))?;
    if ttl.is_zero() {
        return Err("ttl must be positive".into());
    }
    Ok(ttl)
}

impl JwtKeys {
    /// From the option list after `jwt,` (`pub-key=FILE,priv-key=FILE,sign-method=ALG,ttl=5m`).
    /// HS* methods take the shared secret from `priv-key` and need no public key.
    pub fn parse(options: &str) -> Result<Self, String> {
        let (mut public, mut private, mut method, mut ttl) = (None, None, None, None);
        for opt in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let (k, v) = opt
                .split_once('=')
                .ok_or_else(|| format!("'{opt}' is not KEY=VALUE"))?;
            match k {
                "pub-key" => public = Some(v.to_string()),
                "priv-key" => private = Some(v.to_string()),
                "sign-method" => method = Some(v.to_string()),
                "ttl" => ttl = Some(parse_duration(v)?),
                other => {
                    return Err(format!(
                        "unknown option '{other}'; expected pub-key, priv-key, sign-method, ttl"
                    ))
                }
            }
        }
        let method = method.ok_or("sign-method is required (RS256, ES256, EdDSA, HS256, ...)")?;
        let alg: Algorithm = method.parse().map_err(|_| {
            format!("sign-method={method} is not one of RS256/384/512, PS256/384/512, ES256/384, EdDSA, HS256/384/512")
        })?;
        let pem = |o: &str, p: &Option<String>| p.as_deref().map(|p| read(o, p)).transpose();
        let (public, private) = (pem("pub-key", &public)?, pem("priv-key", &private)?);
        let bad = |what: &str, e: jsonwebtoken::errors::Error| {
            format!("{what} is not a {method} key in PEM form: {e}")
        };
        let (sign, check) = match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let secret =
                    private.ok_or("HS* sign methods take the shared secret in priv-key")?;
                // A short secret can be guessed, and then anyone can sign a root token.
                if secret.len() < 32 {
                    return Err(format!(
                        "priv-key holds {} bytes; an HS* secret needs at least 32",
                        secret.len()
                    ));
                }
                (
                    Some(EncodingKey::from_secret(&secret)),
                    DecodingKey::from_secret(&secret),
                )
            }
            _ => {
                let public = public.ok_or("pub-key is required")?;
                type Enc = fn(&[u8]) -> jsonwebtoken::errors::Result<EncodingKey>;
                type Dec = fn(&[u8]) -> jsonwebtoken::errors::Result<DecodingKey>;
                let (enc, dec): (Enc, Dec) = match alg {
                    Algorithm::ES256 | Algorithm::ES384 => {
                        (EncodingKey::from_ec_pem, DecodingKey::from_ec_pem)
                    }
                    Algorithm::EdDSA => (EncodingKey::from_ed_pem, DecodingKey::from_ed_pem),
                    _ => (EncodingKey::from_rsa_pem, DecodingKey::from_rsa_pem),
                };
                let sign = private
                    .map(|p| enc(&p).map_err(|e| bad("priv-key", e)))
                    .transpose()?;
                (sign, dec(&public).map_err(|e| bad("pub-key", e))?)
            }
        };
        let keys = JwtKeys {
            alg,
            sign,
            check,
            ttl: ttl.unwrap_or(Duration::from_secs(300)),
        };
        // A key pair that does not match would only show when the first client logs in.
        if keys.sign.is_some() {
            let t = keys.issue("probe", 0)?;
            keys.verify(&t)
                .ok_or("priv-key and pub-key are not a pair")?;
        }
        Ok(keys)
    }

    /// A token for `user` at its `epoch` (carried as etcd's `revision` claim), or why this
    /// member cannot sign one.
    pub fn issue(&self, user: &str, epoch: u64) -> Result<String, String> {
        let sign = self
            .sign
            .as_ref()
            .ok_or("this member has no priv-key to sign tokens with")?;
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            + self.ttl.as_secs();
        let claims = Claims {
            username: user.to_string(),
            revision: epoch,
            exp,
        };
        jsonwebtoken::encode(&Header::new(self.alg), &claims, sign).map_err(|e| e.to_string())
    }

    /// The user a token names and its epoch, if its signature, algorithm and expiry hold.
    pub fn verify(&self, token: &str) -> Option<(String, u64)> {
        let mut v = Validation::new(self.alg);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp"]);
        jsonwebtoken::decode::<Claims>(token, &self.check, &v)
            .map(|d| (d.claims.username, d.claims.revision))
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_etcd_writes_them() {
        assert_eq!(parse_duration("300").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("5x").is_err());
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("-5m").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn hs256_tokens_verify_only_with_their_secret() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "one secret, thirty-two bytes at least").unwrap();
        std::fs::write(&b, "another secret, as long as the first").unwrap();
        let ka = JwtKeys::parse(&format!("priv-key={},sign-method=HS256", a.display())).unwrap();
        let kb = JwtKeys::parse(&format!("priv-key={},sign-method=HS256", b.display())).unwrap();
        let t = ka.issue("alice", 3).unwrap();
        assert_eq!(ka.verify(&t), Some(("alice".to_string(), 3)));
        assert!(kb.verify(&t).is_none());
        let mut parts: Vec<String> = t.split('.').map(String::from).collect();
        parts[1] = parts[1].chars().rev().collect();
        assert!(ka.verify(&parts.join(".")).is_none());
        assert!(ka.verify("x.y.z").is_none());
    }

    #[test]
    fn bad_options_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "too short").unwrap();
        let short = format!("priv-key={},sign-method=HS256", short.display());
        for (opts, want) in [
            (short.as_str(), "at least 32"),
            ("sign-method=none", "sign-method=none"),
            (
                "pub-key=/nope,sign-method=RS256",
                "cannot read pub-key /nope",
            ),
            ("sign-method=HS256", "priv-key"),
            ("sign-method=ES256,ttl=forever", "ttl=forever"),
            ("color=blue", "unknown option"),
            ("", "sign-method is required"),
        ] {
            let e = JwtKeys::parse(opts).err().unwrap();
            assert!(e.contains(want), "{opts}: {e}");
        }
    }
}
