//! Documents inside a project, with full-text search in each document's own language.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use uuid::Uuid;

use super::{
    audit,
    page::{Page, Paged},
    projects::Expected,
    scope::Scoped,
};
use crate::error::{ApiError, ErrorCode};

/// A document with its content.
#[derive(Debug, Clone, Object, sqlx::FromRow)]
#[oai(example)]
pub struct Document {
    /// Document id.
    pub id: Uuid,
    /// The project it belongs to.
    pub project_id: Uuid,
    /// Title (1–500 characters).
    pub title: String,
    /// Body text.
    pub content: String,
    /// Language code; selects stemming for search.
    pub language: String,
    /// Free-form JSON object.
    pub metadata: serde_json::Value,
    /// Creator (a user; absent when an API key created it).
    pub created_by: Option<Uuid>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency version; the `ETag` is this number in quotes.
    pub version: i64,
    /// Whether the document has an embedding in the vector index.
    pub embedding_status: EmbeddingStatus,
}

/// Where a document's embedding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum, sqlx::Type)]
#[oai(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum EmbeddingStatus {
    /// None was given.
    None,
    /// The embedding matches the content; it is (or will shortly be) in the index.
    Current,
    /// The content changed after the embedding was given: the vector was removed from the
    /// index until a new embedding arrives.
    Stale,
}

/// A document in a list: everything but the content, plus the search rank.
#[derive(Debug, Clone, Object, sqlx::FromRow)]
#[oai(example)]
pub struct DocumentSummary {
    /// Document id.
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// Language code.
    pub language: String,
    /// Free-form JSON object.
    pub metadata: serde_json::Value,
    /// Content length in characters.
    pub content_length: i32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Version.
    pub version: i64,
    /// Relevance to `q` (higher is better); absent without `q`.
    #[oai(skip_serializing_if_is_none)]
    pub rank: Option<f32>,
}

const COLUMNS: &str = "id, project_id, title, content, language, metadata, created_by, created_at, updated_at, version, \
     CASE WHEN embedding IS NOT NULL THEN 'current' WHEN embedding_stale THEN 'stale' ELSE 'none' END AS embedding_status";
const SUMMARY: &str = "id, title, language, metadata, char_length(content) AS content_length, created_at, updated_at, version";

/// Fields of a new document (validated by the API layer).
pub struct NewDocument {
    /// Title.
    pub title: String,
    /// Content.
    pub content: String,
    /// Language code.
    pub language: String,
    /// Metadata object.
    pub metadata: serde_json::Value,
    /// Embedding, already checked against the configured dimension.
    pub embedding: Option<Vec<f32>>,
}

/// Changes to a document; `None` leaves a field as it is.
#[derive(Default)]
pub struct DocumentChanges {
    /// New title.
    pub title: Option<String>,
    /// New content.
    pub content: Option<String>,
    /// New language.
    pub language: Option<String>,
    /// New metadata (replaces the old object).
    pub metadata: Option<serde_json::Value>,
    /// New embedding. Without one, changed content drops the old embedding (it is stale).
    pub embedding: Option<Vec<f32>>,
}

fn not_found() -> ApiError {
    ApiError::Status(ErrorCode::NotFound, "no such document in this project".into())
}

