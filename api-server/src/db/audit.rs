//! The audit log: one row per mutation, written in the mutation's own transaction (so a
//! change and its record commit or vanish together).

use crate::access::{Entry, Level, Scoped};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::page::{Page, Paged};
use crate::error::ApiError;

/// One recorded change.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditEntry {
    /// Entry id.
    pub id: Uuid,
    /// The acting user, when a user acted.
    pub actor_user_id: Option<Uuid>,
    /// The acting API key, when a key acted.
    pub actor_api_key_id: Option<Uuid>,
    /// What happened, e.g. `document.update`.
    pub action: String,
    /// Kind of the changed entity: `project`, `member`, `document`, `api_key`.
    pub entity_type: String,
    /// Id of the changed entity.
    pub entity_id: Uuid,
    /// Correlation ID of the request that made the change.
    pub correlation_id: String,
    /// Facts about the change (changed field names, roles, …), never secrets or contents.
    pub details: serde_json::Value,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Records `action` on an entity of the scoped project.
pub async fn record(
    s: &mut Scoped<impl Level>,
    action: &str,
    entity_type: &str,
    entity_id: Uuid,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    let (scope, conn) = s.parts();
    let caller = scope.caller();
    sqlx::query!(
        "INSERT INTO audit_log (id, project_id, actor_user_id, actor_api_key_id, action, entity_type, entity_id, correlation_id, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        Uuid::now_v7(),
        scope.project_id(),
        caller.user_id(),
        caller.api_key_id(),
        action,
        entity_type,
        entity_id,
        &caller.correlation_id,
        details
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The project's log, newest first.
pub async fn list(e: &Entry<impl Level>, page: &Page) -> Result<Paged<AuditEntry>, ApiError> {
    let rows = sqlx::query_as!(
        AuditEntry,
        r#"SELECT a.id AS "id!", a.actor_user_id, a.actor_api_key_id, a.action AS "action!", a.entity_type AS "entity_type!",
                  a.entity_id AS "entity_id!", a.correlation_id AS "correlation_id!", a.details AS "details!", a.created_at AS "created_at!"
           FROM jeex_enter($1, $2, $3, $4) AS entered(role)
           CROSS JOIN LATERAL (
               SELECT id, actor_user_id, actor_api_key_id, action, entity_type, entity_id, correlation_id, details, created_at
               FROM audit_log WHERE project_id = $3 AND ($5::uuid IS NULL OR id < $5) AND entered.role IS NOT NULL
               ORDER BY id DESC LIMIT $6 OFFSET 0) a
           ORDER BY a.id DESC"#,
        e.user(),
        e.key(),
        e.project_id(),
        e.needs(),
        page.after()?,
        page.fetch()
    )
    .fetch_all(e.exec())
    .await?;
    Ok(Paged::keyset(rows, page, |e| e.id))
}
