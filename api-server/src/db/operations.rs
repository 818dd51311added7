//! Operations. The API side works in a project [`Scoped`] transaction like every resource;
//! the worker side (claim, heartbeat, progress, finish) runs in transactions that declare
//! themselves the worker (`jeex.worker = claim`), the one policy that spans projects — and
//! every change it makes is conditioned on holding the lease.
//!
//! Every state change records its event (`operation.queued`, `.running`, `.progress`,
//! `.cancel_requested`, `.succeeded`, `.failed`, `.cancelled`) in the event outbox in the same
//! transaction: the operation's state and its events never disagree.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{Instrument, Span};
use uuid::Uuid;

use super::{
    Database, audit, event_outbox,
    page::{Page, Paged},
};
use crate::{
    access::{Admits, Editor, Entry, Level, Scoped, Tx, WorkerScope},
    client_span,
    error::{ApiError, ErrorCode},
};

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text")]
pub enum OperationKind {
    /// Insert documents in batches, idempotently.
    #[sqlx(rename = "documents.import")]
    DocumentsImport,
    /// Build a JSON bundle of the project and its documents.
    #[sqlx(rename = "project.export")]
    ProjectExport,
    /// Rebuild the project's part of the vector index from PostgreSQL.
    #[sqlx(rename = "documents.reindex")]
    DocumentsReindex,
}

/// Where an operation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
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

