//! Users. Not project data: rows are found by id (from a verified token) or by email.

use super::Database;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::ApiError;

/// A user as the API shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    /// User id (the `sub` of their tokens).
    pub id: Uuid,
    /// Email address, lower case.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Last login (token issue or dev-login).
    pub last_login_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// Finds the live user with `email`, creating them when missing, and stamps the login.
/// `name` defaults to the part of the address before `@` for a new user.
pub async fn login(db: &Database, email: &str, name: Option<&str>) -> Result<User, ApiError> {
    let default_name = email.split('@').next().unwrap_or(email);
    Ok(sqlx::query_as!(
        User,
        "INSERT INTO users (id, email, name, last_login_at) VALUES ($1, $2, $3, now())
         ON CONFLICT (email) WHERE deleted_at IS NULL
         DO UPDATE SET last_login_at = now(), name = CASE WHEN $4 THEN EXCLUDED.name ELSE users.name END, updated_at = now()
         RETURNING id, email, name, last_login_at, created_at",
        Uuid::now_v7(),
        email,
        name.unwrap_or(default_name),
        name.is_some()
    )
    .fetch_one(db.exec())
    .await?)
}

/// The live user with `id`.
pub async fn get(db: &Database, id: Uuid) -> Result<Option<User>, ApiError> {
    Ok(sqlx::query_as!(User, "SELECT id, email, name, last_login_at, created_at FROM users WHERE id = $1 AND deleted_at IS NULL", id)
        .fetch_optional(db.exec())
        .await?)
}

/// The id of the live user with `email`, creating the user (an invitation: they sign in later
/// with that address) when there is none. Answering the same for known and unknown addresses
/// keeps the endpoint from revealing who has an account.
pub(in crate::db) async fn invite(conn: &mut crate::access::Tx, email: &str) -> Result<Uuid, ApiError> {
    let name = email.split('@').next().unwrap_or(email);
    sqlx::query!(
        "INSERT INTO users (id, email, name) VALUES ($1, $2, $3) ON CONFLICT (email) WHERE deleted_at IS NULL DO NOTHING",
        Uuid::now_v7(),
        email,
        name
    )
    .execute(&mut *conn)
    .await?;
    Ok(sqlx::query_scalar!("SELECT id FROM users WHERE email = $1 AND deleted_at IS NULL", email).fetch_one(&mut *conn).await?)
}
