//! Documents inside a project, with full-text search in each document's own language.

use crate::access::{Admits, Checked, Editor, Entry, Level, Scoped};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    audit,
    page::{Page, Paged},
    projects::Expected,
};
use crate::error::{ApiError, ErrorCode};

/// A document with its content.
#[derive(Debug, Clone, sqlx::FromRow)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
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
#[derive(Debug, Clone, sqlx::FromRow)]
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
    pub rank: Option<f32>,
}

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

/// Creates a document and its audit row in one statement that enters the project again (the
/// write's second round trip, after [`crate::access::Entry::check`]): `jeex_enter` feeds the
/// INSERT its one row, so the row is written under the settings it made, and the audit row is
/// written from the created one. Both or neither.
pub async fn create(c: &mut Checked<impl Admits<Editor>>, new: &NewDocument) -> Result<Document, ApiError> {
    let (e, conn) = c.parts();
    let doc = sqlx::query_as!(
        Document,
        r#"WITH entered AS MATERIALIZED (SELECT jeex_enter($1, $2, $3, $4) AS role),
           created AS (
               INSERT INTO documents (id, project_id, title, content, language, metadata, created_by, embedding)
               SELECT $5, $3, $6, $7, $8, $9, $1, $10 FROM entered
               RETURNING id, project_id, title, content, language, metadata, created_by, created_at, updated_at, version,
                   CASE WHEN embedding IS NOT NULL THEN 'current' WHEN embedding_stale THEN 'stale' ELSE 'none' END AS embedding_status),
           recorded AS (
               INSERT INTO audit_log (id, project_id, actor_user_id, actor_api_key_id, action, entity_type, entity_id, correlation_id, details)
               SELECT $11, $3, $1, $2, 'document.create', 'document', created.id, $12, jsonb_build_object('title', created.title) FROM created)
           SELECT id AS "id!", project_id AS "project_id!", title AS "title!", content AS "content!", language AS "language!",
                  metadata AS "metadata!", created_by, created_at AS "created_at!", updated_at AS "updated_at!", version AS "version!",
                  embedding_status AS "embedding_status!: EmbeddingStatus"
           FROM created"#,
        e.user(),
        e.key(),
        e.project_id(),
        e.needs(),
        Uuid::now_v7(),
        &new.title,
        &new.content,
        &new.language,
        &new.metadata,
        new.embedding.as_deref(),
        Uuid::now_v7(),
        &e.caller().correlation_id
    )
    .fetch_one(conn)
    .await?;
    Ok(doc)
}

/// One live document of the project, in one statement that enters it (see
/// [`super::projects::read`] for the shape).
pub async fn get(e: &Entry<impl Level>, id: Uuid) -> Result<Document, ApiError> {
    sqlx::query_as!(
        Document,
        r#"SELECT d.id AS "id!", d.project_id AS "project_id!", d.title AS "title!", d.content AS "content!", d.language AS "language!",
                  d.metadata AS "metadata!", d.created_by, d.created_at AS "created_at!", d.updated_at AS "updated_at!", d.version AS "version!",
                  d.embedding_status AS "embedding_status!: EmbeddingStatus"
           FROM jeex_enter($1, $2, $3, $4) AS entered(role)
           CROSS JOIN LATERAL (
               SELECT id, project_id, title, content, language, metadata, created_by, created_at, updated_at, version,
                   CASE WHEN embedding IS NOT NULL THEN 'current' WHEN embedding_stale THEN 'stale' ELSE 'none' END AS embedding_status
               FROM documents WHERE project_id = $3 AND id = $5 AND deleted_at IS NULL AND entered.role IS NOT NULL OFFSET 0) d"#,
        e.user(),
        e.key(),
        e.project_id(),
        e.needs(),
        id
    )
    .fetch_optional(e.exec())
    .await?
    .ok_or_else(not_found)
}

