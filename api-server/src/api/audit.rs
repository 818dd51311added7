//! `GET /api/v1/projects/{project_id}/audit` (owner only).

use poem::web::Data;
use poem_openapi::{OpenApi, param::Query, payload::Json};

use super::{ApiTags, access::project, responses::AuditList};
use crate::{
    access::Owner,
    db::{audit, page::Page},
    error::ApiError,
    state::AppState,
};

/// Audit endpoints.
pub struct AuditApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Audit")]
impl AuditApi {
    /// Every change made in the project, newest first (owner only).
    #[oai(path = "/projects/:project_id/audit", method = "get")]
    async fn list(
        &self,
        state: Data<&AppState>,
        project_id: project::Path<Owner>,
        /// Page size, 1–100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<AuditList>, ApiError> {
        let page = Page::parse(limit.0, cursor.0.as_deref())?;
        let paged = project_id.read(&state, async |e| audit::list(e, &page).await).await?;
        Ok(Json(paged.into()))
    }
}
