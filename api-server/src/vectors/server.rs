//! The Qdrant server engine, through `qdrant-client` (gRPC; TLS when the URL is https).
//!
//! The collection is checked (or created) on first successful contact and after every
//! failure, so a server that comes up after JEEX does gets its collection then.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use qdrant_client::{
    Qdrant, QdrantError,
    qdrant::{
        Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance,
        FieldType, Filter, KeywordIndexParamsBuilder, NamedVectors, PointId, PointStruct, QueryPointsBuilder, ScrollPointsBuilder,
        SearchParamsBuilder, UpsertPointsBuilder, Value, VectorParamsBuilder, VectorsConfigBuilder, point_id::PointIdOptions,
        vectors_config,
    },
};
use uuid::Uuid;

use super::{
    DOCUMENT_KEY, Hit, IndexError, IndexPoint, LANGUAGE_KEY, PROJECT_KEY, SEARCH_EF, Shape, VECTOR_NAME, VectorQuery, VectorScope,
};
use crate::config::{QdrantConfig, VectorDistance};

/// The Qdrant client and the collection. Cheap to clone.
#[derive(Clone)]
pub struct ServerIndex {
    client: Arc<Qdrant>,
    shape: Shape,
    prepared: Arc<AtomicBool>,
}

fn distance(d: VectorDistance) -> Distance {
    match d {
        VectorDistance::Cosine => Distance::Cosine,
        VectorDistance::Dot => Distance::Dot,
        VectorDistance::Euclid => Distance::Euclid,
        VectorDistance::Manhattan => Distance::Manhattan,
    }
}

fn unavailable(what: &'static str) -> impl Fn(QdrantError) -> IndexError {
    move |e| IndexError::Unavailable(format!("qdrant {what}: {e}"))
}

impl ServerIndex {
    /// Builds the client without contacting the server.
    pub fn new(cfg: &QdrantConfig, shape: Shape) -> Result<Self, IndexError> {
        let client = Qdrant::from_url(&cfg.url)
            .api_key(cfg.api_key.clone())
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            // The compatibility check would block start-up on a server round trip.
            .skip_compatibility_check()
            .build()
            .map_err(|e| IndexError::Unavailable(format!("qdrant client: {e}")))?;
        Ok(Self { client: Arc::new(client), shape, prepared: Arc::new(AtomicBool::new(false)) })
    }

    /// The server's health endpoint, then the collection (created again if someone dropped it).
    pub async fn probe(&self) -> Result<(), IndexError> {
        self.client.health_check().await.map_err(unavailable("health check"))?;
        if self.prepared.load(Ordering::Relaxed) {
            let exists = self.client.collection_exists(&self.shape.collection).await.map_err(unavailable("collection check"))?;
            if !exists {
                self.prepared.store(false, Ordering::Relaxed);
            }
        }
        self.prepare().await
    }

    pub async fn prepare(&self) -> Result<(), IndexError> {
        if self.prepared.load(Ordering::Relaxed) {
            return Ok(());
        }
        let name = &self.shape.collection;
        let exists = self.client.collection_exists(name).await.map_err(unavailable("collection check"))?;
        if exists {
            self.check_shape().await?;
        } else {
            let mut vectors = VectorsConfigBuilder::default();
            vectors.add_named_vector_params(VECTOR_NAME, VectorParamsBuilder::new(self.shape.dim, distance(self.shape.distance)));
            let created = self.client.create_collection(CreateCollectionBuilder::new(name).vectors_config(vectors)).await;
            // Another replica may have created it a moment ago: check what is there.
            if let Err(e) = created {
                if !self.client.collection_exists(name).await.unwrap_or(false) {
                    return Err(unavailable("create collection")(e));
                }
                self.check_shape().await?;
            }
        }
        for (key, tenant) in [(PROJECT_KEY, true), (LANGUAGE_KEY, false)] {
            // Idempotent on the server: an existing index of the same type is left alone.
            self.client
                .create_field_index(
                    CreateFieldIndexCollectionBuilder::new(name, key, FieldType::Keyword)
                        .field_index_params(KeywordIndexParamsBuilder::default().is_tenant(tenant))
                        .wait(true),
                )
                .await
                .map_err(unavailable("create payload index"))?;
        }
        self.prepared.store(true, Ordering::Relaxed);
        Ok(())
    }

    async fn check_shape(&self) -> Result<(), IndexError> {
        let name = &self.shape.collection;
        let info = self.client.collection_info(name).await.map_err(unavailable("collection info"))?;
        let params =
            info.result.and_then(|r| r.config).and_then(|c| c.params).and_then(|p| p.vectors_config).and_then(|v| v.config).and_then(|c| {
                match c {
                    vectors_config::Config::ParamsMap(map) => map.map.get(VECTOR_NAME).cloned(),
                    vectors_config::Config::Params(_) => None,
                }
            });
        let where_ = format!("the Qdrant collection {name:?}");
        match params {
            Some(p) if p.size == self.shape.dim && p.distance == distance(self.shape.distance) as i32 => Ok(()),
            Some(p) => {
                let d = Distance::try_from(p.distance).map(|d| d.as_str_name().to_ascii_lowercase()).unwrap_or_else(|_| "unknown".into());
                Err(self.shape.mismatch(&where_, p.size, &d))
            }
            None => Err(IndexError::Mismatch(format!(
                "{where_} has no vector named {VECTOR_NAME:?}; point JEEX_QDRANT_COLLECTION at another collection, \
                 or remove this one and rebuild it with the documents.reindex operation"
            ))),
        }
    }

