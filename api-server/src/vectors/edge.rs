//! The embedded engine: Qdrant Edge, in-process, with its data under `JEEX_DATA_DIR/vectors`.
//!
//! The shard is opened on first use and reopened after a failure, so a folder that cannot be
//! opened at start-up (full disk, wrong permissions) makes the index unavailable — the outbox
//! keeps the intents — instead of stopping the server. Engine calls block; they run on the
//! blocking pool.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use qdrant_edge::{
    Condition, CountRequest, CreateIndex, Distance, EdgeConfig, EdgeShard, EdgeVectorParams, FieldCondition, FieldIndexOperations, Filter,
    HasIdCondition, JsonPath, KeywordIndexParams, Match, NamedQuery, PayloadFieldSchema, PayloadSchemaParams, PointId,
    PointInsertOperations, PointOperations, PointStruct, QueryEnum, QueryRequest, ScoringQuery, ScrollRequest, SearchParams,
    UpdateOperation, ValueVariants, Vectors, WithPayloadInterface, WithVector, external::ordered_float::OrderedFloat,
};
use uuid::Uuid;

use super::{
    DOCUMENT_KEY, Hit, IndexError, IndexPoint, LANGUAGE_KEY, PROJECT_KEY, SEARCH_EF, Shape, VECTOR_NAME, VectorQuery, VectorScope,
};
use crate::config::VectorDistance;

/// The embedded index. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedIndex {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    shape: Shape,
    shard: Mutex<Option<Arc<EdgeShard>>>,
}

fn distance(d: VectorDistance) -> Distance {
    match d {
        VectorDistance::Cosine => Distance::Cosine,
        VectorDistance::Dot => Distance::Dot,
        VectorDistance::Euclid => Distance::Euclid,
        VectorDistance::Manhattan => Distance::Manhattan,
    }
}

fn distance_name(d: Distance) -> &'static str {
    match d {
        Distance::Cosine => "cosine",
        Distance::Dot => "dot",
        Distance::Euclid => "euclid",
        Distance::Manhattan => "manhattan",
    }
}

fn failed(what: &str) -> impl Fn(qdrant_edge::OperationError) -> IndexError + '_ {
    move |e| IndexError::Unavailable(format!("embedded index: {what}: {e}"))
}

impl EmbeddedIndex {
    /// Names the folder; nothing is opened yet.
    pub fn new(dir: PathBuf, shape: Shape) -> Self {
        Self { inner: Arc::new(Inner { dir, shape, shard: Mutex::new(None) }) }
    }

    /// The open shard, opening (or creating) it when needed.
    fn shard(&self) -> Result<Arc<EdgeShard>, IndexError> {
        let mut slot = self.inner.shard.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(shard) = &*slot {
            return Ok(shard.clone());
        }
        let shard = Arc::new(open(&self.inner.dir, &self.inner.shape)?);
        *slot = Some(shard.clone());
        Ok(shard)
    }

