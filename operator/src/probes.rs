//! The dependency gate: PostgreSQL (connect and `SELECT 1` as the owner), Redis (`PING`) and
//! Qdrant (its health check), each bounded by a timeout and probed at the same time. Nothing
//! new starts while one is down; the message names which one and why (never a credential).

use std::time::Duration;

use sqlx::{ConnectOptions, Connection, postgres::PgConnectOptions};

/// Where the dependencies are, read from the resource's Secrets.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// The owner's PostgreSQL URL.
    pub postgres: String,
    /// Redis, when configured.
    pub redis: Option<String>,
    /// Qdrant URL and API key, when configured.
    pub qdrant: Option<(String, Option<String>)>,
}

/// One dependency that is not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Down {
    /// `postgres`, `redis` or `qdrant`.
    pub dependency: &'static str,
    /// What went wrong.
    pub reason: String,
}

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.dependency, self.reason)
    }
}

/// Probes every configured dependency concurrently; the ones that failed, in a fixed order.
pub async fn probe(targets: &Targets, timeout: Duration) -> Vec<Down> {
    let postgres = bounded("postgres", timeout, postgres(&targets.postgres));
    let redis = async {
        match &targets.redis {
            Some(url) => bounded("redis", timeout, redis(url)).await,
            None => None,
        }
    };
    let qdrant = async {
        match &targets.qdrant {
            Some((url, key)) => bounded("qdrant", timeout, qdrant(url, key.clone(), timeout)).await,
            None => None,
        }
    };
    let (p, r, q) = tokio::join!(postgres, redis, qdrant);
    [p, r, q].into_iter().flatten().collect()
}

/// One probe, bounded by `timeout`, in a client span of its own when the reconcile is traced
/// (`db.system.name` is the dependency; a failed probe is an error span naming why).
async fn bounded(dependency: &'static str, timeout: Duration, check: impl Future<Output = Result<(), String>>) -> Option<Down> {
    use opentelemetry::trace::TraceContextExt;
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let span = if opentelemetry::Context::map_current(|cx| cx.span().span_context().is_sampled()) {
        let system = if dependency == "postgres" { "postgresql" } else { dependency };
        tracing::error_span!("probe", otel.name = %format!("probe {dependency}"), otel.kind = "client", db.system.name = system)
    } else {
        tracing::Span::none()
    };
    let down = match tokio::time::timeout(timeout, check).instrument(span.clone()).await {
        Ok(Ok(())) => None,
        Ok(Err(reason)) => Some(Down { dependency, reason }),
        Err(_) => Some(Down { dependency, reason: format!("no answer within {}s", timeout.as_secs_f32()) }),
    };
    if let Some(down) = &down.as_ref().filter(|_| !span.is_none()) {
        span.set_attribute("error.type", if down.reason.starts_with("no answer") { "timeout" } else { "unavailable" });
        span.set_status(opentelemetry::trace::Status::error(down.reason.clone()));
    }
    down
}

async fn postgres(url: &str) -> Result<(), String> {
    let options: PgConnectOptions = url.parse().map_err(|_| "the owner URL does not parse".to_owned())?;
    let mut conn = options.application_name("jeex-operator probe").connect().await.map_err(|e| describe_sqlx(&e))?;
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await.map_err(|e| describe_sqlx(&e))?;
    let _ = conn.close().await;
    (one == 1).then_some(()).ok_or_else(|| "SELECT 1 did not return 1".into())
}

/// The error without anything from the URL.
fn describe_sqlx(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => format!("cannot connect: {io}"),
        sqlx::Error::Database(db) => format!("{} (SQLSTATE {})", db.message(), db.code().unwrap_or_default()),
        sqlx::Error::Tls(_) => "TLS handshake failed".into(),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => "no connection".into(),
        other => other.to_string(),
    }
}

async fn redis(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|_| "the Redis URL does not parse".to_owned())?;
    let mut conn = client.get_multiplexed_async_connection().await.map_err(|e| format!("cannot connect: {}", e.kind_description()))?;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.map_err(|e| format!("PING failed: {}", e.kind_description()))?;
    (pong == "PONG").then_some(()).ok_or_else(|| format!("PING answered {pong:?}"))
}

trait KindDescription {
    fn kind_description(&self) -> String;
}

impl KindDescription for redis::RedisError {
    /// The error's kind and detail, never the URL (which may hold a password).
    fn kind_description(&self) -> String {
        match self.detail() {
            Some(detail) => format!("{:?}: {detail}", self.kind()),
            None if self.is_io_error() => "connection refused or reset".into(),
            None => format!("{:?}", self.kind()),
        }
    }
}

async fn qdrant(url: &str, api_key: Option<String>, timeout: Duration) -> Result<(), String> {
    let client = qdrant_client::Qdrant::from_url(url)
        .api_key(api_key)
        .timeout(timeout)
        .connect_timeout(timeout)
        .skip_compatibility_check()
        .build()
        .map_err(|e| format!("bad Qdrant settings: {e}"))?;
    client.health_check().await.map(|_| ()).map_err(|e| format!("health check failed: {e}"))
}