/// Live documents, newest first; with `q`, the matches ranked by relevance. One statement
/// that enters the project (see [`super::projects::read`] for the shape).
pub async fn list(e: &Entry<impl Level>, q: Option<&str>, page: &Page) -> Result<Paged<DocumentSummary>, ApiError> {
    match q {
        None => {
            let rows = sqlx::query_as!(
                DocumentSummary,
                r#"SELECT d.id AS "id!", d.title AS "title!", d.language AS "language!", d.metadata AS "metadata!",
                          d.content_length AS "content_length!", d.created_at AS "created_at!", d.updated_at AS "updated_at!",
                          d.version AS "version!", NULL::real AS "rank?"
                   FROM jeex_enter($1, $2, $3, $4) AS entered(role)
                   CROSS JOIN LATERAL (
                       SELECT id, title, language, metadata, char_length(content) AS content_length, created_at, updated_at, version
                       FROM documents
                       WHERE project_id = $3 AND deleted_at IS NULL AND ($5::uuid IS NULL OR id < $5) AND entered.role IS NOT NULL
                       ORDER BY id DESC LIMIT $6 OFFSET 0) d
                   ORDER BY d.id DESC"#,
                e.user(),
                e.key(),
                e.project_id(),
                e.needs(),
                page.after()?,
                page.fetch()
            )
            .fetch_all(e.exec())
            .await?;
            Ok(Paged::keyset(rows, page, |d| d.id))
        }
        Some(q) => {
            let offset = page.offset()?;
            // The query is parsed with each document's own language, so stems match.
            let rows = sqlx::query_as!(
                DocumentSummary,
                r#"SELECT d.id AS "id!", d.title AS "title!", d.language AS "language!", d.metadata AS "metadata!",
                          d.content_length AS "content_length!", d.created_at AS "created_at!", d.updated_at AS "updated_at!",
                          d.version AS "version!", d.rank AS "rank?"
                   FROM jeex_enter($1, $2, $3, $4) AS entered(role)
                   CROSS JOIN LATERAL (
                       SELECT id, title, language, metadata, char_length(content) AS content_length, created_at, updated_at, version,
                              ts_rank(search, query) AS rank
                       FROM documents, websearch_to_tsquery(jeex_ts_config(language), $5) AS query
                       WHERE project_id = $3 AND deleted_at IS NULL AND search @@ query AND entered.role IS NOT NULL
                       ORDER BY ts_rank(search, query) DESC, id DESC LIMIT $6 OFFSET $7) d
                   ORDER BY d.rank DESC, d.id DESC"#,
                e.user(),
                e.key(),
                e.project_id(),
                e.needs(),
                q,
                page.fetch(),
                i64::from(offset)
            )
            .fetch_all(e.exec())
            .await?;
            Ok(Paged::ranked(rows, page, offset))
        }
    }
}

