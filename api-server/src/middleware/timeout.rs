//! Bounds the time to produce a response; past it the request is answered 503 with
//! `Retry-After`. Streaming bodies (SSE) are not cut: the limit covers producing the head.

use std::time::Duration;

use crate::error::ApiError;

/// The error a request that ran out of time becomes.
pub fn to_error(limit: Duration) -> poem::Error {
    ApiError::TimedOut(limit).into()
}
