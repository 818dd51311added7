//! The request span as an OpenTelemetry server span, when spans are exported: named
//! `{method} {route}` after the route template (never the raw path, whose ids would make every
//! request a name of its own), with the stable HTTP semantic-convention attributes. A 5xx
//! answer sets `error.type` and status Error; a 4xx is the client's error, not the server's,
//! and leaves the status unset. The query string is never recorded: it may hold a stream
//! ticket.

use std::net::IpAddr;

use opentelemetry::trace::Status;
use poem::{
    Request,
    http::{Version, header},
};
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    routes::RouteEntry,
    telemetry::metrics::{METHODS, method_slot},
};

/// Opens the request span with its server attributes. `client` is the caller's address as the
/// limiter sees it (behind a trusted proxy, the forwarded one).
pub fn open(req: &Request, correlation_id: &str, route: Option<&RouteEntry>, client: Option<IpAddr>) -> Span {
    let method = METHODS[method_slot(req.method())];
    let template = route.map(|r| &*r.template);
    let name = match (method, template) {
        ("_OTHER", Some(t)) => format!("HTTP {t}"),
        ("_OTHER", None) => "HTTP".to_owned(),
        (m, Some(t)) => format!("{m} {t}"),
        (m, None) => m.to_owned(),
    };
    let scheme = req.scheme().as_str();
    let (host, port) = authority(req, scheme);
    let span = tracing::error_span!(
        "request",
        correlation_id,
        trace_id = Empty,
        otel.name = name,
        otel.kind = "server",
        http.request.method = method,
        http.request.method_original = Empty,
        http.route = template,
        url.path = req.uri().path(),
        url.scheme = scheme,
        server.address = host,
        server.port = port.map(i64::from),
        client.address = client.map(tracing::field::display),
        user_agent.original = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()),
        network.protocol.version = protocol(req.version()),
        jeex.correlation_id = correlation_id,
    );
    if method == "_OTHER" {
        span.record("http.request.method_original", req.method().as_str());
    }
    span
}

/// Records the answer: the status code, and for a 5xx `error.type` and status Error.
pub fn close(span: &Span, status: u16) {
    span.set_attribute("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.set_attribute("error.type", status.to_string());
        span.set_status(Status::error(format!("answered {status}")));
    }
}

/// `server.address` and `server.port`: from the request's authority (HTTP/2) or `Host`
/// header, the port defaulting to the scheme's.
fn authority<'a>(req: &'a Request, scheme: &str) -> (Option<&'a str>, Option<u16>) {
    let raw = req.uri().authority().map(|a| a.as_str()).or_else(|| req.headers().get(header::HOST).and_then(|v| v.to_str().ok()));
    let Some(raw) = raw else { return (None, None) };
    // An absolute-form target may carry `user:password@`: never recorded.
    let raw = raw.rsplit('@').next().unwrap_or(raw);
    let (host, port) = match raw.rsplit_once(':') {
        // `[::1]:8080`, `example.com:8080`; a bare IPv6 literal has colons but no port.
        Some((host, port)) if !port.contains(']') && port.bytes().all(|b| b.is_ascii_digit()) => (host, port.parse().ok()),
        _ => (raw, None),
    };
    let default = match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    };
    (Some(host.trim_start_matches('[').trim_end_matches(']')), port.or(default))
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}
