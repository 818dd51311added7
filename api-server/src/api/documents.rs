//! `/api/v1/projects/{project_id}/documents`.

use poem::web::Data;
use poem_openapi::{
    Object, OpenApi,
    param::{Header, Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{
    ApiTags,
    access::project,
    etag,
    responses::{Created, Deleted, DocumentList, Tagged},
    text::Text,
    validation::Check,
    views::Document,
};
use crate::{
    access::{Editor, Viewer},
    db::{
        documents::{self, DocumentChanges, NewDocument},
        page::Page,
    },
    error::ApiError,
    state::AppState,
};

/// Longest title, in characters.
pub const TITLE_MAX: usize = 500;
/// Longest search query, in characters.
pub const QUERY_MAX: usize = 200;

/// A new document.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct CreateDocument {
    /// Title, 1–500 characters (trimmed).
    #[oai(validator(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    ))]
    pub title: Text,
    /// Body text, up to `JEEX_DOCUMENT_MAX_SIZE` bytes (default 512 KiB).
    pub content: Option<Text>,
    /// Language code (default `en`); selects stemming for search.
    #[oai(validator(pattern = r"^[a-z]{2}(-[A-Z]{2})?$"))]
    pub language: Option<Text>,
    /// Free-form JSON object.
    pub metadata: Option<serde_json::Value>,
    /// Embedding of the content: exactly `JEEX_VECTOR_DIM` (default 384) finite numbers.
    /// Makes the document findable by vector search.
    pub embedding: Option<Vec<f64>>,
}

impl poem_openapi::types::Example for CreateDocument {
    fn example() -> Self {
        Self {
            title: "Requirements".into(),
            content: Some("The system shall isolate every project's data.".into()),
            language: Some("en".into()),
            metadata: Some(serde_json::json!({ "source": "workshop" })),
            embedding: None,
        }
    }
}

/// Changes to a document; omitted fields stay as they are.
#[derive(Object)]
#[oai(example)]
#[oai(deny_unknown_fields)]
pub struct UpdateDocument {
    /// New title.
    #[oai(validator(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    ))]
    pub title: Option<Text>,
    /// New content.
    pub content: Option<Text>,
    /// New language code.
    #[oai(validator(pattern = r"^[a-z]{2}(-[A-Z]{2})?$"))]
    pub language: Option<Text>,
    /// New metadata object (replaces the old one).
    pub metadata: Option<serde_json::Value>,
    /// New embedding. Changing `content` without one drops the old embedding from the index
    /// (`embedding_status` becomes `stale`).
    pub embedding: Option<Vec<f64>>,
}

/// Document endpoints.
pub struct DocumentsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Documents")]
impl DocumentsApi {
    /// Create a document (editor or owner).
    #[oai(path = "/projects/:project_id/documents", method = "post")]
    async fn create(
        &self,
        state: Data<&AppState>,
        project_id: project::Path<Editor>,
        body: Json<CreateDocument>,
    ) -> Result<Created<Document>, ApiError> {
        let max = state.config().document_max_bytes;
        let mut check = Check::default();
        let content = body.content.clone().unwrap_or_default().0;
        check.max_bytes("/content", &content, max);
        let metadata = body.metadata.clone().unwrap_or_else(|| serde_json::json!({}));
        check.metadata("/metadata", &metadata, state.config().metadata);
        let new = NewDocument {
            title: check.text("/title", &body.title, TITLE_MAX),
            content,
            language: check.language("/language", body.language.as_deref().unwrap_or("en")),
            metadata,
            embedding: body.embedding.as_deref().map(|e| check.embedding("/embedding", e, state.config().vectors.dim)),
        };
        check.finish()?;
        let mut checked = project_id.check(&state).await?;
        let doc = documents::create(&mut checked, &new).await?;
        let location = format!("/api/v1/projects/{}/documents/{}", doc.project_id, doc.id);
        let tag = etag::of(doc.version);
        Ok(Created::Created(Json(doc.into()), location, Some(tag)))
    }

    /// The project's documents, newest first; with `q`, full-text matches ranked by relevance.
    #[oai(path = "/projects/:project_id/documents", method = "get")]
    async fn list(
        &self,
        state: Data<&AppState>,
        project_id: project::Path<Viewer>,
        /// Search terms (web-search syntax: words, "phrases", -exclusions, or); blank lists all.
        #[oai(validator(max_length = 200, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$"))]
        q: Query<Option<String>>,
        /// Page size, 1–100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<DocumentList>, ApiError> {
        let page = Page::parse(limit.0, cursor.0.as_deref())?;
        let q = match q.0.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(q) => {
                let mut check = Check::default();
                let q = check.text("q", q, QUERY_MAX);
                check.finish()?;
                Some(q)
            }
        };
        let paged = project_id.read(&state, async |e| documents::list(e, q.as_deref(), &page).await).await?;
        Ok(Json(paged.into()))
    }

    /// One document.
    #[oai(path = "/projects/:project_id/documents/:document_id", method = "get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        project_id: project::Path<Viewer>,
        document_id: Path<Uuid>,
    ) -> Result<Tagged<Document>, ApiError> {
        let doc = project_id.read(&state, async |e| documents::get(e, document_id.0).await).await?;
        let tag = etag::of(doc.version);
        Ok(Tagged::Ok(Json(doc.into()), tag))
    }

    /// Change a document (editor or owner). With `If-Match`, only if it is unchanged (else 412).
    #[oai(path = "/projects/:project_id/documents/:document_id", method = "patch")]
    async fn update(
        &self,
        state: Data<&AppState>,
        project_id: project::Path<Editor>,
        document_id: Path<Uuid>,
        /// `ETag` from a previous read.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: Json<UpdateDocument>,
    ) -> Result<Tagged<Document>, ApiError> {
        let max = state.config().document_max_bytes;
        let mut check = Check::default();
        if let Some(content) = &body.content {
            check.max_bytes("/content", content, max);
        }
        if let Some(metadata) = &body.metadata {
            check.metadata("/metadata", metadata, state.config().metadata);
        }
        let changes = DocumentChanges {
            title: body.title.as_deref().map(|t| check.text("/title", t, TITLE_MAX)),
            content: body.content.as_ref().map(|c| c.0.clone()),
            language: body.language.as_deref().map(|l| check.language("/language", l)),
            metadata: body.metadata.clone(),
            embedding: body.embedding.as_deref().map(|e| check.embedding("/embedding", e, state.config().vectors.dim)),
        };
        check.finish()?;
        let expected = etag::if_match(if_match.0.as_deref());
        let mut s = project_id.open(&state).await?;
        let doc = documents::update(&mut s, document_id.0, &changes, expected.as_deref()).await?;
        s.commit().await?;
        let tag = etag::of(doc.version);
        Ok(Tagged::Ok(Json(doc.into()), tag))
    }

    /// Delete a document (editor or owner; a soft delete). With `If-Match`, only if unchanged.
    #[oai(path = "/projects/:project_id/documents/:document_id", method = "delete")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        project_id: project::Path<Editor>,
        document_id: Path<Uuid>,
        /// `ETag` from a previous read.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
    ) -> Result<Deleted, ApiError> {
        let expected = etag::if_match(if_match.0.as_deref());
        let mut s = project_id.open(&state).await?;
        documents::delete(&mut s, document_id.0, expected.as_deref()).await?;
        s.commit().await?;
        Ok(Deleted::NoContent)
    }
}

impl poem_openapi::types::Example for UpdateDocument {
    fn example() -> Self {
        Self { title: Some("Requirements v2".into()), content: None, language: None, metadata: None, embedding: None }
    }
}
