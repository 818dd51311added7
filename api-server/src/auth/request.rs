//! One request's authentication, done once. The chain gives every API request a
//! [`RequestAuth`] holding the project its matched route names (read once, from the route);
//! the limiter, the upload check and the handler's extractor all ask it who is calling, and the
//! credential is verified — and a refusal logged — at the first ask only.

use std::sync::Arc;

use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::{access::Principal, error::ApiError};

/// The request's project and, once asked, its verified principal. Cheap to clone.
#[derive(Clone, Default)]
pub struct RequestAuth(Arc<Inner>);

#[derive(Default)]
struct Inner {
    project: Option<Uuid>,
    outcome: OnceCell<Result<Principal, Refusal>>,
}

/// Why the credential was not accepted: rejected (the reason is for the log; the answer is a
/// generic 401, or 403 for a cross-site cookie), or a dependency could not be asked.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// The credential is missing, malformed, unknown, expired or revoked.
    Rejected(&'static str),
    /// The database could not be asked (503: the client retries, it is not logged out).
    Unavailable(ApiError),
}

impl RequestAuth {
    /// For a request whose route names `project` (`None`: no project, or an id that does not
    /// parse — the handler reports that one).
    pub fn new(project: Option<Uuid>) -> Self {
        Self(Arc::new(Inner { project, outcome: OnceCell::new() }))
    }

    /// The project the matched route names.
    pub fn project(&self) -> Option<Uuid> {
        self.0.project
    }

    /// The principal: `verify` runs at the first ask only; later asks get its outcome.
    pub async fn principal(&self, verify: impl Future<Output = Result<Principal, Refusal>>) -> Result<Principal, Refusal> {
        self.0.outcome.get_or_init(|| verify).await.clone()
    }
}
