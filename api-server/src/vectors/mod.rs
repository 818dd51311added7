//! The vector index: one interface over two engines (a Qdrant server through `qdrant-client`,
//! or Qdrant's embedded engine in-process), with tenant isolation built into the interface.
//!
//! Every call takes a [`VectorScope`], and every engine turns it into a `project_id`
//! must-condition (or, for writes, the `project_id` payload of each point): there is no call
//! that reaches another project's points. A `VectorScope` comes from a [`ProjectScope`] (so
//! after the membership check) or from the outbox worker applying intents that were written
//! inside project scopes.
//!
//! PostgreSQL stays the source of truth: the index only ever receives what the outbox worker
//! ([`outbox`]) or a reindex read from the database.

#[cfg(feature = "embedded-vectors")]
mod edge;
pub mod fusion;
pub mod outbox;
mod server;

use std::sync::Arc;

use tracing::Instrument;
use uuid::Uuid;

use crate::{
    access::ProjectScope,
    client_span::{self, Endpoint},
    config::{VectorConfig, VectorDistance, VectorEngine},
    error::{ApiError, ErrorCode},
};

/// Name of the dense vector in the collection.
pub const VECTOR_NAME: &str = "dense";
/// Payload key of the tenant (marked as the tenant key in Qdrant).
pub const PROJECT_KEY: &str = "project_id";
/// Payload key of the document.
pub const DOCUMENT_KEY: &str = "document_id";
/// Payload key of the language.
pub const LANGUAGE_KEY: &str = "language";
/// Candidates the HNSW search keeps (`ef`): well above any `limit` (≤ 100), for recall.
pub const SEARCH_EF: usize = 128;

/// The project an index call is confined to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VectorScope {
    project_id: Uuid,
}

impl VectorScope {
    /// The project.
    pub fn project_id(self) -> Uuid {
        self.project_id
    }

    /// For intents read from the outbox: each was written in a project scope (row-level
    /// security checks the outbox row's project), so its project is already vouched for.
    fn of_intent(project_id: Uuid) -> Self {
        Self { project_id }
    }
}

impl From<&ProjectScope> for VectorScope {
    fn from(scope: &ProjectScope) -> Self {
        Self { project_id: scope.project_id() }
    }
}

/// One document's vector, as the index stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexPoint {
    /// The document; the point id is the document id, so a re-upsert replaces.
    pub document_id: Uuid,
    /// Its language (filterable).
    pub language: String,
    /// The embedding.
    pub vector: Vec<f32>,
}

/// A nearest-neighbour query.
#[derive(Debug, Clone)]
pub struct VectorQuery {
    /// The query embedding.
    pub vector: Vec<f32>,
    /// Only documents in this language.
    pub language: Option<String>,
    /// Most hits returned.
    pub limit: usize,
    /// Drop hits scoring worse than this.
    pub score_threshold: Option<f32>,
}

/// A nearest neighbour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The document.
    pub document_id: Uuid,
    /// Similarity as the engine reports it for the configured distance.
    pub score: f32,
}

/// Why an index call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IndexError {
    /// The engine cannot be reached or opened now; retrying later may succeed.
    #[error("the vector index is unavailable: {0}")]
    Unavailable(String),
    /// The collection exists with settings other than the configuration's.
    #[error("{0}")]
    Mismatch(String),
    /// Neither engine is configured.
    #[error("no vector index is configured (set QDRANT_URL, or build with the embedded-vectors feature)")]
    Disabled,
}

impl From<IndexError> for ApiError {
    fn from(e: IndexError) -> Self {
        // The engine's own words can name hosts; they go to the log, the caller gets the kind.
        tracing::warn!(error = %e, "vector index call failed");
        let detail = match e {
            IndexError::Disabled => e.to_string(),
            IndexError::Unavailable(_) | IndexError::Mismatch(_) => {
                "vector search is unavailable right now; full-text search (`text` alone) still works".into()
            }
        };
        ApiError::Status(ErrorCode::Unavailable, detail)
    }
}

/// The collection's shape, from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// Collection name.
    pub collection: String,
    /// Dimension.
    pub dim: u64,
    /// Distance.
    pub distance: VectorDistance,
}

