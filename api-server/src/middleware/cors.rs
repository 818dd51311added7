//! CORS from the configured whitelist. Listed origins get CORS headers (credentials when
//! enabled); `*` lets any origin read responses without credentials; any other origin gets no
//! CORS headers at all, and its preflight is refused.

use poem::{
    IntoResponse, Request, Response,
    http::{HeaderValue, Method, StatusCode, header},
};

use super::correlation::CorrelationId;
use crate::{config::CorsConfig, error::ErrorCode, problem::Problem};

const ALLOWED_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
const ALLOWED_HEADERS: &[&str] =
    &["authorization", "content-type", "x-correlation-id", "x-request-id", "last-event-id", "idempotency-key", "if-match", "x-api-key"];
const EXPOSED_HEADERS: &str = "x-correlation-id, retry-after, location, etag";
const MAX_AGE: &str = "600";

/// How a request's origin is treated.
pub enum Grant {
    /// The origin is listed: echo it, with credentials if configured.
    Listed(HeaderValue, bool),
    /// Any origin may read, without credentials.
    Any,
}

fn grant(cfg: &CorsConfig, origin: &str) -> Option<Grant> {
    if cfg.origins.iter().any(|o| o == origin) {
        HeaderValue::from_str(origin).ok().map(|v| Grant::Listed(v, cfg.allow_credentials))
    } else if cfg.any_origin {
        Some(Grant::Any)
    } else {
        None
    }
}

fn apply(resp: &mut Response, grant: &Grant) {
    let h = resp.headers_mut();
    match grant {
        Grant::Listed(origin, credentials) => {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            if *credentials {
                h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
            }
        }
        Grant::Any => {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        }
    }
}

/// The decision for one request, taken before the handler runs.
pub enum Decision {
    /// A preflight: answered here, the handler never runs.
    Preflight(Response),
    /// An actual request (or no CORS request at all); `Some` when the origin may read the
    /// response.
    Actual(Option<Grant>),
}

/// Classifies the request against the policy.
pub fn decide(cfg: &CorsConfig, req: &Request) -> Decision {
    let Some(origin) = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Decision::Actual(None);
    };
    let grant = grant(cfg, origin);
    if req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        Decision::Preflight(preflight_response(req, grant.as_ref()))
    } else {
        Decision::Actual(grant)
    }
}

/// Adds the CORS headers an actual request's response needs.
pub fn finish(resp: &mut Response, grant: Option<&Grant>) {
    if let Some(grant) = grant {
        apply(resp, grant);
        resp.headers_mut().insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED_HEADERS));
    }
    resp.headers_mut().append(header::VARY, HeaderValue::from_static("Origin"));
}

fn preflight_response(req: &Request, grant: Option<&Grant>) -> Response {
    let requested_headers = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS).and_then(|v| v.to_str().ok()).unwrap_or("");
    let headers_ok = requested_headers
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .all(|h| ALLOWED_HEADERS.contains(&h.as_str()));
    let method_ok = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| ALLOWED_METHODS.split(", ").any(|allowed| allowed == m));
    let mut resp = match grant {
        Some(grant) if headers_ok && method_ok => {
            let mut resp = StatusCode::NO_CONTENT.into_response();
            apply(&mut resp, grant);
            let h = resp.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOWED_METHODS));
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_str(&ALLOWED_HEADERS.join(", ")).unwrap_or(HeaderValue::from_static("content-type")),
            );
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
            resp
        }
        // Refused preflights carry no CORS headers: the browser then blocks the request.
        _ => {
            let id = req.extensions().get::<CorrelationId>().map(|c| c.0.as_str()).unwrap_or_default();
            Problem::new(ErrorCode::Forbidden, "cross-origin request refused: origin, method or headers not allowed")
                .for_request(req.uri().path(), id)
                .into_response()
        }
    };
    resp.headers_mut()
        .append(header::VARY, HeaderValue::from_static("Origin, Access-Control-Request-Method, Access-Control-Request-Headers"));
    resp
}
