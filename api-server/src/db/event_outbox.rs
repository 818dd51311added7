//! The event outbox (see the `event_outbox` migration): operation events recorded in the
//! transaction that changes the operation, and relayed to the event history by one replica at
//! a time — the relay holds a transaction-level advisory lock, so events leave in the order
//! they were recorded.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

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
}

/// Records `kind` for `operation` in `project`, in the caller's transaction: it is relayed
/// only if that transaction commits.
pub async fn record(
    conn: &mut PgConnection,
    project: Uuid,
    operation: Option<Uuid>,
    kind: &str,
    data: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO event_outbox (project_id, operation_id, kind, data) VALUES ($1, $2, $3, $4)")
        .bind(project)
        .bind(operation)
        .bind(kind)
        .bind(sqlx::types::Json(data))
        .execute(conn)
        .await
        .map(drop)
}

/// Opens a relay pass: a transaction declared as a worker, holding the relay lock. `None` when
/// another replica holds the lock (it is relaying).
pub async fn begin_relay(pool: &PgPool) -> Result<Option<Transaction<'static, Postgres>>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT set_config('jeex.worker', 'claim', true) IS NOT NULL AND pg_try_advisory_xact_lock($1)")
        .bind(RELAY_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    Ok(locked.then_some(tx))
}

/// The oldest `limit` recorded events.
pub async fn oldest(conn: &mut PgConnection, limit: i64) -> Result<Vec<Recorded>, sqlx::Error> {
    sqlx::query_as::<_, Recorded>("SELECT seq, project_id, operation_id, kind, data, created_at FROM event_outbox ORDER BY seq LIMIT $1")
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// Removes relayed events.
pub async fn remove(conn: &mut PgConnection, seqs: &[i64]) -> Result<u64, sqlx::Error> {
    sqlx::query("DELETE FROM event_outbox WHERE seq = ANY($1)").bind(seqs).execute(conn).await.map(|r| r.rows_affected())
}
