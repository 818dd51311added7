//! Project API keys: created, listed and revoked inside a project scope; found by prefix at
//! authentication, before any project is known (the one row-level policy that admits a row by
//! something other than the scope: the presented prefix).
use super::Database;
use crate::access::{Admits, Entry, Owner, Role, Scoped};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    audit,
    page::{Page, Paged},
};
use crate::error::{ApiError, ErrorCode};

/// A key as listed (never its secret).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyInfo {
    /// Key id.
    pub id: Uuid,
    /// What it is for.
    pub name: String,
    /// Public part of the key (`jeex_<prefix>_…`), to recognise it.
    pub prefix: String,
    /// Role it acts with: `editor` or `viewer`.
    pub role: Role,
    /// Who created it.
    pub created_by: Option<Uuid>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Stores a generated key: its lookup prefix and the SHA-256 of its secret.
pub async fn create(
    s: &mut Scoped<impl Admits<Owner>>,
    name: &str,
    role: Role,
    expires_at: Option<DateTime<Utc>>,
    prefix: &str,
    secret_hash: &[u8],
) -> Result<ApiKeyInfo, ApiError> {
    let (scope, conn) = s.parts();
    let info = sqlx::query_as!(
        ApiKeyInfo,
        r#"INSERT INTO api_keys (id, project_id, name, prefix, secret_hash, role, created_by, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           RETURNING id, name, prefix, role AS "role: Role", created_by, created_at, expires_at"#,
        Uuid::now_v7(),
        scope.project_id(),
        name,
        prefix,
        secret_hash,
        role as _,
        scope.caller().user_id(),
        expires_at
    )
    .fetch_one(conn)
    .await?;
    audit::record(s, "api_key.create", "api_key", info.id, serde_json::json!({ "name": info.name, "prefix": info.prefix })).await?;
    Ok(info)
}

/// Live keys of the project, newest first.
pub async fn list(e: &Entry<impl Admits<Owner>>, page: &Page) -> Result<Paged<ApiKeyInfo>, ApiError> {
    let rows = sqlx::query_as!(
        ApiKeyInfo,
        r#"SELECT k.id AS "id!", k.name AS "name!", k.prefix AS "prefix!", k.role AS "role!: Role", k.created_by,
                  k.created_at AS "created_at!", k.expires_at
           FROM jeex_enter($1, $2, $3, $4) AS entered(role)
           CROSS JOIN LATERAL (
               SELECT id, name, prefix, role, created_by, created_at, expires_at
               FROM api_keys WHERE project_id = $3 AND deleted_at IS NULL AND ($5::uuid IS NULL OR id < $5) AND entered.role IS NOT NULL
               ORDER BY id DESC LIMIT $6 OFFSET 0) k
           ORDER BY k.id DESC"#,
        e.user(),
        e.key(),
        e.project_id(),
        e.needs(),
        page.after()?,
        page.fetch()
    )
    .fetch_all(e.exec())
    .await?;
    Ok(Paged::keyset(rows, page, |k| k.id))
}

/// Revokes a key (soft delete; the audit log keeps naming it).
pub async fn revoke(s: &mut Scoped<impl Admits<Owner>>, id: Uuid) -> Result<(), ApiError> {
    let (scope, conn) = s.parts();
    let revoked = sqlx::query_scalar!(
        "UPDATE api_keys SET deleted_at = now() WHERE project_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING id",
        scope.project_id(),
        id
    )
    .fetch_optional(conn)
    .await?;
    revoked.ok_or_else(|| ApiError::Status(ErrorCode::NotFound, "no such API key in this project".into()))?;
    audit::record(s, "api_key.revoke", "api_key", id, serde_json::json!({})).await
}

/// What authentication needs of a presented key.
pub struct PresentedKey {
    /// Key id.
    pub id: Uuid,
    /// Its project.
    pub project_id: Uuid,
    /// Its role.
    pub role: Role,
    /// Stored SHA-256 of the secret.
    pub secret_hash: Vec<u8>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// The live key with `prefix` in a live project.
pub async fn find_presented(db: &Database, prefix: &str) -> Result<Option<PresentedKey>, ApiError> {
    let mut tx = db.begin().await?;
    sqlx::query!("SELECT set_config('jeex.api_key_prefix', $1, true)", prefix).fetch_one(&mut tx).await?;
    let key = sqlx::query_as!(
        PresentedKey,
        r#"SELECT id, project_id, role AS "role: Role", secret_hash, expires_at FROM api_keys WHERE prefix = $1 AND deleted_at IS NULL"#,
        prefix
    )
    .fetch_optional(&mut tx)
    .await?;
    tx.commit().await?;
    Ok(key)
}

/// The role of a live, unexpired key of `project` (an operation's worker acting for the key
/// that started it must stop when the key is revoked or expires).
pub async fn live_role(db: &Database, project: Uuid, key: Uuid) -> Result<Option<Role>, ApiError> {
    let mut tx = db.begin().await?;
    crate::access::set_rls(&mut tx, None, Some(project)).await?;
    let role = sqlx::query_scalar!(
        r#"SELECT role AS "role: Role" FROM api_keys
           WHERE project_id = $1 AND id = $2 AND deleted_at IS NULL AND (expires_at IS NULL OR expires_at > now())"#,
        project,
        key
    )
    .fetch_optional(&mut tx)
    .await?;
    tx.commit().await?;
    Ok(role)
}
