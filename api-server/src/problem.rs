//! The HTTP form of every error: RFC 9457 problem JSON. [`crate::error::ApiError`] and the
//! framework's own errors (unknown route, wrong method, unparsable body, …) both end up in
//! [`Problem`] through [`Problem::from_poem_error`], which the problem middleware calls once
//! for every response.

use poem::{
    IntoResponse, Response,
    error::{MethodNotAllowedError, NotFoundError, ParseJsonError, ParsePathError as PoemPathError, SizedLimitError},
    http::StatusCode,
};
use poem_openapi::{
    ApiResponse, Object,
    error::{ContentTypeError, ParseParamError, ParsePathError, ParseRequestPayloadError},
};

use crate::error::{self, ApiError, ErrorCode};

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
#[oai(example)]
pub struct FieldError {
    /// JSON pointer or parameter name of the offending field.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl poem_openapi::types::Example for FieldError {
    fn example() -> Self {
        FieldError { field: "/name".into(), message: "must not be empty".into() }
    }
}

/// An RFC 9457 problem document: the body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
#[oai(example)]
pub struct Problem {
    /// URI identifying the problem type.
    #[oai(rename = "type")]
    pub type_: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// Explanation of this occurrence.
    pub detail: String,
    /// The request path this occurrence belongs to.
    pub instance: String,
    /// Stable machine-readable code, e.g. `NOT_FOUND`, `VALIDATION_FAILED`.
    pub code: String,
    /// Correlation ID of the request; quote it when reporting a problem.
    pub correlation_id: String,
    /// Field-level errors, present for validation failures.
    #[oai(skip_serializing_if_is_none)]
    pub errors: Option<Vec<FieldError>>,
    /// The rate-limit policies a 429 exceeded.
    #[oai(rename = "violated-policies", skip_serializing_if_is_none)]
    pub violated_policies: Option<Vec<String>>,
}

impl poem_openapi::types::Example for Problem {
    fn example() -> Self {
        Problem {
            type_: "https://jeex.dev/problems/validation-failed".into(),
            title: "Validation failed".into(),
            status: 400,
            detail: "the request body is not valid".into(),
            instance: "/api/v1/projects".into(),
            code: "VALIDATION_FAILED".into(),
            correlation_id: "0193b5e4-8f7a-7c2e-b8a1-5e2d0c9f4a11".into(),
            errors: Some(vec![<FieldError as poem_openapi::types::Example>::example()]),
            violated_policies: None,
        }
    }
}

impl From<&error::FieldError> for FieldError {
    fn from(e: &error::FieldError) -> Self {
        Self { field: e.field.clone(), message: e.message.clone() }
    }
}

/// The code a framework error's status stands for.
fn code_of_status(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        405 => ErrorCode::MethodNotAllowed,
        409 => ErrorCode::Conflict,
        412 => ErrorCode::PreconditionFailed,
        413 => ErrorCode::PayloadTooLarge,
        415 => ErrorCode::UnsupportedMediaType,
        429 => ErrorCode::RateLimited,
        503 => ErrorCode::Unavailable,
        400..=499 => ErrorCode::ValidationFailed,
        _ => ErrorCode::Internal,
    }
}

impl ApiResponse for ApiError {
    fn meta() -> poem_openapi::registry::MetaResponses {
        ProblemResponses::meta()
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        ProblemResponses::register(registry);
    }
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        status_of(self.code())
    }
}

