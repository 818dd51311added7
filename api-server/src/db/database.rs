//! The database: the connection pool, private to the data layer. Everything outside `db`
//! reaches PostgreSQL through [`Database`]'s scoped transactions (or a repository function
//! that takes the `Database` for work outside any project: logins, the worker's claim, the
//! relays, health probes), never through the pool itself.

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::postgres::PgConnectOptions;
use uuid::Uuid;

use crate::{
    access::{Backend, Caller, Entry, Level, Limits, Pool, Pooled, Scoped, Tx, UserTx},
    client_span::Endpoint,
    config::PoolConfig,
    error::ApiError,
};

/// The connection pool, and the only doors into it.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
}

/// The database URL does not parse (the config check cannot see every URL problem).
#[derive(Debug, thiserror::Error)]
#[error("DATABASE_URL does not parse as a PostgreSQL URL")]
pub struct BadUrl;

impl Database {
    /// A lazily connecting pool ([`Pool`]). Connections are not tested before use, nor after (a
    /// round trip per request either way; only a cancelled statement or a dropped transaction
    /// is settled, in a task of its own, before its connection is reused): a statement that
    /// finds its connection dead marks the loss, and the pool then drops, unused, every idle
    /// connection opened before it ([`Backend`]). Every connection is also recycled after its
    /// maximum lifetime or idle time. So a database restart costs the statements on their way
    /// and the first to find out, and heals by itself.
    pub fn connect_lazy(url: &str, cfg: &PoolConfig) -> Result<Self, BadUrl> {
        // sqlx's message may quote the URL; say only that it does not parse.
        let options = PgConnectOptions::from_str(url).map_err(|_| BadUrl)?.application_name("jeex-api");
        let endpoint = Endpoint {
            namespace: options.get_database().unwrap_or_else(|| options.get_username()).to_owned(),
            address: options.get_host().to_owned(),
            port: options.get_port(),
        };
        let limits = Limits {
            max_connections: cfg.max_connections(),
            acquire_timeout: cfg.acquire_timeout,
            max_lifetime: cfg.max_lifetime,
            idle_timeout: cfg.idle_timeout,
            settle_timeout: Duration::from_secs(5),
        };
        Ok(Self { pool: Pool::new(options, limits, Arc::new(Backend::new(endpoint))) })
    }

    /// The pool as an executor of single statements, for the repositories in this module only.
    pub(in crate::db) fn exec(&self) -> Pooled<'_> {
        Pooled::new(&self.pool)
    }

    /// A transaction outside any scope (logins, the worker's claim, the relays), for the
    /// repositories in this module only.
    pub(in crate::db) async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Tx::begin(&self.pool).await
    }

    /// Opens `project_id`'s scope for `caller`, checked for at least the role level `R`.
    pub async fn scoped<R: Level>(&self, caller: &Caller, project_id: Uuid) -> Result<Scoped<R>, ApiError> {
        Scoped::begin(&self.pool, caller, project_id).await
    }

    /// `caller`'s claim on `project_id` for the role level `R`, checked by the one statement
    /// (a read) or two (a write) that use it.
    pub fn entry<R: Level>(&self, caller: &Caller, project_id: Uuid) -> Result<Entry<R>, ApiError> {
        Entry::new(&self.pool, caller, project_id)
    }

    /// Like [`Database::scoped`], in one read-only snapshot (an export).
    pub async fn snapshot<R: Level>(&self, caller: &Caller, project_id: Uuid) -> Result<Scoped<R>, ApiError> {
        Scoped::begin_snapshot(&self.pool, caller, project_id).await
    }

    /// Opens a transaction acting for the user `caller` outside any one project.
    pub async fn user(&self, caller: &Caller) -> Result<UserTx, ApiError> {
        UserTx::begin(&self.pool, caller).await
    }

    /// `SELECT 1` through the pool.
    pub async fn probe(&self) -> Result<(), String> {
        sqlx::query_scalar!("SELECT 1").fetch_one(self.exec()).await.map(drop).map_err(|e| describe(&e))
    }

    /// Connections open, and how many of them are idle (the pool metrics).
    pub fn connections(&self) -> (u32, usize) {
        self.pool.connections()
    }

    /// Closes the pool; called once at shutdown after requests have drained.
    pub async fn close(&self) {
        self.pool.close().await;
    }
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
