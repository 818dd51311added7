//! Entering a project from a handler: the membership check ([`Scoped::begin`]) and then the
//! project's shared rate-limit quota, in that order — only a caller the check admitted
//! spends the project's budget. And staying in it: [`StreamWatch`] repeats the check for
//! every open event stream, so a stream ends soon after its caller's access does.

use std::time::Duration;

use uuid::Uuid;

use crate::{
    auth::principal::{Auth, Caller},
    db::scope::Scoped,
    error::{ApiError, ErrorCode},
    state::AppState,
};

/// Opens `project_id`'s scope for the authenticated caller and charges the project's quota.
pub async fn scoped(state: &AppState, auth: &Auth, project_id: Uuid) -> Result<Scoped, ApiError> {
    let scoped = Scoped::begin(&state.deps().postgres, &auth.0, project_id).await?;
    // A refused charge drops (rolls back) the transaction before anything ran in it.
    auth.1.charge(state.limiter(), project_id).await?;
    Ok(scoped)
}

/// Re-checks the access of every open event stream of this replica every
/// `JEEX_SSE_ACCESS_CHECK`: a removed member's, a deleted project's or a revoked key's streams
/// end within that interval (plus one check), and their reconnects are refused by the same
/// check. A database that cannot answer ends nothing (its outage is not a revocation).
/// Stops when dropped.
pub struct StreamWatch(Option<tokio::task::JoinHandle<()>>);

impl StreamWatch {
    /// Starts watching `state`'s streams.
    pub fn spawn(state: AppState) -> Self {
        let every = state.config().events.access_check;
        Self(Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                recheck(&state).await;
            }
        })))
    }
}

impl StreamWatch {
    /// Stops watching and waits until the task has let go of the state (and with it the
    /// connections and the vector index it holds).
    pub async fn stop(mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for StreamWatch {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// One round: each distinct (project, caller) streaming here goes through the membership
/// check again (one short read-only transaction each).
async fn recheck(state: &AppState) {
    for (project, principal) in state.events().holders() {
        let caller = Caller { principal, correlation_id: "stream-access".into() };
        let checked = tokio::time::timeout(Duration::from_secs(5), Scoped::begin(&state.deps().postgres, &caller, project)).await;
        match checked {
            Ok(Ok(scoped)) => drop(scoped),
            Ok(Err(ApiError::Status(ErrorCode::NotFound, _))) => {
                let ended = state.events().revoke(project, &caller.principal);
                tracing::info!(%project, streams = ended, "access to the project ended; its streams end");
            }
            // Unreachable or slow database: keep streaming, ask again next round.
            Ok(Err(_)) | Err(_) => {}
        }
    }
}
