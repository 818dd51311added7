//! Why a reconcile fails, and the condition reason each failure reports. A phase returns it
//! for what it cannot get past this time (a refused or failed API call, a key pair that
//! could not be generated); the reconcile writes it to the status and retries with back-off.

use std::time::Duration;

use crate::secrets;

/// The longest a reconcile may take; past it, it fails (and is retried with back-off).
pub const DEADLINE: Duration = Duration::from_secs(120);

/// Why a reconcile failed (written to the status, then retried with back-off).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API refused or failed a call.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A key pair could not be generated.
    #[error(transparent)]
    KeyGen(#[from] secrets::KeyGenError),
    /// The reconcile took longer than [`DEADLINE`].
    #[error("the reconcile took longer than {}s (a Kubernetes or dependency call hung)", DEADLINE.as_secs())]
    Timeout,
}

impl Error {
    /// The condition reason, and whether only a change by someone (RBAC, an admission
    /// policy, the object) can get past it.
    pub(crate) fn reason(&self) -> (&'static str, bool) {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 403 => ("Forbidden", true),
            Error::Kube(kube::Error::Api(s)) if s.code == 422 => ("Invalid", true),
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => ("Conflict", false),
            Error::Timeout => ("ReconcileTimeout", false),
            _ => ("ReconcileError", false),
        }
    }
}