/// Creates a document in the scoped project.
pub async fn create(s: &mut Scoped, new: &NewDocument) -> Result<Document, ApiError> {
    let (scope, conn) = s.parts();
    let sql = format!(
        "INSERT INTO documents (id, project_id, title, content, language, metadata, created_by, embedding) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    );
    let doc = sqlx::query_as::<_, Document>(&sql)
        .bind(Uuid::now_v7())
        .bind(scope.project_id())
        .bind(&new.title)
        .bind(&new.content)
        .bind(&new.language)
        .bind(&new.metadata)
        .bind(scope.caller().user_id())
        .bind(&new.embedding)
        .fetch_one(conn)
        .await?;
    audit::record(s, "document.create", "document", doc.id, serde_json::json!({ "title": doc.title })).await?;
    Ok(doc)
}

/// One live document of the scoped project.
pub async fn get(s: &mut Scoped, id: Uuid) -> Result<Document, ApiError> {
    let (scope, conn) = s.parts();
    let sql = format!("SELECT {COLUMNS} FROM documents WHERE project_id = $1 AND id = $2 AND deleted_at IS NULL");
    sqlx::query_as::<_, Document>(&sql).bind(scope.project_id()).bind(id).fetch_optional(conn).await?.ok_or_else(not_found)
}

/// Live documents, newest first; with `q`, the matches ranked by relevance.
pub async fn list(s: &mut Scoped, q: Option<&str>, page: &Page) -> Result<Paged<DocumentSummary>, ApiError> {
    let (scope, conn) = s.parts();
    match q {
        None => {
            let sql = format!(
                "SELECT {SUMMARY}, NULL::real AS rank FROM documents \
                 WHERE project_id = $1 AND deleted_at IS NULL AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
            );
            let rows = sqlx::query_as::<_, DocumentSummary>(&sql)
                .bind(scope.project_id())
                .bind(page.after()?)
                .bind(page.fetch())
                .fetch_all(conn)
                .await?;
            Ok(Paged::keyset(rows, page, |d| d.id))
        }
        Some(q) => {
            let offset = page.offset()?;
            // The query is parsed with each document's own language, so stems match.
            let sql = format!(
                "SELECT {SUMMARY}, ts_rank(search, query) AS rank \
                 FROM documents, websearch_to_tsquery(jeex_ts_config(language), $2) AS query \
                 WHERE project_id = $1 AND deleted_at IS NULL AND search @@ query \
                 ORDER BY rank DESC, id DESC LIMIT $3 OFFSET $4"
            );
            let rows = sqlx::query_as::<_, DocumentSummary>(&sql)
                .bind(scope.project_id())
                .bind(q)
                .bind(page.fetch())
                .bind(i64::from(offset))
                .fetch_all(conn)
                .await?;
            Ok(Paged::ranked(rows, page, offset))
        }
    }
}

/// Applies `changes` when the version matches `expected`.
pub async fn update(s: &mut Scoped, id: Uuid, changes: &DocumentChanges, expected: Expected<'_>) -> Result<Document, ApiError> {
    let (scope, conn) = s.parts();
    let sql = format!(
        "UPDATE documents SET title = coalesce($3, title), content = coalesce($4, content), language = coalesce($5, language), \
         metadata = coalesce($6, metadata), version = version + 1, updated_at = now(), \
         embedding = CASE WHEN $8::real[] IS NOT NULL THEN $8 WHEN $4::text IS DISTINCT FROM content AND $4 IS NOT NULL THEN NULL ELSE embedding END, \
         embedding_stale = CASE WHEN $8::real[] IS NOT NULL THEN false \
                                WHEN $4::text IS DISTINCT FROM content AND $4 IS NOT NULL THEN embedding IS NOT NULL OR embedding_stale \
                                ELSE embedding_stale END \
         WHERE project_id = $1 AND id = $2 AND deleted_at IS NULL AND ($7::bigint[] IS NULL OR version = ANY($7)) RETURNING {COLUMNS}"
    );
    let updated = sqlx::query_as::<_, Document>(&sql)
        .bind(scope.project_id())
        .bind(id)
        .bind(&changes.title)
        .bind(&changes.content)
        .bind(&changes.language)
        .bind(&changes.metadata)
        .bind(expected)
        .bind(&changes.embedding)
        .fetch_optional(&mut *conn)
        .await?;
    let doc = match updated {
        Some(doc) => doc,
        None => return Err(missing_or_changed(s, id).await),
    };
    let fields: Vec<&str> = [
        changes.title.as_ref().map(|_| "title"),
        changes.content.as_ref().map(|_| "content"),
        changes.language.as_ref().map(|_| "language"),
        changes.metadata.as_ref().map(|_| "metadata"),
        changes.embedding.as_ref().map(|_| "embedding"),
    ]
    .into_iter()
    .flatten()
    .collect();
    audit::record(s, "document.update", "document", id, serde_json::json!({ "fields": fields, "version": doc.version })).await?;
    Ok(doc)
}

/// Soft-deletes a document when the version matches `expected`.
pub async fn delete(s: &mut Scoped, id: Uuid, expected: Expected<'_>) -> Result<(), ApiError> {
    let (scope, conn) = s.parts();
    let deleted: Option<Uuid> = sqlx::query_scalar(
        "UPDATE documents SET deleted_at = now(), version = version + 1, updated_at = now() \
         WHERE project_id = $1 AND id = $2 AND deleted_at IS NULL AND ($3::bigint[] IS NULL OR version = ANY($3)) RETURNING id",
    )
    .bind(scope.project_id())
    .bind(id)
    .bind(expected)
    .fetch_optional(conn)
    .await?;
    if deleted.is_none() {
        return Err(missing_or_changed(s, id).await);
    }
    audit::record(s, "document.delete", "document", id, serde_json::json!({})).await
}

/// After a conditional write matched nothing: 404 if the document is gone, else 412.
async fn missing_or_changed(s: &mut Scoped, id: Uuid) -> ApiError {
    match get(s, id).await {
        Ok(_) => ApiError::Status(ErrorCode::PreconditionFailed, "the document has changed since the given ETag; fetch it again".into()),
        Err(e) => e,
    }
}

impl poem_openapi::types::Example for Document {
    fn example() -> Self {
        Self {
            id: uuid::Uuid::from_u128(0x0193b5e4_8f7a_7c2e_b8a1_000000000003),
            project_id: uuid::Uuid::from_u128(0x0193b5e4_8f7a_7c2e_b8a1_000000000001),
            title: "Requirements".into(),
            content: "The system shall isolate every project's data.".into(),
            language: "en".into(),
            metadata: serde_json::json!({ "source": "workshop" }),
            created_by: Some(uuid::Uuid::from_u128(0x0193b5e4_8f7a_7c2e_b8a1_000000000002)),
            created_at: "2026-11-24T09:30:00Z".parse().unwrap_or_default(),
            updated_at: "2026-11-24T09:30:00Z".parse().unwrap_or_default(),
            version: 1,
            embedding_status: EmbeddingStatus::Current,
        }
    }
}

impl poem_openapi::types::Example for DocumentSummary {
    fn example() -> Self {
        Self {
            id: uuid::Uuid::from_u128(0x0193b5e4_8f7a_7c2e_b8a1_000000000003),
            title: "Requirements".into(),
            language: "en".into(),
            metadata: serde_json::json!({ "source": "workshop" }),
            content_length: 46,
            created_at: "2026-11-24T09:30:00Z".parse().unwrap_or_default(),
            updated_at: "2026-11-24T09:30:00Z".parse().unwrap_or_default(),
            version: 1,
            rank: Some(0.6),
        }
    }
}

/// Full-text ranking of the scoped project's live documents (optionally one language), best
/// first: the search fallback when there is no vector.
pub async fn text_ranking(s: &mut Scoped, q: &str, language: Option<&str>, limit: i64) -> Result<Vec<(Uuid, f32)>, ApiError> {
    let (scope, conn) = s.parts();
    let rows = sqlx::query_as::<_, (Uuid, f32)>(
        "SELECT id, ts_rank(search, query) AS rank \
         FROM documents, websearch_to_tsquery(jeex_ts_config(language), $2) AS query \
         WHERE project_id = $1 AND deleted_at IS NULL AND search @@ query AND ($3::text IS NULL OR language = $3) \
         ORDER BY rank DESC, id DESC LIMIT $4",
    )
    .bind(scope.project_id())
    .bind(q)
    .bind(language)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows)
}

/// What a search result shows of a document.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SearchDetails {
    /// Document id.
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// Language.
    pub language: String,
    /// The passage matching `text`, or the content's beginning.
    pub snippet: String,
}

/// Titles and snippets of the scoped project's live documents among `ids` (in no order; the
/// index may still hold a document deleted a moment ago, and it is left out here).
pub async fn search_details(s: &mut Scoped, ids: &[Uuid], text: Option<&str>) -> Result<Vec<SearchDetails>, ApiError> {
    let (scope, conn) = s.parts();
    let rows = sqlx::query_as::<_, SearchDetails>(
        "SELECT id, title, language, \
                CASE WHEN $3::text IS NULL THEN left(content, 200) \
                     ELSE ts_headline(jeex_ts_config(language), left(content, 20000), websearch_to_tsquery(jeex_ts_config(language), $3), \
                                      'MaxFragments=1, MaxWords=30, MinWords=8, StartSel=**, StopSel=**') END AS snippet \
         FROM documents WHERE project_id = $1 AND id = ANY($2) AND deleted_at IS NULL",
    )
    .bind(scope.project_id())
    .bind(ids)
    .bind(text)
    .fetch_all(conn)
    .await?;
    Ok(rows)
}
