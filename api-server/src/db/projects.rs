//! Projects. Reading or changing one takes a [`Scoped`] transaction; listing "my projects"
//! and creating one act for a user ([`UserTx`]).

use crate::access::{Admits, Editor, Entry, Level, Owner, Scoped, UserTx, set_rls};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    audit,
    page::{Page, Paged},
};
use crate::error::{ApiError, ErrorCode};

/// Lifecycle state of a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum ProjectStatus {
    /// Being set up.
    Draft,
    /// In progress.
    Active,
    /// Finished.
    Completed,
    /// Finished and kept for reference.
    Archived,
}

/// A project.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Project {
    /// Project id.
    pub id: Uuid,
    /// Name (1–200 characters).
    pub name: String,
    /// Lifecycle state.
    pub status: ProjectStatus,
    /// Current workflow step (1–100).
    pub current_step: i32,
    /// Language code, e.g. `en` or `de-AT`.
    pub language: String,
    /// The user who created it.
    pub created_by: Option<Uuid>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency version; the `ETag` is this number in quotes.
    pub version: i64,
}

/// Fields of a new project (validated by the API layer).
pub struct NewProject {
    /// Name.
    pub name: String,
    /// Language code.
    pub language: String,
}

/// Changes to a project; `None` leaves a field as it is.
#[derive(Default)]
pub struct ProjectChanges {
    /// New name.
    pub name: Option<String>,
    /// New status.
    pub status: Option<ProjectStatus>,
    /// New step.
    pub current_step: Option<i32>,
    /// New language.
    pub language: Option<String>,
}

/// The versions an `If-Match` accepts; `None` means "any" (no header, or `*`).
pub type Expected<'a> = Option<&'a [i64]>;

fn precondition_failed() -> ApiError {
    ApiError::Status(ErrorCode::PreconditionFailed, "the resource has changed since the given ETag; fetch it again".into())
}

/// Creates a project with the caller as its owner, and records it.
pub async fn create(tx: UserTx, new: &NewProject) -> Result<Project, ApiError> {
    let user_id = tx.user_id();
    let (mut tx, caller) = tx.into_parts();
    let id = Uuid::now_v7();
    // The new project becomes the transaction's scope: policies admit exactly it.
    set_rls(&mut tx, Some(user_id), Some(id)).await?;
    let project = sqlx::query_as!(
        Project,
        r#"INSERT INTO projects (id, name, language, created_by) VALUES ($1, $2, $3, $4)
           RETURNING id, name, status AS "status: ProjectStatus", current_step, language, created_by, created_at, updated_at, version"#,
        id,
        &new.name,
        &new.language,
        user_id
    )
    .fetch_one(&mut tx)
    .await?;
    sqlx::query!("INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, 'owner')", id, user_id).execute(&mut tx).await?;
    let mut scoped = Scoped::created(tx, &caller, id);
    audit::record(&mut scoped, "project.create", "project", id, serde_json::json!({ "name": project.name })).await?;
    scoped.commit().await?;
    Ok(project)
}

/// The caller's live projects, newest first, optionally of one status.
pub async fn list_mine(tx: &mut UserTx, status: Option<ProjectStatus>, page: &Page) -> Result<Paged<Project>, ApiError> {
    let rows = sqlx::query_as!(
        Project,
        r#"SELECT p.id, p.name, p.status AS "status: ProjectStatus", p.current_step, p.language, p.created_by, p.created_at,
                  p.updated_at, p.version
           FROM projects p JOIN project_members m ON m.project_id = p.id AND m.user_id = $1
           WHERE p.deleted_at IS NULL AND ($2::text IS NULL OR p.status = $2) AND ($3::uuid IS NULL OR p.id < $3)
           ORDER BY p.id DESC LIMIT $4"#,
        tx.user_id(),
        status as _,
        page.after()?,
        page.fetch()
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(Paged::keyset(rows, page, |p| p.id))
}

/// The scoped project.
pub async fn get(s: &mut Scoped<impl Level>) -> Result<Project, ApiError> {
    let id = s.scope().project_id();
    sqlx::query_as!(
        Project,
        r#"SELECT id, name, status AS "status: ProjectStatus", current_step, language, created_by, created_at, updated_at, version
           FROM projects WHERE id = $1 AND deleted_at IS NULL"#,
        id
    )
    .fetch_optional(s.conn())
    .await?
    .ok_or_else(crate::access::project_not_found)
}

/// The project, in one statement that enters its scope (one round trip): `jeex_enter` runs
/// first, and the row comes from a LATERAL sub-select that depends on its result, so it is
/// read under the settings `jeex_enter` made (`OFFSET 0` keeps it a sub-select of its own).
pub async fn read(e: &Entry<impl Level>) -> Result<Project, ApiError> {
    sqlx::query_as!(
        Project,
        r#"SELECT p.id AS "id!", p.name AS "name!", p.status AS "status!: ProjectStatus", p.current_step AS "current_step!",
                  p.language AS "language!", p.created_by, p.created_at AS "created_at!", p.updated_at AS "updated_at!",
                  p.version AS "version!"
           FROM jeex_enter($1, $2, $3, $4) AS entered(role)
           CROSS JOIN LATERAL (SELECT * FROM projects WHERE id = $3 AND deleted_at IS NULL AND entered.role IS NOT NULL OFFSET 0) p"#,
        e.user(),
        e.key(),
        e.project_id(),
        e.needs()
    )
    .fetch_optional(e.exec())
    .await?
    .ok_or_else(crate::access::project_not_found)
}

/// Applies `changes` when the version matches `expected`; one atomic UPDATE, so concurrent
/// changes never overwrite each other unseen.
pub async fn update(s: &mut Scoped<impl Admits<Editor>>, changes: &ProjectChanges, expected: Expected<'_>) -> Result<Project, ApiError> {
    let id = s.scope().project_id();
    let updated = sqlx::query_as!(
        Project,
        r#"UPDATE projects SET name = coalesce($2, name), status = coalesce($3, status), current_step = coalesce($4, current_step),
               language = coalesce($5, language), version = version + 1, updated_at = now()
           WHERE id = $1 AND deleted_at IS NULL AND ($6::bigint[] IS NULL OR version = ANY($6))
           RETURNING id, name, status AS "status: ProjectStatus", current_step, language, created_by, created_at, updated_at, version"#,
        id,
        changes.name.as_deref(),
        changes.status as _,
        changes.current_step,
        changes.language.as_deref(),
        expected
    )
    .fetch_optional(s.conn())
    .await?;
    let project = updated.ok_or_else(precondition_failed)?;
    let fields: Vec<&str> = [
        changes.name.as_ref().map(|_| "name"),
        changes.status.map(|_| "status"),
        changes.current_step.map(|_| "current_step"),
        changes.language.as_ref().map(|_| "language"),
    ]
    .into_iter()
    .flatten()
    .collect();
    audit::record(s, "project.update", "project", id, serde_json::json!({ "fields": fields, "version": project.version })).await?;
    Ok(project)
}

/// Soft-deletes the scoped project when the version matches `expected`.
pub async fn delete(s: &mut Scoped<impl Admits<Owner>>, expected: Expected<'_>) -> Result<(), ApiError> {
    let id = s.scope().project_id();
    let deleted = sqlx::query_scalar!(
        "UPDATE projects SET deleted_at = now(), version = version + 1, updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL AND ($2::bigint[] IS NULL OR version = ANY($2)) RETURNING id",
        id,
        expected
    )
    .fetch_optional(s.conn())
    .await?;
    deleted.ok_or_else(precondition_failed)?;
    audit::record(s, "project.delete", "project", id, serde_json::json!({})).await
}
