//! HTTP endpoints (poem-openapi): parse, call the domain, map the result.

pub mod access;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod contract;
pub mod documents;
pub mod etag;
pub mod events;
pub mod health;
pub mod members;
pub mod metrics;
pub mod operations;
pub mod projects;
pub mod responses;
pub mod search;
pub mod text;
pub mod validation;
pub mod views;

use poem_openapi::{OpenApi, OpenApiService, Tags};

/// Tags grouping operations in the spec and Swagger UI.
#[derive(Tags)]
pub enum ApiTags {
    /// Liveness, readiness and dependency health. No auth, never rate limited.
    Health,
    /// Operational endpoints for monitoring systems.
    Observability,
    /// Tokens: refresh, logout, the current user, development login.
    Auth,
    /// Projects the caller is a member of. Another user's project answers 404, exactly like
    /// one that does not exist.
    Projects,
    /// Who may act in a project, and with which role.
    Members,
    /// Documents inside a project, with full-text, vector and hybrid search.
    Documents,
    /// Per-project API keys (`X-API-Key`).
    ApiKeys,
    /// The project's audit log.
    Audit,
    /// Long-running work (imports, exports) with progress and cancellation.
    Operations,
    /// Server-Sent Events: project and operation events, resumable with Last-Event-ID.
    Events,
}

/// Every operation group, with `T` mounted last.
pub type Apis<T> = (
    health::HealthApi,
    metrics::MetricsApi,
    auth::AuthApi,
    projects::ProjectsApi,
    members::MembersApi,
    documents::DocumentsApi,
    search::SearchApi,
    api_keys::ApiKeysApi,
    audit::AuditApi,
    operations::OperationsApi,
    events::EventsApi,
    T,
);

/// API title in the spec.
pub const TITLE: &str = "JEEX API";

/// The documented API, with `extra` operations mounted beside the built-in ones.
pub fn service<T: OpenApi>(extra: T) -> OpenApiService<Apis<T>, ()> {
    let apis = (
        health::HealthApi,
        metrics::MetricsApi,
        auth::AuthApi,
        projects::ProjectsApi,
        members::MembersApi,
        documents::DocumentsApi,
        search::SearchApi,
        api_keys::ApiKeysApi,
        audit::AuditApi,
        operations::OperationsApi,
        events::EventsApi,
        extra,
    );
    OpenApiService::new(apis, TITLE, env!("CARGO_PKG_VERSION"))
        .description(
            "JEEX platform API. Every error is `application/problem+json` (RFC 9457) with a stable `code` \
             and the request's `correlation_id`; send `X-Correlation-ID` to choose it. Authenticate with \
             `Authorization: Bearer <access token>`, the `jeex_access` cookie, or a project's `X-API-Key`. \
             Lists answer `{items, next_cursor}`; pass `next_cursor` as `cursor` for the next page. \
             `PATCH` and `DELETE` honour `If-Match` with the resource's `ETag` (412 when it changed).",
        )
        .license("Apache-2.0")
}
