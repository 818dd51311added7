//! The event outbox (see the `event_outbox` migration): operation events recorded in the
//! transaction that changes the operation, and relayed to the event history by one replica at
//! a time — the relay holds a transaction-level advisory lock, so events leave in the order
//! they were recorded.

use crate::{access::Tx, client_span};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Database;

/// The advisory lock key ("jeexevnt").
const RELAY_LOCK: i64 = 0x6a65_6578_6576_6e74;

/// One recorded event, waiting to be relayed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Recorded {
    /// The outbox order.
    pub seq: i64,
    /// The project.
    pub project_id: Uuid,
    /// The operation.
    pub operation_id: Option<Uuid>,
    /// `operation.running`, …
    pub kind: String,
    /// Payload (an object).
    pub data: sqlx::types::Json<serde_json::Value>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// The trace it was recorded in (when that was sampled).
    pub trace_id: Option<String>,
}

/// Records `kind` for `operation` in `project`, in the caller's transaction: it is relayed
/// only if that transaction commits. The event names the trace it is recorded in.
pub(in crate::db) async fn record(
    conn: &mut Tx,
    project: Uuid,
    operation: Option<Uuid>,
    kind: &str,
    data: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO event_outbox (project_id, operation_id, kind, data, trace_id) VALUES ($1, $2, $3, $4, $5)",
        project,
        operation,
        kind,
        sqlx::types::Json(data) as _,
        client_span::trace_id()
    )
    .execute(conn)
    .await
    .map(drop)
}

/// A relay pass: a transaction declared as a worker, holding the relay lock.
pub struct RelayTx(Tx);

/// Recorded events read by a relay pass, in order. Only [`RelayTx::oldest`] builds one: the
/// event bus appends nothing else without a project scope.
#[derive(Debug)]
pub struct RelayBatch(Vec<Recorded>);

impl RelayBatch {
    /// Whether there is nothing to relay.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The outbox positions in the batch.
    pub fn seqs(&self) -> Vec<i64> {
        self.0.iter().map(|r| r.seq).collect()
    }

    /// The events, in order.
    pub fn into_rows(self) -> Vec<Recorded> {
        self.0
    }
}

/// Opens a relay pass. `None` when another replica holds the lock (it is relaying).
pub async fn begin_relay(db: &Database) -> Result<Option<RelayTx>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let locked = sqlx::query_scalar!(
        r#"SELECT set_config('jeex.worker', 'claim', true) IS NOT NULL AND pg_try_advisory_xact_lock($1) AS "locked!""#,
        RELAY_LOCK
    )
    .fetch_one(&mut tx)
    .await?;
    Ok(locked.then_some(RelayTx(tx)))
}

impl RelayTx {
    /// The oldest `limit` recorded events.
    pub async fn oldest(&mut self, limit: i64) -> Result<RelayBatch, sqlx::Error> {
        sqlx::query_as!(
            Recorded,
            r#"SELECT seq, project_id, operation_id, kind, data AS "data: sqlx::types::Json<serde_json::Value>", created_at, trace_id
               FROM event_outbox ORDER BY seq LIMIT $1"#,
            limit
        )
        .fetch_all(&mut self.0)
        .await
        .map(RelayBatch)
    }

    /// Removes relayed events.
    pub async fn remove(&mut self, seqs: &[i64]) -> Result<u64, sqlx::Error> {
        sqlx::query!("DELETE FROM event_outbox WHERE seq = ANY($1)", seqs).execute(&mut self.0).await.map(|r| r.rows_affected())
    }

    /// Commits the pass.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.0.commit().await
    }
}
