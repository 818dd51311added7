//! Access tokens: issued and verified with the one algorithm pinned by configuration. A token
//! naming any other `alg` — `none`, or HS256 signed with a published RSA key — never reaches a
//! key. Signature, `exp`, `nbf`, `iat` (with the configured leeway), `iss` and `aud` are
//! checked; `sub` (a user id), `jti`, `exp` and `iat` are required.

use std::{collections::HashMap, sync::RwLock, time::Duration};

use jsonwebtoken::{Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::keys::{KeyError, KeySet};
use crate::{
    config::AuthConfig,
    error::ApiError,
    events::tickets::{AUDIENCE_SUFFIX, Grant, TicketClaims},
};

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience: a string, or a list for tokens from other issuers.
    pub aud: serde_json::Value,
    /// The user's id.
    pub sub: String,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Not valid before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at.
    pub iat: u64,
    /// Unique token id.
    pub jti: String,
}

/// How long a verified token is trusted without checking its signature again.
const CACHE_TTL_SECS: u64 = 60;
/// Most tokens remembered; the cache starts over when full.
const CACHE_MAX: usize = 10_000;

/// A token whose signature and claims were verified: what later uses of the same token need.
#[derive(Clone, Copy)]
struct Verified {
    user_id: Uuid,
    exp: u64,
    nbf: Option<u64>,
    at: u64,
}

/// Issues and verifies access tokens. A client sends the same token with every request for
/// its lifetime; verified tokens are remembered (by SHA-256 of the whole token, for at most a
/// minute and never past their own `exp`) so the signature check — the costliest step of a
/// request — runs once per token and minute, not once per request.
pub struct AccessTokens {
    keys: KeySet,
    validation: Validation,
    /// Stream tickets' rules: the same but for their own audience.
    ticket_validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
    leeway: u64,
    verified: RwLock<HashMap<[u8; 32], Verified>>,
}

impl AccessTokens {
    /// Loads the keys and fixes the rules.
    pub async fn load(cfg: &AuthConfig) -> Result<Self, KeyError> {
        let keys = KeySet::load(cfg).await?;
        let mut validation = Validation::new(cfg.algorithm);
        validation.algorithms = vec![cfg.algorithm];
        validation.leeway = cfg.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&cfg.issuer]);
        validation.set_audience(&[&cfg.audience]);
        let mut ticket_validation = validation.clone();
        ticket_validation.set_audience(&[format!("{}{AUDIENCE_SUFFIX}", cfg.audience)]);
        ticket_validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(Self {
            keys,
            validation,
            ticket_validation,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            ttl: cfg.access_ttl,
            leeway: cfg.leeway.as_secs(),
            verified: RwLock::new(HashMap::new()),
        })
    }

    /// Lifetime of issued tokens.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs an access token for `user_id`.
    pub fn issue(&self, user_id: Uuid) -> Result<String, ApiError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: serde_json::Value::String(self.audience.clone()),
            sub: user_id.to_string(),
            exp: now + self.ttl.as_secs(),
            nbf: Some(now),
            iat: now,
            jti: Uuid::now_v7().to_string(),
        };
        let signer = self.keys.signer();
        let mut header = Header::new(self.keys.algorithm());
        header.kid = Some(signer.kid.clone());
        jsonwebtoken::encode(&header, &claims, &signer.key).map_err(|e| ApiError::Internal(format!("signing a token failed: {e}")))
    }

    /// Signs a stream ticket for `grant`, valid for `ttl`.
    pub fn issue_ticket(&self, grant: Grant, ttl: Duration) -> Result<String, ApiError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = TicketClaims {
            iss: self.issuer.clone(),
            aud: format!("{}{AUDIENCE_SUFFIX}", self.audience),
            exp: now + ttl.as_secs(),
            iat: now,
            jti: Uuid::now_v7().to_string(),
            grant,
        };
        let signer = self.keys.signer();
        let mut header = Header::new(self.keys.algorithm());
        header.kid = Some(signer.kid.clone());
        jsonwebtoken::encode(&header, &claims, &signer.key).map_err(|e| ApiError::Internal(format!("signing a ticket failed: {e}")))
    }

    /// What a stream ticket grants, or why it is rejected (for the log only).
    pub async fn verify_ticket(&self, ticket: &str) -> Result<Grant, &'static str> {
        let claims: TicketClaims = self.decode(ticket, &self.ticket_validation).await?;
        Ok(claims.grant)
    }

    /// The user a token speaks for, or why it is rejected (for the log only).
    pub async fn verify(&self, token: &str) -> Result<Uuid, &'static str> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = jsonwebtoken::get_current_timestamp();
        let remembered = self.verified.read().ok().and_then(|cache| cache.get(&digest).copied());
        if let Some(v) = remembered
            && now < v.at + CACHE_TTL_SECS
            && now <= v.exp + self.leeway
            && v.nbf.is_none_or(|nbf| nbf <= now + self.leeway)
        {
            return Ok(v.user_id);
        }
        let verified = self.verify_signed(token).await?;
        if let Ok(mut cache) = self.verified.write() {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(digest, Verified { at: now, ..verified });
        }
        Ok(verified.user_id)
    }

    async fn verify_signed(&self, token: &str) -> Result<Verified, &'static str> {
        let claims: Claims = self.decode(token, &self.validation).await?;
        if claims.jti.is_empty() {
            return Err("token lacks a required claim");
        }
        let user_id = Uuid::parse_str(&claims.sub).map_err(|_| "token subject is not a user id")?;
        Ok(Verified { user_id, exp: claims.exp, nbf: claims.nbf, at: 0 })
    }

    /// Checks the signature (with the pinned algorithm and a known `kid`) and `rules`.
    async fn decode<C: serde::de::DeserializeOwned + Issued>(&self, token: &str, rules: &Validation) -> Result<C, &'static str> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "token is malformed or names an unknown algorithm")?;
        if header.alg != self.keys.algorithm() {
            return Err("token algorithm is not the configured one");
        }
        let kid = header.kid.ok_or("token has no kid")?;
        let key = self.keys.decoding_key(&kid).await.ok_or("token kid is unknown")?;
        let data = jsonwebtoken::decode::<C>(token, &key, rules).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => "token has expired",
            ErrorKind::ImmatureSignature => "token is not valid yet",
            ErrorKind::InvalidIssuer => "token issuer is wrong",
            ErrorKind::InvalidAudience => "token audience is wrong",
            ErrorKind::InvalidSignature => "token signature is wrong",
            ErrorKind::MissingRequiredClaim(_) | ErrorKind::Json(_) => "token lacks a required claim",
            ErrorKind::InvalidAlgorithm => "token algorithm does not fit the key",
            _ => "token is invalid",
        })?;
        if data.claims.issued_at() > jsonwebtoken::get_current_timestamp() + self.leeway {
            return Err("token was issued in the future");
        }
        Ok(data.claims)
    }
}

