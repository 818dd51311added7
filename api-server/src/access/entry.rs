//! Entering a project in the statement that works there: one round trip for a scoped read, two
//! for a scoped write with its audit row.
//!
//! An [`Entry`] is a caller's claim on a project, for the role level `R`, not yet checked. It
//! opens no transaction: every statement run with it begins with the SQL function
//! `jeex_enter(user, key, project, role)` (see the migration `scope_entry`), which sets the
//! row-level-security settings for that statement alone, checks membership and role, and
//! raises when they fail, so the statement's work never runs for anyone else. Reads go through
//! [`Entry::exec`] as one statement. A write first runs the check alone ([`Entry::check`], so a
//! caller the check refuses spends nothing of the project's quota), then its own statement,
//! which enters again: the check and the write are atomic.
//!
//! Forgetting `jeex_enter` in such a statement fails closed: without the settings the
//! policies show no project's rows.

use std::marker::PhantomData;

use uuid::Uuid;

use super::{
    caller::Caller,
    pool::Pool,
    role::{Level, Role},
    scope::own_project,
    statement::{Conn, Pooled},
};
use crate::error::ApiError;

/// A caller's claim on a project for the role level `R`, checked by the statement that uses it.
pub struct Entry<R> {
    pool: Pool,
    caller: Caller,
    project_id: Uuid,
    level: PhantomData<R>,
}

impl<R: Level> Entry<R> {
    /// The claim of `caller` on `project_id`. A key names its one project, so a key presented
    /// for another is refused here, with the same 404, without a round trip.
    pub(crate) fn new(pool: &Pool, caller: &Caller, project_id: Uuid) -> Result<Self, ApiError> {
        own_project(caller, project_id)?;
        Ok(Self { pool: pool.clone(), caller: caller.clone(), project_id, level: PhantomData })
    }

    /// The project.
    pub fn project_id(&self) -> Uuid {
        self.project_id
    }

    /// Who is acting.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// `jeex_enter`'s first argument: the acting user, if a user acts.
    pub(crate) fn user(&self) -> Option<Uuid> {
        self.caller.user_id()
    }

    /// `jeex_enter`'s second argument: the acting key, if a key acts.
    pub(crate) fn key(&self) -> Option<Uuid> {
        self.caller.api_key_id()
    }

    /// `jeex_enter`'s last argument: the least role the statement needs.
    pub(crate) fn needs(&self) -> &'static str {
        R::ROLE.as_str()
    }

    /// The pool, for a statement that enters (the repositories in `crate::db` only).
    pub(crate) fn exec(&self) -> Pooled<'_> {
        Pooled::new(&self.pool)
    }

    /// Runs the check alone, on a connection the write then uses: the first of a write's two
    /// round trips.
    pub async fn check(self) -> Result<Checked<R>, ApiError> {
        let mut conn = Conn::acquire(&self.pool).await?;
        sqlx::query_scalar!(
            r#"SELECT jeex_enter($1, $2, $3, $4) AS "role!: Role""#,
            self.user(),
            self.key(),
            self.project_id,
            self.needs()
        )
        .fetch_one(&mut conn)
        .await?;
        Ok(Checked { conn, entry: self })
    }
}

/// An [`Entry`] the check admitted, with the connection the check ran on.
pub struct Checked<R> {
    conn: Conn,
    entry: Entry<R>,
}

impl<R: Level> Checked<R> {
    /// The claim, checked.
    pub fn entry(&self) -> &Entry<R> {
        &self.entry
    }

    /// Claim and connection at once, for the repositories (`crate::db`) only.
    pub(crate) fn parts(&mut self) -> (&Entry<R>, &mut Conn) {
        (&self.entry, &mut self.conn)
    }
}
