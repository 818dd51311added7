//! Signing and verification keys. Verification keys come from PEM or JWK files (several at
//! once, chosen by `kid`, so keys rotate without downtime) and optionally a JWKS URL, cached
//! and fetched again on an unknown `kid` at most once a minute. In development with no key
//! configured, an RSA key pair is generated once under the data directory and shared by
//! `serve` and `token issue`.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::RwLock,
    time::{Duration, Instant},
};

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey,
    jwk::{Jwk, JwkSet},
};

use tracing::Instrument;

use crate::{client_span, config::AuthConfig};

/// Shortest interval between two JWKS fetches.
pub const JWKS_MIN_INTERVAL: Duration = Duration::from_secs(60);
/// Time limit of one JWKS fetch.
const JWKS_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS document accepted.
const JWKS_MAX_BYTES: usize = 1 << 20;
/// Shortest HS256 secret accepted.
const MIN_SECRET_BYTES: usize = 32;
/// `kid` of the generated development key.
pub const DEV_KID: &str = "dev";

/// A key could not be loaded; names the variable. Displays as one line.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {variable}: {message}")]
pub struct KeyError {
    /// The variable whose file is at fault.
    pub variable: &'static str,
    /// What is wrong.
    pub message: String,
}

fn key_err(variable: &'static str, message: String) -> KeyError {
    KeyError { variable, message }
}

/// The key that signs issued tokens.
pub struct Signer {
    /// `kid` stamped into the header.
    pub kid: String,
    /// The key.
    pub key: EncodingKey,
}

/// Every key the server knows.
pub struct KeySet {
    algorithm: Algorithm,
    signer: Signer,
    fixed: HashMap<String, DecodingKey>,
    jwks: Option<Jwks>,
}

struct Jwks {
    url: String,
    client: reqwest::Client,
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// When the last fetch started; also serialises fetches.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

/// `kid` of a PEM key file: its name up to the first dot (`2026-11.pub.pem` → `2026-11`).
pub fn kid_of(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.split('.').next().unwrap_or_default().to_owned()
}

impl KeySet {
    /// Loads (or in development generates) the keys; fetches the JWKS once if configured (a
    /// failed fetch is logged and retried on the first unknown `kid`).
    pub async fn load(cfg: &AuthConfig) -> Result<Self, KeyError> {
        let (private, publics) = match &cfg.dev_key_dir {
            Some(dir) => {
                let (private, public) = ensure_dev_key_pair(dir).await?;
                (private, vec![public])
            }
            None => {
                let private = cfg.private_key.clone().ok_or_else(|| {
                    key_err("JEEX_JWT_PRIVATE_KEY", "is required outside development, or once any JWT key variable is set".into())
                })?;
                if cfg.algorithm != Algorithm::HS256 && cfg.public_keys.is_empty() && cfg.jwks_url.is_none() {
                    return Err(key_err(
                        "JEEX_JWT_PUBLIC_KEYS",
                        "is required (or JEEX_JWT_JWKS_URL): tokens cannot be verified without a public key".into(),
                    ));
                }
                (private, cfg.public_keys.clone())
            }
        };
        let signer = load_signer(cfg.algorithm, &private)?;
        let mut fixed = HashMap::new();
        if cfg.algorithm == Algorithm::HS256 {
            // A shared secret verifies what it signs.
            let secret = read_secret(&private, "JEEX_JWT_PRIVATE_KEY")?;
            fixed.insert(signer.kid.clone(), DecodingKey::from_secret(&secret));
        }
        for path in &publics {
            for (kid, key) in load_public(cfg.algorithm, path)? {
                fixed.insert(kid, key);
            }
        }
        let jwks = cfg.jwks_url.as_ref().map(|url| Jwks {
            url: url.clone(),
            client: reqwest::Client::builder().timeout(JWKS_TIMEOUT).build().unwrap_or_default(),
            keys: RwLock::new(HashMap::new()),
            last_fetch: tokio::sync::Mutex::new(None),
        });
        let set = Self { algorithm: cfg.algorithm, signer, fixed, jwks };
        if let Some(jwks) = &set.jwks {
            jwks.refresh(set.algorithm).await;
        }
        if set.jwks.is_none() && !set.fixed.contains_key(&set.signer.kid) {
            return Err(key_err(
                "JEEX_JWT_PUBLIC_KEYS",
                format!("no verification key has the signing key's kid {:?}: issued tokens could not be verified", set.signer.kid),
            ));
        }
        Ok(set)
    }