    /// Runs `f` on the shard on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&EdgeShard, &Shape) -> Result<T, IndexError> + Send + 'static,
    ) -> Result<T, IndexError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let shard = this.shard()?;
            f(&shard, &this.inner.shape)
        })
        .await
        .map_err(|e| IndexError::Unavailable(format!("embedded index task failed: {e}")))?
    }

    pub async fn prepare(&self) -> Result<(), IndexError> {
        self.with(|_, _| Ok(())).await
    }

    /// Compares the shape recorded in an existing index's configuration file with the
    /// configured one without opening the engine. Nothing there yet: fine, it is created on
    /// first use. A file this version cannot read: the engine is opened to decide.
    pub async fn check_stored_shape(&self) -> Result<(), IndexError> {
        let file = self.inner.dir.join(CONFIG_FILE);
        let text = match tokio::fs::read_to_string(&file).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) => return self.prepare().await,
        };
        let Some((dim, distance)) = stored_shape(&text) else { return self.prepare().await };
        let shape = &self.inner.shape;
        if dim == shape.dim && distance.eq_ignore_ascii_case(shape.distance.as_str()) {
            return Ok(());
        }
        Err(shape.mismatch(&described(&self.inner.dir), dim, &distance.to_ascii_lowercase()))
    }

    pub async fn upsert(&self, scope: VectorScope, points: Vec<IndexPoint>) -> Result<(), IndexError> {
        self.with(move |shard, _| {
            let points = points
                .iter()
                .map(|p| {
                    PointStruct::new(PointId::Uuid(p.document_id), Vectors::new_named([(VECTOR_NAME, p.vector.clone())]), payload(scope, p))
                        .into()
                })
                .collect();
            shard
                .update(UpdateOperation::PointOperation(PointOperations::UpsertPoints(PointInsertOperations::PointsList(points))))
                .map_err(failed("upsert"))
        })
        .await
    }

    pub async fn delete(&self, scope: VectorScope, documents: Option<Vec<Uuid>>) -> Result<(), IndexError> {
        self.with(move |shard, _| {
            let mut filter = scoped(scope, None)?;
            if let Some(ids) = documents {
                let ids: HasIdCondition = ids.into_iter().map(PointId::Uuid).collect();
                filter.must.get_or_insert_with(Vec::new).push(Condition::HasId(ids));
            }
            shard.update(UpdateOperation::PointOperation(PointOperations::DeletePointsByFilter(filter))).map_err(failed("delete"))
        })
        .await
    }

    pub async fn search(&self, scope: VectorScope, query: VectorQuery) -> Result<Vec<Hit>, IndexError> {
        self.with(move |shard, _| {
            let request = QueryRequest {
                prefetches: vec![],
                query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
                    query: query.vector.into(),
                    using: Some(VECTOR_NAME.into()),
                }))),
                filter: Some(scoped(scope, query.language.as_deref())?),
                score_threshold: query.score_threshold.map(OrderedFloat),
                limit: query.limit,
                offset: 0,
                params: Some(SearchParams { hnsw_ef: Some(SEARCH_EF.max(query.limit)), ..SearchParams::default() }),
                with_vector: WithVector::Bool(false),
                with_payload: WithPayloadInterface::Bool(false),
            };
            let points = shard.query(request).map_err(failed("search"))?;
            Ok(points.into_iter().filter_map(|p| uuid_of(p.id).map(|document_id| Hit { document_id, score: p.score })).collect())
        })
        .await
    }

    pub async fn scroll(&self, scope: VectorScope, from: Option<Uuid>, limit: usize) -> Result<(Vec<Uuid>, Option<Uuid>), IndexError> {
        self.with(move |shard, _| {
            let (records, next) = shard
                .scroll(ScrollRequest {
                    offset: from.map(PointId::Uuid),
                    limit: Some(limit.max(1)),
                    filter: Some(scoped(scope, None)?),
                    with_payload: Some(WithPayloadInterface::Bool(false)),
                    with_vector: WithVector::Bool(false),
                    order_by: None,
                })
                .map_err(failed("scroll"))?;
            Ok((records.into_iter().filter_map(|r| uuid_of(r.id)).collect(), next.and_then(uuid_of)))
        })
        .await
    }

    pub async fn count(&self, scope: VectorScope) -> Result<u64, IndexError> {
        self.with(move |shard, _| {
            let n = shard.count(CountRequest { filter: Some(scoped(scope, None)?), exact: true }).map_err(failed("count"))?;
            Ok(n as u64)
        })
        .await
    }

    pub async fn optimize(&self) -> Result<(), IndexError> {
        self.with(|shard, _| shard.optimize().map(drop).map_err(failed("optimize"))).await
    }
}

/// The project must-condition (and the language one, when given).
fn scoped(scope: VectorScope, language: Option<&str>) -> Result<Filter, IndexError> {
    let keyword = |key: &str, value: String| {
        Ok::<_, IndexError>(Condition::Field(FieldCondition::new_match(path(key)?, Match::new_value(ValueVariants::String(value)))))
    };
    let mut must = vec![keyword(PROJECT_KEY, scope.project_id().to_string())?];
    if let Some(language) = language {
        must.push(keyword(LANGUAGE_KEY, language.to_owned())?);
    }
    Ok(Filter { should: None, min_should: None, must: Some(must), must_not: None })
}

/// A payload key as the engine addresses it.
fn path(key: &str) -> Result<JsonPath, IndexError> {
    JsonPath::try_from(key).map_err(|_| IndexError::Unavailable(format!("embedded index: {key:?} is not a payload path")))
}

