//! The project scope: the only way to run SQL on project data.
//!
//! [`Scoped::begin`] opens a transaction in which the SQL function `jeex_enter` has set the
//! row-level-security settings transaction-locally (`set_config(…, true)`: they vanish at
//! COMMIT/ROLLBACK, so a pooled connection never carries one request's scope into the next) and
//! checked membership and the role the scope's type asks for, all in one round trip. Only then
//! does a [`ProjectScope`] exist, and every repository function on project data takes the
//! [`Scoped`] transaction that holds one (or an [`super::Entry`], whose one statement enters
//! itself): an unscoped query does not compile, nor does an editor's operation on a viewer's
//! scope.

use std::marker::PhantomData;

use uuid::Uuid;

use super::{
    caller::{Caller, Principal},
    pool::Pool,
    role::{Level, Role, Viewer},
    statement::Tx,
};
use crate::error::{ApiError, ErrorCode};

/// Proof that the caller may act in a project. Built only by [`Scoped::begin`] after the
/// membership and role check (the role checked for is the scope's type).
#[derive(Debug, Clone)]
pub struct ProjectScope {
    project_id: Uuid,
    caller: Caller,
}

impl ProjectScope {
    /// The project.
    pub fn project_id(&self) -> Uuid {
        self.project_id
    }

    /// Who is acting.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }
}

/// The uniform answer for "no such project" and "not yours": the two must be
/// indistinguishable.
pub fn project_not_found() -> ApiError {
    ApiError::Status(ErrorCode::NotFound, NO_SUCH_PROJECT.into())
}

const NO_SUCH_PROJECT: &str = "no such project";

/// Whether `err` is a refusal of the membership and role check: the project is not the
/// caller's ([`project_not_found`]), or the caller's role is too weak (403).
pub fn is_refusal(err: &ApiError) -> bool {
    matches!(err, ApiError::Status(ErrorCode::NotFound, detail) if detail == NO_SUCH_PROJECT)
        || matches!(err, ApiError::Status(ErrorCode::Forbidden, _))
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

/// A key acts only in its own project: presented for another, the same 404 as any project
/// not the caller's, without a round trip.
pub(super) fn own_project(caller: &Caller, project_id: Uuid) -> Result<(), ApiError> {
    match &caller.principal {
        Principal::ApiKey { project_id: own, .. } if *own != project_id => Err(project_not_found()),
        _ => Ok(()),
    }
}

/// A UUID as an SQL literal: its own spelling, quoted (never text from a request).
fn literal(id: Option<Uuid>) -> String {
    id.map_or_else(|| "NULL".to_owned(), |id| format!("'{id}'"))
}

/// The one simple-protocol message that enters `project_id` for `caller` and opens the
/// transaction: `SELECT jeex_enter(…); BEGIN`. PostgreSQL counts the statements of one message
/// that run before its `BEGIN` into the transaction it opens, so the settings `jeex_enter`
/// makes hold until COMMIT; and when `jeex_enter` refuses, the message stops before the `BEGIN`
/// and its implicit transaction rolls back, so the connection goes back to the pool clean (a
/// `BEGIN` first would leave it in a failed transaction). Written from UUIDs and a role's own
/// spelling only.
fn enter_then_begin(caller: &Caller, project_id: Uuid, needs: Role) -> String {
    format!(
        "SELECT jeex_enter({}::uuid, {}::uuid, '{project_id}'::uuid, '{}'); BEGIN",
        literal(caller.user_id()),
        literal(caller.api_key_id()),
        needs.as_str()
    )
}

impl<R: Level> Scoped<R> {
    /// Opens the transaction and checks that `caller` may act in `project_id` with at least
    /// `R`'s role, in one round trip (see [`enter_then_begin`]). A project that does not exist,
    /// is deleted, or is not the caller's answers the same 404; a member with a weaker role gets
    /// 403. Called by the data layer, which alone holds the pool.
    pub(crate) async fn begin(pool: &Pool, caller: &Caller, project_id: Uuid) -> Result<Self, ApiError> {
        own_project(caller, project_id)?;
        let tx = Tx::begin_with(pool, enter_then_begin(caller, project_id, R::ROLE)).await?;
        Ok(Self::entered(tx, caller, project_id))
    }

    /// Like [`Scoped::begin`], in a read-only `REPEATABLE READ` transaction: every statement
    /// sees the same snapshot (an export reading page by page). The isolation level must come
    /// first in its transaction, so this one enters in a statement of its own.
    pub(crate) async fn begin_snapshot(pool: &Pool, caller: &Caller, project_id: Uuid) -> Result<Self, ApiError> {
        own_project(caller, project_id)?;
        let mut tx = Tx::begin(pool).await?;
        sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut tx).await?;
        sqlx::query_scalar!(
            r#"SELECT jeex_enter($1, $2, $3, $4) AS "role!: Role""#,
            caller.user_id(),
            caller.api_key_id(),
            project_id,
            R::ROLE.as_str()
        )
        .fetch_one(&mut tx)
        .await?;
        Ok(Self::entered(tx, caller, project_id))
    }

    fn entered(tx: Tx, caller: &Caller, project_id: Uuid) -> Self {
        crate::client_span::scoped(project_id);
        Self { tx, scope: ProjectScope { project_id, caller: caller.clone() }, level: PhantomData }
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
        Self { tx, scope: ProjectScope { project_id, caller: caller.clone() }, level: PhantomData }
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
    pub(crate) async fn begin(pool: &Pool, caller: &Caller) -> Result<Self, ApiError> {
        let Principal::User { user_id } = caller.principal else {
            return Err(ApiError::Status(ErrorCode::Forbidden, "API keys act only inside their own project".into()));
        };
        // As for a project (see `enter_then_begin`): one round trip, and a refusal leaves the
        // connection clean.
        let statement = format!("SELECT jeex_enter_user({}::uuid); BEGIN", literal(Some(user_id)));
        let tx = Tx::begin_with(pool, statement).await?;
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
