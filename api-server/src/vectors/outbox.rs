//! The outbox worker: applies the intents that triggers write next to every document change,
//! oldest first, in batches, until the index matches PostgreSQL.
//!
//! Applying an intent means reading the document's *current* state and writing that (upsert
//! when it is a live vector, delete otherwise), so applying twice, late or after a newer
//! intent is harmless. Rows are deleted only in the transaction that applied them; when the
//! index fails, the transaction rolls back, the rows stay, and the worker retries with
//! exponential backoff. Nothing is lost while the index is away.

use std::{collections::BTreeMap, time::Duration};

use tokio::{sync::watch, task::JoinHandle};
use uuid::Uuid;

use super::{IndexError, IndexPoint, VectorIndex, VectorScope};
use crate::db::{Database, outbox};

/// Intents applied per transaction.
pub const BATCH: i64 = 500;
/// How long an idle worker waits before looking again.
const IDLE: Duration = Duration::from_millis(200);
/// First and longest wait after a failure.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(30));
/// Points changed before the embedded engine's segments are optimised again.
const OPTIMIZE_AFTER: usize = 2_000;

/// Why a drain failed.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// PostgreSQL.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The index.
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// The running worker; stops when dropped.
pub struct OutboxWorker {
    handle: Option<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
}

impl OutboxWorker {
    /// Stops between batches (a batch in flight rolls back and is applied again later).
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(handle) = self.handle.take() {
            handle.abort();
            let _ = handle.await;
        }
    }
}

impl Drop for OutboxWorker {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            handle.abort();
        }
    }
}

/// Starts the worker.
pub fn spawn(db: Database, index: VectorIndex) -> OutboxWorker {
    let (shutdown, stopped) = watch::channel(false);
    let handle = tokio::spawn(run(db, index, stopped));
    OutboxWorker { handle: Some(handle), shutdown }
}

async fn run(db: Database, index: VectorIndex, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = BACKOFF.0;
    let mut failing = false;
    let mut changed_since_optimize = 0usize;
    while !*shutdown.borrow() {
        match drain_once(&db, &index).await {
            Ok(0) => {
                if changed_since_optimize >= OPTIMIZE_AFTER {
                    changed_since_optimize = 0;
                    if let Err(e) = index.optimize().await {
                        tracing::warn!(error = %e, "optimising the embedded vector index failed");
                    }
                }
                let _ = tokio::time::timeout(IDLE, shutdown.changed()).await;
            }
            Ok(n) => {
                if failing {
                    tracing::info!("the vector index is reachable again; catching up");
                    failing = false;
                }
                backoff = BACKOFF.0;
                changed_since_optimize += n;
            }
            Err(e) => {
                // Logged once per outage, then quietly retried.
                if !failing {
                    tracing::warn!(error = %e, "applying vector intents failed; they stay in the outbox and are retried");
                    failing = true;
                }
                let jitter = Duration::from_millis(u64::from(rand::random::<u8>()));
                let _ = tokio::time::timeout(backoff + jitter, shutdown.changed()).await;
                backoff = (backoff * 2).min(BACKOFF.1);
            }
        }
    }
}

/// Applies one batch; returns how many intents it applied (0: nothing to do, or another
/// replica is applying).
pub async fn drain_once(db: &Database, index: &VectorIndex) -> Result<usize, DrainError> {
    let Some(mut tx) = outbox::begin_drain(db).await? else { return Ok(0) };
    let intents = tx.oldest(BATCH).await?;
    if intents.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    if index.is_enabled() {
        // Per project: its purge (if any), then its documents' current states.
        let mut projects: BTreeMap<Uuid, (bool, Vec<Uuid>)> = BTreeMap::new();
        for intent in &intents {
            let entry = projects.entry(intent.project_id).or_default();
            match intent.document_id {
                None => entry.0 = true,
                Some(id) if !entry.1.contains(&id) => entry.1.push(id),
                Some(_) => {}
            }
        }
        let dim = index.shape().dim;
        for (project, (purge, documents)) in projects {
            let scope = VectorScope::of_intent(project);
            if purge {
                index.purge(scope).await?;
            }
            if documents.is_empty() {
                continue;
            }
            let live = tx.states(project, &documents, dim).await?;
            let gone: Vec<Uuid> = documents.iter().copied().filter(|id| !live.iter().any(|l| l.id == *id)).collect();
            let points = live.into_iter().map(|l| IndexPoint { document_id: l.id, language: l.language, vector: l.embedding }).collect();
            index.upsert(scope, points).await?;
            index.delete(scope, gone).await?;
        }
    }
    // Without an engine there is nothing to follow: a reindex rebuilds once one is configured.
    let ids: Vec<i64> = intents.iter().map(|i| i.id).collect();
    tx.remove(&ids).await?;
    tx.commit().await?;
    Ok(intents.len())
}
