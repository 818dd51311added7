//! How a step of an operation's work ends: the heartbeat's verdict, read between steps, and
//! the endings short of an error. Shared by the workers and every kind's run.

use tokio::sync::watch;

use crate::{db::operations::Heartbeat, error::ApiError};

/// The heartbeat's verdict, watched between steps.
pub type Step = watch::Receiver<Heartbeat>;

/// How a run ended, short of an error.
pub enum Ending {
    /// Finished with this result (JSON text: an export's bundle is never held as a `Value`).
    Done(Box<serde_json::value::RawValue>),
    /// Stopped on request.
    Cancelled,
    /// Another replica holds the lease now.
    Lost,
}

impl Ending {
    /// Finished with a small result built as a value.
    pub fn done(result: &serde_json::Value) -> Result<Self, ApiError> {
        serde_json::value::to_raw_value(result).map(Self::Done).map_err(|e| ApiError::Internal(format!("cannot encode the result: {e}")))
    }
}

/// Stop here? (Between steps: cancel requested, or the lease gone.)
pub fn interrupted(signal: &Step) -> Option<Ending> {
    match *signal.borrow() {
        Heartbeat::Continue => None,
        Heartbeat::Cancel => Some(Ending::Cancelled),
        Heartbeat::Lost => Some(Ending::Lost),
    }
}

/// A step's span beneath the current one, only when that is traced: the log lines of a step
/// keep the run's span (and its operation id) otherwise.
macro_rules! step_span {
    ($($arg:tt)+) => {
        if $crate::client_span::sampled() { ::tracing::error_span!($($arg)+) } else { ::tracing::Span::none() }
    };
}
pub(crate) use step_span;
