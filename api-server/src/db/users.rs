//! Users. Not project data: rows are found by id (from a verified token) or by email.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::ApiError;

/// A user as the API shows it.
#[derive(Debug, Clone, Object, sqlx::FromRow)]
#[oai(example)]
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

const COLUMNS: &str = "id, email, name, last_login_at, created_at";

/// Finds the live user with `email`, creating them when missing, and stamps the login.
/// `name` defaults to the part of the address before `@` for a new user.
pub async fn login(pool: &PgPool, email: &str, name: Option<&str>) -> Result<User, ApiError> {
    let default_name = email.split('@').next().unwrap_or(email);
    let sql = format!(
        "INSERT INTO users (id, email, name, last_login_at) VALUES ($1, $2, $3, now()) \
         ON CONFLICT (email) WHERE deleted_at IS NULL \
         DO UPDATE SET last_login_at = now(), name = CASE WHEN $4 THEN EXCLUDED.name ELSE users.name END, updated_at = now() \
         RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as::<_, User>(&sql)
        .bind(Uuid::now_v7())
        .bind(email)
        .bind(name.unwrap_or(default_name))
        .bind(name.is_some())
        .fetch_one(pool)
        .await?)
}

/// The live user with `id`.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<User>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL");
    Ok(sqlx::query_as::<_, User>(&sql).bind(id).fetch_optional(pool).await?)
}

/// The id of the live user with `email`, creating the user (an invitation: they sign in later
/// with that address) when there is none. Answering the same for known and unknown addresses
/// keeps the endpoint from revealing who has an account.
pub async fn invite(conn: &mut sqlx::PgConnection, email: &str) -> Result<Uuid, ApiError> {
    let name = email.split('@').next().unwrap_or(email);
    sqlx::query("INSERT INTO users (id, email, name) VALUES ($1, $2, $3) ON CONFLICT (email) WHERE deleted_at IS NULL DO NOTHING")
        .bind(Uuid::now_v7())
        .bind(email)
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(sqlx::query_scalar("SELECT id FROM users WHERE email = $1 AND deleted_at IS NULL").bind(email).fetch_one(&mut *conn).await?)
}

impl poem_openapi::types::Example for User {
    fn example() -> Self {
        Self {
            id: uuid::Uuid::from_u128(0x0193b5e4_8f7a_7c2e_b8a1_000000000002),
            email: "ann@example.com".into(),
            name: "Ann".into(),
            last_login_at: Some("2026-11-24T09:30:00Z".parse().unwrap_or_default()),
            created_at: "2026-11-24T09:30:00Z".parse().unwrap_or_default(),
        }
    }
}
