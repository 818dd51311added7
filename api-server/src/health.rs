//! Dependency health: every configured dependency probed concurrently, each bounded by its
//! own timeout, so one hung service cannot hold a probe longer than that timeout.

use std::time::{Duration, Instant};

use crate::deps::Dependencies;

/// State of one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentStatus {
    /// Answered within its timeout.
    Healthy,
    /// Failed or timed out.
    Unhealthy,
    /// Not configured.
    Disabled,
}

/// The result of probing one dependency.
#[derive(Debug, Clone)]
pub struct ComponentReport {
    /// `postgres`, `redis` or `qdrant`.
    pub name: &'static str,
    /// Outcome.
    pub status: ComponentStatus,
    /// Time the probe took, in milliseconds; `None` when disabled.
    pub response_time_ms: Option<u64>,
    /// Why it is unhealthy.
    pub error: Option<String>,
    /// For `qdrant`: the engine in use (`qdrant-server` or `embedded`).
    pub engine: Option<&'static str>,
    /// For `qdrant`: how far the index is behind PostgreSQL.
    pub outbox: Option<OutboxLag>,
}

/// Vector intents not yet applied to the index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutboxLag {
    /// Pending intents.
    pub pending: i64,
    /// Age of the oldest, in seconds (0 when none).
    pub oldest_age_seconds: f64,
}

/// Probes every dependency concurrently.
pub async fn check_all(deps: &Dependencies, timeout: Duration) -> Vec<ComponentReport> {
    let postgres = probe("postgres", timeout, Some(deps.db.probe()));
    let redis = probe("redis", timeout, deps.redis.as_ref().map(|r| r.probe()));
    let vectors = &deps.vectors;
    let qdrant = probe("qdrant", timeout, vectors.is_enabled().then(|| vectors.probe()));
    let (p, r, mut q) = tokio::join!(postgres, redis, qdrant);
    q.engine = Some(vectors.engine_name());
    vec![p, r, q]
}

/// How far the vector index is behind PostgreSQL; `None` when the database does not answer
/// within `timeout`. Only the full report shows it (readiness does not depend on it).
pub async fn outbox_lag(deps: &Dependencies, timeout: Duration) -> Option<OutboxLag> {
    match tokio::time::timeout(timeout, crate::db::outbox::lag(&deps.db)).await {
        Ok(Ok((pending, oldest_age_seconds))) => Some(OutboxLag { pending, oldest_age_seconds }),
        _ => None,
    }
}

/// Components that take the server out of service when they fail. Qdrant is not one of them:
/// document writes go on while it is away (the outbox keeps the intents), and only vector
/// search answers 503.
pub fn required(name: &str) -> bool {
    name != "qdrant"
}

/// What an unauthenticated caller may learn of a failure outside development: its kind, never
/// the dependency's own words (which can name hosts, users or databases).
pub fn public_error(raw: &str) -> &'static str {
    let lower = raw.to_ascii_lowercase();
    if lower.contains("no answer within") || lower.contains("timed out") || lower.contains("timeout") {
        "timed out"
    } else if lower.contains("refused") {
        "connection refused"
    } else if lower.contains("password") || lower.contains("auth") {
        "authentication failed"
    } else {
        "unavailable"
    }
}

/// Whether every configured required component is healthy.
pub fn all_ready(reports: &[ComponentReport]) -> bool {
    reports.iter().all(|r| r.status != ComponentStatus::Unhealthy || !required(r.name))
}

async fn probe<F>(name: &'static str, timeout: Duration, check: Option<F>) -> ComponentReport
where
    F: Future<Output = Result<(), String>>,
{
    let Some(check) = check else {
        return ComponentReport {
            name,
            status: ComponentStatus::Disabled,
            response_time_ms: None,
            error: None,
            engine: None,
            outbox: None,
        };
    };
    let started = Instant::now();
    let outcome = tokio::time::timeout(timeout, check).await;
    let elapsed = Some(started.elapsed().as_millis() as u64);
    match outcome {
        Ok(Ok(())) => {
            ComponentReport { name, status: ComponentStatus::Healthy, response_time_ms: elapsed, error: None, engine: None, outbox: None }
        }
        Ok(Err(error)) => ComponentReport {
            name,
            status: ComponentStatus::Unhealthy,
            response_time_ms: elapsed,
            // A client library's error may embed its URL, credentials and all.
            error: Some(crate::telemetry::redact::redact(&error).into_owned()),
            engine: None,
            outbox: None,
        },
        Err(_) => ComponentReport {
            name,
            status: ComponentStatus::Unhealthy,
            response_time_ms: elapsed,
            error: Some(format!("no answer within {}", humantime::format_duration(timeout))),
            engine: None,
            outbox: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::public_error;

    #[test]
    fn public_errors_name_the_kind_only() {
        assert_eq!(public_error("connection failed: Connection refused (os error 111)"), "connection refused");
        assert_eq!(public_error("database error: password authentication failed for user \"jeex\""), "authentication failed");
        assert_eq!(public_error("no answer within 2s"), "timed out");
        assert_eq!(public_error("relation pg_x at db-7.internal"), "unavailable");
    }
}
