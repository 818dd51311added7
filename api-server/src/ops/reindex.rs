//! `documents.reindex`: rebuilds the project's part of the vector index from PostgreSQL —
//! after the index lost its data, or when an engine is configured for the first time.
//!
//! Two passes, each batch holding the index lock the outbox worker also takes (so a batch
//! never writes a state older than one the worker already applied): every live vector is
//! upserted in id order, then every point the index holds for the project is checked against
//! the database and the strays are deleted. Searches keep working throughout: nothing is
//! purged first. Repeating a reindex (a retry after a crash) does no harm.

use tracing::Instrument;
use uuid::Uuid;

use super::step::{Ending, Step, interrupted, step_span};
use crate::{
    access::{Caller, Editor, Scoped, WorkerScope},
    db::{
        Database,
        operations::{self, Claimed},
        outbox,
    },
    error::ApiError,
    state::AppState,
    vectors::{IndexPoint, VectorScope},
};

/// Documents per batch.
const PAGE: i64 = 500;

/// One batch's transaction: the creator's scope (role checked again), holding the index lock.
async fn locked_batch(db: &Database, caller: &Caller, op: &Claimed) -> Result<Scoped<Editor>, ApiError> {
    let mut s = db.scoped::<Editor>(caller, op.project_id).await?;
    outbox::lock_index(&mut s).await?;
    Ok(s)
}

/// Runs the reindex of `op`'s project as `caller`.
pub async fn run(state: &AppState, work: &WorkerScope, op: &Claimed, caller: &Caller, signal: &Step) -> Result<Ending, ApiError> {
    let db = &state.deps().db;
    let index = &state.deps().vectors;
    let dim = index.shape().dim;
    let total = {
        let mut s = db.scoped::<Editor>(caller, op.project_id).await?;
        let n = outbox::vector_count(&mut s, dim).await?;
        s.commit().await?;
        n.max(1)
    };

    let mut indexed = 0i64;
    let mut after: Option<Uuid> = None;
    loop {
        if let Some(ending) = interrupted(signal) {
            return Ok(ending);
        }
        // Each batch's calls in a span of its own, beneath the run's.
        let step = step_span!("reindex batch");
        let mut s = locked_batch(db, caller, op).instrument(step.clone()).await?;
        let page = outbox::live_page(&mut s, after, PAGE, dim).instrument(step.clone()).await?;
        let full = page.len() as i64 == PAGE;
        after = page.last().map(|l| l.id);
        indexed += page.len() as i64;
        let points = page.into_iter().map(|l| IndexPoint { document_id: l.id, language: l.language, vector: l.embedding }).collect();
        index.upsert(VectorScope::from(s.scope()), points).instrument(step.clone()).await?;
        s.commit().instrument(step.clone()).await?;
        let percent = i16::try_from((indexed * 90 / total).min(90)).unwrap_or(90);
        if !operations::progress(db, work, percent, serde_json::json!({ "indexed": indexed, "of": total })).instrument(step).await? {
            return Ok(Ending::Lost);
        }
        state.events().recorded();
        if !full {
            break;
        }
    }

    let mut removed = 0usize;
    let mut from: Option<Uuid> = None;
    loop {
        if let Some(ending) = interrupted(signal) {
            return Ok(ending);
        }
        let step = step_span!("sweep batch");
        let mut s = locked_batch(db, caller, op).instrument(step.clone()).await?;
        let scope = VectorScope::from(s.scope());
        let (ids, next) = index.scroll(scope, from, PAGE as usize).instrument(step.clone()).await?;
        let live = outbox::live_among(&mut s, &ids, dim).instrument(step.clone()).await?;
        let strays: Vec<Uuid> = ids.into_iter().filter(|id| !live.contains(id)).collect();
        removed += strays.len();
        index.delete(scope, strays).instrument(step.clone()).await?;
        s.commit().instrument(step).await?;
        match next {
            Some(next) => from = Some(next),
            None => break,
        }
    }
    if !operations::progress(db, work, 100, serde_json::json!({ "indexed": indexed, "removed": removed })).await? {
        return Ok(Ending::Lost);
    }
    state.events().recorded();
    Ending::done(&serde_json::json!({ "indexed": indexed, "removed": removed, "engine": index.engine_name() }))
}