impl OperationStatus {
    /// Whether the operation has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

/// An operation as the API shows it (its result is fetched separately; its input serves only
/// its worker and is dropped when it ends).
#[derive(Debug, Clone, sqlx::FromRow)]
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

fn not_found() -> ApiError {
    ApiError::Status(ErrorCode::NotFound, "no such operation in this project".into())
}

/// Queues an operation in the scoped project.
pub async fn create(
    s: &mut Scoped<impl Admits<Editor>>,
    kind: OperationKind,
    input: &str,
    max_attempts: u32,
) -> Result<Operation, ApiError> {
    let (scope, conn) = s.parts();
    let op = sqlx::query_as!(
        Operation,
        r#"INSERT INTO operations (id, project_id, kind, input, created_by, created_by_key, max_attempts, traceparent)
           VALUES ($1, $2, $3, $4::text::jsonb, $5, $6, $7, $8)
           RETURNING id, project_id, kind AS "kind: OperationKind", status AS "status: OperationStatus", progress, error, attempt,
                  cancel_requested, created_by, created_at, updated_at, started_at, finished_at"#,
        Uuid::now_v7(),
        scope.project_id(),
        kind as _,
        input,
        scope.caller().user_id(),
        scope.caller().api_key_id(),
        i32::try_from(max_attempts).unwrap_or(i32::MAX),
        client_span::traceparent()
    )
    .fetch_one(conn)
    .await?;
    audit::record(s, "operation.create", "operation", op.id, serde_json::json!({ "kind": kind_text(kind) })).await?;
    let queued = serde_json::json!({ "kind": kind_text(kind) });
    event_outbox::record(s.conn(), op.project_id, Some(op.id), "operation.queued", &queued).await?;
    Ok(op)
}

/// The project's operations, newest first.
pub async fn list(e: &Entry<impl Level>, status: Option<OperationStatus>, page: &Page) -> Result<Paged<Operation>, ApiError> {
    let rows = sqlx::query_as!(
        Operation,
        r#"SELECT o.id AS "id!", o.project_id AS "project_id!", o.kind AS "kind!: OperationKind", o.status AS "status!: OperationStatus",
                  o.progress AS "progress!", o.error, o.attempt AS "attempt!", o.cancel_requested AS "cancel_requested!", o.created_by,
                  o.created_at AS "created_at!", o.updated_at AS "updated_at!", o.started_at, o.finished_at
           FROM jeex_enter($1, $2, $3, $4) AS entered(role)
           CROSS JOIN LATERAL (
               SELECT id, project_id, kind, status, progress, error, attempt, cancel_requested, created_by, created_at, updated_at,
                      started_at, finished_at
               FROM operations WHERE project_id = $3 AND ($5::text IS NULL OR status = $5)
                 AND ($6::uuid IS NULL OR id < $6) AND entered.role IS NOT NULL
               ORDER BY id DESC LIMIT $7 OFFSET 0) o
           ORDER BY o.id DESC"#,
        e.user(),
        e.key(),
        e.project_id(),
        e.needs(),
        status as _,
        page.after()?,
        page.fetch()
    )
    .fetch_all(e.exec())
    .await?;
    Ok(Paged::keyset(rows, page, |o| o.id))
}

/// One operation.
pub async fn get(s: &mut Scoped<impl Level>, id: Uuid) -> Result<Operation, ApiError> {
    let (scope, conn) = s.parts();
    sqlx::query_as!(
        Operation,
        r#"SELECT id, project_id, kind AS "kind: OperationKind", status AS "status: OperationStatus", progress, error, attempt,
                  cancel_requested, created_by, created_at, updated_at, started_at, finished_at
           FROM operations WHERE project_id = $1 AND id = $2"#,
        scope.project_id(),
        id
    )
    .fetch_optional(conn)
    .await?
    .ok_or_else(not_found)
}

/// One operation, in one statement that enters the project (see [`super::projects::read`]);
/// the event streams read it inside their scope with [`get`].
pub async fn read(e: &Entry<impl Level>, id: Uuid) -> Result<Operation, ApiError> {
    sqlx::query_as!(
        Operation,
        r#"SELECT o.id AS "id!", o.project_id AS "project_id!", o.kind AS "kind!: OperationKind", o.status AS "status!: OperationStatus",
                  o.progress AS "progress!", o.error, o.attempt AS "attempt!", o.cancel_requested AS "cancel_requested!", o.created_by,
                  o.created_at AS "created_at!", o.updated_at AS "updated_at!", o.started_at, o.finished_at
           FROM jeex_enter($1, $2, $3, $4) AS entered(role)
           CROSS JOIN LATERAL (
               SELECT id, project_id, kind, status, progress, error, attempt, cancel_requested, created_by, created_at, updated_at,
                      started_at, finished_at
               FROM operations WHERE project_id = $3 AND id = $5 AND entered.role IS NOT NULL OFFSET 0) o"#,
        e.user(),
        e.key(),
        e.project_id(),
        e.needs(),
        id
    )
    .fetch_optional(e.exec())
    .await?
    .ok_or_else(not_found)
}

/// The result of a succeeded operation, as JSON text (an export's bundle goes out as
/// PostgreSQL wrote it, never parsed into a value); 409 while it is not.
pub async fn result(e: &Entry<impl Level>, id: Uuid) -> Result<String, ApiError> {
    let row = sqlx::query!(
        r#"SELECT o.status AS "status!: OperationStatus", o.result AS "result?"
           FROM jeex_enter($1, $2, $3, $4) AS entered(role)
           CROSS JOIN LATERAL (
               SELECT status, result::text AS result FROM operations
               WHERE project_id = $3 AND id = $5 AND entered.role IS NOT NULL OFFSET 0) o"#,
        e.user(),
        e.key(),
        e.project_id(),
        e.needs(),
        id
    )
    .fetch_optional(e.exec())
    .await?
    .map(|r| (r.status, r.result));
    match row.ok_or_else(not_found)? {
        (OperationStatus::Succeeded, Some(result)) => Ok(result),
        (status, _) => Err(ApiError::Status(ErrorCode::Conflict, format!("the operation is {}; it has no result", status_text(status)))),
    }
}

/// Cancels: a queued operation ends at once; a running one is flagged and its worker stops
/// at its next step (within a second). Ended operations stay as they are.
pub async fn cancel(s: &mut Scoped<impl Admits<Editor>>, id: Uuid) -> Result<Operation, ApiError> {
    let (scope, conn) = s.parts();
    let cancelled = sqlx::query_as!(
        Operation,
        r#"UPDATE operations SET
               cancel_requested = true,
               status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
               finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END,
               input = CASE WHEN status = 'queued' THEN NULL ELSE input END,
               updated_at = now()
           WHERE project_id = $1 AND id = $2 AND status IN ('queued', 'running')
           RETURNING id, project_id, kind AS "kind: OperationKind", status AS "status: OperationStatus", progress, error, attempt,
                  cancel_requested, created_by, created_at, updated_at, started_at, finished_at"#,
        scope.project_id(),
        id
    )
    .fetch_optional(conn)
    .await?;
    match cancelled {
        Some(op) => {
            audit::record(s, "operation.cancel", "operation", id, serde_json::json!({})).await?;
            let kind = if op.status == OperationStatus::Cancelled { "operation.cancelled" } else { "operation.cancel_requested" };
            event_outbox::record(s.conn(), op.project_id, Some(op.id), kind, &serde_json::json!({})).await?;
            Ok(op)
        }
        None => get(s, id).await,
    }
}

/// A claimed operation, as its worker needs it.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Id.
    pub id: Uuid,
    /// Project.
    pub project_id: Uuid,
    /// Kind.
    pub kind: OperationKind,
    /// Input, as JSON text: an import's may be tens of MiB, parsed once into its typed form.
    pub input: String,
    /// This claim's attempt number.
    pub attempt: i32,
    /// Creator (user).
    pub created_by: Option<Uuid>,
    /// Creator (API key).
    pub created_by_key: Option<Uuid>,
}