/// Applies `changes` when the version matches `expected`.
pub async fn update(
    s: &mut Scoped<impl Admits<Editor>>,
    id: Uuid,
    changes: &DocumentChanges,
    expected: Expected<'_>,
) -> Result<Document, ApiError> {
    let (scope, conn) = s.parts();
    let updated = sqlx::query_as!(
        Document,
        r#"UPDATE documents SET title = coalesce($3, title), content = coalesce($4, content), language = coalesce($5, language),
               metadata = coalesce($6, metadata), version = version + 1, updated_at = now(),
               embedding = CASE WHEN $8::real[] IS NOT NULL THEN $8 WHEN $4::text IS DISTINCT FROM content AND $4 IS NOT NULL THEN NULL ELSE embedding END,
               embedding_stale = CASE WHEN $8::real[] IS NOT NULL THEN false
                                      WHEN $4::text IS DISTINCT FROM content AND $4 IS NOT NULL THEN embedding IS NOT NULL OR embedding_stale
                                      ELSE embedding_stale END
           WHERE project_id = $1 AND id = $2 AND deleted_at IS NULL AND ($7::bigint[] IS NULL OR version = ANY($7))
           RETURNING id, project_id, title, content, language, metadata, created_by, created_at, updated_at, version,
               CASE WHEN embedding IS NOT NULL THEN 'current' WHEN embedding_stale THEN 'stale' ELSE 'none' END AS "embedding_status!: EmbeddingStatus""#,
        scope.project_id(),
        id,
        changes.title.as_deref(),
        changes.content.as_deref(),
        changes.language.as_deref(),
        changes.metadata.as_ref(),
        expected,
        changes.embedding.as_deref()
    )
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
pub async fn delete(s: &mut Scoped<impl Admits<Editor>>, id: Uuid, expected: Expected<'_>) -> Result<(), ApiError> {
    let (scope, conn) = s.parts();
    let deleted = sqlx::query_scalar!(
        "UPDATE documents SET deleted_at = now(), version = version + 1, updated_at = now()
         WHERE project_id = $1 AND id = $2 AND deleted_at IS NULL AND ($3::bigint[] IS NULL OR version = ANY($3)) RETURNING id",
        scope.project_id(),
        id,
        expected
    )
    .fetch_optional(conn)
    .await?;
    if deleted.is_none() {
        return Err(missing_or_changed(s, id).await);
    }
    audit::record(s, "document.delete", "document", id, serde_json::json!({})).await
}

/// After a conditional write matched nothing: 404 if the document is gone, else 412.
async fn missing_or_changed(s: &mut Scoped<impl Level>, id: Uuid) -> ApiError {
    let (scope, conn) = s.parts();
    let live = sqlx::query_scalar!(
        r#"SELECT 1 AS "live!" FROM documents WHERE project_id = $1 AND id = $2 AND deleted_at IS NULL"#,
        scope.project_id(),
        id
    )
    .fetch_optional(conn)
    .await;
    match live {
        Ok(Some(_)) => {
            ApiError::Status(ErrorCode::PreconditionFailed, "the document has changed since the given ETag; fetch it again".into())
        }
        Ok(None) => not_found(),
        Err(e) => e.into(),
    }
}

/// Full-text ranking of the scoped project's live documents (optionally one language), best
/// first: the search fallback when there is no vector.
pub async fn text_ranking(s: &mut Scoped<impl Level>, q: &str, language: Option<&str>, limit: i64) -> Result<Vec<(Uuid, f32)>, ApiError> {
    let (scope, conn) = s.parts();
    let rows = sqlx::query!(
        r#"SELECT id, ts_rank(search, query) AS "rank!"
           FROM documents, websearch_to_tsquery(jeex_ts_config(language), $2) AS query
           WHERE project_id = $1 AND deleted_at IS NULL AND search @@ query AND ($3::text IS NULL OR language = $3)
           ORDER BY 2 DESC, id DESC LIMIT $4"#,
        scope.project_id(),
        q,
        language,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.rank)).collect())
}

/// What a search result shows of a document.
#[derive(Debug, Clone)]
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
pub async fn search_details(s: &mut Scoped<impl Level>, ids: &[Uuid], text: Option<&str>) -> Result<Vec<SearchDetails>, ApiError> {
    let (scope, conn) = s.parts();
    let rows = sqlx::query_as!(
        SearchDetails,
        r#"SELECT id, title, language,
                  CASE WHEN $3::text IS NULL THEN left(content, 200)
                       ELSE ts_headline(jeex_ts_config(language), left(content, 20000), websearch_to_tsquery(jeex_ts_config(language), $3),
                                        'MaxFragments=1, MaxWords=30, MinWords=8, StartSel=**, StopSel=**') END AS "snippet!"
           FROM documents WHERE project_id = $1 AND id = ANY($2) AND deleted_at IS NULL"#,
        scope.project_id(),
        ids,
        text
    )
    .fetch_all(conn)
    .await?;
    Ok(rows)
}
