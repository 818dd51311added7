//! Project API keys: created, listed and revoked inside a project scope; found by prefix at
//! authentication, before any project is known (the one row-level policy that admits a row by
//! something other than the scope: the presented prefix).

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    audit,
    page::{Page, Paged},
    scope::{Role, Scoped},
};
use crate::{
    auth::api_keys::NewKey,
    error::{ApiError, ErrorCode},
};

/// A key as listed (never its secret).
#[derive(Debug, Clone, Object, sqlx::FromRow)]
#[oai(example)]
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

const COLUMNS: &str = "id, name, prefix, role, created_by, created_at, expires_at";

/// Stores a generated key.
pub async fn create(
    s: &mut Scoped,
    name: &str,
    role: Role,
    expires_at: Option<DateTime<Utc>>,
    key: &NewKey,
) -> Result<ApiKeyInfo, ApiError> {
    let (scope, conn) = s.parts();
    let sql = format!(
        "INSERT INTO api_keys (id, project_id, name, prefix, secret_hash, role, created_by, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    );
    let info = sqlx::query_as::<_, ApiKeyInfo>(&sql)
        .bind(Uuid::now_v7())
        .bind(scope.project_id())
        .bind(name)
        .bind(&key.prefix)
        .bind(&key.secret_hash)
        .bind(role)
        .bind(scope.caller().user_id())
        .bind(expires_at)
        .fetch_one(conn)
        .await?;
    audit::record(s, "api_key.create", "api_key", info.id, serde_json::json!({ "name": info.name, "prefix": info.prefix })).await?;
    Ok(info)
}

/// Live keys of the project, newest first.
pub async fn list(s: &mut Scoped, page: &Page) -> Result<Paged<ApiKeyInfo>, ApiError> {
    let (scope, conn) = s.parts();
    let sql = format!(
        "SELECT {COLUMNS} FROM api_keys WHERE project_id = $1 AND deleted_at IS NULL AND ($2::uuid IS NULL OR id < $2) \
         ORDER BY id DESC LIMIT $3"
    );
    let rows =
        sqlx::query_as::<_, ApiKeyInfo>(&sql).bind(scope.project_id()).bind(page.after()?).bind(page.fetch()).fetch_all(conn).await?;
    Ok(Paged::keyset(rows, page, |k| k.id))
}

/// Revokes a key (soft delete; the audit log keeps naming it).
pub async fn revoke(s: &mut Scoped, id: Uuid) -> Result<(), ApiError> {
    let (scope, conn) = s.parts();
    let revoked: Option<Uuid> =
        sqlx::query_scalar("UPDATE api_keys SET deleted_at = now() WHERE project_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING id")
            .bind(scope.project_id())
            .bind(id)
            .fetch_optional(conn)
            .await?;
    revoked.ok_or_else(|| ApiError::Status(ErrorCode::NotFound, "no such API key in this project".into()))?;
    audit::record(s, "api_key.revoke", "api_key", id, serde_json::json!({})).await
}

/// What authentication needs of a presented key.
#[derive(sqlx::FromRow)]
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
pub async fn find_presented(pool: &PgPool, prefix: &str) -> Result<Option<PresentedKey>, ApiError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('jeex.api_key_prefix', $1, true)").bind(prefix).execute(&mut *tx).await?;
    let key = sqlx::query_as::<_, PresentedKey>(
        "SELECT id, project_id, role, secret_hash, expires_at FROM api_keys WHERE prefix = $1 AND deleted_at IS NULL",
    )
    .bind(prefix)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(key)
}

impl poem_openapi::types::Example for ApiKeyInfo {
    fn example() -> Self {
        Self {
            id: uuid::Uuid::from_u128(0x0193b5e4_8f7a_7c2e_b8a1_000000000004),
            name: "CI importer".into(),
            prefix: "Q3xk9TzP0aLm".into(),
            role: Role::Editor,
            created_by: Some(uuid::Uuid::from_u128(0x0193b5e4_8f7a_7c2e_b8a1_000000000002)),
            created_at: "2026-11-24T09:30:00Z".parse().unwrap_or_default(),
            expires_at: None,
        }
    }
}

/// The role of a live, unexpired key of `project` (an operation's worker acting for the key
/// that started it must stop when the key is revoked or expires).
pub async fn live_role(pool: &PgPool, project: Uuid, key: Uuid) -> Result<Option<Role>, ApiError> {
    let mut tx = pool.begin().await?;
    super::scope::set_rls(&mut tx, None, Some(project)).await?;
    let role = sqlx::query_scalar(
        "SELECT role FROM api_keys WHERE project_id = $1 AND id = $2 AND deleted_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
    )
    .bind(project)
    .bind(key)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(role)
}