/// A lease as an SQL interval (ten seconds when it is out of range).
fn lease_interval(lease: Duration) -> chrono::Duration {
    chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(10))
}

async fn worker_tx(db: &Database) -> Result<Tx, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query!("SELECT set_config('jeex.worker', 'claim', true)").fetch_one(&mut tx).await?;
    Ok(tx)
}

/// A claimable operation the claim found and locked, before it changes anything: the worker
/// opens the operation's trace from it, and the claim's own statements run in that trace.
#[derive(Debug, Clone)]
pub struct Found {
    /// Id.
    pub id: Uuid,
    /// Project.
    pub project_id: Uuid,
    /// Kind.
    pub kind: OperationKind,
    /// The attempt this claim would make.
    pub attempt: i32,
    /// The trace context of the request that queued it, if that was traced.
    pub traceparent: Option<String>,
}

/// Claims the oldest queued operation, or one whose lease expired. Operations out of
/// attempts are failed on the way. `trace` gives the span of a found operation's run (the
/// claim's changes are recorded in it); the search itself, which finds nothing most of the
/// time, is traced in no span.
pub async fn claim(
    db: &Database,
    owner: &str,
    lease: Duration,
    trace: impl Fn(&Found) -> Span,
) -> Result<Option<(Claimed, WorkerScope, Span)>, sqlx::Error> {
    loop {
        let mut tx = worker_tx(db).await?;
        let next = sqlx::query!(
            r#"SELECT id, project_id, kind AS "kind: OperationKind", attempt, max_attempts, cancel_requested, traceparent FROM operations
               WHERE status = 'queued' OR (status = 'running' AND lease_expires_at < now())
               ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED"#
        )
        .fetch_optional(&mut tx)
        .await?;
        let Some(next) = next else { return Ok(None) };
        let found =
            Found { id: next.id, project_id: next.project_id, kind: next.kind, attempt: next.attempt + 1, traceparent: next.traceparent };
        let run = trace(&found);
        // Only a traced run gets the claim's own span: a log line of the claim keeps no empty one.
        let claiming = if client_span::traced(&run) { tracing::error_span!(parent: &run, "claim") } else { run.clone() };
        let taken = take(tx, &found, next.max_attempts, next.cancel_requested, owner, lease).instrument(claiming).await?;
        if let Some(claimed) = taken {
            let work = WorkerScope::claimed(claimed.id, claimed.project_id, owner);
            return Ok(Some((claimed, work, run)));
        }
    }
}

