//! `/api/v1/projects/{project_id}/operations`: start, follow, cancel long-running work, and
//! fetch its result.

use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{
    ApiTags,
    responses::{OperationList, Passed, RawJson},
};
use crate::{
    auth::principal::Auth,
    db::{
        operations::{self, Operation, OperationKind, OperationStatus},
        page::Page,
        scope::{Role, Scoped},
    },
    error::{ApiError, FieldError},
    ops::import,
    state::AppState,
};

/// Work to start.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct StartOperation {
    /// `documents.import` (input `{documents: [{title, content?, language?, metadata?,
    /// embedding?}]}`, at most 10,000 and within the request body limit; a `project.export`
    /// result is accepted as it stands, its ids, times and versions left behind: the copies are
    /// new documents), `project.export` (input `{}`) or `documents.reindex` (input `{}`:
    /// rebuilds the project's part of the vector index from the database).
    pub kind: OperationKind,
    /// The kind's input.
    pub input: Option<serde_json::Value>,
}

impl poem_openapi::types::Example for StartOperation {
    fn example() -> Self {
        Self {
            kind: OperationKind::DocumentsImport,
            input: Some(serde_json::json!({ "documents": [{ "title": "Notes", "content": "First import", "language": "en" }] })),
        }
    }
}

/// 202: accepted and queued (or, for a cancel, requested).
#[derive(ApiResponse)]
pub enum Accepted {
    /// The operation; follow `Location`.
    #[oai(status = 202)]
    Accepted(Json<Operation>, #[oai(header = "Location")] String),
}

/// Operation endpoints.
pub struct OperationsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Operations")]
impl OperationsApi {
    /// Start an operation (editor or owner). Inputs are validated now; the work runs in the
    /// background on any replica.
    #[oai(path = "/projects/:project_id/operations", method = "post")]
    async fn start(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        project_id: Path<Uuid>,
        body: Json<StartOperation>,
    ) -> Result<Accepted, ApiError> {
        let input = body.input.clone().unwrap_or_else(|| serde_json::json!({}));
        match body.kind {
            OperationKind::DocumentsImport => {
                import::parse(&input, state.config().document_max_bytes, state.config().vectors.dim)?;
            }
            OperationKind::ProjectExport | OperationKind::DocumentsReindex if input != serde_json::json!({}) => {
                return Err(ApiError::Validation {
                    detail: "the operation input is not valid".into(),
                    errors: vec![FieldError { field: "/input".into(), message: "must be an empty object".into() }],
                });
            }
            OperationKind::ProjectExport => {}
            OperationKind::DocumentsReindex => {
                if !state.deps().vectors.is_enabled() {
                    return Err(crate::vectors::IndexError::Disabled.into());
                }
            }
        }
        let mut s = Scoped::begin(&state.deps().postgres, &auth.0, project_id.0).await?;
        s.scope().require(Role::Editor)?;
        let op = operations::create(&mut s, body.kind, &input, state.config().operations.max_attempts).await?;
        s.commit().await?;
        crate::ops::events::emit(
            &state,
            op.project_id,
            op.id,
            "queued",
            serde_json::json!({ "kind": poem_openapi::types::ToJSON::to_json(&op.kind) }),
        )
        .await;
        let location = format!("/api/v1/projects/{}/operations/{}", op.project_id, op.id);
        Ok(Accepted::Accepted(Json(op), location))
    }

    /// The project's operations, newest first.
    #[oai(path = "/projects/:project_id/operations", method = "get")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        project_id: Path<Uuid>,
        /// Only operations in this status.
        status: Query<Option<OperationStatus>>,
        /// Page size, 1–100 (default 20).
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<OperationList>, ApiError> {
        let page = Page::parse(limit.0, cursor.0.as_deref())?;
        let mut s = Scoped::begin(&state.deps().postgres, &auth.0, project_id.0).await?;
        let paged = operations::list(&mut s, status.0, &page).await?;
        s.commit().await?;
        Ok(Json(paged.into()))
    }

    /// One operation: status, progress, error.
    #[oai(path = "/projects/:project_id/operations/:operation_id", method = "get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        project_id: Path<Uuid>,
        operation_id: Path<Uuid>,
    ) -> Result<Json<Operation>, ApiError> {
        let mut s = Scoped::begin(&state.deps().postgres, &auth.0, project_id.0).await?;
        let op = operations::get(&mut s, operation_id.0).await?;
        s.commit().await?;
        Ok(Json(op))
    }

    /// Cancel (editor or owner): a queued operation ends at once, a running one within a
    /// second; an ended one is returned unchanged.
    #[oai(path = "/projects/:project_id/operations/:operation_id", method = "delete")]
    async fn cancel(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        project_id: Path<Uuid>,
        operation_id: Path<Uuid>,
    ) -> Result<Accepted, ApiError> {
        let mut s = Scoped::begin(&state.deps().postgres, &auth.0, project_id.0).await?;
        s.scope().require(Role::Editor)?;
        let op = operations::cancel(&mut s, operation_id.0).await?;
        s.commit().await?;
        let what = match op.status {
            OperationStatus::Cancelled => Some("cancelled"),
            OperationStatus::Running => Some("cancel_requested"),
            _ => None,
        };
        if let Some(what) = what {
            crate::ops::events::emit(&state, op.project_id, op.id, what, serde_json::json!({})).await;
        }
        let location = format!("/api/v1/projects/{}/operations/{}", op.project_id, op.id);
        Ok(Accepted::Accepted(Json(op), location))
    }

    /// The result of a succeeded operation (the export bundle, or the import's or reindex's
    /// counts); 409 before it has succeeded.
    #[oai(path = "/projects/:project_id/operations/:operation_id/result", method = "get")]
    async fn result(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        project_id: Path<Uuid>,
        operation_id: Path<Uuid>,
    ) -> Result<Passed, ApiError> {
        let mut s = Scoped::begin(&state.deps().postgres, &auth.0, project_id.0).await?;
        let result = operations::result(&mut s, operation_id.0).await?;
        s.commit().await?;
        Ok(Passed::Ok(RawJson(result)))
    }
}
