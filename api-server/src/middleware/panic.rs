//! A panicking handler answers 500 instead of dropping the connection; the server keeps
//! serving. The panic itself is logged by the process's panic hook, inside the request span,
//! so the log line carries the correlation ID.

use std::any::Any;

use crate::error::ApiError;

/// The 500 error a caught panic becomes.
pub fn to_error(payload: &(dyn Any + Send)) -> poem::Error {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into());
    ApiError::Internal(format!("handler panicked: {message}")).into()
}