/// The claim's changes to a found operation: cancelled or failed (then `None`: look for
/// another), or running under `owner`'s lease.
async fn take(
    mut tx: Tx,
    found: &Found,
    max_attempts: i32,
    cancel_requested: bool,
    owner: &str,
    lease: Duration,
) -> Result<Option<Claimed>, sqlx::Error> {
    let (id, project) = (found.id, found.project_id);
    let attempt = found.attempt - 1;
    if cancel_requested {
        // Cancelled while its worker was gone: end it instead of running another step.
        sqlx::query!(
            "UPDATE operations SET status = 'cancelled', input = NULL, lease_owner = NULL, lease_expires_at = NULL, finished_at = now(),
                 updated_at = now()
             WHERE id = $1",
            id
        )
        .execute(&mut tx)
        .await?;
        event_outbox::record(&mut tx, project, Some(id), "operation.cancelled", &serde_json::json!({})).await?;
        tx.commit().await?;
        return Ok(None);
    }
    if attempt >= max_attempts {
        let error = format!("gave up after {attempt} attempts (the replicas running it stopped)");
        sqlx::query!(
            "UPDATE operations SET status = 'failed', error = $2, input = NULL, lease_owner = NULL, finished_at = now(), updated_at = now()
             WHERE id = $1",
            id,
            &error
        )
        .execute(&mut tx)
        .await?;
        event_outbox::record(&mut tx, project, Some(id), "operation.failed", &serde_json::json!({ "error": error })).await?;
        tx.commit().await?;
        return Ok(None);
    }
    let claimed = sqlx::query_as!(
        Claimed,
        r#"UPDATE operations SET status = 'running', attempt = attempt + 1, lease_owner = $2,
               lease_expires_at = now() + $3, started_at = coalesce(started_at, now()), updated_at = now()
           WHERE id = $1
           RETURNING id, project_id, kind AS "kind: OperationKind", input::text AS "input!", attempt, created_by, created_by_key"#,
        id,
        owner,
        lease_interval(lease) as _
    )
    .fetch_one(&mut tx)
    .await?;
    let running = serde_json::json!({ "attempt": claimed.attempt });
    event_outbox::record(&mut tx, project, Some(id), "operation.running", &running).await?;
    tx.commit().await?;
    Ok(Some(claimed))
}

/// Hands back every running operation of `instance` (a graceful stop): queued again (an
/// `operation.queued` event with `requeued: true`), and the attempt not counted, so rolling
/// deploys never use up an operation's attempts.
pub async fn release(db: &Database, instance: &str) -> Result<u64, sqlx::Error> {
    let mut tx = worker_tx(db).await?;
    let done = sqlx::query!(
        r#"WITH released AS (
               UPDATE operations SET status = 'queued', attempt = greatest(attempt - 1, 0), lease_owner = NULL, lease_expires_at = NULL,
                   updated_at = now()
               WHERE status = 'running' AND lease_owner LIKE $1 || '/%' RETURNING id, project_id)
           INSERT INTO event_outbox (project_id, operation_id, kind, data)
           SELECT project_id, id, 'operation.queued', '{"requeued": true}' FROM released"#,
        instance
    )
    .execute(&mut tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// Lease renewed; keep going.
    Continue,
    /// Lease renewed, but a cancel was requested.
    Cancel,
    /// The lease is no longer ours (it expired and another replica took over): stop.
    Lost,
}

/// Renews the lease and reads the cancel flag.
pub async fn heartbeat(db: &Database, work: &WorkerScope, lease: Duration) -> Result<Heartbeat, sqlx::Error> {
    let mut tx = worker_tx(db).await?;
    let flag = sqlx::query_scalar!(
        "UPDATE operations SET lease_expires_at = now() + $3
         WHERE id = $1 AND lease_owner = $2 AND status = 'running' RETURNING cancel_requested",
        work.operation_id(),
        work.owner(),
        lease_interval(lease) as _
    )
    .fetch_optional(&mut tx)
    .await?;
    tx.commit().await?;
    Ok(match flag {
        None => Heartbeat::Lost,
        Some(true) => Heartbeat::Cancel,
        Some(false) => Heartbeat::Continue,
    })
}

