//! What the API serves for stored rows. Each type mirrors its row in `db` field for field
//! (`#[oai(remote)]` writes the conversion), so the spec documents exactly what is served and
//! the storage layer knows nothing of HTTP.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use uuid::Uuid;

use crate::access::Role;

/// A key as listed (never its secret).
#[derive(Debug, Clone, Object)]
#[oai(remote = "crate::db::api_keys::ApiKeyInfo")]
#[oai(example)]
pub struct ApiKeyInfo {
    /// Key id.
    pub id: Uuid,
    /// What it is for.
    pub name: String,
    /// Public part of the key (`jeex_<prefix>_…`), to recognise it.
    pub prefix: String,
    /// Role it acts with: `editor` or `viewer`.
    pub role: Role,
    /// Who created it.
    pub created_by: Option<Uuid>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
}

impl poem_openapi::types::Example for ApiKeyInfo {
    fn example() -> Self {
        Self {
            id: uuid::Uuid::from_u128(0x0193b5e4_8f7a_7c2e_b8a1_000000000004),
            name: "CI importer".into(),
            prefix: "Q3xk9TzP0aLm".into(),
            role: Role::Editor,
            created_by: Some(uuid::Uuid::from_u128(0x0193b5e4_8f7a_7c2e_b8a1_000000000002)),
            created_at: "2026-11-24T09:30:00Z".parse().unwrap_or_default(),
            expires_at: None,
        }
    }
}

/// One recorded change.
#[derive(Debug, Clone, Object)]
#[oai(remote = "crate::db::audit::AuditEntry")]
#[oai(example)]
pub struct AuditEntry {
    /// Entry id.
    pub id: Uuid,
    /// The acting user, when a user acted.
    pub actor_user_id: Option<Uuid>,
    /// The acting API key, when a key acted.
    pub actor_api_key_id: Option<Uuid>,
    /// What happened, e.g. `document.update`.
    pub action: String,
    /// Kind of the changed entity: `project`, `member`, `document`, `api_key`.
    pub entity_type: String,
    /// Id of the changed entity.
    pub entity_id: Uuid,
    /// Correlation ID of the request that made the change.
    pub correlation_id: String,
    /// Facts about the change (changed field names, roles, …), never secrets or contents.
    pub details: serde_json::Value,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl poem_openapi::types::Example for AuditEntry {
    fn example() -> Self {
        Self {
            id: uuid::Uuid::from_u128(0x0193b5e4_8f7a_7c2e_b8a1_000000000005),
            actor_user_id: Some(uuid::Uuid::from_u128(0x0193b5e4_8f7a_7c2e_b8a1_000000000002)),
            actor_api_key_id: None,
            action: "document.update".into(),
            entity_type: "document".into(),
            entity_id: uuid::Uuid::from_u128(0x0193b5e4_8f7a_7c2e_b8a1_000000000003),
            correlation_id: "0193b5e4-8f7a-7c2e-b8a1-5e2d0c9f4a11".into(),
            details: serde_json::json!({ "fields": ["title"], "version": 2 }),
            created_at: "2026-11-24T09:30:00Z".parse().unwrap_or_default(),
        }
    }
}

/// A document with its content.
#[derive(Debug, Clone, Object)]
#[oai(remote = "crate::db::documents::Document")]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(remote = "crate::db::documents::EmbeddingStatus")]
#[oai(rename_all = "lowercase")]
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
#[derive(Debug, Clone, Object)]
#[oai(remote = "crate::db::documents::DocumentSummary")]
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

/// A member of a project.
#[derive(Debug, Clone, Object)]
#[oai(remote = "crate::db::members::Member")]
#[oai(example)]
pub struct Member {
    /// The user's id.
    pub user_id: Uuid,
    /// Their email.
    pub email: String,
    /// Their name.
    pub name: String,
    /// Their role in the project.
    pub role: Role,
    /// When they joined.
    pub created_at: DateTime<Utc>,
    /// When their role last changed.
    pub updated_at: DateTime<Utc>,
}

impl poem_openapi::types::Example for Member {
    fn example() -> Self {
        Self {
            user_id: uuid::Uuid::from_u128(0x0193b5e4_8f7a_7c2e_b8a1_000000000002),
            email: "ann@example.com".into(),
            name: "Ann".into(),
            role: Role::Owner,
            created_at: "2026-11-24T09:30:00Z".parse().unwrap_or_default(),
            updated_at: "2026-11-24T09:30:00Z".parse().unwrap_or_default(),
        }
    }
}

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(remote = "crate::db::operations::OperationKind")]
pub enum OperationKind {
    /// Insert documents in batches, idempotently.
    #[oai(rename = "documents.import")]
    DocumentsImport,
    /// Build a JSON bundle of the project and its documents.
    #[oai(rename = "project.export")]
    ProjectExport,
    /// Rebuild the project's part of the vector index from PostgreSQL.
    #[oai(rename = "documents.reindex")]
    DocumentsReindex,
}

