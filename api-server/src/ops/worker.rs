//! Workers: each claims one operation at a time (`FOR UPDATE SKIP LOCKED`), renews its lease
//! every quarter second (reading the cancel flag on the way, so a cancel lands within a
//! second), and works in project scopes as the operation's creator — whose membership and role
//! are checked again at every step.

use std::{sync::Arc, time::Duration};

use tokio::{sync::watch, task::JoinHandle};
use uuid::Uuid;

use super::{export, import};
use crate::{
    auth::principal::{Caller, Principal},
    db::{
        operations::{self, Claimed, Heartbeat, OperationKind, OperationStatus},
        projects,
        scope::{Role, Scoped},
    },
    error::{ApiError, ErrorCode},
    state::AppState,
};

/// How often a running operation renews its lease and looks for a cancel.
const BEAT: Duration = Duration::from_millis(250);
/// How long an idle worker waits before looking for work again.
const IDLE: Duration = Duration::from_millis(250);
/// How often ended operations past their retention are looked for.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Ended operations deleted per transaction: each may hold a 64 MiB export bundle.
const PRUNE_BATCH: i64 = 100;

/// The running workers of this process.
pub struct Workers {
    handles: Vec<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
    instance: String,
    pool: sqlx::PgPool,
}

/// Starts `JEEX_WORKERS` workers; each is known to the others by `<instance>/<n>`.
pub fn spawn(state: &AppState) -> Workers {
    let (shutdown, stopped) = watch::channel(false);
    let instance = Uuid::now_v7().to_string();
    let config = state.config().operations;
    let mut handles: Vec<_> =
        (0..config.workers).map(|n| tokio::spawn(run(state.clone(), format!("{instance}/{n}"), stopped.clone()))).collect();
    // Replicas that run operations also clear away the ended ones.
    if let (true, Some(retention)) = (config.workers > 0, config.retention) {
        handles.push(tokio::spawn(prune(state.deps().postgres.clone(), retention, stopped)));
    }
    Workers { handles, shutdown, instance, pool: state.deps().postgres.clone() }
}

/// Deletes the operations that ended more than `retention` ago: at start-up, then every
/// [`PRUNE_EVERY`]. Replicas pruning at once skip each other's rows.
async fn prune(pool: sqlx::PgPool, retention: Duration, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        let mut deleted = 0;
        loop {
            match operations::prune(&pool, retention, PRUNE_BATCH).await {
                Ok(n) => {
                    deleted += n;
                    if n < PRUNE_BATCH as u64 {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %crate::deps::postgres::describe(&e), "cannot delete ended operations past their retention; will retry");
                    break;
                }
            }
        }
        if deleted > 0 {
            tracing::info!(operations = deleted, retention = %humantime::format_duration(retention), "deleted ended operations past their retention");
        }
        if let Ok(Err(_)) = tokio::time::timeout(PRUNE_EVERY, shutdown.changed()).await {
            // The workers' owner is gone.
            return;
        }
    }
}

impl Workers {
    /// Stops claiming, stops running work between steps, and hands it back queued (its
    /// attempt not counted) for another replica — imports are idempotent, exports start over.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        for handle in std::mem::take(&mut self.handles) {
            handle.abort();
            let _ = handle.await;
        }
        match operations::release(&self.pool, &self.instance).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(operations = n, "handed running operations back to the queue"),
            Err(e) => {
                tracing::warn!(error = %crate::deps::postgres::describe(&e), "could not hand operations back; their leases will expire")
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for handle in &self.handles {
            handle.abort();
        }
    }
}

async fn run(state: AppState, owner: String, mut shutdown: watch::Receiver<bool>) {
    let pool = state.deps().postgres.clone();
    let lease = state.config().operations.lease;
    while !*shutdown.borrow() {
        match operations::claim(&pool, &owner, lease).await {
            Ok(Some(op)) => {
                // The claim recorded `operation.running`.
                state.events().recorded();
                execute(&state, &owner, op).await;
            }
            Ok(None) => {
                let _ = tokio::time::timeout(IDLE, shutdown.changed()).await;
            }
            Err(e) => {
                tracing::warn!(error = %crate::deps::postgres::describe(&e), "operation worker cannot reach the database");
                let _ = tokio::time::timeout(Duration::from_secs(1), shutdown.changed()).await;
            }
        }
    }
}