/// The error responses documented for every operation; the body is always a [`Problem`].
/// Only its metadata is used: errors travel as [`ApiError`] to the problem middleware.
#[derive(ApiResponse, Debug)]
#[allow(dead_code)] // never constructed: only its metadata is read
enum ProblemResponses {
    /// The request is invalid.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(poem_openapi::payload::Json<Problem>),
    /// Missing or invalid credentials (`WWW-Authenticate` says how to authenticate).
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(poem_openapi::payload::Json<Problem>),
    /// The caller's role does not allow this.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(poem_openapi::payload::Json<Problem>),
    /// No such resource, or not one the caller may see.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(poem_openapi::payload::Json<Problem>),
    /// The resource already exists, or the change would break a rule (e.g. removing the last owner).
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(poem_openapi::payload::Json<Problem>),
    /// `If-Match` names a version that is no longer current.
    #[oai(status = 412, content_type = "application/problem+json")]
    PreconditionFailed(poem_openapi::payload::Json<Problem>),
    /// The request body is over the size limit.
    #[oai(status = 413, content_type = "application/problem+json")]
    TooLarge(poem_openapi::payload::Json<Problem>),
    /// The request body's content type is not accepted.
    #[oai(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(poem_openapi::payload::Json<Problem>),
    /// A rate limit is used up (`Retry-After`, `RateLimit`, `RateLimit-Policy` say when to retry).
    #[oai(status = 429, content_type = "application/problem+json")]
    TooManyRequests(poem_openapi::payload::Json<Problem>),
    /// The server failed.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(poem_openapi::payload::Json<Problem>),
    /// A dependency is unavailable, or the request timed out.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(poem_openapi::payload::Json<Problem>),
}

/// The HTTP status of a code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl Problem {
    /// A problem with the standard title and type for `code`.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            type_: format!("https://jeex.dev/problems/{}", code.as_str().to_ascii_lowercase().replace('_', "-")),
            title: code.title().into(),
            status: code.http_status(),
            detail: detail.into(),
            instance: String::new(),
            code: code.as_str().into(),
            correlation_id: String::new(),
            errors: None,
            violated_policies: None,
        }
    }

    /// Classifies any error that reached the edge of the app. `expose_internal` decides whether
    /// a 5xx error's own message may be shown.
    pub fn from_poem_error(err: &poem::Error, expose_internal: bool) -> Self {
        if let Some(api) = err.downcast_ref::<ApiError>() {
            let mut p = Problem::new(api.code(), api.to_string());
            match api {
                ApiError::Validation { errors, .. } => p.errors = Some(errors.iter().map(FieldError::from).collect()),
                ApiError::Internal(_) if !expose_internal => p.detail = "an unexpected error occurred".into(),
                _ => {}
            }
            return p;
        }
        if err.is::<NotFoundError>() {
            return Problem::new(ErrorCode::NotFound, "no resource at this path");
        }
        if err.is::<MethodNotAllowedError>() {
            return Problem::new(ErrorCode::MethodNotAllowed, "this path does not accept that method; see the Allow header");
        }
        if let Some(e) = err.downcast_ref::<ContentTypeError>() {
            let detail = match e {
                ContentTypeError::ExpectContentType => "a Content-Type header is required".to_string(),
                ContentTypeError::NotSupported { content_type } => {
                    format!("content type {content_type:?} is not supported; send application/json")
                }
            };
            return Problem::new(ErrorCode::UnsupportedMediaType, detail);
        }
        if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
            let mut p = Problem::new(ErrorCode::ValidationFailed, "the request body is not valid");
            p.errors = Some(vec![payload_field(&e.reason)]);
            return p;
        }
        if let Some(e) = err.downcast_ref::<ParseParamError>() {
            let mut p = Problem::new(ErrorCode::ValidationFailed, format!("parameter {:?} is not valid", e.name));
            p.errors = Some(vec![FieldError { field: e.name.to_string(), message: e.reason.clone() }]);
            return p;
        }
        if let Some(e) = err.downcast_ref::<ParsePathError>() {
            let mut p = Problem::new(ErrorCode::ValidationFailed, format!("path parameter {:?} is not valid", e.name));
            p.errors = Some(vec![FieldError { field: e.name.to_string(), message: e.reason.clone() }]);
            return p;
        }
        if err.is::<PoemPathError>() {
            return Problem::new(ErrorCode::ValidationFailed, "a path parameter is not valid");
        }
        if let Some(e) = err.downcast_ref::<ParseJsonError>() {
            let mut p = Problem::new(ErrorCode::ValidationFailed, "the request body is not valid JSON");
            p.errors = Some(vec![FieldError { field: "body".into(), message: e.to_string() }]);
            return p;
        }
        if err.is::<SizedLimitError>() {
            return Problem::new(ErrorCode::PayloadTooLarge, "the request body exceeds the configured limit");
        }
        let status = err.status();
        let code = code_of_status(status);
        let detail =
            if status.is_server_error() && !expose_internal { "an unexpected error occurred".to_string() } else { err.to_string() };
        let mut p = Problem::new(code, detail);
        p.status = status.as_u16();
        p
    }

    /// Sets the request-specific members.
    pub fn for_request(mut self, instance: &str, correlation_id: &str) -> Self {
        self.instance = instance.to_owned();
        self.correlation_id = correlation_id.to_owned();
        self
    }

    /// Renders as an `application/problem+json` response. The detail and field messages pass
    /// the redaction point: a dependency's error text may embed a credential.
    pub fn into_response(mut self) -> Response {
        self.detail = crate::telemetry::redact::redact(&self.detail).into_owned();
        for e in self.errors.iter_mut().flatten() {
            e.message = crate::telemetry::redact::redact(&e.message).into_owned();
        }
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&poem_openapi::types::ToJSON::to_json(&self)).unwrap_or_default();
        Response::builder().status(status).content_type(PROBLEM_JSON).body(body).into_response()
    }
}

