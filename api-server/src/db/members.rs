//! Project members. Changing roles or removing members keeps at least one owner: the owner
//! rows are locked first, so two owners demoting each other at once cannot both succeed.

use crate::access::{Admits, Entry, Level, Owner, Role, Scoped};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    audit,
    page::{Page, Paged},
    users,
};
use crate::error::{ApiError, ErrorCode};

/// A member of a project.
#[derive(Debug, Clone, sqlx::FromRow)]
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

fn no_member() -> ApiError {
    ApiError::Status(ErrorCode::NotFound, "no such member in this project".into())
}

/// Members of the scoped project, by user id (newest users first).
pub async fn list(e: &Entry<impl Level>, page: &Page) -> Result<Paged<Member>, ApiError> {
    let rows = sqlx::query_as!(
        Member,
        r#"SELECT m.user_id AS "user_id!", m.email AS "email!", m.name AS "name!", m.role AS "role!: Role",
                  m.created_at AS "created_at!", m.updated_at AS "updated_at!"
           FROM jeex_enter($1, $2, $3, $4) AS entered(role)
           CROSS JOIN LATERAL (
               SELECT m.user_id, u.email, u.name, m.role, m.created_at, m.updated_at
               FROM project_members m JOIN users u ON u.id = m.user_id
               WHERE m.project_id = $3 AND ($5::uuid IS NULL OR m.user_id < $5) AND entered.role IS NOT NULL
               ORDER BY m.user_id DESC LIMIT $6 OFFSET 0) m
           ORDER BY m.user_id DESC"#,
        e.user(),
        e.key(),
        e.project_id(),
        e.needs(),
        page.after()?,
        page.fetch()
    )
    .fetch_all(e.exec())
    .await?;
    Ok(Paged::keyset(rows, page, |m| m.user_id))
}

async fn one(s: &mut Scoped<impl Level>, user_id: Uuid) -> Result<Member, ApiError> {
    let (scope, conn) = s.parts();
    sqlx::query_as!(
        Member,
        r#"SELECT m.user_id, u.email, u.name, m.role AS "role: Role", m.created_at, m.updated_at
           FROM project_members m JOIN users u ON u.id = m.user_id
           WHERE m.project_id = $1 AND m.user_id = $2"#,
        scope.project_id(),
        user_id
    )
    .fetch_optional(conn)
    .await?
    .ok_or_else(no_member)
}

/// Adds the user with `email`, inviting them when they have no account yet; 409 when already
/// a member.
pub async fn add(s: &mut Scoped<impl Admits<Owner>>, email: &str, role: Role) -> Result<Member, ApiError> {
    let user_id = users::invite(s.conn(), email).await?;
    let project_id = s.scope().project_id();
    sqlx::query!("INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, $3)", project_id, user_id, role as _)
        .execute(s.conn())
        .await?;
    audit::record(s, "member.add", "member", user_id, serde_json::json!({ "role": role.as_str() })).await?;
    one(s, user_id).await
}

/// Locks the owner rows and answers 409 if `user_id` is the only owner.
async fn keep_an_owner(s: &mut Scoped<impl Level>, user_id: Uuid) -> Result<(), ApiError> {
    let (scope, conn) = s.parts();
    let owners = sqlx::query_scalar!(
        "SELECT user_id FROM project_members WHERE project_id = $1 AND role = 'owner' ORDER BY user_id FOR UPDATE",
        scope.project_id()
    )
    .fetch_all(conn)
    .await?;
    if owners == [user_id] {
        return Err(ApiError::Status(ErrorCode::Conflict, "a project must keep at least one owner".into()));
    }
    Ok(())
}

/// Changes a member's role.
pub async fn set_role(s: &mut Scoped<impl Admits<Owner>>, user_id: Uuid, role: Role) -> Result<Member, ApiError> {
    if role != Role::Owner {
        keep_an_owner(s, user_id).await?;
    }
    let (scope, conn) = s.parts();
    let changed = sqlx::query_scalar!(
        "UPDATE project_members SET role = $3, version = version + 1, updated_at = now()
         WHERE project_id = $1 AND user_id = $2 RETURNING user_id",
        scope.project_id(),
        user_id,
        role as _
    )
    .fetch_optional(conn)
    .await?;
    changed.ok_or_else(no_member)?;
    audit::record(s, "member.update", "member", user_id, serde_json::json!({ "role": role.as_str() })).await?;
    one(s, user_id).await
}

/// Removes a member.
pub async fn remove(s: &mut Scoped<impl Admits<Owner>>, user_id: Uuid) -> Result<(), ApiError> {
    keep_an_owner(s, user_id).await?;
    let (scope, conn) = s.parts();
    let removed = sqlx::query_scalar!(
        "DELETE FROM project_members WHERE project_id = $1 AND user_id = $2 RETURNING user_id",
        scope.project_id(),
        user_id
    )
    .fetch_optional(conn)
    .await?;
    removed.ok_or_else(no_member)?;
    audit::record(s, "member.remove", "member", user_id, serde_json::json!({})).await
}