/// Aborts the task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The heartbeat's verdict, watched between steps.
pub type Step = watch::Receiver<Heartbeat>;

/// How a run ended, short of an error.
pub enum Ending {
    /// Finished with this result (JSON text: an export's bundle is never held as a `Value`).
    Done(Box<serde_json::value::RawValue>),
    /// Stopped on request.
    Cancelled,
    /// Another replica holds the lease now.
    Lost,
}

impl Ending {
    /// Finished with a small result built as a value.
    pub fn done(result: &serde_json::Value) -> Result<Self, ApiError> {
        serde_json::value::to_raw_value(result).map(Self::Done).map_err(|e| ApiError::Internal(format!("cannot encode the result: {e}")))
    }
}

async fn execute(state: &AppState, owner: &str, op: Claimed) {
    let pool = state.deps().postgres.clone();
    let lease = state.config().operations.lease;
    let (signal_tx, signal) = watch::channel(Heartbeat::Continue);
    // Aborted with the run, however it ends (also when the worker itself is aborted): a
    // heartbeat must never outlive the work it vouches for.
    let beat = AbortOnDrop({
        let (pool, owner, id) = (pool.clone(), owner.to_owned(), op.id);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(BEAT).await;
                match operations::heartbeat(&pool, id, &owner, lease).await {
                    Ok(Heartbeat::Continue) => {}
                    Ok(other) => {
                        let _ = signal_tx.send(other);
                        return;
                    }
                    Err(e) => tracing::warn!(operation = %id, error = %crate::deps::postgres::describe(&e), "lease renewal failed"),
                }
            }
        })
    });
    let span = tracing::info_span!("operation", operation = %op.id, kind = ?op.kind, attempt = op.attempt);
    let outcome = tracing::Instrument::instrument(work(state, owner, &op, &signal), span).await;
    drop(beat);
    let finished = match outcome {
        Ok(Ending::Done(result)) => operations::finish(&pool, op.id, owner, OperationStatus::Succeeded, Some(&result), None).await,
        Ok(Ending::Cancelled) => operations::finish(&pool, op.id, owner, OperationStatus::Cancelled, None, None).await,
        Ok(Ending::Lost) => {
            tracing::warn!(operation = %op.id, "lease lost to another replica; abandoning this run");
            return;
        }
        Err(ApiError::Status(ErrorCode::Unavailable | ErrorCode::Conflict, detail)) => {
            // Transient: leave the lease to expire; the next claim retries (and counts).
            tracing::warn!(operation = %op.id, %detail, "operation interrupted; it will be retried");
            return;
        }
        Err(e) => {
            tracing::warn!(operation = %op.id, error = %e, "operation failed");
            // Internal details stay in the log; the API shows the public reason only.
            let public = match &e {
                ApiError::Internal(_) => "an internal error stopped the operation; see the server log".to_owned(),
                other => other.to_string(),
            };
            operations::finish(&pool, op.id, owner, OperationStatus::Failed, None, Some(&public)).await
        }
    };
    match finished {
        Ok(true) => state.events().recorded(),
        Ok(false) => tracing::warn!(operation = %op.id, "the lease was lost before the end could be recorded"),
        Err(e) => {
            tracing::warn!(operation = %op.id, error = %crate::deps::postgres::describe(&e), "could not record the end of the operation")
        }
    }
}

/// Stop here? (Between steps: cancel requested, or the lease gone.)
pub fn interrupted(signal: &Step) -> Option<Ending> {
    match *signal.borrow() {
        Heartbeat::Continue => None,
        Heartbeat::Cancel => Some(Ending::Cancelled),
        Heartbeat::Lost => Some(Ending::Lost),
    }
}

