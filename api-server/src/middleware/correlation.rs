//! Correlation ID: accepted from `X-Correlation-ID` (or `X-Request-ID`) when it is 1–128
//! characters of `[A-Za-z0-9._-]`, generated (UUIDv7) otherwise, echoed on every response and
//! carried by the request span, so every log line and error body of the request names it.
//! An incoming W3C `traceparent` becomes the parent of the request span.

use std::sync::Arc;

use opentelemetry::{
    propagation::{Extractor, TextMapPropagator},
    trace::TraceContextExt,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use poem::{Endpoint, IntoResponse, Request, Response, Result, http::HeaderValue};
use tracing::{Instrument, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Response and preferred request header.
pub const HEADER: &str = "x-correlation-id";
/// Accepted alternative request header.
pub const ALT_HEADER: &str = "x-request-id";

/// The request's correlation ID, stored in the request's extensions.
#[derive(Debug, Clone)]
pub struct CorrelationId(pub String);

/// Whether a client-supplied ID is safe to adopt (and to echo into headers and logs).
pub fn is_acceptable(value: &str) -> bool {
    (1..=128).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

struct Headers<'a>(&'a poem::http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The middleware function.
pub async fn handle<E: Endpoint>(ep: Arc<E>, mut req: Request) -> Result<Response> {
    let id = [HEADER, ALT_HEADER]
        .iter()
        .find_map(|h| req.headers().get(*h).and_then(|v| v.to_str().ok()).filter(|v| is_acceptable(v)))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(CorrelationId(id.clone()));

    let span = tracing::info_span!("request", correlation_id = %id, method = %req.method(), path = %req.uri().path(), trace_id = Empty);
    let parent = TraceContextPropagator::new().extract(&Headers(req.headers()));
    if parent.span().span_context().is_valid() {
        // Only fails when no OpenTelemetry layer is installed (in-process tests).
        let _ = span.set_parent(parent);
    }
    let trace_id = span.context().span().span_context().trace_id();
    if trace_id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }

    let mut resp = ep.call(req).instrument(span).await?.into_response();
    if let Ok(value) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(HEADER, value);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::is_acceptable;

    #[test]
    fn accepts_only_safe_ids() {
        assert!(is_acceptable("abc-123_x.y"));
        assert!(is_acceptable(&"a".repeat(128)));
        assert!(!is_acceptable(&"a".repeat(129)));
        assert!(!is_acceptable(""));
        assert!(!is_acceptable("a b"));
        assert!(!is_acceptable("a\nb"));
        assert!(!is_acceptable("<script>"));
    }
}
