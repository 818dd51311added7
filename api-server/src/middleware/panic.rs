//! A panicking handler answers 500 instead of dropping the connection; the server keeps
//! serving. The panic itself is logged by the process's panic hook, inside the request span,
//! so the log line carries the correlation ID.

use std::{panic::AssertUnwindSafe, sync::Arc};

use futures_util::FutureExt;
use poem::{Endpoint, IntoResponse, Request, Response, Result};

use crate::error::ApiError;

/// The middleware function.
pub async fn handle<E: Endpoint>(ep: Arc<E>, req: Request) -> Result<Response> {
    match AssertUnwindSafe(ep.call(req)).catch_unwind().await {
        Ok(result) => Ok(result?.into_response()),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            Err(ApiError::Internal(format!("handler panicked: {message}")).into())
        }
    }
}
