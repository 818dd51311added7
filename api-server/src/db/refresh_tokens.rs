//! Refresh tokens: opaque, stored only as SHA-256, single use. Using one marks it used and
//! issues its successor in the same family; presenting a used (or revoked) one again means it
//! was copied, so the whole family is revoked — the thief's and the owner's newer tokens alike.
use super::Database;

use std::time::Duration;

use uuid::Uuid;

use crate::{auth::secrets, error::ApiError};

/// Why a refresh token was refused (for the log; the client sees one 401).
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// No such token.
    Unknown,
    /// Past its expiry.
    Expired,
    /// Its family was revoked (logout or earlier reuse).
    Revoked,
    /// Already used: the family has now been revoked.
    Reused,
}

impl Refused {
    /// Log text.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unknown => "refresh token is unknown",
            Self::Expired => "refresh token has expired",
            Self::Revoked => "refresh token was revoked",
            Self::Reused => "refresh token was reused; its family is revoked",
        }
    }
}

async fn insert<'e>(conn: impl sqlx::PgExecutor<'e>, user_id: Uuid, family_id: Uuid, ttl: Duration) -> Result<String, ApiError> {
    let token = secrets::random_token();
    sqlx::query!(
        "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at) VALUES ($1, $2, $3, $4, now() + $5)",
        Uuid::now_v7(),
        user_id,
        family_id,
        secrets::hash(&token),
        sqlx::postgres::types::PgInterval::try_from(ttl).map_err(|_| ApiError::Internal("refresh TTL out of range".into()))?
    )
    .execute(conn)
    .await?;
    Ok(token)
}

/// Starts a new family for `user_id` and returns its first token.
pub async fn issue(db: &Database, user_id: Uuid, ttl: Duration) -> Result<String, ApiError> {
    insert(db.exec(), user_id, Uuid::now_v7(), ttl).await
}

struct Stored {
    user_id: Uuid,
    family_id: Uuid,
    expired: bool,
    used: bool,
    revoked: bool,
}

/// Uses `presented`: on success the user and the successor token.
pub async fn rotate(db: &Database, presented: &str, ttl: Duration) -> Result<Result<(Uuid, String), Refused>, ApiError> {
    let mut tx = db.begin().await?;
    // FOR UPDATE: two concurrent uses of one token are serialised, so the second sees it used.
    let stored = sqlx::query_as!(
        Stored,
        r#"SELECT t.user_id, t.family_id, t.expires_at <= now() AS "expired!", t.used_at IS NOT NULL AS "used!",
                  t.revoked_at IS NOT NULL OR u.deleted_at IS NOT NULL AS "revoked!"
           FROM refresh_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1 FOR UPDATE OF t"#,
        secrets::hash(presented)
    )
    .fetch_optional(&mut tx)
    .await?;
    let Some(stored) = stored else { return Ok(Err(Refused::Unknown)) };
    if stored.revoked {
        return Ok(Err(Refused::Revoked));
    }
    if stored.used {
        revoke_family(&mut tx, stored.family_id).await?;
        tx.commit().await?;
        return Ok(Err(Refused::Reused));
    }
    if stored.expired {
        return Ok(Err(Refused::Expired));
    }
    sqlx::query!("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1", secrets::hash(presented)).execute(&mut tx).await?;
    let next = insert(&mut tx, stored.user_id, stored.family_id, ttl).await?;
    tx.commit().await?;
    Ok(Ok((stored.user_id, next)))
}

async fn revoke_family(conn: &mut crate::access::Tx, family_id: Uuid) -> Result<(), ApiError> {
    sqlx::query!("UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL", family_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Logout: revokes the family of `presented` (holding the token is the proof). Returns
/// whether a family was found.
pub async fn revoke(db: &Database, presented: &str) -> Result<bool, ApiError> {
    let mut tx = db.begin().await?;
    let family = sqlx::query_scalar!("SELECT family_id FROM refresh_tokens WHERE token_hash = $1", secrets::hash(presented))
        .fetch_optional(&mut tx)
        .await?;
    if let Some(family) = family {
        revoke_family(&mut tx, family).await?;
    }
    tx.commit().await?;
    Ok(family.is_some())
}
