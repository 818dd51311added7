//! Access tokens and cookies: the one JWT algorithm, issuer and audience, the key files and
//! JWKS URL, lifetimes, and the development key pair.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use super::{
    error::{ConfigError, err},
    parse::{check_url, parse_bool, parse_duration, parse_with},
};

/// Access-token and cookie settings. Key files are read by `auth::keys` at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The one accepted signature algorithm.
    pub algorithm: jsonwebtoken::Algorithm,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// Signing key file; `None` in development means "generate one under the data directory".
    pub private_key: Option<PathBuf>,
    /// Verification key files.
    pub public_keys: Vec<PathBuf>,
    /// JWKS URL for further verification keys.
    pub jwks_url: Option<String>,
    /// Clock skew allowed on time claims.
    pub leeway: Duration,
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token lifetime.
    pub refresh_ttl: Duration,
    /// `Secure` attribute on cookies.
    pub cookie_secure: bool,
    /// Where a development key pair is generated when no key is configured.
    pub dev_key_dir: Option<PathBuf>,
}

/// Reads the `JEEX_JWT_*`, token lifetime and cookie variables. `dev` without configured keys
/// means a key pair generated under `data_dir`.
pub(super) fn parse(get: &impl Fn(&str) -> Option<String>, dev: bool, data_dir: &Path) -> Result<AuthConfig, ConfigError> {
    use jsonwebtoken::Algorithm;
    let algorithm = parse_with(get, "JEEX_JWT_ALGORITHM", "RS256", "RS256", |v| match v {
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        "EdDSA" => Ok(Algorithm::EdDSA),
        "HS256" => Ok(Algorithm::HS256),
        other => Err(format!("{other:?} is not supported; use RS256, ES256, EdDSA or HS256")),
    })?;
    let text = |name: &'static str, default: &str, example: &'static str| -> Result<String, ConfigError> {
        let v = get(name).unwrap_or_else(|| default.to_owned());
        if v.chars().any(char::is_control) || v.len() > 256 {
            return Err(err(name, "must be printable text of at most 256 characters".into(), example));
        }
        Ok(v)
    };
    let issuer = text("JEEX_JWT_ISSUER", "jeex", "https://auth.example.com")?;
    let audience = text("JEEX_JWT_AUDIENCE", "jeex-api", "jeex-api")?;
    let private_key = get("JEEX_JWT_PRIVATE_KEY").map(PathBuf::from);
    let public_keys: Vec<PathBuf> = get("JEEX_JWT_PUBLIC_KEYS")
        .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(PathBuf::from).collect())
        .unwrap_or_default();
    let jwks_url = get("JEEX_JWT_JWKS_URL")
        .map(|u| check_url("JEEX_JWT_JWKS_URL", &u, &["http", "https"], "https://auth.example.com/.well-known/jwks.json"))
        .transpose()?;
    let leeway = parse_with(get, "JEEX_JWT_LEEWAY", "30s", "30s", |v| match humantime::parse_duration(v) {
        Ok(d) if d <= Duration::from_secs(60) => Ok(d),
        Ok(_) => Err("must be at most 60s".into()),
        Err(_) => Err(format!("{v:?} is not a duration such as 30s")),
    })?;
    let access_ttl = parse_duration(get, "JEEX_ACCESS_TOKEN_TTL", "15m")?;
    let refresh_ttl = parse_duration(get, "JEEX_REFRESH_TOKEN_TTL", "30d")?;
    let cookie_secure = match get("JEEX_COOKIE_SECURE") {
        None => !dev,
        Some(v) => parse_bool("JEEX_COOKIE_SECURE", &v)?,
    };
    let symmetric = algorithm == Algorithm::HS256;
    let configured = private_key.is_some() || !public_keys.is_empty() || jwks_url.is_some();
    let dev_key_dir = if dev && !configured { Some(data_dir.join("jwt")) } else { None };
    // Whether the keys are present is checked where they are loaded (`serve`, `check`,
    // `token issue`): `migrate` and `openapi` need none.
    if symmetric && jwks_url.is_some() {
        return Err(err("JEEX_JWT_JWKS_URL", "cannot be used with HS256: shared secrets are never published".into(), ""));
    }
    if dev_key_dir.is_some() && symmetric {
        return Err(err("JEEX_JWT_PRIVATE_KEY", "HS256 needs a secret file; none is generated".into(), "/etc/jeex/keys/hs-1.secret"));
    }
    Ok(AuthConfig {
        algorithm,
        issuer,
        audience,
        private_key,
        public_keys,
        jwks_url,
        leeway,
        access_ttl,
        refresh_ttl,
        cookie_secure,
        dev_key_dir,
    })
}
