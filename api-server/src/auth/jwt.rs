//! Access tokens: issued and verified with the one algorithm pinned by configuration. A token
//! naming any other `alg` — `none`, or HS256 signed with a published RSA key — never reaches a
//! key. Signature, `exp`, `nbf`, `iat` (with the configured leeway), `iss` and `aud` are
//! checked; `sub` (a user id), `jti`, `exp` and `iat` are required.

use std::time::Duration;

use jsonwebtoken::{Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::keys::{KeyError, KeySet};
use crate::{config::AuthConfig, error::ApiError};

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

/// Issues and verifies access tokens.
pub struct AccessTokens {
    keys: KeySet,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
    leeway: u64,
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
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(Self {
            keys,
            validation,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            ttl: cfg.access_ttl,
            leeway: cfg.leeway.as_secs(),
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

    /// The user a token speaks for, or why it is rejected (for the log only).
    pub async fn verify(&self, token: &str) -> Result<Uuid, &'static str> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "token is malformed or names an unknown algorithm")?;
        if header.alg != self.keys.algorithm() {
            return Err("token algorithm is not the configured one");
        }
        let kid = header.kid.ok_or("token has no kid")?;
        let key = self.keys.decoding_key(&kid).await.ok_or("token kid is unknown")?;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => "token has expired",
            ErrorKind::ImmatureSignature => "token is not valid yet",
            ErrorKind::InvalidIssuer => "token issuer is wrong",
            ErrorKind::InvalidAudience => "token audience is wrong",
            ErrorKind::InvalidSignature => "token signature is wrong",
            ErrorKind::MissingRequiredClaim(_) | ErrorKind::Json(_) => "token lacks a required claim",
            ErrorKind::InvalidAlgorithm => "token algorithm does not fit the key",
            _ => "token is invalid",
        })?;
        let claims = data.claims;
        if claims.iat > jsonwebtoken::get_current_timestamp() + self.leeway {
            return Err("token was issued in the future");
        }
        if claims.jti.is_empty() {
            return Err("token lacks a required claim");
        }
        Uuid::parse_str(&claims.sub).map_err(|_| "token subject is not a user id")
    }
}
