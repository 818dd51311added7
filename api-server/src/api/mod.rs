//! HTTP endpoints (poem-openapi): parse, call the domain, map the result.

pub mod health;
pub mod metrics;

use poem_openapi::{OpenApi, OpenApiService, Tags};

/// Tags grouping operations in the spec and Swagger UI.
#[derive(Tags)]
pub enum ApiTags {
    /// Liveness, readiness and dependency health. No auth, never rate limited.
    Health,
    /// Operational endpoints for monitoring systems.
    Observability,
}

/// API title in the spec.
pub const TITLE: &str = "JEEX API";

/// The documented API, with `extra` operations mounted beside the built-in ones.
pub fn service<T: OpenApi>(extra: T) -> OpenApiService<(health::HealthApi, metrics::MetricsApi, T), ()> {
    OpenApiService::new((health::HealthApi, metrics::MetricsApi, extra), TITLE, env!("CARGO_PKG_VERSION"))
        .description(
            "JEEX platform API. Every error is `application/problem+json` (RFC 9457) with a stable `code` \
             and the request's `correlation_id`; send `X-Correlation-ID` to choose it.",
        )
        .license("Apache-2.0")
}
