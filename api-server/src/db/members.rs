//! Project members. Changing roles or removing members keeps at least one owner: the owner
//! rows are locked first, so two owners demoting each other at once cannot both succeed.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use uuid::Uuid;

use super::{
    audit,
    page::{Page, Paged},
    scope::{Role, Scoped},
    users,
};
use crate::error::{ApiError, ErrorCode};

/// A member of a project.
#[derive(Debug, Clone, Object, sqlx::FromRow)]
#[oai(example)]
pub struct Member {
    /// The user's id.
    pub user_id: Uuid,
    /// Their email.
    pub email: String,
    /// Their name.
    pub name: String,
    /// Their role in the project.
    pub role: Role,
    /// When they joined.
    pub created_at: DateTime<Utc>,
    /// When their role last changed.
    pub updated_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT m.user_id, u.email, u.name, m.role, m.created_at, m.updated_at \
                      FROM project_members m JOIN users u ON u.id = m.user_id";

fn no_member() -> ApiError {
    ApiError::Status(ErrorCode::NotFound, "no such member in this project".into())
}

/// Members of the scoped project, by user id (newest users first).
pub async fn list(s: &mut Scoped, page: &Page) -> Result<Paged<Member>, ApiError> {
    let (scope, conn) = s.parts();
    let sql = format!("{SELECT} WHERE m.project_id = $1 AND ($2::uuid IS NULL OR m.user_id < $2) ORDER BY m.user_id DESC LIMIT $3");
    let rows = sqlx::query_as::<_, Member>(&sql).bind(scope.project_id()).bind(page.after()?).bind(page.fetch()).fetch_all(conn).await?;
    Ok(Paged::keyset(rows, page, |m| m.user_id))
}

async fn one(s: &mut Scoped, user_id: Uuid) -> Result<Member, ApiError> {
    let (scope, conn) = s.parts();
    let sql = format!("{SELECT} WHERE m.project_id = $1 AND m.user_id = $2");
    sqlx::query_as::<_, Member>(&sql).bind(scope.project_id()).bind(user_id).fetch_optional(conn).await?.ok_or_else(no_member)
}

/// Adds the user with `email`, inviting them when they have no account yet; 409 when already
/// a member.
pub async fn add(s: &mut Scoped, email: &str, role: Role) -> Result<Member, ApiError> {
    let user_id = users::invite(s.conn(), email).await?;
    let project_id = s.scope().project_id();
    sqlx::query("INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, $3)")
        .bind(project_id)
        .bind(user_id)
        .bind(role)
        .execute(s.conn())
        .await?;
    audit::record(s, "member.add", "member", user_id, serde_json::json!({ "role": role_text(role) })).await?;
    one(s, user_id).await
}

/// Locks the owner rows and answers 409 if `user_id` is the only owner.
async fn keep_an_owner(s: &mut Scoped, user_id: Uuid) -> Result<(), ApiError> {
    let (scope, conn) = s.parts();
    let owners: Vec<Uuid> =
        sqlx::query_scalar("SELECT user_id FROM project_members WHERE project_id = $1 AND role = 'owner' ORDER BY user_id FOR UPDATE")
            .bind(scope.project_id())
            .fetch_all(conn)
            .await?;
    if owners == [user_id] {
        return Err(ApiError::Status(ErrorCode::Conflict, "a project must keep at least one owner".into()));
    }
    Ok(())
}

/// Changes a member's role.
pub async fn set_role(s: &mut Scoped, user_id: Uuid, role: Role) -> Result<Member, ApiError> {
    if role != Role::Owner {
        keep_an_owner(s, user_id).await?;
    }
    let (scope, conn) = s.parts();
    let changed: Option<Uuid> = sqlx::query_scalar(
        "UPDATE project_members SET role = $3, version = version + 1, updated_at = now() \
         WHERE project_id = $1 AND user_id = $2 RETURNING user_id",
    )
    .bind(scope.project_id())
    .bind(user_id)
    .bind(role)
    .fetch_optional(conn)
    .await?;
    changed.ok_or_else(no_member)?;
    audit::record(s, "member.update", "member", user_id, serde_json::json!({ "role": role_text(role) })).await?;
    one(s, user_id).await
}

/// Removes a member.
pub async fn remove(s: &mut Scoped, user_id: Uuid) -> Result<(), ApiError> {
    keep_an_owner(s, user_id).await?;
    let (scope, conn) = s.parts();
    let removed: Option<Uuid> = sqlx::query_scalar("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2 RETURNING user_id")
        .bind(scope.project_id())
        .bind(user_id)
        .fetch_optional(conn)
        .await?;
    removed.ok_or_else(no_member)?;
    audit::record(s, "member.remove", "member", user_id, serde_json::json!({})).await
}

fn role_text(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Editor => "editor",
        Role::Owner => "owner",
    }
}

impl poem_openapi::types::Example for Member {
    fn example() -> Self {
        Self {
            user_id: uuid::Uuid::from_u128(0x0193b5e4_8f7a_7c2e_b8a1_000000000002),
            email: "ann@example.com".into(),
            name: "Ann".into(),
            role: Role::Owner,
            created_at: "2026-11-24T09:30:00Z".parse().unwrap_or_default(),
            updated_at: "2026-11-24T09:30:00Z".parse().unwrap_or_default(),
        }
    }
}
