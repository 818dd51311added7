//! Rejects request bodies over the configured limit with 413, whether or not the client
//! declared a `Content-Length`: the body is read up to the limit before the handler runs.

use std::sync::Arc;

use poem::{Body, Endpoint, IntoResponse, Request, Response, Result, error::ReadBodyError, http::header};

use crate::error::{ApiError, ErrorCode};

/// The middleware function.
pub async fn handle<E: Endpoint>(limit: usize, ep: Arc<E>, mut req: Request) -> Result<Response> {
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large(limit));
    }
    if declared != Some(0) {
        match req.take_body().into_bytes_limit(limit).await {
            Ok(bytes) => req.set_body(Body::from_bytes(bytes)),
            Err(ReadBodyError::PayloadTooLarge) => return Err(too_large(limit)),
            Err(e) => return Err(ApiError::Validation { detail: format!("could not read the request body: {e}"), errors: vec![] }.into()),
        }
    }
    Ok(ep.call(req).await?.into_response())
}

fn too_large(limit: usize) -> poem::Error {
    ApiError::Status(ErrorCode::PayloadTooLarge, format!("the request body exceeds the limit of {limit} bytes")).into()
}