fn uuid_of(id: PointId) -> Option<Uuid> {
    match id {
        PointId::Uuid(u) => Some(u),
        PointId::NumId(_) => None,
    }
}

/// The engine's configuration file inside its folder.
const CONFIG_FILE: &str = "edge_config.json";

/// `(dimension, distance)` of the dense vector in the engine's configuration file.
fn stored_shape(text: &str) -> Option<(u64, String)> {
    let config: serde_json::Value = serde_json::from_str(text).ok()?;
    let vector = config.get("vectors")?.get(VECTOR_NAME)?;
    Some((vector.get("size")?.as_u64()?, vector.get("distance")?.as_str()?.to_owned()))
}

/// How messages name the index in `dir`.
fn described(dir: &Path) -> String {
    format!("the embedded vector index at {}", dir.display())
}

/// Opens the shard in `dir`, or creates it there; refuses a shard of another shape.
fn open(dir: &Path, shape: &Shape) -> Result<EdgeShard, IndexError> {
    let where_ = described(dir);
    let existing = dir.join(CONFIG_FILE).exists();
    let cannot_open = |e: qdrant_edge::OperationError| {
        let text = e.to_string();
        // The engine locks its write-ahead log: one process per folder.
        let hint = if text.contains("temporarily unavailable") || text.contains("WouldBlock") {
            " (another process has it open: give each server its own JEEX_VECTOR_DIR, or use QDRANT_URL)"
        } else {
            ""
        };
        IndexError::Unavailable(format!("cannot open {where_}: {text}{hint}"))
    };
    let shard = if existing {
        EdgeShard::load(dir, None).map_err(cannot_open)?
    } else {
        std::fs::create_dir_all(dir).map_err(|e| IndexError::Unavailable(format!("cannot create {where_}: {e}")))?;
        let config = EdgeConfig::builder()
            .vector(VECTOR_NAME, EdgeVectorParams::builder(shape.dim as usize, distance(shape.distance)).build())
            .build();
        EdgeShard::new(dir, config).map_err(cannot_open)?
    };
    let stored = shard.config().vectors.get(VECTOR_NAME).map(|v| (v.size as u64, v.distance));
    match stored {
        Some((dim, d)) if dim == shape.dim && d == distance(shape.distance) => {}
        Some((dim, d)) => return Err(shape.mismatch(&where_, dim, distance_name(d))),
        None => {
            return Err(IndexError::Mismatch(format!(
                "{where_} has no vector named {VECTOR_NAME:?}; remove the folder and rebuild it with the documents.reindex operation"
            )));
        }
    }
    let indexed = shard.info().payload_schema;
    for (key, tenant) in [(PROJECT_KEY, true), (LANGUAGE_KEY, false)] {
        let path = path(key)?;
        if indexed.contains_key(&path) {
            continue;
        }
        let params = KeywordIndexParams { is_tenant: tenant.then_some(true), ..KeywordIndexParams::default() };
        shard
            .update(UpdateOperation::FieldIndexOperation(FieldIndexOperations::CreateIndex(CreateIndex {
                field_name: path,
                field_schema: Some(PayloadFieldSchema::FieldParams(PayloadSchemaParams::Keyword(params))),
            })))
            .map_err(|e| IndexError::Unavailable(format!("cannot index {key:?} in {where_}: {e}")))?;
    }
    Ok(shard)
}

/// The payload every point carries.
fn payload(scope: VectorScope, point: &IndexPoint) -> serde_json::Value {
    serde_json::json!({
        PROJECT_KEY: scope.project_id().to_string(),
        DOCUMENT_KEY: point.document_id.to_string(),
        LANGUAGE_KEY: point.language,
    })
}

#[cfg(test)]
mod tests {
    use super::stored_shape;

    #[test]
    fn reads_the_shape_from_the_engine_config_file() {
        let text = r#"{"on_disk_payload":true,"vectors":{"dense":{"size":384,"distance":"Cosine"}},"sparse_vectors":{}}"#;
        assert_eq!(stored_shape(text), Some((384, "Cosine".to_owned())));
        assert_eq!(stored_shape(r#"{"vectors":{"other":{"size":8,"distance":"Dot"}}}"#), None);
        assert_eq!(stored_shape("not json"), None);
    }
}
