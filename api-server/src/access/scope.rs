//! The project scope: the only way to run SQL on project data.
//!
//! [`Scoped::begin`] opens a transaction, sets the row-level-security settings
//! transaction-locally (`set_config(…, true)`: they vanish at COMMIT/ROLLBACK, so a pooled
//! connection never carries one request's scope into the next), checks membership and then the
//! role the scope's type asks for. Only then does a [`ProjectScope`] exist, and every
//! repository function on project data takes the [`Scoped`] transaction that holds one: an
//! unscoped query does not compile, nor does an editor's operation on a viewer's scope.

use std::{marker::PhantomData, sync::Arc};

use sqlx::PgPool;
use uuid::Uuid;

use super::{
    caller::{Caller, Principal},
    role::{Level, Role, Viewer},
    statement::Tx,
};
use crate::{
    client_span::Endpoint,
    error::{ApiError, ErrorCode},
};

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
}

/// The uniform answer for "no such project" and "not yours": the two must be
/// indistinguishable.
pub fn project_not_found() -> ApiError {
    ApiError::Status(ErrorCode::NotFound, "no such project".into())
}

/// The one answer to every failed authentication.
pub fn unauthorized() -> ApiError {
    ApiError::Status(ErrorCode::Unauthorized, "missing or invalid credentials".into())
}

/// A transaction scoped to one project, checked for at least the role level `R`. Dropping it
/// without [`Scoped::commit`] rolls back.
pub struct Scoped<R = Viewer> {
    tx: Tx,
    scope: ProjectScope,
    level: PhantomData<R>,
}

/// Sets the settings the row-level policies read, for this transaction only.
pub(crate) async fn set_rls(conn: &mut Tx, user_id: Option<Uuid>, project_id: Option<Uuid>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"SELECT set_config('jeex.user_id', $1, true) AS "user_id", set_config('jeex.project_id', $2, true) AS "project_id""#,
        user_id.map(|u| u.to_string()).unwrap_or_default(),
        project_id.map(|p| p.to_string()).unwrap_or_default()
    )
    .fetch_one(conn)
    .await
    .map(drop)
}

impl<R: Level> Scoped<R> {
    /// Opens the transaction and checks that `caller` may act in `project_id` with at least
    /// `R`'s role. A project that does not exist, is deleted, or is not the caller's answers
    /// the same 404; a member with a weaker role gets 403. Called by the data layer, which
    /// alone holds the pool.
    pub(crate) async fn begin(pool: &PgPool, db: &Arc<Endpoint>, caller: &Caller, project_id: Uuid) -> Result<Self, ApiError> {
        let tx = Tx::begin(pool, db).await?;
        Self::check(tx, caller, project_id).await
    }

