//! Redis: its URL, the connection ceiling and the prefix of every key.

use super::{
    error::{ConfigError, err},
    parse::{check_url, parse_count},
    secret::Secret,
};

/// The Redis settings, kept as three fields of `Config`.
pub(super) struct RedisSettings {
    /// `REDIS_URL`, if configured (may carry a password).
    pub(super) url: Option<Secret>,
    /// `JEEX_REDIS_MAX_CONNECTIONS`.
    pub(super) max_connections: u32,
    /// `JEEX_REDIS_PREFIX`.
    pub(super) prefix: String,
}

/// Reads `REDIS_URL`, `JEEX_REDIS_MAX_CONNECTIONS` and `JEEX_REDIS_PREFIX`.
pub(super) fn parse(get: &impl Fn(&str) -> Option<String>) -> Result<RedisSettings, ConfigError> {
    let url = get("REDIS_URL")
        .map(|u| check_url("REDIS_URL", &u, &["redis", "rediss", "redis+unix", "unix"], "redis://localhost:6379/0").map(Secret))
        .transpose()?;
    let max_connections = parse_count(get, "JEEX_REDIS_MAX_CONNECTIONS", 50, 1)?;
    let prefix = get("JEEX_REDIS_PREFIX").unwrap_or_else(|| "jeex:".into());
    if prefix.len() > 64 || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err("JEEX_REDIS_PREFIX", "must be at most 64 characters without spaces".into(), "jeex:"));
    }
    Ok(RedisSettings { url, max_connections, prefix })
}
