//! Long-running operations: workers per process, lease, attempts, import batch size and how
//! long ended operations are kept.

use std::time::Duration;

use super::{
    error::ConfigError,
    parse::{parse_count, parse_duration, parse_with},
};

/// Long-running operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationsConfig {
    /// Concurrent operations per process.
    pub workers: u32,
    /// Lease length.
    pub lease: Duration,
    /// Claims before an operation is failed.
    pub max_attempts: u32,
    /// Documents per import batch.
    pub import_batch: u32,
    /// How long ended operations are kept (`None`: for ever).
    pub retention: Option<Duration>,
}

/// Reads `JEEX_WORKERS`, the `JEEX_OPERATION_*` variables and `JEEX_IMPORT_BATCH_SIZE`.
pub(super) fn parse(get: &impl Fn(&str) -> Option<String>) -> Result<OperationsConfig, ConfigError> {
    Ok(OperationsConfig {
        workers: parse_count(get, "JEEX_WORKERS", 2, 0)?,
        lease: parse_duration(get, "JEEX_OPERATION_LEASE", "10s")?,
        max_attempts: parse_count(get, "JEEX_OPERATION_MAX_ATTEMPTS", 3, 1)?,
        import_batch: parse_count(get, "JEEX_IMPORT_BATCH_SIZE", 200, 1)?,
        retention: parse_with(get, "JEEX_OPERATION_RETENTION", "7d", "7d", |v| match (v, humantime::parse_duration(v)) {
            ("off", _) => Ok(None),
            (_, Ok(d)) if d >= Duration::from_secs(60) => Ok(Some(d)),
            (_, Ok(_)) => Err("must be at least a minute (a client needs time to fetch a result), or off".into()),
            (_, Err(_)) => Err(format!("{v:?} is not a duration such as 12h or 7d, or off")),
        })?,
    })
}