    /// The pinned algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The signing key.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The verification key for `kid`; an unknown `kid` triggers a JWKS fetch unless one
    /// happened less than a minute ago.
    pub async fn decoding_key(&self, kid: &str) -> Option<DecodingKey> {
        if let Some(key) = self.fixed.get(kid) {
            return Some(key.clone());
        }
        let jwks = self.jwks.as_ref()?;
        if let Some(key) = jwks.get(kid) {
            return Some(key);
        }
        let mut last = jwks.last_fetch.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = jwks.get(kid) {
            return Some(key);
        }
        if last.is_some_and(|at| at.elapsed() < JWKS_MIN_INTERVAL) {
            return None;
        }
        *last = Some(Instant::now());
        // Still holding the lock: requests arriving meanwhile wait for this fetch's keys.
        jwks.refresh(self.algorithm).await;
        drop(last);
        jwks.get(kid)
    }
}

impl Jwks {
    fn get(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.read().ok()?.get(kid).cloned()
    }

    async fn refresh(&self, algorithm: Algorithm) {
        match self.fetch(algorithm).await {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "fetched JWKS");
                if let Ok(mut guard) = self.keys.write() {
                    *guard = keys;
                }
            }
            Err(e) => tracing::warn!(url = %self.url, error = %e, "JWKS fetch failed; keeping the keys already known"),
        }
    }

    async fn fetch(&self, algorithm: Algorithm) -> Result<HashMap<String, DecodingKey>, String> {
        let span = url::Url::parse(&self.url).map(|u| client_span::http("GET", &u)).unwrap_or_else(|_| tracing::Span::none());
        let sent = self.client.get(&self.url).send().instrument(span.clone()).await;
        let resp = sent
            .inspect_err(|e| client_span::fail(&span, if e.is_timeout() { "timeout" } else { "connect" }))
            .map_err(|e| e.to_string())?;
        span.record("http.response.status_code", i64::from(resp.status().as_u16()));
        if !resp.status().is_success() {
            client_span::fail(&span, resp.status().as_str());
            return Err(format!("HTTP {}", resp.status()));
        }
        if resp.content_length().is_some_and(|n| n > JWKS_MAX_BYTES as u64) {
            return Err("the JWKS is larger than 1 MiB".into());
        }
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        if body.len() > JWKS_MAX_BYTES {
            return Err("the JWKS is larger than 1 MiB".into());
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| format!("not a JWKS: {e}"))?;
        Ok(set.keys.iter().filter_map(|jwk| usable_jwk(algorithm, jwk)).collect())
    }
}

/// A JWK's `kid` and key, when it has a `kid` and fits the pinned algorithm.
fn usable_jwk(algorithm: Algorithm, jwk: &Jwk) -> Option<(String, DecodingKey)> {
    let kid = jwk.common.key_id.clone()?;
    let key = DecodingKey::from_jwk(jwk).ok()?;
    (key.family() == algorithm.family()).then_some((kid, key))
}

fn read(path: &Path, variable: &'static str) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|e| key_err(variable, format!("cannot read {}: {e}", path.display())))
}

fn read_secret(path: &Path, variable: &'static str) -> Result<Vec<u8>, KeyError> {
    let mut secret = read(path, variable)?;
    while secret.last().is_some_and(u8::is_ascii_whitespace) {
        secret.pop();
    }
    if secret.len() < MIN_SECRET_BYTES {
        return Err(key_err(variable, format!("{} holds fewer than {MIN_SECRET_BYTES} bytes", path.display())));
    }
    Ok(secret)
}

