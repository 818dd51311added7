//! `POST /api/v1/projects/{project_id}/documents/search`: nearest neighbours by embedding,
//! full-text ranking, or both fused by reciprocal rank.

use std::collections::HashMap;

use poem::web::Data;
use poem_openapi::{Enum, Object, OpenApi, payload::Json};
use uuid::Uuid;

use super::{ApiTags, access::project, documents::QUERY_MAX, text::Text, validation::Check};
use crate::{
    access::Viewer,
    db::documents,
    error::{ApiError, FieldError},
    state::AppState,
    vectors::{
        IndexError, VectorQuery, VectorScope,
        fusion::{self, Sources},
    },
};

/// Results when `limit` is not given.
const DEFAULT_LIMIT: u32 = 10;
/// Most results.
const MAX_LIMIT: u32 = 100;
/// Candidates each ranking contributes to a fused result, per requested result.
const FUSION_DEPTH: usize = 3;

/// A search. Give `vector`, `text`, or both. Nothing else is accepted: the project comes from
/// the path and the caller's membership, never from the body.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct SearchDocuments {
    /// Query embedding: exactly `JEEX_VECTOR_DIM` (default 384) finite numbers.
    pub vector: Option<Vec<f64>>,
    /// Search terms (web-search syntax), ranked by PostgreSQL full text.
    #[oai(validator(max_length = 200, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$"))]
    pub text: Option<Text>,
    /// Only documents in this language (`en`, `de-AT`).
    #[oai(validator(pattern = r"^[a-z]{2}(-[A-Z]{2})?$"))]
    pub language: Option<Text>,
    /// Results, 1–100 (default 10).
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    pub limit: Option<u32>,
    /// With `vector`: drop neighbours scoring worse than this (below it for cosine and dot,
    /// above it for euclid and manhattan distances). A finite 32-bit float.
    #[oai(validator(minimum(value = "-3.4028234663852886e38"), maximum(value = "3.4028234663852886e38")))]
    pub score_threshold: Option<f64>,
}

impl poem_openapi::types::Example for SearchDocuments {
    fn example() -> Self {
        Self {
            vector: None,
            text: Some("isolation requirements".into()),
            language: Some("en".into()),
            limit: Some(10),
            score_threshold: None,
        }
    }
}

/// How the results were ranked.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum SearchMode {
    /// Nearest neighbours; `score` is the similarity.
    Vector,
    /// Full-text ranking; `score` is the text rank.
    Text,
    /// Both, fused by reciprocal rank; `score` is the fused score.
    Hybrid,
}

/// Which ranking found a result.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum MatchKind {
    /// The embedding is near the query vector.
    Vector,
    /// The text matches the terms.
    Text,
}

/// One result.
#[derive(Object)]
pub struct SearchHit {
    /// Document id.
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// Score (see `mode`); higher ranks first.
    pub score: f64,
    /// Language code.
    pub language: String,
    /// The passage matching `text` (matches between `**`), else the content's beginning.
    pub snippet: String,
    /// Which rankings found it.
    pub matched_by: Vec<MatchKind>,
}

/// Search results, best first.
#[derive(Object)]
pub struct SearchResults {
    /// How they were ranked.
    pub mode: SearchMode,
    /// The results.
    pub results: Vec<SearchHit>,
    /// What limited this answer (the vector index unavailable during a hybrid search).
    pub warnings: Vec<String>,
}

/// Validated search input.
struct Request {
    vector: Option<Vec<f32>>,
    text: Option<String>,
    language: Option<String>,
    limit: usize,
    score_threshold: Option<f32>,
}

fn validate(body: &SearchDocuments, dim: u64) -> Result<Request, ApiError> {
    let mut check = Check::default();
    let vector = body.vector.as_deref().map(|v| check.embedding("/vector", v, dim));
    let text = match body.text.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(t) => Some(check.text("/text", t, QUERY_MAX)),
    };
    let language = body.language.as_deref().map(|l| check.language("/language", l));
    check.finish()?;
    let mut errors = Vec::new();
    let limit = body.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        errors.push(FieldError { field: "/limit".into(), message: format!("must be from 1 to {MAX_LIMIT}") });
    }
    if vector.is_none() && text.is_none() {
        errors.push(FieldError { field: "/vector".into(), message: "give `vector`, `text` or both".into() });
    }
    let score_threshold = match body.score_threshold {
        None => None,
        Some(_) if vector.is_none() => {
            errors.push(FieldError { field: "/score_threshold".into(), message: "applies to vector similarity; give `vector` too".into() });
            None
        }
        Some(t) if !(t as f32).is_finite() => {
            errors.push(FieldError { field: "/score_threshold".into(), message: "must be a finite number".into() });
            None
        }
        Some(t) => Some(t as f32),
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation { detail: "the search is not valid".into(), errors });
    }
    Ok(Request { vector, text, language, limit: limit as usize, score_threshold })
}

