//! Per-project API keys: `jeex_<prefix>_<secret>`. The 12-character prefix is stored in the
//! clear to find the key; the secret only as SHA-256. The full key is shown once, at creation.

use super::secrets;
use crate::{access::Principal, db, error::ApiError};

const SCHEME: &str = "jeex";
const PREFIX_LEN: usize = 12;

/// A newly generated key: what the client gets once, and what is stored.
pub struct NewKey {
    /// The whole key, for the client.
    pub plaintext: String,
    /// Lookup prefix.
    pub prefix: String,
    /// SHA-256 of the secret part.
    pub secret_hash: Vec<u8>,
}

/// Generates a key.
pub fn generate() -> NewKey {
    let prefix = secrets::random_alphanumeric(PREFIX_LEN);
    let secret = secrets::random_token();
    NewKey { plaintext: format!("{SCHEME}_{prefix}_{secret}"), secret_hash: secrets::hash(&secret), prefix }
}

/// Splits a presented key into prefix and secret.
pub fn parse(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(SCHEME)?.strip_prefix('_')?;
    let (prefix, secret) = rest.split_at_checked(PREFIX_LEN)?;
    let secret = secret.strip_prefix('_')?;
    (prefix.bytes().all(|b| b.is_ascii_alphanumeric()) && (20..=128).contains(&secret.len())).then_some((prefix, secret))
}

/// Why a presented key was not accepted.
pub enum LookupError {
    /// Not a valid, live key (the reason is for the log only).
    Rejected(&'static str),
    /// The database could not be asked.
    Database(ApiError),
}

/// Finds and checks a presented key.
pub async fn authenticate(database: &db::Database, key: &str) -> Result<Principal, LookupError> {
    let (prefix, secret) = parse(key.trim()).ok_or(LookupError::Rejected("API key is malformed"))?;
    let found = db::api_keys::find_presented(database, prefix).await.map_err(LookupError::Database)?;
    let key = found.ok_or(LookupError::Rejected("API key is unknown or revoked"))?;
    if !secrets::same_digest(&key.secret_hash, &secrets::hash(secret)) {
        return Err(LookupError::Rejected("API key secret does not match"));
    }
    if key.expires_at.is_some_and(|at| at <= chrono::Utc::now()) {
        return Err(LookupError::Rejected("API key has expired"));
    }
    Ok(Principal::ApiKey { key_id: key.id, project_id: key.project_id, role: key.role })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back_and_garbage_does_not() {
        let k = generate();
        let (prefix, secret) = parse(&k.plaintext).unwrap();
        assert_eq!(prefix, k.prefix);
        assert_eq!(secrets::hash(secret), k.secret_hash);
        for bad in ["", "jeex_", "jeex_short_x", "other_ABCDEFGHIJKL_aaaaaaaaaaaaaaaaaaaaaaaa", "jeex_ABCDEFGHIJK!_aaaaaaaaaaaaaaaaaaaaaa"]
        {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