impl Shape {
    /// The refusal for a collection built with other settings.
    fn mismatch(&self, where_: &str, dim: u64, distance: &str) -> IndexError {
        IndexError::Mismatch(format!(
            "{where_} holds {dim}-dimensional {distance} vectors, but JEEX_VECTOR_DIM={} and JEEX_VECTOR_DISTANCE={}: \
             set them to match, or remove the collection and rebuild it with the documents.reindex operation",
            self.dim,
            self.distance.as_str()
        ))
    }
}

#[derive(Clone)]
enum Engine {
    Server(server::ServerIndex),
    #[cfg(feature = "embedded-vectors")]
    Embedded(edge::EmbeddedIndex),
    Disabled,
}

/// The vector index. Cheap to clone.
#[derive(Clone)]
pub struct VectorIndex {
    engine: Engine,
    shape: Arc<Shape>,
    /// The Qdrant server, as its calls' spans name it (`None` for the embedded engine).
    server: Option<Arc<Endpoint>>,
}

impl VectorIndex {
    /// Builds the configured engine without touching it (start-up never waits for it).
    pub fn new(config: &VectorConfig) -> Result<Self, IndexError> {
        let shape = Shape { collection: config.collection.clone(), dim: config.dim, distance: config.distance };
        let server = match &config.engine {
            VectorEngine::Server(q) => url::Url::parse(&q.url).ok().map(|u| {
                Arc::new(Endpoint {
                    namespace: String::new(),
                    address: u.host_str().unwrap_or_default().to_owned(),
                    port: u.port_or_known_default().unwrap_or(6334),
                })
            }),
            _ => None,
        };
        let engine = match &config.engine {
            VectorEngine::Server(q) => Engine::Server(server::ServerIndex::new(q, shape.clone())?),
            #[cfg(feature = "embedded-vectors")]
            VectorEngine::Embedded(dir) => Engine::Embedded(edge::EmbeddedIndex::new(dir.clone(), shape.clone())),
            #[cfg(not(feature = "embedded-vectors"))]
            VectorEngine::Embedded(_) => Engine::Disabled,
            VectorEngine::Disabled => Engine::Disabled,
        };
        Ok(Self { engine, shape: Arc::new(shape), server })
    }