/// Search endpoint.
pub struct SearchApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Documents")]
impl SearchApi {
    /// Search the project's documents: by `vector` (nearest neighbours in this project, and
    /// language when given), by `text` (full-text ranking), or both (reciprocal rank fusion).
    /// Only this project's documents are ever searched; a non-member gets 404.
    #[oai(path = "/projects/:project_id/documents/search", method = "post")]
    async fn search(
        &self,
        state: Data<&AppState>,
        project_id: project::Path<Viewer>,
        body: Json<SearchDocuments>,
    ) -> Result<Json<SearchResults>, ApiError> {
        let request = validate(&body, state.config().vectors.dim)?;
        // Membership first; the index call then runs with no database connection held, so a
        // slow or unreachable index (up to JEEX_QDRANT_TIMEOUT) cannot drain the pool every
        // other request needs. A second scope reads the ranking and details afterwards.
        let s = project_id.open(&state).await?;
        let hybrid = request.vector.is_some() && request.text.is_some();
        let depth = if hybrid { (request.limit * FUSION_DEPTH).min(300) } else { request.limit };
        let mut warnings = Vec::new();

        let (vector_hits, mut s) = match request.vector.clone() {
            None => (None, s),
            Some(vector) => {
                let scope = VectorScope::from(s.scope());
                s.commit().await?;
                let query =
                    VectorQuery { vector, language: request.language.clone(), limit: depth, score_threshold: request.score_threshold };
                let hits = match state.deps().vectors.search(scope, query).await {
                    Ok(hits) => Some(hits),
                    // With text to fall back on, answer from the text ranking and say so.
                    Err(e @ (IndexError::Unavailable(_) | IndexError::Mismatch(_))) if hybrid => {
                        tracing::warn!(error = %e, "vector search unavailable; answering from full text only");
                        warnings.push("the vector index is unavailable; these results come from full-text search only".into());
                        None
                    }
                    Err(e) => return Err(e.into()),
                };
                (hits, project_id.open(&state).await?)
            }
        };
        let text_hits = match &request.text {
            None => None,
            Some(q) => Some(documents::text_ranking(&mut s, q, request.language.as_deref(), depth as i64).await?),
        };

        let (mode, ranked): (SearchMode, Vec<(Uuid, f64, Sources)>) = match (&vector_hits, &text_hits) {
            (Some(v), Some(t)) => {
                let v: Vec<Uuid> = v.iter().map(|h| h.document_id).collect();
                let t: Vec<Uuid> = t.iter().map(|(id, _)| *id).collect();
                // Fuse generously: hits whose documents are gone are dropped below.
                let fused = fusion::fuse(&v, &t, depth);
                (SearchMode::Hybrid, fused.into_iter().map(|f| (f.id, f64::from(f.score), f.sources)).collect())
            }
            (Some(v), None) => {
                (SearchMode::Vector, v.iter().map(|h| (h.document_id, f64::from(h.score), Sources { vector: true, text: false })).collect())
            }
            (None, Some(t)) => {
                (SearchMode::Text, t.iter().map(|(id, r)| (*id, f64::from(*r), Sources { vector: false, text: true })).collect())
            }
            (None, None) => (SearchMode::Text, Vec::new()),
        };

        let ids: Vec<Uuid> = ranked.iter().map(|(id, ..)| *id).collect();
        let details = documents::search_details(&mut s, &ids, request.text.as_deref()).await?;
        s.commit().await?;
        let mut details: HashMap<Uuid, documents::SearchDetails> = details.into_iter().map(|d| (d.id, d)).collect();
        let results = ranked
            .into_iter()
            .filter_map(|(id, score, sources)| {
                let d = details.remove(&id)?;
                let matched_by =
                    [sources.vector.then_some(MatchKind::Vector), sources.text.then_some(MatchKind::Text)].into_iter().flatten().collect();
                Some(SearchHit { id, title: d.title, score, language: d.language, snippet: d.snippet, matched_by })
            })
            .take(request.limit)
            .collect();
        Ok(Json(SearchResults { mode, results, warnings }))
    }
}
