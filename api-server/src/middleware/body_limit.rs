//! Rejects request bodies over the configured limit with 413, whether or not the client
//! declared a `Content-Length`: the body is read up to the limit before the handler runs.

use poem::{
    Body, Request, Result,
    error::ReadBodyError,
    http::{Version, header},
};

use crate::error::{ApiError, ErrorCode};

/// Whether the request may have a body: an HTTP/1 request without Content-Length or
/// Transfer-Encoding has none, and most requests (GET) take this fast path. HTTP/2 frames
/// bodies without either header, so its requests are always read through the limit.
pub fn has_body(req: &Request) -> bool {
    let http1 = matches!(req.version(), Version::HTTP_10 | Version::HTTP_11);
    !http1 || declared_length(req).is_some_and(|len| len > 0) || req.headers().contains_key(header::TRANSFER_ENCODING)
}

fn declared_length(req: &Request) -> Option<u64> {
    req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
}

/// Reads the body into memory if it fits `limit`; errors with 413 if it does not. Callers box
/// this future: it holds a read buffer, and keeping it out of the request future keeps that
/// future small for the common body-less request.
pub async fn buffer(limit: usize, req: &mut Request) -> Result<()> {
    if declared_length(req).is_some_and(|len| len > limit as u64) {
        return Err(too_large(limit));
    }
    {
        match req.take_body().into_bytes_limit(limit).await {
            Ok(bytes) => req.set_body(Body::from_bytes(bytes)),
            Err(ReadBodyError::PayloadTooLarge) => return Err(too_large(limit)),
            Err(e) => return Err(ApiError::Validation { detail: format!("could not read the request body: {e}"), errors: vec![] }.into()),
        }
    }
    Ok(())
}

fn too_large(limit: usize) -> poem::Error {
    ApiError::Status(ErrorCode::PayloadTooLarge, format!("the request body exceeds the limit of {limit} bytes")).into()
}