/// The creator, acting again: a user (membership re-checked by every scope) or an API key
/// (which must still be live, with its current role).
async fn creator(pool: &sqlx::PgPool, op: &Claimed) -> Result<Caller, ApiError> {
    let gone =
        || ApiError::Status(ErrorCode::Forbidden, "the operation's creator (user or API key) can no longer act in the project".into());
    let principal = match (op.created_by, op.created_by_key) {
        (Some(user_id), _) => Principal::User { user_id },
        (None, Some(key_id)) => {
            let role = crate::db::api_keys::live_role(pool, op.project_id, key_id).await?.ok_or_else(gone)?;
            Principal::ApiKey { key_id, project_id: op.project_id, role }
        }
        (None, None) => return Err(gone()),
    };
    Ok(Caller { principal, correlation_id: format!("operation-{}", op.id) })
}

async fn work(state: &AppState, owner: &str, op: &Claimed, signal: &watch::Receiver<Heartbeat>) -> Result<Ending, ApiError> {
    let caller = creator(&state.deps().postgres, op).await?;
    match op.kind {
        OperationKind::DocumentsImport => run_import(state, owner, op, &caller, signal).await,
        OperationKind::ProjectExport => run_export(state, owner, op, &caller, signal).await,
        OperationKind::DocumentsReindex => super::reindex::run(state, owner, op, &caller, signal).await,
    }
}

async fn run_import(
    state: &AppState,
    owner: &str,
    op: &Claimed,
    caller: &Caller,
    signal: &watch::Receiver<Heartbeat>,
) -> Result<Ending, ApiError> {
    let pool = &state.deps().postgres;
    let input = Arc::new(import::parse(&op.input, state.config().document_max_bytes, state.config().metadata, state.config().vectors.dim)?);
    let total = input.documents.len();
    let batch = state.config().operations.import_batch as usize;
    let mut inserted = 0u64;
    for start in (0..total).step_by(batch) {
        if let Some(ending) = interrupted(signal) {
            return Ok(ending);
        }
        let end = (start + batch).min(total);
        let rows = import::rows(op.id, &input, start..end);
        let mut s = Scoped::begin(pool, caller, op.project_id).await?;
        s.scope().require(Role::Editor)?;
        inserted += operations::import_batch(&mut s, &rows, op.id).await?;
        s.commit().await?;
        let percent = i16::try_from(end * 100 / total).unwrap_or(100);
        if !operations::progress(pool, op.id, owner, percent, serde_json::json!({ "documents": end, "of": total })).await? {
            return Ok(Ending::Lost);
        }
        state.events().recorded();
    }
    Ending::done(&serde_json::json!({ "documents": total, "inserted_by_this_attempt": inserted }))
}

async fn run_export(
    state: &AppState,
    owner: &str,
    op: &Claimed,
    caller: &Caller,
    signal: &watch::Receiver<Heartbeat>,
) -> Result<Ending, ApiError> {
    let pool = &state.deps().postgres;
    // One read-only snapshot: the bundle is consistent however long the export takes.
    let mut s = Scoped::begin_snapshot(pool, caller, op.project_id).await?;
    let project = projects::get(&mut s).await?;
    let totals = operations::document_totals(&mut s).await?;
    let expected = export::check_estimate(&totals)?;
    let total = totals.documents.max(1);
    let project = serde_json::to_value(poem_openapi::types::ToJSON::to_json(&project)).unwrap_or_default();
    let mut bundle = export::Bundle::new(&project, expected, export::MAX_BUNDLE_BYTES);
    let mut after = None;
    loop {
        if let Some(ending) = interrupted(signal) {
            return Ok(ending);
        }
        let page = operations::export_page(&mut s, after, export::PAGE).await?;
        let full = page.len() as i64 == export::PAGE;
        let last = page.last().map(|(id, _)| *id);
        for (_, document) in &page {
            bundle.push(document)?;
        }
        let documents = bundle.documents();
        let percent = i16::try_from((documents as i64 * 100 / total).min(99)).unwrap_or(99);
        if !operations::progress(pool, op.id, owner, percent, serde_json::json!({ "documents": documents })).await? {
            return Ok(Ending::Lost);
        }
        state.events().recorded();
        match (full, last) {
            (true, Some(id)) => after = Some(id),
            _ => break,
        }
    }
    s.commit().await?;
    let bundle = bundle.finish().map_err(|e| ApiError::Internal(format!("the export bundle is not valid JSON: {e}")))?;
    Ok(Ending::Done(bundle))
}
