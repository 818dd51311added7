//! Bounds the time to produce a response; past it the request is answered 503 with
//! `Retry-After`. Streaming bodies (SSE) are not cut: the limit covers producing the head.

use std::{sync::Arc, time::Duration};

use poem::{Endpoint, IntoResponse, Request, Response, Result};

use crate::error::ApiError;

/// The middleware function.
pub async fn handle<E: Endpoint>(limit: Duration, ep: Arc<E>, req: Request) -> Result<Response> {
    match tokio::time::timeout(limit, ep.call(req)).await {
        Ok(result) => Ok(result?.into_response()),
        Err(_) => Err(ApiError::TimedOut(limit).into()),
    }
}
