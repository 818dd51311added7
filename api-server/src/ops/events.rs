//! Operation events: `operation.queued`, `.running`, `.progress`, `.succeeded`, `.failed`,
//! `.cancelled`, `.cancel_requested`. Publishing never fails an operation: a lost event is
//! logged, and the operation's state stays readable through the API.

use uuid::Uuid;

use crate::state::AppState;

/// Publishes `operation.<what>` for `operation` in `project`.
pub async fn emit(state: &AppState, project: Uuid, operation: Uuid, what: &str, data: serde_json::Value) {
    let kind = format!("operation.{what}");
    if let Err(e) = state.events().publish(project, &kind, Some(operation), data).await {
        tracing::warn!(%operation, event = %kind, error = %e, "event not published");
    }
}
