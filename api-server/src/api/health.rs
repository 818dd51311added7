//! Health probes: `/health/live` (the process serves), `/health/ready` (every configured
//! dependency answers) and `/health` (the full report).

use poem::web::Data;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, payload::Json};

use super::ApiTags;
use crate::{
    error::{ApiError, ErrorCode},
    health::{self, ComponentReport, ComponentStatus},
    state::AppState,
};

/// Liveness answer.
#[derive(Object)]
pub struct Liveness {
    /// Always `ok`.
    pub status: String,
}

/// Readiness answer.
#[derive(Object)]
pub struct Readiness {
    /// Always `ready` (a server that is not ready answers 503).
    pub status: String,
}

/// Overall health.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum OverallStatus {
    /// Everything configured answers.
    Healthy,
    /// PostgreSQL answers, an optional dependency does not.
    Degraded,
    /// PostgreSQL does not answer.
    Unhealthy,
}

/// One component's health.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum ComponentState {
    /// Answered within the timeout.
    Healthy,
    /// Failed or timed out.
    Unhealthy,
    /// Not configured.
    Disabled,
}

/// One dependency in the health report.
#[derive(Object)]
pub struct Component {
    /// `postgres`, `redis` or `qdrant`.
    pub name: String,
    /// Its state.
    pub status: ComponentState,
    /// How long its check took.
    pub response_time_ms: Option<u64>,
    /// Why it is unhealthy.
    pub error: Option<String>,
    /// `qdrant` only: the engine in use, `qdrant-server` or `embedded` (`disabled` when none).
    #[oai(skip_serializing_if_is_none)]
    pub engine: Option<String>,
    /// `qdrant` only: document changes not yet applied to the vector index.
    #[oai(skip_serializing_if_is_none)]
    pub outbox: Option<OutboxLagReport>,
}

/// How far the vector index is behind PostgreSQL.
#[derive(Object)]
pub struct OutboxLagReport {
    /// Pending changes.
    pub pending: i64,
    /// Age of the oldest pending change, in seconds (0 when none).
    pub oldest_age_seconds: f64,
}

/// The full health report.
#[derive(Object)]
pub struct HealthReport {
    /// Overall status.
    pub status: OverallStatus,
    /// Server version.
    pub version: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Every dependency.
    pub components: Vec<Component>,
}

/// `/health` answers.
#[derive(ApiResponse)]
pub enum HealthResponse {
    /// Healthy or degraded.
    #[oai(status = 200)]
    Ok(Json<HealthReport>),
    /// PostgreSQL is down.
    #[oai(status = 503)]
    Unhealthy(Json<HealthReport>),
}

/// Health endpoints.
pub struct HealthApi;

#[OpenApi]
impl HealthApi {
    /// Liveness: 200 while the process serves. Touches no dependency.
    #[oai(path = "/health/live", method = "get", tag = "ApiTags::Health")]
    async fn live(&self) -> Json<Liveness> {
        Json(Liveness { status: "ok".into() })
    }

    /// Readiness: 200 only when every configured dependency (but Qdrant: while it is away,
    /// writes go on and only vector search answers 503) answered within its timeout and
    /// the database schema is current (and, in production, the server's role cannot bypass
    /// row-level security); otherwise 503 naming each problem.
    #[oai(path = "/health/ready", method = "get", tag = "ApiTags::Health")]
    async fn ready(&self, state: Data<&AppState>) -> Result<Json<Readiness>, ApiError> {
        let reports = public(&state, health::check_all(state.deps(), state.config().health_timeout).await);
        if health::all_ready(&reports) {
            return match state.database_gate().verdict(&state.deps().db, state.config().health_timeout).await {
                Ok(None) => Ok(Json(Readiness { status: "ready".into() })),
                Ok(Some(problem)) => Err(ApiError::Status(ErrorCode::Unavailable, format!("not ready: {problem}"))),
                Err(()) => Err(ApiError::Status(ErrorCode::Unavailable, "not ready: the database schema is not checked yet".into())),
            };
        }
        let failing: Vec<String> = reports
            .iter()
            .filter(|r| r.status == ComponentStatus::Unhealthy && health::required(r.name))
            .map(|r| format!("{} ({})", r.name, r.error.as_deref().unwrap_or("unhealthy")))
            .collect();
        Err(ApiError::Status(ErrorCode::Unavailable, format!("not ready: {}", failing.join("; "))))
    }

    /// Health report of every dependency, checked concurrently, each bounded by its timeout.
    #[oai(path = "/health", method = "get", tag = "ApiTags::Health")]
    async fn health(&self, state: Data<&AppState>) -> HealthResponse {
        let timeout = state.config().health_timeout;
        let (reports, lag) = tokio::join!(health::check_all(state.deps(), timeout), health::outbox_lag(state.deps(), timeout));
        let mut reports = public(&state, reports);
        if let Some(q) = reports.iter_mut().find(|r| r.name == "qdrant") {
            q.outbox = lag;
        }
        let report = report(&reports, state.started().elapsed().as_secs());
        match report.status {
            OverallStatus::Unhealthy => HealthResponse::Unhealthy(Json(report)),
            _ => HealthResponse::Ok(Json(report)),
        }
    }
}

/// Replaces the dependencies' own error text by its kind unless error details are exposed;
/// the full text goes to the debug log.
fn public(state: &AppState, mut reports: Vec<ComponentReport>) -> Vec<ComponentReport> {
    if !state.config().expose_error_details {
        for r in &mut reports {
            if let Some(raw) = r.error.take() {
                tracing::debug!(component = r.name, error = %raw, "dependency unhealthy");
                r.error = Some(health::public_error(&raw).to_owned());
            }
        }
    }
    reports
}

fn report(reports: &[ComponentReport], uptime_seconds: u64) -> HealthReport {
    let down = |name: &str| reports.iter().any(|r| r.name == name && r.status == ComponentStatus::Unhealthy);
    let status = if down("postgres") {
        OverallStatus::Unhealthy
    } else if reports.iter().any(|r| r.status == ComponentStatus::Unhealthy) {
        OverallStatus::Degraded
    } else {
        OverallStatus::Healthy
    };
    HealthReport {
        status,
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_seconds,
        components: reports
            .iter()
            .map(|r| Component {
                name: r.name.into(),
                status: match r.status {
                    ComponentStatus::Healthy => ComponentState::Healthy,
                    ComponentStatus::Unhealthy => ComponentState::Unhealthy,
                    ComponentStatus::Disabled => ComponentState::Disabled,
                },
                response_time_ms: r.response_time_ms,
                error: r.error.clone(),
                engine: r.engine.map(str::to_owned),
                outbox: r.outbox.map(|o| OutboxLagReport { pending: o.pending, oldest_age_seconds: o.oldest_age_seconds }),
            })
            .collect(),
    }
}
