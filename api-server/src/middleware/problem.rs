//! Turns every error that reaches it — the handlers' [`ApiError`]s and the framework's own
//! (unknown route, wrong method, unparsable body, …) — into `application/problem+json` with
//! the request's correlation ID. Server errors are logged here, once.
//!
//! [`ApiError`]: crate::error::ApiError

use poem::{
    Response,
    http::{HeaderValue, StatusCode, header},
};

use super::correlation::CorrelationId;
use crate::{problem::Problem, routes::RouteTable};

/// The challenge of every 401: no hint at which check failed.
const WWW_AUTHENTICATE: &str = "Bearer realm=\"jeex\"";

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "1";

/// poem-openapi names an unparsable path parameter by position (`param0`); say its name.
fn name_path_parameter(problem: &mut Problem, routes: &RouteTable, err: &poem::Error, path: &str) {
    let Some(e) = err.downcast_ref::<poem_openapi::error::ParsePathError>() else { return };
    let Some(index) = e.name.strip_prefix("param").and_then(|n| n.parse::<usize>().ok()) else { return };
    let Some(name) = routes.find(path).and_then(|r| r.param_name(index)) else { return };
    problem.detail = format!("path parameter {name:?} is not valid");
    if let Some(field) = problem.errors.as_mut().and_then(|errors| errors.first_mut()) {
        field.field = name.to_owned();
    }
}

/// The problem response for `err`, raised while serving `path`.
/// `expose_internal` shows internal error messages in 5xx bodies; `routes` supply the `Allow`
/// header of a 405.
pub fn respond(routes: &RouteTable, expose_internal: bool, err: &poem::Error, path: &str, id: &CorrelationId) -> Response {
    let mut problem = Problem::from_poem_error(err, expose_internal).for_request(path, &id.0);
    name_path_parameter(&mut problem, routes, err, path);
    if problem.status >= 500 {
        tracing::error!(status = problem.status, code = %problem.code, correlation_id = %id.0, error = %err, "request failed");
    }
    let status = problem.status;
    let mut resp = problem.into_response();
    if status == StatusCode::METHOD_NOT_ALLOWED.as_u16()
        && let Some(allow) = routes.find(path).and_then(|r| HeaderValue::from_str(&r.allow_header()).ok())
    {
        resp.headers_mut().insert(header::ALLOW, allow);
    }
    if status == StatusCode::UNAUTHORIZED.as_u16() {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(WWW_AUTHENTICATE));
    }
    if status == StatusCode::SERVICE_UNAVAILABLE.as_u16() {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    }
    resp
}
