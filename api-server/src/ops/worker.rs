//! Workers: each claims one operation at a time (`FOR UPDATE SKIP LOCKED`), renews its lease
//! every quarter second (reading the cancel flag on the way, so a cancel lands within a
//! second), and works in project scopes as the operation's creator — whose membership and role
//! are checked again at every step.

use std::{sync::Arc, time::Duration};

use tokio::{sync::watch, task::JoinHandle};
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use super::{
    export, import,
    step::{Ending, Step, interrupted},
};
use crate::{
    access::{Caller, Editor, Principal, Viewer, WorkerScope},
    client_span,
    db::{
        Database,
        operations::{self, Claimed, Found, Heartbeat, OperationKind, OperationStatus},
        projects,
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
    db: Database,
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
        handles.push(tokio::spawn(prune(state.deps().db.clone(), retention, stopped)));
    }
    Workers { handles, shutdown, instance, db: state.deps().db.clone() }
}

/// Deletes the operations that ended more than `retention` ago: at start-up, then every
/// [`PRUNE_EVERY`]. Replicas pruning at once skip each other's rows.
async fn prune(db: Database, retention: Duration, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        let mut deleted = 0;
        loop {
            match operations::prune(&db, retention, PRUNE_BATCH).await {
                Ok(n) => {
                    deleted += n;
                    if n < PRUNE_BATCH as u64 {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %crate::db::describe(&e), "cannot delete ended operations past their retention; will retry");
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
        match operations::release(&self.db, &self.instance).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(operations = n, "handed running operations back to the queue"),
            Err(e) => {
                tracing::warn!(error = %crate::db::describe(&e), "could not hand operations back; their leases will expire")
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
    let db = state.deps().db.clone();
    let lease = state.config().operations.lease;
    while !*shutdown.borrow() {
        match operations::claim(&db, &owner, lease, run_span).await {
            Ok(Some((op, work, span))) => {
                // The claim recorded `operation.running`.
                state.events().recorded();
                execute(&state, &work, op, span).await;
            }
            Ok(None) => {
                let _ = tokio::time::timeout(IDLE, shutdown.changed()).await;
            }
            Err(e) => {
                tracing::warn!(error = %crate::db::describe(&e), "operation worker cannot reach the database");
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

/// The span of one run of an operation: the root of a trace of its own (a run may come long
/// after the request, and many runs after one), linked to the request that queued it. Its
/// plain fields are the log lines' own, as they always were; the trace's name and kind are
/// fields the JSON log leaves out, and its attributes are set on the exported span only.
fn run_span(found: &Found) -> Span {
    let kind = operations::kind_text(found.kind);
    let span = tracing::error_span!(
        parent: None,
        "operation",
        operation = %found.id,
        kind = ?found.kind,
        attempt = found.attempt,
        otel.name = %format!("operation {kind}"),
        otel.kind = "consumer",
    );
    if client_span::traced(&span) {
        span.set_attribute("jeex.operation.id", found.id.to_string());
        span.set_attribute("jeex.operation.kind", kind);
        span.set_attribute("jeex.operation.attempt", i64::from(found.attempt));
        span.set_attribute("jeex.project_id", found.project_id.to_string());
        if let Some(queued_by) = found.traceparent.as_deref().and_then(client_span::remote) {
            span.add_link(queued_by);
        }
    }
    span
}

async fn execute(state: &AppState, work: &WorkerScope, op: Claimed, span: Span) {
    let db = state.deps().db.clone();
    let lease = state.config().operations.lease;
    let (signal_tx, signal) = watch::channel(Heartbeat::Continue);
    // Aborted with the run, however it ends (also when the worker itself is aborted): a
    // heartbeat must never outlive the work it vouches for.
    let beat = AbortOnDrop({
        let (db, work, id) = (db.clone(), work.clone(), op.id);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(BEAT).await;
                match operations::heartbeat(&db, &work, lease).await {
                    Ok(Heartbeat::Continue) => {}
                    Ok(other) => {
                        let _ = signal_tx.send(other);
                        return;
                    }
                    Err(e) => tracing::warn!(operation = %id, error = %crate::db::describe(&e), "lease renewal failed"),
                }
            }
        })
    });
    let outcome = run_kind(state, work, &op, &signal).instrument(span.clone()).await;
    drop(beat);
    let ending = if client_span::traced(&span) { tracing::error_span!(parent: &span, "finish") } else { Span::none() };
    let finished = match outcome {
        Ok(Ending::Done(result)) => operations::finish(&db, work, OperationStatus::Succeeded, Some(&result), None).instrument(ending).await,
        Ok(Ending::Cancelled) => operations::finish(&db, work, OperationStatus::Cancelled, None, None).instrument(ending).await,
        Ok(Ending::Lost) => {
            tracing::warn!(operation = %op.id, "lease lost to another replica; abandoning this run");
            client_span::fail(&span, "lease_lost");
            return;
        }
        Err(e) if e.is_transient() => {
            // Transient: leave the lease to expire; the next claim retries (and counts).
            tracing::warn!(operation = %op.id, detail = %e, "operation interrupted; it will be retried");
            client_span::fail(&span, "interrupted");
            return;
        }
        Err(e) => {
            tracing::warn!(operation = %op.id, error = %e, "operation failed");
            client_span::fail(&span, e.code().as_str());
            // Internal details stay in the log; the API shows the public reason only.
            let public = match &e {
                ApiError::Internal(_) => "an internal error stopped the operation; see the server log".to_owned(),
                other => other.to_string(),
            };
            operations::finish(&db, work, OperationStatus::Failed, None, Some(&public)).instrument(ending).await
        }
    };
    match finished {
        Ok(true) => state.events().recorded(),
        Ok(false) => tracing::warn!(operation = %op.id, "the lease was lost before the end could be recorded"),
        Err(e) => {
            tracing::warn!(operation = %op.id, error = %crate::db::describe(&e), "could not record the end of the operation")
        }
    }
}

/// The creator, acting again: a user (membership re-checked by every scope) or an API key
/// (which must still be live, with its current role).
async fn creator(db: &Database, op: &Claimed) -> Result<Caller, ApiError> {
    let gone =
        || ApiError::Status(ErrorCode::Forbidden, "the operation's creator (user or API key) can no longer act in the project".into());
    let principal = match (op.created_by, op.created_by_key) {
        (Some(user_id), _) => Principal::User { user_id },
        (None, Some(key_id)) => {
            let role = crate::db::api_keys::live_role(db, op.project_id, key_id).await?.ok_or_else(gone)?;
            Principal::ApiKey { key_id, project_id: op.project_id, role }
        }
        (None, None) => return Err(gone()),
    };
    Ok(Caller { principal, correlation_id: format!("operation-{}", op.id) })
}

async fn run_kind(state: &AppState, work: &WorkerScope, op: &Claimed, signal: &Step) -> Result<Ending, ApiError> {
    let caller = creator(&state.deps().db, op).await?;
    match op.kind {
        OperationKind::DocumentsImport => run_import(state, work, op, &caller, signal).await,
        OperationKind::ProjectExport => run_export(state, work, op, &caller, signal).await,
        OperationKind::DocumentsReindex => super::reindex::run(state, work, op, &caller, signal).await,
    }
}

async fn run_import(state: &AppState, work: &WorkerScope, op: &Claimed, caller: &Caller, signal: &Step) -> Result<Ending, ApiError> {
    let db = &state.deps().db;
    let input = Arc::new(import::parse(&op.input, state.config().document_max_bytes, state.config().metadata, state.config().vectors.dim)?);
    let total = input.documents.len();
    let batch = state.config().operations.import_batch as usize;
    let mut inserted = 0u64;
    for start in (0..total).step_by(batch) {
        if let Some(ending) = interrupted(signal) {
            return Ok(ending);
        }
        let end = (start + batch).min(total);
        let step = super::step::step_span!("import batch", jeex.batch.first = start as i64, jeex.batch.size = (end - start) as i64);
        let batch = async {
            let rows = import::rows(op.id, &input, start..end);
            let mut s = db.scoped::<Editor>(caller, op.project_id).await?;
            let added = operations::import_batch(&mut s, &rows, op.id).await?;
            s.commit().await?;
            let percent = i16::try_from(end * 100 / total).unwrap_or(100);
            let ours = operations::progress(db, work, percent, serde_json::json!({ "documents": end, "of": total })).await?;
            Ok::<_, ApiError>((added, ours))
        };
        let (added, ours) = batch.instrument(step).await?;
        inserted += added;
        if !ours {
            return Ok(Ending::Lost);
        }
        state.events().recorded();
    }
    Ending::done(&serde_json::json!({ "documents": total, "inserted_by_this_attempt": inserted }))
}

async fn run_export(state: &AppState, work: &WorkerScope, op: &Claimed, caller: &Caller, signal: &Step) -> Result<Ending, ApiError> {
    let db = &state.deps().db;
    // One read-only snapshot: the bundle is consistent however long the export takes.
    let mut s = db.snapshot::<Viewer>(caller, op.project_id).await?;
    let project = projects::get(&mut s).await?;
    let totals = operations::document_totals(&mut s).await?;
    let expected = export::check_estimate(&totals)?;
    let total = totals.documents.max(1);
    let project =
        serde_json::to_value(poem_openapi::types::ToJSON::to_json(&crate::api::views::Project::from(project))).unwrap_or_default();
    let mut bundle = export::Bundle::new(&project, expected, export::MAX_BUNDLE_BYTES);
    let mut after = None;
    loop {
        if let Some(ending) = interrupted(signal) {
            return Ok(ending);
        }
        let step = super::step::step_span!("export page");
        let page = operations::export_page(&mut s, after, export::PAGE).instrument(step.clone()).await?;
        let full = page.len() as i64 == export::PAGE;
        let last = page.last().map(|(id, _)| *id);
        for (_, document) in &page {
            bundle.push(document)?;
        }
        let documents = bundle.documents();
        let percent = i16::try_from((documents as i64 * 100 / total).min(99)).unwrap_or(99);
        if !operations::progress(db, work, percent, serde_json::json!({ "documents": documents })).instrument(step).await? {
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
