//! Connections to the services the server depends on. Each is opened lazily, so start-up
//! never fails because a dependency is down; each can be probed for the health endpoints.

pub mod redis;

use crate::{config::Config, db::Database};

/// The configured dependencies. `None` means not configured (reported as `disabled`).
#[derive(Clone)]
pub struct Dependencies {
    /// PostgreSQL; always configured (a URL or the private development cluster). Its pool
    /// is private to the data layer.
    pub db: Database,
    /// Redis, when `REDIS_URL` is set.
    pub redis: Option<redis::Redis>,
    /// The vector index: a Qdrant server, the embedded engine, or none.
    pub vectors: crate::vectors::VectorIndex,
}

/// A dependency could not even be set up (bad URL syntax the config check cannot see).
#[derive(Debug, thiserror::Error)]
#[error("{dependency}: {message}")]
pub struct SetupError {
    /// Which dependency.
    pub dependency: &'static str,
    /// What went wrong; never contains credentials.
    pub message: String,
}

impl Dependencies {
    /// Builds lazy clients for everything configured. `database_url` is the resolved
    /// PostgreSQL URL (from config or the private cluster).
    pub fn connect(config: &Config, database_url: &str) -> Result<Self, SetupError> {
        Ok(Self {
            db: Database::connect_lazy(database_url, &config.pool)
                .map_err(|e| SetupError { dependency: "postgres", message: e.to_string() })?,
            redis: config.redis_url.as_ref().map(|url| redis::Redis::connect(url.expose(), config.health_timeout)).transpose()?,
            vectors: crate::vectors::VectorIndex::new(&config.vectors)
                .map_err(|e| SetupError { dependency: "qdrant", message: e.to_string() })?,
        })
    }

    /// Closes the pool; called once at shutdown after requests have drained.
    pub async fn close(&self) {
        self.db.close().await;
    }
}