/// Claims that say when they were issued.
trait Issued {
    fn issued_at(&self) -> u64;
}

impl Issued for Claims {
    fn issued_at(&self) -> u64 {
        self.iat
    }
}

impl Issued for TicketClaims {
    fn issued_at(&self) -> u64 {
        self.iat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn tokens() -> AccessTokens {
        let key = |f: &str| format!("{}/tests/keys/{f}", env!("CARGO_MANIFEST_DIR"));
        let vars = std::collections::HashMap::from([
            ("DATABASE_URL".to_string(), "postgres://u@h/d".to_string()),
            ("JEEX_JWT_PRIVATE_KEY".to_string(), key("k1.key.pem")),
            ("JEEX_JWT_PUBLIC_KEYS".to_string(), key("k1.pub.pem")),
        ]);
        AccessTokens::load(&crate::config::Config::from_map(&vars).unwrap().auth).await.unwrap()
    }

    fn remember(t: &AccessTokens, token: &str, v: Verified) {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        t.verified.write().unwrap().insert(digest, v);
    }

    #[tokio::test]
    async fn remembered_tokens_still_expire() {
        let t = tokens().await;
        let now = jsonwebtoken::get_current_timestamp();
        let user_id = Uuid::now_v7();
        remember(&t, "fresh", Verified { user_id, exp: now + 600, nbf: None, at: now });
        assert_eq!(t.verify("fresh").await, Ok(user_id), "a remembered token skips the signature check");
        remember(&t, "expired", Verified { user_id, exp: now - 120, nbf: None, at: now });
        assert!(t.verify("expired").await.is_err(), "expiry is checked on every use");
        remember(&t, "stale", Verified { user_id, exp: now + 600, nbf: None, at: now - CACHE_TTL_SECS });
        assert!(t.verify("stale").await.is_err(), "after a minute the signature is checked again");
        let real = t.issue(user_id).unwrap();
        assert_eq!(t.verify(&real).await, Ok(user_id));
        assert_eq!(t.verify(&real).await, Ok(user_id));
    }
}