    /// `qdrant-server`, `embedded` or `disabled`.
    pub fn engine_name(&self) -> &'static str {
        match self.engine {
            Engine::Server(_) => "qdrant-server",
            #[cfg(feature = "embedded-vectors")]
            Engine::Embedded(_) => "embedded",
            Engine::Disabled => "disabled",
        }
    }

    /// Runs one call in its client span (none unless the caller is traced).
    async fn traced<T>(&self, operation: &'static str, call: impl Future<Output = Result<T, IndexError>>) -> Result<T, IndexError> {
        let span = client_span::qdrant(self.server.as_deref(), operation, &self.shape.collection);
        let result = call.instrument(span.clone()).await;
        if let Err(e) = &result {
            client_span::fail(
                &span,
                match e {
                    IndexError::Unavailable(_) => "unavailable",
                    IndexError::Mismatch(_) => "mismatch",
                    IndexError::Disabled => "disabled",
                },
            );
        }
        result
    }

    /// Whether an engine is configured.
    pub fn is_enabled(&self) -> bool {
        !matches!(self.engine, Engine::Disabled)
    }

    /// The configured shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Creates the collection and its payload indexes when missing; refuses one whose
    /// dimension or distance differ from the configuration.
    pub async fn prepare(&self) -> Result<(), IndexError> {
        match &self.engine {
            Engine::Server(s) => s.prepare().await,
            #[cfg(feature = "embedded-vectors")]
            Engine::Embedded(e) => e.prepare().await,
            Engine::Disabled => Err(IndexError::Disabled),
        }
    }

    /// The start-up check: refuses a stored index whose dimension or distance differ from the
    /// configuration. The server engine is prepared (collection created when missing); the
    /// embedded one only has its stored configuration read, so the engine's memory (tens of
    /// MiB of mapped log and segments) is taken on first use, not by a server that never
    /// indexes or searches.
    pub async fn check_at_start(&self) -> Result<(), IndexError> {
        match &self.engine {
            Engine::Server(s) => s.prepare().await,
            #[cfg(feature = "embedded-vectors")]
            Engine::Embedded(e) => e.check_stored_shape().await,
            Engine::Disabled => Err(IndexError::Disabled),
        }
    }

    /// Health: reachable and prepared.
    pub async fn probe(&self) -> Result<(), String> {
        match &self.engine {
            Engine::Server(s) => s.probe().await.map_err(|e| e.to_string()),
            _ => self.prepare().await.map_err(|e| e.to_string()),
        }
    }

    /// Inserts or replaces the points of `scope`'s documents.
    pub async fn upsert(&self, scope: VectorScope, points: Vec<IndexPoint>) -> Result<(), IndexError> {
        if points.is_empty() {
            return Ok(());
        }
        let call = async {
            match &self.engine {
                Engine::Server(s) => s.upsert(scope, points).await,
                #[cfg(feature = "embedded-vectors")]
                Engine::Embedded(e) => e.upsert(scope, points).await,
                Engine::Disabled => Err(IndexError::Disabled),
            }
        };
        self.traced("upsert", call).await
    }

    /// Removes these documents' points (only ever those in `scope`).
    pub async fn delete(&self, scope: VectorScope, documents: Vec<Uuid>) -> Result<(), IndexError> {
        if documents.is_empty() {
            return Ok(());
        }
        let call = async {
            match &self.engine {
                Engine::Server(s) => s.delete(scope, Some(documents)).await,
                #[cfg(feature = "embedded-vectors")]
                Engine::Embedded(e) => e.delete(scope, Some(documents)).await,
                Engine::Disabled => Err(IndexError::Disabled),
            }
        };
        self.traced("delete", call).await
    }

    /// Removes every point of the project.
    pub async fn purge(&self, scope: VectorScope) -> Result<(), IndexError> {
        let call = async {
            match &self.engine {
                Engine::Server(s) => s.delete(scope, None).await,
                #[cfg(feature = "embedded-vectors")]
                Engine::Embedded(e) => e.delete(scope, None).await,
                Engine::Disabled => Err(IndexError::Disabled),
            }
        };
        self.traced("delete", call).await
    }

    /// Nearest neighbours within the project (and language, when given), best first.
    pub async fn search(&self, scope: VectorScope, query: VectorQuery) -> Result<Vec<Hit>, IndexError> {
        let call = async {
            match &self.engine {
                Engine::Server(s) => s.search(scope, query).await,
                #[cfg(feature = "embedded-vectors")]
                Engine::Embedded(e) => e.search(scope, query).await,
                Engine::Disabled => Err(IndexError::Disabled),
            }
        };
        self.traced("search", call).await
    }

    /// One page of the project's document ids in id order, after `after`; the second value
    /// is where the next page starts.
    pub async fn scroll(&self, scope: VectorScope, after: Option<Uuid>, limit: usize) -> Result<(Vec<Uuid>, Option<Uuid>), IndexError> {
        let call = async {
            match &self.engine {
                Engine::Server(s) => s.scroll(scope, after, limit).await,
                #[cfg(feature = "embedded-vectors")]
                Engine::Embedded(e) => e.scroll(scope, after, limit).await,
                Engine::Disabled => Err(IndexError::Disabled),
            }
        };
        self.traced("scroll", call).await
    }

    /// Points in the project.
    pub async fn count(&self, scope: VectorScope) -> Result<u64, IndexError> {
        let call = async {
            match &self.engine {
                Engine::Server(s) => s.count(scope).await,
                #[cfg(feature = "embedded-vectors")]
                Engine::Embedded(e) => e.count(scope).await,
                Engine::Disabled => Err(IndexError::Disabled),
            }
        };
        self.traced("count", call).await
    }

    /// Compacts and indexes the embedded engine's segments (builds its HNSW graphs); a no-op
    /// for a Qdrant server, which optimises by itself.
    pub async fn optimize(&self) -> Result<(), IndexError> {
        match &self.engine {
            #[cfg(feature = "embedded-vectors")]
            Engine::Embedded(e) => e.optimize().await,
            _ => Ok(()),
        }
    }
}
