//! The vector index: a Qdrant server or the embedded engine, the collection, and the shape
//! of embeddings (dimension and [`VectorDistance`], the type the operator shares).

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use jeex_types::VectorDistance;

use super::{
    error::{ConfigError, err},
    parse::{check_url, parse_duration, parse_whole, parse_with},
};

/// `JEEX_VECTOR_DIM` unless set.
pub const DEFAULT_VECTOR_DIM: u64 = 384;

/// Qdrant connection settings.
#[derive(Clone, PartialEq, Eq)]
pub struct QdrantConfig {
    /// gRPC URL.
    pub url: String,
    /// API key, if the server requires one.
    pub api_key: Option<String>,
    /// Collection holding the vectors.
    pub collection: String,
    /// Per-request (and connect) timeout.
    pub timeout: Duration,
}

impl fmt::Debug for QdrantConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QdrantConfig")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("collection", &self.collection)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Where document vectors are indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VectorEngine {
    /// A Qdrant server (`QDRANT_URL`).
    Server(QdrantConfig),
    /// The embedded engine, with its data in this folder.
    Embedded(PathBuf),
    /// Neither: built without the embedded engine and no `QDRANT_URL`. Vector search answers
    /// 503; full-text search works.
    Disabled,
}

/// The vector index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorConfig {
    /// Which engine.
    pub engine: VectorEngine,
    /// Collection name.
    pub collection: String,
    /// Embedding length.
    pub dim: u64,
    /// Similarity.
    pub distance: VectorDistance,
}

/// Reads the Qdrant variables (`QDRANT_URL`, `QDRANT_API_KEY`, `JEEX_QDRANT_*`) and the
/// `JEEX_VECTOR_*` ones; without `QDRANT_URL` the embedded engine lives under `data_dir`.
pub(super) fn parse(get: &impl Fn(&str) -> Option<String>, data_dir: &Path) -> Result<(Option<QdrantConfig>, VectorConfig), ConfigError> {
    let collection = get("JEEX_QDRANT_COLLECTION").unwrap_or_else(|| "jeex_embeddings".into());
    if !collection.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') || collection.len() > 255 {
        return Err(err("JEEX_QDRANT_COLLECTION", format!("{collection:?} may only hold letters, digits, '_' and '-'"), "jeex_embeddings"));
    }
    let qdrant_timeout = parse_duration(get, "JEEX_QDRANT_TIMEOUT", "5s")?;
    let qdrant = get("QDRANT_URL")
        .map(|url| {
            Ok(QdrantConfig {
                url: check_url("QDRANT_URL", &url, &["http", "https"], "http://localhost:6334")?,
                api_key: get("QDRANT_API_KEY"),
                collection: collection.clone(),
                timeout: qdrant_timeout,
            })
        })
        .transpose()?;
    let vectors = VectorConfig {
        engine: match &qdrant {
            Some(q) => VectorEngine::Server(q.clone()),
            None if cfg!(feature = "embedded-vectors") => {
                VectorEngine::Embedded(get("JEEX_VECTOR_DIR").map(PathBuf::from).unwrap_or_else(|| data_dir.join("vectors")))
            }
            None => VectorEngine::Disabled,
        },
        collection: collection.clone(),
        dim: parse_whole(get, "JEEX_VECTOR_DIM", "384", "384", 1..=65_536)? as u64,
        distance: parse_with(get, "JEEX_VECTOR_DISTANCE", "cosine", "cosine", |v| v.parse::<VectorDistance>().map_err(|e| e.to_string()))?,
    };
    Ok((qdrant, vectors))
}
