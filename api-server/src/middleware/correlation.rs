//! Correlation ID: accepted from `X-Correlation-ID` (or `X-Request-ID`) when it is 1–128
//! characters of `[A-Za-z0-9._-]`, generated (UUIDv7) otherwise, echoed on every response and
//! carried by the request span, so every log line and error body of the request names it.
//! An incoming W3C `traceparent` becomes the parent of the request span.

use opentelemetry::{
    propagation::{Extractor, TextMapPropagator},
    trace::{TraceContextExt, TraceId},
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use poem::{
    Request, Response,
    http::{HeaderName, HeaderValue},
};
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

// Header names as constants: looked up by `&str`, each would be parsed on every request.
/// Response and preferred request header.
pub const HEADER: HeaderName = HeaderName::from_static("x-correlation-id");
/// W3C trace context header.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// Accepted alternative request header.
pub const ALT_HEADER: HeaderName = HeaderName::from_static("x-request-id");

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

/// Adopts or generates the request's ID, stores it in the request, and opens the request
/// span with `open` (continuing an incoming `traceparent`).
pub fn assign(req: &mut Request, open: impl FnOnce(&Request, &str) -> Span) -> (CorrelationId, Span) {
    let id = [HEADER, ALT_HEADER]
        .iter()
        .find_map(|h| req.headers().get(h).and_then(|v| v.to_str().ok()).filter(|v| is_acceptable(v)))
        .map(str::to_owned)
        .unwrap_or_else(generate);
    req.extensions_mut().insert(CorrelationId(id.clone()));

    let span = open(req, &id);
    if span.is_disabled() {
        return (CorrelationId(id), span);
    }
    let mut incoming = TraceId::INVALID;
    if req.headers().contains_key(&TRACEPARENT) {
        let parent = TraceContextPropagator::new().extract(&Headers(req.headers()));
        incoming = parent.span().span_context().trace_id();
        if parent.span().span_context().is_valid() {
            // Fails only when spans are not exported (no OpenTelemetry layer): the incoming
            // trace ID is then still logged below.
            let _ = span.set_parent(parent);
        }
    }
    let own = span.context().span().span_context().trace_id();
    let trace_id = if own == TraceId::INVALID { incoming } else { own };
    if trace_id != TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
    (CorrelationId(id), span)
}

/// A new UUIDv7. Without the crate's shared counter (a mutex every request would take): an
/// ID must be unique, which its 74 random bits see to, not ordered within a millisecond.
fn generate() -> String {
    let uuid = uuid::Uuid::new_v7(uuid::Timestamp::now(uuid::NoContext));
    uuid.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()).to_owned()
}

/// The request span when spans are not exported. Its fields are formatted when it opens, for
/// every request: they are kept to what every line must carry (method and path are on the
/// access-log line). ERROR level: the span must exist whenever anything at all is logged
/// (`RUST_LOG=warn` still needs the correlation ID on its error lines); the level of a span
/// only gates whether it is recorded.
pub fn log_span(correlation_id: &str) -> Span {
    tracing::error_span!("request", correlation_id, trace_id = Empty)
}

/// Echoes the ID on the response.
pub fn echo(resp: &mut Response, id: &CorrelationId) {
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        resp.headers_mut().insert(HEADER, value);
    }
}

#[cfg(test)]
mod tests {
    use super::is_acceptable;

    #[test]
    fn generates_distinct_version_7_ids() {
        let (a, b) = (super::generate(), super::generate());
        assert_ne!(a, b);
        for id in [a, b] {
            let parsed = uuid::Uuid::parse_str(&id).unwrap();
            assert_eq!(parsed.get_version_num(), 7);
            assert!(is_acceptable(&id));
        }
    }

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
