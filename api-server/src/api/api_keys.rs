//! `/api/v1/projects/{project_id}/api-keys` (owner only). The key itself is in the create
//! response and nowhere else, ever.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{
    ApiTags,
    access::project,
    responses::{ApiKeyList, Created, Deleted},
    text::Text,
    validation::Check,
    views::ApiKeyInfo,
};
use crate::{
    access::{Owner, Role},
    auth::api_keys as keys,
    db::{api_keys, page::Page},
    error::{ApiError, FieldError},
    state::AppState,
};

/// A key to create.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct CreateApiKey {
    /// What the key is for, 1–200 characters.
    #[oai(validator(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    ))]
    pub name: Text,
    /// `viewer` (default) or `editor`; keys never act as owners.
    pub role: Option<Role>,
    /// When the key stops working; absent means never.
    pub expires_at: Option<DateTime<Utc>>,
}

impl poem_openapi::types::Example for CreateApiKey {
    fn example() -> Self {
        Self { name: "CI importer".into(), role: Some(Role::Editor), expires_at: None }
    }
}

/// A created key, with its secret: shown this once.
#[derive(Object)]
pub struct CreatedApiKey {
    /// The stored key's description.
    #[oai(flatten)]
    pub api_key: ApiKeyInfo,
    /// The key; send it as `X-API-Key`. It cannot be shown again.
    pub key: String,
}

/// API key endpoints.
pub struct ApiKeysApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::ApiKeys")]
impl ApiKeysApi {
    /// Create a key for the project (owner only).
    #[oai(path = "/projects/:project_id/api-keys", method = "post")]
    async fn create(
        &self,
        state: Data<&AppState>,
        project_id: project::Path<Owner>,
        body: Json<CreateApiKey>,
    ) -> Result<Created<CreatedApiKey>, ApiError> {
        let mut check = Check::default();
        let name = check.text("/name", &body.name, 200);
        check.finish()?;
        let role = body.role.unwrap_or(Role::Viewer);
        if role == Role::Owner {
            return Err(ApiError::Validation {
                detail: "the request body is not valid".into(),
                errors: vec![FieldError { field: "/role".into(), message: "must be viewer or editor".into() }],
            });
        }
        if body.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(ApiError::Validation {
                detail: "the request body is not valid".into(),
                errors: vec![FieldError { field: "/expires_at".into(), message: "must be in the future".into() }],
            });
        }
        let mut s = project_id.open(&state).await?;
        let key = keys::generate();
        let info = api_keys::create(&mut s, &name, role, body.expires_at, &key.prefix, &key.secret_hash).await?;
        s.commit().await?;
        let location = format!("/api/v1/projects/{}/api-keys/{}", project_id.id(), info.id);
        Ok(Created::Created(Json(CreatedApiKey { api_key: info.into(), key: key.plaintext }), location, None))
    }

    /// The project's live keys (owner only; never their secrets).
    #[oai(path = "/projects/:project_id/api-keys", method = "get")]
    async fn list(
        &self,
        state: Data<&AppState>,
        project_id: project::Path<Owner>,
        /// Page size, 1–100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<ApiKeyList>, ApiError> {
        let page = Page::parse(limit.0, cursor.0.as_deref())?;
        let paged = project_id.read(&state, async |e| api_keys::list(e, &page).await).await?;
        Ok(Json(paged.into()))
    }

    /// Revoke a key (owner only); it stops working at once.
    #[oai(path = "/projects/:project_id/api-keys/:key_id", method = "delete")]
    async fn revoke(&self, state: Data<&AppState>, project_id: project::Path<Owner>, key_id: Path<Uuid>) -> Result<Deleted, ApiError> {
        let mut s = project_id.open(&state).await?;
        api_keys::revoke(&mut s, key_id.0).await?;
        s.commit().await?;
        Ok(Deleted::NoContent)
    }
}
