//! Rejects request bodies over the configured limit with 413, whether or not the client
//! declared a `Content-Length`: the body is read up to the limit before the handler runs.
//!
//! One route takes more: `POST …/operations`, whose import input may hold 10,000 documents
//! (tens of MiB). Raising the limit for every route would let any request hold that much, so
//! only this route gets [`Uploads::limit`], and only [`UPLOADS_AT_ONCE`] bodies over the
//! general limit are read at a time per replica: what they can take is bounded, whatever the
//! clients send.

use std::sync::Arc;

use bytes::Bytes;

use poem::{
    Body, Request, Result,
    error::ReadBodyError,
    http::{Version, header},
};

use uuid::Uuid;

use crate::{
    access::Editor,
    auth::{principal::authenticate, request::RequestAuth},
    error::{ApiError, ErrorCode},
    routes::RouteEntry,
    state::AppState,
};

/// The route that takes large bodies (an import's documents), as the spec names it.
pub const UPLOAD_ROUTE: &str = "/api/v1/projects/{project_id}/operations";

/// Bodies over the general limit read at once per replica; each may hold the body and its
/// parsed copy, so this bounds their memory at a few times [`Uploads::limit`].
pub const UPLOADS_AT_ONCE: usize = 2;

/// The larger limit of [`UPLOAD_ROUTE`], and the permits for reading such bodies.
pub struct Uploads {
    /// Largest body the route accepts.
    pub limit: usize,
    permits: Arc<tokio::sync::Semaphore>,
}

/// A permit to read (and handle) one large body; released when the request is done.
pub type UploadPermit = tokio::sync::OwnedSemaphorePermit;

impl Uploads {
    /// `limit` for [`UPLOAD_ROUTE`], [`UPLOADS_AT_ONCE`] at a time.
    pub fn new(limit: usize) -> Self {
        Self { limit, permits: Arc::new(tokio::sync::Semaphore::new(UPLOADS_AT_ONCE)) }
    }

    /// The project of `req` on `route` when it is an upload whose body may be larger than
    /// `general` (declared larger, or of unknown length): it needs [`authorize`] and a
    /// permit, and gets [`Self::limit`]. A path whose project id does not parse is left to
    /// the handler's own error, under the general limit.
    pub fn large_upload(&self, general: usize, route: Option<&RouteEntry>, req: &Request) -> Option<Uuid> {
        let large = req.method() == poem::http::Method::POST
            && route.is_some_and(|r| &*r.template == UPLOAD_ROUTE)
            && declared_length(req).is_none_or(|len| len > general as u64);
        large.then(|| req.extensions().get::<RequestAuth>().and_then(RequestAuth::project)).flatten()
    }

    /// A permit, or 503 when all are taken: the client retries (`Retry-After`) rather than
    /// the server holding another large body.
    pub fn permit(&self) -> Result<UploadPermit> {
        self.permits.clone().try_acquire_owned().map_err(|_| {
            ApiError::Status(
                ErrorCode::Unavailable,
                format!("{UPLOADS_AT_ONCE} large uploads are being read on this replica; retry shortly"),
            )
            .into()
        })
    }
}

/// Lets a large upload be read only for a caller who may start operations in `project` (an
/// editor or owner; an API key of that project): anyone else could hold the few upload slots
/// with bodies that are refused only once read. The same answer the handler would give, 401,
/// 403 or 404, before the body is read.
pub async fn authorize(state: &AppState, req: &Request, project: Uuid) -> Result<()> {
    let caller = authenticate(req).await?;
    state.deps().db.scoped::<Editor>(&caller, project).await?;
    Ok(())
}

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
/// The bytes are returned too (a shared handle, not a copy) for the input guard to scan.
pub async fn buffer(limit: usize, req: &mut Request) -> Result<Bytes> {
    if declared_length(req).is_some_and(|len| len > limit as u64) {
        return Err(too_large(limit));
    }
    match req.take_body().into_bytes_limit(limit).await {
        Ok(bytes) => {
            req.set_body(Body::from_bytes(bytes.clone()));
            Ok(bytes)
        }
        Err(ReadBodyError::PayloadTooLarge) => Err(too_large(limit)),
        Err(e) => Err(ApiError::Validation { detail: format!("could not read the request body: {e}"), errors: vec![] }.into()),
    }
}

fn too_large(limit: usize) -> poem::Error {
    ApiError::Status(ErrorCode::PayloadTooLarge, format!("the request body exceeds the limit of {limit} bytes")).into()
}