/// The field a body parse error names, as a JSON pointer with a plain message. The
/// framework says `failed to parse "T": field `title` verification failed. maxLength(500)`;
/// the client reads `/title`: `must be at most 500 characters`.
fn payload_field(reason: &str) -> FieldError {
    let Some((name, tail)) = reason.split_once("field `").and_then(|(_, rest)| rest.split_once('`')) else {
        return FieldError { field: "body".into(), message: reason.into() };
    };
    let rule = tail.trim_start_matches([':', ' ']).trim_start_matches("verification failed. ");
    let arg = |prefix: &str| rule.strip_prefix(prefix).map(|r| r.trim_end_matches(')').split(',').next().unwrap_or("").trim().to_owned());
    let message = if let Some(n) = arg("maxLength(") {
        format!("must be at most {n} characters")
    } else if let Some(n) = arg("minLength(") {
        format!("must be at least {n} characters")
    } else if let Some(n) = arg("maximum(") {
        format!("must be at most {n}")
    } else if let Some(n) = arg("minimum(") {
        format!("must be at least {n}")
    } else if let Some(p) = rule.strip_prefix("pattern(").map(|r| r.trim_end_matches(')').trim_matches('"')) {
        format!("must match the pattern {p}")
    } else {
        rule.to_owned()
    };
    FieldError { field: format!("/{name}"), message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_are_hidden_unless_exposed() {
        let err = poem::Error::from(ApiError::Internal("relation \"x\" does not exist".into()));
        assert_eq!(Problem::from_poem_error(&err, false).detail, "an unexpected error occurred");
        assert!(Problem::from_poem_error(&err, true).detail.contains("relation"));
    }

    #[test]
    fn body_parse_errors_name_their_field() {
        let field = |reason: &str| {
            let e = payload_field(reason);
            (e.field, e.message)
        };
        assert_eq!(
            field("failed to parse \"CreateDocument\": field `title` verification failed. maxLength(500)"),
            ("/title".into(), "must be at most 500 characters".into())
        );
        assert_eq!(
            field("failed to parse \"SearchDocuments\": field `limit` verification failed. maximum(100, exclusive: false)"),
            ("/limit".into(), "must be at most 100".into())
        );
        assert_eq!(field("failed to parse \"X\": field `name` verification failed. pattern(\"^a$\")").1, "must match the pattern ^a$");
        assert_eq!(field("expected value at line 1 column 1"), ("body".into(), "expected value at line 1 column 1".into()));
    }

    #[test]
    fn framework_errors_get_stable_codes() {
        let p = Problem::from_poem_error(&poem::Error::from(NotFoundError), false);
        assert_eq!((p.status, p.code.as_str()), (404, "NOT_FOUND"));
        let p = Problem::from_poem_error(&poem::Error::from(MethodNotAllowedError), false);
        assert_eq!((p.status, p.code.as_str()), (405, "METHOD_NOT_ALLOWED"));
        assert_eq!(p.type_, "https://jeex.dev/problems/method-not-allowed");
    }
}
