//! The domain's one error type: what went wrong, in the domain's terms, with a stable
//! [`ErrorCode`]. Every layer returns it; the HTTP layer maps it to problem JSON once
//! ([`crate::problem`]). Nothing here knows HTTP beyond the status number each code is
//! answered with.

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON pointer or parameter name of the offending field.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Stable error codes. The problem `type` URI is derived from the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400: the request is malformed or fails validation.
    ValidationFailed,
    /// 401
    Unauthorized,
    /// 403
    Forbidden,
    /// 404
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 409
    Conflict,
    /// 412: `If-Match` did not match the current version.
    PreconditionFailed,
    /// 413
    PayloadTooLarge,
    /// 415
    UnsupportedMediaType,
    /// 429
    RateLimited,
    /// 500
    Internal,
    /// 503: a dependency is unavailable or the server is overloaded.
    Unavailable,
    /// 503 after the request time limit.
    Timeout,
}

impl ErrorCode {
    /// The code's wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidationFailed => "VALIDATION_FAILED",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::Conflict => "CONFLICT",
            Self::PreconditionFailed => "PRECONDITION_FAILED",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::RateLimited => "RATE_LIMITED",
            Self::Internal => "INTERNAL_ERROR",
            Self::Unavailable => "SERVICE_UNAVAILABLE",
            Self::Timeout => "REQUEST_TIMEOUT",
        }
    }

    /// The HTTP status the code is answered with (the problem mapping uses it).
    pub fn http_status(self) -> u16 {
        match self {
            Self::ValidationFailed => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict => 409,
            Self::PreconditionFailed => 412,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::RateLimited => 429,
            Self::Internal => 500,
            Self::Unavailable | Self::Timeout => 503,
        }
    }

    /// Short summary of the problem type.
    pub fn title(self) -> &'static str {
        match self {
            Self::ValidationFailed => "Validation failed",
            Self::Unauthorized => "Authentication required",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::Conflict => "Conflict",
            Self::PreconditionFailed => "Precondition failed",
            Self::PayloadTooLarge => "Request body too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::RateLimited => "Too many requests",
            Self::Internal => "Internal server error",
            Self::Unavailable => "Service unavailable",
            Self::Timeout => "Request timed out",
        }
    }
}

/// The error type of every layer (storage, workers, handlers).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// Input failed validation; carries the field errors.
    #[error("{detail}")]
    Validation {
        /// Summary.
        detail: String,
        /// Per-field errors.
        errors: Vec<FieldError>,
    },
    /// A client-facing error with its code and an explanation safe to show.
    #[error("{1}")]
    Status(ErrorCode, String),
    /// The request took longer than the configured limit.
    #[error("the request took longer than {}", humantime::format_duration(*.0))]
    TimedOut(std::time::Duration),
    /// Anything unexpected; the detail is only shown when error details are exposed.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// Whether trying again later may succeed: a dependency was unavailable, or a concurrent
    /// change interfered. The operation workers retry these instead of failing the operation.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Status(ErrorCode::Unavailable | ErrorCode::Conflict, _))
    }

    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Validation { .. } => ErrorCode::ValidationFailed,
            Self::Status(code, _) => *code,
            Self::TimedOut(_) => ErrorCode::Timeout,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}
