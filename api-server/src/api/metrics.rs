//! `GET /metrics`: Prometheus text exposition.

use poem::web::Data;
use poem_openapi::{OpenApi, payload::PlainText};

use super::ApiTags;
use crate::state::AppState;

/// Metrics endpoint.
pub struct MetricsApi;

#[OpenApi]
impl MetricsApi {
    /// Prometheus metrics: `http_server_request_duration_seconds` (by method, route template and
    /// status), `http_server_active_requests`, `db_client_connection_count` (by state) and
    /// `db_client_connection_max`.
    #[oai(path = "/metrics", method = "get", tag = "ApiTags::Observability")]
    async fn metrics(&self, state: Data<&AppState>) -> PlainText<String> {
        PlainText(state.metrics().render())
    }
}
