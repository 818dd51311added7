//! Entering a project from a handler: the membership check ([`Scoped::begin`]) and then the
//! project's shared rate-limit quota, in that order — only a caller the check admitted
//! spends the project's budget.

use uuid::Uuid;

use crate::{auth::principal::Auth, db::scope::Scoped, error::ApiError, state::AppState};

/// Opens `project_id`'s scope for the authenticated caller and charges the project's quota.
pub async fn scoped(state: &AppState, auth: &Auth, project_id: Uuid) -> Result<Scoped, ApiError> {
    let scoped = Scoped::begin(&state.deps().postgres, &auth.0, project_id).await?;
    // A refused charge drops (rolls back) the transaction before anything ran in it.
    auth.1.charge(state.limiter(), project_id).await?;
    Ok(scoped)
}