/// Records progress (and its `operation.progress` event, `data` plus `progress`) while
/// holding the lease.
pub async fn progress(db: &Database, work: &WorkerScope, percent: i16, mut data: serde_json::Value) -> Result<bool, sqlx::Error> {
    let percent = percent.clamp(0, 100);
    if let Some(fields) = data.as_object_mut() {
        fields.insert("progress".into(), percent.into());
    }
    let mut tx = worker_tx(db).await?;
    let done = sqlx::query!(
        "WITH changed AS (
             UPDATE operations SET progress = $3, updated_at = now()
             WHERE id = $1 AND lease_owner = $2 AND status = 'running' RETURNING project_id)
         INSERT INTO event_outbox (project_id, operation_id, kind, data, trace_id)
         SELECT project_id, $1, 'operation.progress', $4, $5 FROM changed",
        work.operation_id(),
        work.owner(),
        percent,
        sqlx::types::Json(&data) as _,
        client_span::trace_id()
    )
    .execute(&mut tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Ends the operation while holding the lease, with its `operation.<status>` event (the
/// error, if any, in its data). Returns whether it was still ours.
pub async fn finish(
    db: &Database,
    work: &WorkerScope,
    status: OperationStatus,
    result: Option<&serde_json::value::RawValue>,
    error: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let data = match error {
        Some(error) => serde_json::json!({ "error": error }),
        None => serde_json::json!({}),
    };
    let mut tx = worker_tx(db).await?;
    let done = sqlx::query!(
        "WITH ended AS (
             UPDATE operations SET status = $3, result = $4, error = $5, input = NULL,
                 progress = CASE WHEN $3 = 'succeeded' THEN 100 ELSE progress END,
                 lease_owner = NULL, lease_expires_at = NULL, finished_at = now(), updated_at = now()
             WHERE id = $1 AND lease_owner = $2 AND status = 'running' RETURNING project_id)
         INSERT INTO event_outbox (project_id, operation_id, kind, data, trace_id)
         SELECT project_id, $1, 'operation.' || $3, $6, $7 FROM ended",
        work.operation_id(),
        work.owner(),
        status as _,
        result.map(sqlx::types::Json) as _,
        error,
        sqlx::types::Json(&data) as _,
        client_span::trace_id()
    )
    .execute(&mut tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes operations that ended more than `age` ago, with their results, at most `batch` at
/// a time (another replica pruning meanwhile skips the rows this one holds). Returns how many.
pub async fn prune(db: &Database, age: Duration, batch: i64) -> Result<u64, sqlx::Error> {
    let mut tx = worker_tx(db).await?;
    let done = sqlx::query!(
        "DELETE FROM operations WHERE id IN (
             SELECT id FROM operations WHERE finished_at < now() - $1::interval
             ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        chrono::Duration::from_std(age).unwrap_or(chrono::TimeDelta::MAX) as _,
        batch
    )
    .execute(&mut tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Inserts an import batch with ids derived from the operation, so a retried batch inserts
/// nothing twice. Returns the rows actually inserted.
pub async fn import_batch(s: &mut Scoped<impl Admits<Editor>>, rows: &ImportRows, operation: Uuid) -> Result<u64, ApiError> {
    let (scope, conn) = s.parts();
    let inserted = insert_rows(conn, scope.project_id(), scope.caller().user_id(), rows).await?;
    audit::record(s, "document.import", "operation", operation, serde_json::json!({ "offered": rows.ids.len(), "inserted": inserted }))
        .await?;
    Ok(inserted)
}

/// Column arrays of one import batch.
#[derive(Default)]
pub struct ImportRows {
    /// Derived ids.
    pub ids: Vec<Uuid>,
    /// Titles.
    pub titles: Vec<String>,
    /// Contents.
    pub contents: Vec<String>,
    /// Languages.
    pub languages: Vec<String>,
    /// Metadata objects.
    pub metadata: Vec<serde_json::Value>,
    /// Where each row's embedding starts in `embeddings` (`None`: the row has none). A flat
    /// array with offsets, because PostgreSQL cannot unnest an array of arrays into rows.
    pub embedding_at: Vec<Option<i32>>,
    /// The batch's embeddings, end to end.
    pub embeddings: Vec<f32>,
    /// The length of every embedding in the batch (validated against the configured
    /// dimension), so row r's is `embeddings[at .. at + embedding_len]`.
    pub embedding_len: i32,
}

impl ImportRows {
    /// Adds the embedding of the row just pushed (or notes that it has none).
    pub fn push_embedding(&mut self, embedding: Option<&[f32]>) {
        // A batch holds a few thousand vectors of a few thousand numbers: the sizes fit.
        let fit = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        self.embedding_at.push(embedding.map(|_| fit(self.embeddings.len())));
        if let Some(e) = embedding {
            self.embedding_len = fit(e.len());
            self.embeddings.extend_from_slice(e);
        }
    }
}

async fn insert_rows(conn: &mut Tx, project: Uuid, user: Option<Uuid>, rows: &ImportRows) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "INSERT INTO documents (id, project_id, title, content, language, metadata, created_by, embedding)
         SELECT r.id, $2, r.title, r.content, r.language, r.metadata, $3,
                CASE WHEN r.at IS NOT NULL THEN ($9::real[])[r.at + 1 : r.at + $10] END
         FROM UNNEST($1::uuid[], $4::text[], $5::text[], $6::text[], $7::jsonb[], $8::int4[])
              AS r(id, title, content, language, metadata, at)
         ON CONFLICT (id) DO NOTHING",
        &rows.ids,
        project,
        user,
        &rows.titles,
        &rows.contents,
        &rows.languages,
        &rows.metadata,
        &rows.embedding_at as _,
        &rows.embeddings,
        rows.embedding_len
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A page of the scoped project's live documents (export), `after` a document id, `limit` at a time.
/// Each document comes as its id and its JSON text.
pub async fn export_page(s: &mut Scoped<impl Level>, after: Option<Uuid>, limit: i64) -> Result<Vec<(Uuid, String)>, ApiError> {
    let (scope, conn) = s.parts();
    let rows = sqlx::query!(
        r#"SELECT id, jsonb_build_object('id', id, 'title', title, 'content', content, 'language', language, 'metadata', metadata,
                                        'embedding', embedding, 'created_at', created_at, 'updated_at', updated_at, 'version', version)::text
                  AS "document!"
           FROM documents WHERE project_id = $1 AND deleted_at IS NULL AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"#,
        scope.project_id(),
        after,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.document)).collect())
}

/// What an export of the scoped project would hold.
#[derive(Debug)]
pub struct DocumentTotals {
    /// Live documents.
    pub documents: i64,
    /// Their titles, content and metadata, in bytes.
    pub text_bytes: i64,
    /// Numbers in their embeddings.
    pub embedding_numbers: i64,
}

/// Totals of the live documents in the scoped project (export progress and limit).
pub async fn document_totals(s: &mut Scoped<impl Level>) -> Result<DocumentTotals, ApiError> {
    let (scope, conn) = s.parts();
    Ok(sqlx::query_as!(
        DocumentTotals,
        r#"SELECT count(*) AS "documents!",
                  coalesce(sum(octet_length(title) + octet_length(content) + octet_length(metadata::text)), 0)::bigint AS "text_bytes!",
                  coalesce(sum(cardinality(embedding)), 0)::bigint AS "embedding_numbers!"
           FROM documents WHERE project_id = $1 AND deleted_at IS NULL"#,
        scope.project_id()
    )
    .fetch_one(conn)
    .await?)
}

/// The kind as the API and events spell it (`documents.import`).
pub fn kind_text(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::DocumentsImport => "documents.import",
        OperationKind::ProjectExport => "project.export",
        OperationKind::DocumentsReindex => "documents.reindex",
    }
}

fn status_text(status: OperationStatus) -> &'static str {
    match status {
        OperationStatus::Queued => "queued",
        OperationStatus::Running => "running",
        OperationStatus::Succeeded => "succeeded",
        OperationStatus::Failed => "failed",
        OperationStatus::Cancelled => "cancelled",
    }
}
