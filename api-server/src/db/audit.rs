//! The audit log: one row per mutation, written in the mutation's own transaction (so a
//! change and its record commit or vanish together).

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use uuid::Uuid;

use super::{
    page::{Page, Paged},
    scope::Scoped,
};
use crate::error::ApiError;

/// One recorded change.
#[derive(Debug, Clone, Object, sqlx::FromRow)]
#[oai(example)]
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
pub async fn record(s: &mut Scoped, action: &str, entity_type: &str, entity_id: Uuid, details: serde_json::Value) -> Result<(), ApiError> {
    let (scope, conn) = s.parts();
    let caller = scope.caller();
    sqlx::query(
        "INSERT INTO audit_log (id, project_id, actor_user_id, actor_api_key_id, action, entity_type, entity_id, correlation_id, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(Uuid::now_v7())
    .bind(scope.project_id())
    .bind(caller.user_id())
    .bind(caller.api_key_id())
    .bind(action)
    .bind(entity_type)
    .bind(entity_id)
    .bind(&caller.correlation_id)
    .bind(details)
    .execute(conn)
    .await?;
    Ok(())
}

/// The project's log, newest first.
pub async fn list(s: &mut Scoped, page: &Page) -> Result<Paged<AuditEntry>, ApiError> {
    let (scope, conn) = s.parts();
    let rows = sqlx::query_as::<_, AuditEntry>(
        "SELECT id, actor_user_id, actor_api_key_id, action, entity_type, entity_id, correlation_id, details, created_at \
         FROM audit_log WHERE project_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
    )
    .bind(scope.project_id())
    .bind(page.after()?)
    .bind(page.fetch())
    .fetch_all(conn)
    .await?;
    Ok(Paged::keyset(rows, page, |e| e.id))
}

impl poem_openapi::types::Example for AuditEntry {
    fn example() -> Self {
        Self {
            id: uuid::Uuid::from_u128(0x0193b5e4_8f7a_7c2e_b8a1_000000000005),
            actor_user_id: Some(uuid::Uuid::from_u128(0x0193b5e4_8f7a_7c2e_b8a1_000000000002)),
            actor_api_key_id: None,
            action: "document.update".into(),
            entity_type: "document".into(),
            entity_id: uuid::Uuid::from_u128(0x0193b5e4_8f7a_7c2e_b8a1_000000000003),
            correlation_id: "0193b5e4-8f7a-7c2e-b8a1-5e2d0c9f4a11".into(),
            details: serde_json::json!({ "fields": ["title"], "version": 2 }),
            created_at: "2026-11-24T09:30:00Z".parse().unwrap_or_default(),
        }
    }
}