fn load_signer(algorithm: Algorithm, path: &Path) -> Result<Signer, KeyError> {
    const VAR: &str = "JEEX_JWT_PRIVATE_KEY";
    let key = match algorithm {
        Algorithm::HS256 => Ok(EncodingKey::from_secret(&read_secret(path, VAR)?)),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&read(path, VAR)?),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&read(path, VAR)?),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&read(path, VAR)?),
        other => return Err(key_err(VAR, format!("algorithm {other:?} is not supported"))),
    }
    .map_err(|e| key_err(VAR, format!("{} is not a {algorithm:?} private key in PEM: {e}", path.display())))?;
    Ok(Signer { kid: kid_of(path), key })
}

fn load_public(algorithm: Algorithm, path: &Path) -> Result<Vec<(String, DecodingKey)>, KeyError> {
    const VAR: &str = "JEEX_JWT_PUBLIC_KEYS";
    let bytes = read(path, VAR)?;
    let text = String::from_utf8_lossy(&bytes);
    if text.trim_start().starts_with('{') {
        let jwks: Vec<Jwk> = match serde_json::from_str::<JwkSet>(&text) {
            Ok(set) => set.keys,
            Err(_) => vec![
                serde_json::from_str::<Jwk>(&text)
                    .map_err(|e| key_err(VAR, format!("{} is neither a JWK nor a JWKS: {e}", path.display())))?,
            ],
        };
        let keys: Vec<_> = jwks.iter().filter_map(|jwk| usable_jwk(algorithm, jwk)).collect();
        if keys.is_empty() {
            return Err(key_err(VAR, format!("{} holds no {algorithm:?} key with a kid", path.display())));
        }
        return Ok(keys);
    }
    let key = match algorithm {
        Algorithm::HS256 => Ok(DecodingKey::from_secret(&read_secret(path, VAR)?)),
        Algorithm::RS256 => DecodingKey::from_rsa_pem(&bytes),
        Algorithm::ES256 => DecodingKey::from_ec_pem(&bytes),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(&bytes),
        other => return Err(key_err(VAR, format!("algorithm {other:?} is not supported"))),
    }
    .map_err(|e| key_err(VAR, format!("{} is not a {algorithm:?} public key in PEM: {e}", path.display())))?;
    Ok(vec![(kid_of(path), key)])
}

/// Paths of the development key pair in `dir`, generated on first use. Written to a temporary
/// name and renamed, so a concurrent `serve` and `token issue` never read half a file.
async fn ensure_dev_key_pair(dir: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
    const VAR: &str = "JEEX_DATA_DIR";
    let private = dir.join(format!("{DEV_KID}.key.pem"));
    let public = dir.join(format!("{DEV_KID}.pub.pem"));
    if private.exists() && public.exists() {
        return Ok((private, public));
    }
    std::fs::create_dir_all(dir).map_err(|e| key_err(VAR, format!("cannot create {}: {e}", dir.display())))?;
    tracing::info!(dir = %dir.display(), "generating the development JWT key pair (RS256)");
    let (private_pem, public_pem) = tokio::task::spawn_blocking(generate_rsa_pair)
        .await
        .map_err(|e| key_err(VAR, format!("key generation failed: {e}")))?
        .map_err(|e| key_err(VAR, format!("key generation failed: {e}")))?;
    write_atomically(&public, public_pem.as_bytes(), 0o644).map_err(|e| key_err(VAR, e))?;
    write_atomically(&private, private_pem.as_bytes(), 0o600).map_err(|e| key_err(VAR, e))?;
    Ok((private, public))
}

fn generate_rsa_pair() -> Result<(String, String), String> {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(|e| e.to_string())?;
    let private = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| e.to_string())?.to_string();
    let public = key.to_public_key().to_public_key_pem(LineEnding::LF).map_err(|e| e.to_string())?;
    Ok((private, public))
}

fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_is_the_file_name_up_to_the_first_dot() {
        assert_eq!(kid_of(Path::new("/k/2026-11.pub.pem")), "2026-11");
        assert_eq!(kid_of(Path::new("dev.key.pem")), "dev");
    }
}