    /// Like [`Scoped::begin`], in a read-only `REPEATABLE READ` transaction: every statement
    /// sees the same snapshot (an export reading page by page).
    pub(crate) async fn begin_snapshot(pool: &PgPool, db: &Arc<Endpoint>, caller: &Caller, project_id: Uuid) -> Result<Self, ApiError> {
        let mut tx = Tx::begin(pool, db).await?;
        sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut tx).await?;
        Self::check(tx, caller, project_id).await
    }

    async fn check(mut tx: Tx, caller: &Caller, project_id: Uuid) -> Result<Self, ApiError> {
        let role = match &caller.principal {
            Principal::User { user_id } => {
                set_rls(&mut tx, Some(*user_id), Some(project_id)).await?;
                sqlx::query_scalar!(
                    r#"SELECT m.role AS "role: Role" FROM project_members m JOIN projects p ON p.id = m.project_id JOIN users u ON u.id = m.user_id
                       WHERE m.project_id = $1 AND m.user_id = $2 AND p.deleted_at IS NULL AND u.deleted_at IS NULL"#,
                    project_id,
                    user_id
                )
                .fetch_optional(&mut tx)
                .await?
            }
            Principal::ApiKey { key_id, project_id: key_project, role } => {
                if *key_project != project_id {
                    return Err(project_not_found());
                }
                set_rls(&mut tx, None, Some(project_id)).await?;
                // The key itself too: a stream ticket or an open stream outlives the request
                // that authenticated the key, and a revoked key must stop there as well.
                let live = sqlx::query_scalar!(
                    r#"SELECT 1 AS "live!" FROM projects p JOIN api_keys k ON k.project_id = p.id
                       WHERE p.id = $1 AND p.deleted_at IS NULL AND k.id = $2 AND k.deleted_at IS NULL
                         AND (k.expires_at IS NULL OR k.expires_at > now())"#,
                    project_id,
                    key_id
                )
                .fetch_optional(&mut tx)
                .await?;
                live.map(|_| *role)
            }
        };
        let role = role.ok_or_else(project_not_found)?;
        if role < R::ROLE {
            return Err(ApiError::Status(ErrorCode::Forbidden, format!("this needs the {} role in the project", R::ROLE.as_str())));
        }
        crate::client_span::scoped(project_id);
        Ok(Self { tx, scope: ProjectScope { project_id, caller: caller.clone(), role }, level: PhantomData })
    }

    /// The scope.
    pub fn scope(&self) -> &ProjectScope {
        &self.scope
    }

    /// The connection, for the repositories (`crate::db`) only.
    pub(crate) fn conn(&mut self) -> &mut Tx {
        &mut self.tx
    }

    /// Scope and connection at once (a repository reads one while using the other).
    pub(crate) fn parts(&mut self) -> (&ProjectScope, &mut Tx) {
        (&self.scope, &mut self.tx)
    }

    /// Commits the work.
    pub async fn commit(self) -> Result<(), ApiError> {
        self.tx.commit().await.map_err(ApiError::from)
    }
}

impl Scoped<super::role::Owner> {
    /// Opens a scope on a project created in this same transaction by its creator.
    pub(crate) fn created(tx: Tx, caller: &Caller, project_id: Uuid) -> Self {
        Self { tx, scope: ProjectScope { project_id, caller: caller.clone(), role: Role::Owner }, level: PhantomData }
    }
}

/// A transaction acting for a user outside any one project ("my projects", creating a
/// project). Row-level security lets it see only the user's memberships.
pub struct UserTx {
    tx: Tx,
    caller: Caller,
    user_id: Uuid,
}

impl UserTx {
    /// Opens the transaction for a user caller; API keys act only inside their project (403).
    pub(crate) async fn begin(pool: &PgPool, db: &Arc<Endpoint>, caller: &Caller) -> Result<Self, ApiError> {
        let Principal::User { user_id } = caller.principal else {
            return Err(ApiError::Status(ErrorCode::Forbidden, "API keys act only inside their own project".into()));
        };
        let mut tx = Tx::begin(pool, db).await?;
        set_rls(&mut tx, Some(user_id), None).await?;
        // A deleted user's tokens stop working here, not only when they expire.
        let live = sqlx::query_scalar!(r#"SELECT 1 AS "live!" FROM users WHERE id = $1 AND deleted_at IS NULL"#, user_id)
            .fetch_optional(&mut tx)
            .await?;
        if live.is_none() {
            return Err(unauthorized());
        }
        Ok(Self { tx, caller: caller.clone(), user_id })
    }

    /// The acting user.
    pub fn user_id(&self) -> Uuid {
        self.user_id
    }

    /// Who is acting.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The connection, for the repositories (`crate::db`) only.
    pub(crate) fn conn(&mut self) -> &mut Tx {
        &mut self.tx
    }

    /// Hands the transaction on (a project created in it becomes its creator's scope).
    pub(crate) fn into_parts(self) -> (Tx, Caller) {
        (self.tx, self.caller)
    }

    /// Commits the work.
    pub async fn commit(self) -> Result<(), ApiError> {
        self.tx.commit().await.map_err(ApiError::from)
    }
}