    pub async fn upsert(&self, scope: VectorScope, points: Vec<IndexPoint>) -> Result<(), IndexError> {
        self.prepare().await?;
        let points: Vec<PointStruct> = points
            .iter()
            .map(|p| {
                let payload = qdrant_client::Payload::from(std::collections::HashMap::from([
                    (PROJECT_KEY, Value::from(scope.project_id().to_string())),
                    (DOCUMENT_KEY, Value::from(p.document_id.to_string())),
                    (LANGUAGE_KEY, Value::from(p.language.clone())),
                ]));
                PointStruct::new(p.document_id.to_string(), NamedVectors::default().add_vector(VECTOR_NAME, p.vector.clone()), payload)
            })
            .collect();
        let done = self.client.upsert_points(UpsertPointsBuilder::new(&self.shape.collection, points).wait(true)).await;
        self.unprepare_on_error(done).map(drop)
    }

    pub async fn delete(&self, scope: VectorScope, documents: Option<Vec<Uuid>>) -> Result<(), IndexError> {
        self.prepare().await?;
        let mut conditions = vec![Condition::matches(PROJECT_KEY, scope.project_id().to_string())];
        if let Some(ids) = documents {
            conditions.push(Condition::has_id(ids.iter().map(|id| PointId::from(id.to_string()))));
        }
        let done =
            self.client.delete_points(DeletePointsBuilder::new(&self.shape.collection).points(Filter::must(conditions)).wait(true)).await;
        self.unprepare_on_error(done).map(drop)
    }

    pub async fn search(&self, scope: VectorScope, query: VectorQuery) -> Result<Vec<Hit>, IndexError> {
        self.prepare().await?;
        let mut request = QueryPointsBuilder::new(&self.shape.collection)
            .query(query.vector)
            .using(VECTOR_NAME)
            .filter(scoped(scope, query.language.as_deref()))
            .limit(query.limit as u64)
            .params(SearchParamsBuilder::default().hnsw_ef(SEARCH_EF.max(query.limit) as u64))
            .with_payload(false);
        if let Some(threshold) = query.score_threshold {
            request = request.score_threshold(threshold);
        }
        let found = self.unprepare_on_error(self.client.query(request).await)?;
        Ok(found.result.into_iter().filter_map(|p| uuid_of(p.id).map(|document_id| Hit { document_id, score: p.score })).collect())
    }

    pub async fn scroll(&self, scope: VectorScope, from: Option<Uuid>, limit: usize) -> Result<(Vec<Uuid>, Option<Uuid>), IndexError> {
        self.prepare().await?;
        let mut request = ScrollPointsBuilder::new(&self.shape.collection)
            .filter(scoped(scope, None))
            .limit(limit.max(1) as u32)
            .with_payload(false)
            .with_vectors(false);
        if let Some(from) = from {
            request = request.offset(PointId::from(from.to_string()));
        }
        let page = self.unprepare_on_error(self.client.scroll(request).await)?;
        Ok((page.result.into_iter().filter_map(|r| uuid_of(r.id)).collect(), uuid_of(page.next_page_offset)))
    }

    pub async fn count(&self, scope: VectorScope) -> Result<u64, IndexError> {
        self.prepare().await?;
        let counted = self.unprepare_on_error(
            self.client.count(CountPointsBuilder::new(&self.shape.collection).filter(scoped(scope, None)).exact(true)).await,
        )?;
        Ok(counted.result.map(|r| r.count).unwrap_or(0))
    }

    /// After a failure the collection is checked again on the next call (it may have been
    /// dropped, or the server replaced).
    fn unprepare_on_error<T>(&self, result: Result<T, QdrantError>) -> Result<T, IndexError> {
        result.map_err(|e| {
            self.prepared.store(false, Ordering::Relaxed);
            unavailable("request")(e)
        })
    }
}

/// The project must-condition (and the language one, when given).
fn scoped(scope: VectorScope, language: Option<&str>) -> Filter {
    let mut must = vec![Condition::matches(PROJECT_KEY, scope.project_id().to_string())];
    if let Some(language) = language {
        must.push(Condition::matches(LANGUAGE_KEY, language.to_owned()));
    }
    Filter::must(must)
}

fn uuid_of(id: Option<PointId>) -> Option<Uuid> {
    match id?.point_id_options? {
        PointIdOptions::Uuid(u) => Uuid::parse_str(&u).ok(),
        PointIdOptions::Num(_) => None,
    }
}
