//! PostgreSQL: where the database comes from (`DATABASE_URL` or the development cluster), the
//! URL `migrate` connects with, and the connection pool.

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use super::{
    environment::Environment,
    error::{ConfigError, err},
    parse::{check_url, parse_count, parse_duration},
    secret::Secret,
};

/// PostgreSQL pool settings. `sqlx` has no overflow concept: the pool opens connections on
/// demand up to `size + max_overflow` and closes those idle past `idle_timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Steady-state pool size (`JEEX_DB_POOL_SIZE`).
    pub size: u32,
    /// Burst allowance above `size` (`JEEX_DB_POOL_MAX_OVERFLOW`).
    pub max_overflow: u32,
    /// Wait for a free connection (`JEEX_DB_ACQUIRE_TIMEOUT`).
    pub acquire_timeout: Duration,
    /// Recycle connections after this age (`JEEX_DB_MAX_LIFETIME`).
    pub max_lifetime: Duration,
    /// Close connections idle this long (`JEEX_DB_IDLE_TIMEOUT`).
    pub idle_timeout: Duration,
}

impl PoolConfig {
    /// The most connections the pool opens.
    pub fn max_connections(&self) -> u32 {
        self.size + self.max_overflow
    }
}

/// Where the database comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseSource {
    /// `DATABASE_URL` was given.
    Url(String),
    /// Development without `DATABASE_URL`: run a private cluster under this directory.
    PrivateCluster(PathBuf),
}

impl fmt::Debug for DatabaseSource {
    // URLs may carry passwords: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(_) => f.write_str("Url(<redacted>)"),
            Self::PrivateCluster(dir) => f.debug_tuple("PrivateCluster").field(dir).finish(),
        }
    }
}

/// Reads `DATABASE_URL`: required unless `env` is development, where a private cluster under
/// `data_dir` stands in.
pub(super) fn parse_source(
    get: &impl Fn(&str) -> Option<String>,
    env: Environment,
    data_dir: &Path,
) -> Result<DatabaseSource, ConfigError> {
    let dev = env == Environment::Development;
    match get("DATABASE_URL") {
        Some(url) => {
            Ok(DatabaseSource::Url(check_url("DATABASE_URL", &url, &["postgres", "postgresql"], "postgres://jeex:secret@db:5432/jeex")?))
        }
        None if dev => Ok(DatabaseSource::PrivateCluster(data_dir.to_path_buf())),
        None => Err(err("DATABASE_URL", format!("is required when JEEX_ENV={}", env.as_str()), "postgres://jeex:secret@db:5432/jeex")),
    }
}

/// Reads `JEEX_MIGRATE_DATABASE_URL`, the owner role's URL.
pub(super) fn parse_migrate_url(get: &impl Fn(&str) -> Option<String>) -> Result<Option<Secret>, ConfigError> {
    get("JEEX_MIGRATE_DATABASE_URL")
        .map(|u| {
            check_url("JEEX_MIGRATE_DATABASE_URL", &u, &["postgres", "postgresql"], "postgres://jeex_owner:secret@db:5432/jeex").map(Secret)
        })
        .transpose()
}

/// Reads the `JEEX_DB_*` pool settings.
pub(super) fn parse_pool(get: &impl Fn(&str) -> Option<String>) -> Result<PoolConfig, ConfigError> {
    Ok(PoolConfig {
        size: parse_count(get, "JEEX_DB_POOL_SIZE", 20, 1)?,
        max_overflow: parse_count(get, "JEEX_DB_POOL_MAX_OVERFLOW", 10, 0)?,
        acquire_timeout: parse_duration(get, "JEEX_DB_ACQUIRE_TIMEOUT", "5s")?,
        max_lifetime: parse_duration(get, "JEEX_DB_MAX_LIFETIME", "30m")?,
        idle_timeout: parse_duration(get, "JEEX_DB_IDLE_TIMEOUT", "10m")?,
    })
}