/// Where an operation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(remote = "crate::db::operations::OperationStatus")]
#[oai(rename_all = "lowercase")]
pub enum OperationStatus {
    /// Waiting for a worker.
    Queued,
    /// A worker holds it.
    Running,
    /// Done; the result is available.
    Succeeded,
    /// Gave up; `error` says why.
    Failed,
    /// Stopped on request.
    Cancelled,
}

/// An operation as the API shows it (its result is fetched separately; its input serves only
/// its worker and is dropped when it ends).
#[derive(Debug, Clone, Object)]
#[oai(remote = "crate::db::operations::Operation")]
pub struct Operation {
    /// Operation id.
    pub id: Uuid,
    /// Its project.
    pub project_id: Uuid,
    /// What it does.
    pub kind: OperationKind,
    /// Where it is.
    pub status: OperationStatus,
    /// Percent done.
    pub progress: i16,
    /// Why it failed.
    pub error: Option<String>,
    /// Claims so far (a replica that dies mid-way costs one).
    pub attempt: i32,
    /// Whether a cancel was requested.
    pub cancel_requested: bool,
    /// The user who started it.
    pub created_by: Option<Uuid>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// First claimed.
    pub started_at: Option<DateTime<Utc>>,
    /// Ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Lifecycle state of a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(remote = "crate::db::projects::ProjectStatus")]
#[oai(rename_all = "lowercase")]
pub enum ProjectStatus {
    /// Being set up.
    Draft,
    /// In progress.
    Active,
    /// Finished.
    Completed,
    /// Finished and kept for reference.
    Archived,
}

/// A project.
#[derive(Debug, Clone, Object)]
#[oai(remote = "crate::db::projects::Project")]
#[oai(example)]
pub struct Project {
    /// Project id.
    pub id: Uuid,
    /// Name (1–200 characters).
    pub name: String,
    /// Lifecycle state.
    pub status: ProjectStatus,
    /// Current workflow step (1–100).
    pub current_step: i32,
    /// Language code, e.g. `en` or `de-AT`.
    pub language: String,
    /// The user who created it.
    pub created_by: Option<Uuid>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency version; the `ETag` is this number in quotes.
    pub version: i64,
}

impl poem_openapi::types::Example for Project {
    fn example() -> Self {
        Self {
            id: uuid::Uuid::from_u128(0x0193b5e4_8f7a_7c2e_b8a1_000000000001),
            name: "Website relaunch".into(),
            status: ProjectStatus::Active,
            current_step: 2,
            language: "en".into(),
            created_by: Some(uuid::Uuid::from_u128(0x0193b5e4_8f7a_7c2e_b8a1_000000000002)),
            created_at: "2026-11-24T09:30:00Z".parse().unwrap_or_default(),
            updated_at: "2026-11-24T09:30:00Z".parse().unwrap_or_default(),
            version: 3,
        }
    }
}

/// A user as the API shows it.
#[derive(Debug, Clone, Object)]
#[oai(remote = "crate::db::users::User")]
#[oai(example)]
pub struct User {
    /// User id (the `sub` of their tokens).
    pub id: Uuid,
    /// Email address, lower case.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Last login (token issue or dev-login).
    pub last_login_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

impl poem_openapi::types::Example for User {
    fn example() -> Self {
        Self {
            id: uuid::Uuid::from_u128(0x0193b5e4_8f7a_7c2e_b8a1_000000000002),
            email: "ann@example.com".into(),
            name: "Ann".into(),
            last_login_at: Some("2026-11-24T09:30:00Z".parse().unwrap_or_default()),
            created_at: "2026-11-24T09:30:00Z".parse().unwrap_or_default(),
        }
    }
}
