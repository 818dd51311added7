//! Event history and SSE streams: how long a stream lives, how many one user holds, how often
//! access is checked again, ticket lifetime, and what history is kept for resuming.

use std::time::Duration;

use super::{
    error::ConfigError,
    parse::{parse_count, parse_duration, parse_with},
};

/// Event history retention and streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventsConfig {
    /// Longest life of one SSE connection.
    pub max_lifetime: Duration,
    /// Open streams per principal per replica.
    pub max_streams_per_user: u32,
    /// How often open streams' access is checked again.
    pub access_check: Duration,
    /// How long a stream ticket stays valid for (re)connecting.
    pub ticket_ttl: Duration,
    /// Events kept per project.
    pub max_len: u32,
    /// Lifetime of a quiet history.
    pub ttl: Duration,
}

/// Reads the `JEEX_SSE_*` and `JEEX_EVENTS_*` variables.
pub(super) fn parse(get: &impl Fn(&str) -> Option<String>) -> Result<EventsConfig, ConfigError> {
    Ok(EventsConfig {
        max_lifetime: parse_duration(get, "JEEX_SSE_MAX_LIFETIME", "5m")?,
        max_streams_per_user: parse_count(get, "JEEX_SSE_MAX_STREAMS_PER_USER", 10, 1)?,
        access_check: parse_with(get, "JEEX_SSE_ACCESS_CHECK", "2s", "2s", |v| match humantime::parse_duration(v) {
            Ok(d) if (Duration::from_millis(100)..=Duration::from_secs(60)).contains(&d) => Ok(d),
            _ => Err(format!("{v:?} is not a duration from 100ms to 60s")),
        })?,
        ticket_ttl: parse_with(get, "JEEX_SSE_TICKET_TTL", "1h", "1h", |v| match humantime::parse_duration(v) {
            Ok(d) if (Duration::from_secs(60)..=Duration::from_secs(24 * 3600)).contains(&d) => Ok(d),
            _ => Err(format!("{v:?} is not a duration from 1m to 24h")),
        })?,
        max_len: parse_count(get, "JEEX_EVENTS_MAX_LEN", 10_000, 10)?,
        ttl: parse_duration(get, "JEEX_EVENTS_TTL", "24h")?,
    })
}
