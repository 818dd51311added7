//! The project scope: the only way to run SQL on project data.
//!
//! [`Scoped::begin`] opens a transaction, sets the row-level-security settings
//! transaction-locally (`set_config(…, true)`: they vanish at COMMIT/ROLLBACK, so a pooled
//! connection never carries one request's scope into the next) and checks membership. Only
//! then does a [`ProjectScope`] exist, and every repository function on project data takes the
//! [`Scoped`] transaction that holds one: an unscoped query does not compile.

use poem_openapi::Enum;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::{
    auth::principal::{Caller, Principal},
    error::{ApiError, ErrorCode},
};

/// A member's role, weakest first (so `>=` means "at least").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Enum, sqlx::Type)]
#[oai(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Role {
    /// Reads everything in the project.
    Viewer,
    /// Also creates, changes and deletes documents and edits the project.
    Editor,
    /// Also manages members and API keys, reads the audit log and deletes the project.
    Owner,
}

/// Proof that the caller may act in a project, with which role. Built only by
/// [`Scoped::begin`] after the membership check.
#[derive(Debug, Clone)]
pub struct ProjectScope {
    project_id: Uuid,
    caller: Caller,
    role: Role,
}

impl ProjectScope {
    /// The project.
    pub fn project_id(&self) -> Uuid {
        self.project_id
    }

    /// The caller's role in it.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Who is acting.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// 403 unless the caller's role is at least `min`.
    pub fn require(&self, min: Role) -> Result<(), ApiError> {
        if self.role >= min {
            Ok(())
        } else {
            Err(ApiError::Status(ErrorCode::Forbidden, format!("this needs the {} role in the project", role_name(min))))
        }
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Editor => "editor",
        Role::Owner => "owner",
    }
}

/// The uniform answer for "no such project" and "not yours": the two must be
/// indistinguishable.
pub fn project_not_found() -> ApiError {
    ApiError::Status(ErrorCode::NotFound, "no such project".into())
}

/// A transaction scoped to one project. Dropping it without [`Scoped::commit`] rolls back.
pub struct Scoped {
    tx: Transaction<'static, Postgres>,
    scope: ProjectScope,
}

/// Sets the settings the row-level policies read, for this transaction only.
pub(super) async fn set_rls(conn: &mut PgConnection, user_id: Option<Uuid>, project_id: Option<Uuid>) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('jeex.user_id', $1, true), set_config('jeex.project_id', $2, true)")
        .bind(user_id.map(|u| u.to_string()).unwrap_or_default())
        .bind(project_id.map(|p| p.to_string()).unwrap_or_default())
        .execute(conn)
        .await
        .map(drop)
}

impl Scoped {
    /// Opens the transaction and checks that `caller` may act in `project_id`. A project that
    /// does not exist, is deleted, or is not the caller's answers the same 404.
    pub async fn begin(pool: &PgPool, caller: &Caller, project_id: Uuid) -> Result<Self, ApiError> {
        let tx = pool.begin().await?;
        Self::check(tx, caller, project_id).await
    }

    /// Like [`Scoped::begin`], in a read-only `REPEATABLE READ` transaction: every statement
    /// sees the same snapshot (an export reading page by page).
    pub async fn begin_snapshot(pool: &PgPool, caller: &Caller, project_id: Uuid) -> Result<Self, ApiError> {
        let mut tx = pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        Self::check(tx, caller, project_id).await
    }

    async fn check(mut tx: Transaction<'static, Postgres>, caller: &Caller, project_id: Uuid) -> Result<Self, ApiError> {
        let role = match &caller.principal {
            Principal::User { user_id } => {
                set_rls(&mut tx, Some(*user_id), Some(project_id)).await?;
                sqlx::query_scalar::<_, Role>(
                    "SELECT m.role FROM project_members m JOIN projects p ON p.id = m.project_id JOIN users u ON u.id = m.user_id \
                     WHERE m.project_id = $1 AND m.user_id = $2 AND p.deleted_at IS NULL AND u.deleted_at IS NULL",
                )
                .bind(project_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?
            }
            Principal::ApiKey { key_id, project_id: key_project, role } => {
                if *key_project != project_id {
                    return Err(project_not_found());
                }
                set_rls(&mut tx, None, Some(project_id)).await?;
                // The key itself too: a stream ticket or an open stream outlives the request
                // that authenticated the key, and a revoked key must stop there as well.
                let live = sqlx::query_scalar::<_, i32>(
                    "SELECT 1 FROM projects p JOIN api_keys k ON k.project_id = p.id \
                     WHERE p.id = $1 AND p.deleted_at IS NULL AND k.id = $2 AND k.deleted_at IS NULL \
                       AND (k.expires_at IS NULL OR k.expires_at > now())",
                )
                .bind(project_id)
                .bind(key_id)
                .fetch_optional(&mut *tx)
                .await?;
                live.map(|_| *role)
            }
        };
        let role = role.ok_or_else(project_not_found)?;
        Ok(Self { tx, scope: ProjectScope { project_id, caller: caller.clone(), role } })
    }

    /// Opens a scope on a project created in this same transaction by its creator.
    pub(super) fn created(tx: Transaction<'static, Postgres>, caller: &Caller, project_id: Uuid) -> Self {
        Self { tx, scope: ProjectScope { project_id, caller: caller.clone(), role: Role::Owner } }
    }

    /// The scope.
    pub fn scope(&self) -> &ProjectScope {
        &self.scope
    }

    /// The connection, for the repositories only.
    pub(super) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Scope and connection at once (a repository reads one while using the other).
    pub(super) fn parts(&mut self) -> (&ProjectScope, &mut PgConnection) {
        (&self.scope, &mut self.tx)
    }

    /// Commits the work.
    pub async fn commit(self) -> Result<(), ApiError> {
        self.tx.commit().await.map_err(ApiError::from)
    }
}

/// A transaction acting for a user outside any one project ("my projects", creating a
/// project). Row-level security lets it see only the user's memberships.
pub struct UserTx {
    pub(super) tx: Transaction<'static, Postgres>,
    pub(super) caller: Caller,
    pub(super) user_id: Uuid,
}

impl UserTx {
    /// Opens the transaction for a user caller; API keys act only inside their project (404).
    pub async fn begin(pool: &PgPool, caller: &Caller) -> Result<Self, ApiError> {
        let Principal::User { user_id } = caller.principal else {
            return Err(ApiError::Status(ErrorCode::Forbidden, "API keys act only inside their own project".into()));
        };
        let mut tx = pool.begin().await?;
        set_rls(&mut tx, Some(user_id), None).await?;
        // A deleted user's tokens stop working here, not only when they expire.
        let live: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL").bind(user_id).fetch_optional(&mut *tx).await?;
        if live.is_none() {
            return Err(crate::auth::principal::unauthorized());
        }
        Ok(Self { tx, caller: caller.clone(), user_id })
    }

    /// Commits the work.
    pub async fn commit(self) -> Result<(), ApiError> {
        self.tx.commit().await.map_err(ApiError::from)
    }
}
