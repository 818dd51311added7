//! PostgreSQL connection pool.

use std::str::FromStr;

use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use super::SetupError;
use crate::config::PoolConfig;

/// A lazily connecting pool: connections are tested before use and recycled after their
/// maximum lifetime, so a database restart heals by itself.
pub fn pool(url: &str, cfg: &PoolConfig) -> Result<PgPool, SetupError> {
    let options = PgConnectOptions::from_str(url)
        // sqlx's message may quote the URL; say only that it does not parse.
        .map_err(|_| SetupError { dependency: "postgres", message: "DATABASE_URL does not parse as a PostgreSQL URL".into() })?
        .application_name("jeex-api");
    Ok(PgPoolOptions::new()
        .max_connections(cfg.max_connections())
        .min_connections(0)
        .acquire_timeout(cfg.acquire_timeout)
        .max_lifetime(cfg.max_lifetime)
        .idle_timeout(cfg.idle_timeout)
        .test_before_acquire(true)
        .connect_lazy_with(options))
}

/// `SELECT 1` through the pool.
pub async fn probe(pool: &PgPool) -> Result<(), String> {
    sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pool).await.map(drop).map_err(|e| describe(&e))
}

/// A short, credential-free description of a sqlx error.
pub fn describe(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::PoolTimedOut => "timed out waiting for a connection".into(),
        sqlx::Error::Io(e) => format!("connection failed: {e}"),
        sqlx::Error::Tls(_) => "TLS handshake failed".into(),
        sqlx::Error::Database(e) => format!("database error: {}", e.message()),
        other => other.to_string(),
    }
}
