//! Token pairs: a short-lived access token plus a rotating refresh token. Shared by the CLI
//! (`token issue`), dev-login and refresh.

use std::time::Duration;

use poem_openapi::Object;
use uuid::Uuid;

use super::jwt::AccessTokens;
use crate::{db, error::ApiError};

/// What a successful login or refresh returns.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct TokenPair {
    /// Access token (JWT); send as `Authorization: Bearer …`. Absent when the refresh token
    /// came from the cookie: a browser session keeps its tokens in httpOnly cookies only,
    /// out of reach of page scripts.
    #[oai(skip_serializing_if_is_none)]
    pub access_token: Option<String>,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque refresh token; single use: each refresh returns a new one. Absent like
    /// `access_token` for cookie sessions.
    #[oai(skip_serializing_if_is_none)]
    pub refresh_token: Option<String>,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
}

impl poem_openapi::types::Example for TokenPair {
    fn example() -> Self {
        Self {
            access_token: Some("eyJhbGciOiJSUzI1NiIsImtpZCI6ImRldiJ9.eyJzdWIiOiIwMTkzYjVlNC4uLiJ9.c2lnbmF0dXJl".into()),
            token_type: "Bearer".into(),
            expires_in: 900,
            refresh_token: Some("q3J0b2tlbi1leGFtcGxlLW5vdC1hLXJlYWwtb25lLTEyMzQ1Ng".into()),
            refresh_expires_in: 2_592_000,
        }
    }
}

/// Issues a new pair for `user_id`, starting a new refresh family.
pub async fn issue(tokens: &AccessTokens, refresh_ttl: Duration, database: &db::Database, user_id: Uuid) -> Result<TokenPair, ApiError> {
    let refresh = db::refresh_tokens::issue(database, user_id, refresh_ttl).await?;
    pair(tokens, refresh_ttl, user_id, refresh)
}

/// Builds the pair around an already stored refresh token.
pub fn pair(tokens: &AccessTokens, refresh_ttl: Duration, user_id: Uuid, refresh_token: String) -> Result<TokenPair, ApiError> {
    Ok(TokenPair {
        access_token: Some(tokens.issue(user_id)?),
        token_type: "Bearer".into(),
        expires_in: tokens.ttl().as_secs(),
        refresh_token: Some(refresh_token),
        refresh_expires_in: refresh_ttl.as_secs(),
    })
}
