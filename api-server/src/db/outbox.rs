//! The vector outbox (rows written by triggers on `documents` and `projects`, see the
//! `vectors` migration) and the document states the index follows.
//!
//! One applier at a time per database: the drain and every reindex batch hold the same
//! transaction-level advisory lock while they read document states and write them to the
//! index, so an older state can never overwrite a newer one — any change committed after a
//! read leaves a newer outbox row, applied after.
use super::Database;
use crate::access::{Admits, Editor, Level, Scoped, set_rls};

use crate::access::Tx;
use uuid::Uuid;

/// The advisory lock key ("jeexvect").
const INDEX_LOCK: i64 = 0x6a65_6578_7665_6374;

/// One intent.
#[derive(Debug, Clone, Copy)]
pub struct Intent {
    /// Outbox row id (the order).
    pub id: i64,
    /// The project.
    pub project_id: Uuid,
    /// The document to bring up to date; `None` removes the whole project.
    pub document_id: Option<Uuid>,
}

/// A document whose vector belongs in the index.
#[derive(Debug, Clone)]
pub struct LiveVector {
    /// The document.
    pub id: Uuid,
    /// Its language.
    pub language: String,
    /// Its embedding.
    pub embedding: Vec<f32>,
}

/// The drain: a transaction declared as the worker, holding the index lock.
pub struct DrainTx(Tx);

/// Opens the drain. `None` when another replica holds the lock (it is draining).
pub async fn begin_drain(db: &Database) -> Result<Option<DrainTx>, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query!("SELECT set_config('jeex.worker', 'claim', true)").fetch_one(&mut tx).await?;
    let locked = sqlx::query_scalar!(r#"SELECT pg_try_advisory_xact_lock($1) AS "locked!""#, INDEX_LOCK).fetch_one(&mut tx).await?;
    Ok(locked.then_some(DrainTx(tx)))
}

impl DrainTx {
    /// The oldest `limit` intents.
    pub async fn oldest(&mut self, limit: i64) -> Result<Vec<Intent>, sqlx::Error> {
        oldest(&mut self.0, limit).await
    }

    /// Of `ids` in the intents' `project`, the documents whose vectors belong in the index.
    pub async fn states(&mut self, project: Uuid, ids: &[Uuid], dim: u64) -> Result<Vec<LiveVector>, sqlx::Error> {
        states(&mut self.0, project, ids, dim).await
    }

    /// Removes applied intents.
    pub async fn remove(&mut self, ids: &[i64]) -> Result<u64, sqlx::Error> {
        remove(&mut self.0, ids).await
    }

    /// Commits the drain.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.0.commit().await
    }
}

/// Waits for the index lock in a project-scoped transaction (a reindex batch).
pub async fn lock_index(s: &mut Scoped<impl Admits<Editor>>) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", INDEX_LOCK).fetch_one(s.conn()).await.map(drop)
}

async fn oldest(conn: &mut Tx, limit: i64) -> Result<Vec<Intent>, sqlx::Error> {
    sqlx::query_as!(Intent, "SELECT id, project_id, document_id FROM vector_outbox ORDER BY id LIMIT $1", limit).fetch_all(conn).await
}

/// Of `ids` in `project`, the documents whose vectors belong in the index now: live, in a
/// live project, with an embedding of the configured dimension. The rest must leave it.
async fn states(conn: &mut Tx, project: Uuid, ids: &[Uuid], dim: u64) -> Result<Vec<LiveVector>, sqlx::Error> {
    // Scoped to the intent's project, as every read of project data is.
    set_rls(conn, None, Some(project)).await?;
    sqlx::query_as!(
        LiveVector,
        r#"SELECT d.id, d.language, d.embedding AS "embedding!" FROM documents d JOIN projects p ON p.id = d.project_id
           WHERE d.project_id = $1 AND d.id = ANY($2) AND d.deleted_at IS NULL AND p.deleted_at IS NULL
             AND d.embedding IS NOT NULL AND cardinality(d.embedding) = $3"#,
        project,
        ids,
        i32::try_from(dim).unwrap_or(i32::MAX)
    )
    .fetch_all(conn)
    .await
}

async fn remove(conn: &mut Tx, ids: &[i64]) -> Result<u64, sqlx::Error> {
    sqlx::query!("DELETE FROM vector_outbox WHERE id = ANY($1)", ids).execute(conn).await.map(|r| r.rows_affected())
}

/// A page of the scoped project's vectors in id order, after `after` (a reindex).
pub async fn live_page(s: &mut Scoped<impl Level>, after: Option<Uuid>, limit: i64, dim: u64) -> Result<Vec<LiveVector>, sqlx::Error> {
    let (scope, conn) = s.parts();
    sqlx::query_as!(
        LiveVector,
        r#"SELECT id, language, embedding AS "embedding!" FROM documents
           WHERE project_id = $1 AND deleted_at IS NULL AND embedding IS NOT NULL AND cardinality(embedding) = $2
             AND ($3::uuid IS NULL OR id > $3) ORDER BY id LIMIT $4"#,
        scope.project_id(),
        i32::try_from(dim).unwrap_or(i32::MAX),
        after,
        limit
    )
    .fetch_all(conn)
    .await
}

/// Of `ids`, those that are live vectors of the scoped project.
pub async fn live_among(s: &mut Scoped<impl Level>, ids: &[Uuid], dim: u64) -> Result<Vec<Uuid>, sqlx::Error> {
    let (scope, conn) = s.parts();
    sqlx::query_scalar!(
        "SELECT id FROM documents WHERE project_id = $1 AND id = ANY($2) AND deleted_at IS NULL
         AND embedding IS NOT NULL AND cardinality(embedding) = $3",
        scope.project_id(),
        ids,
        i32::try_from(dim).unwrap_or(i32::MAX)
    )
    .fetch_all(conn)
    .await
}

/// How far the index is behind: pending intents and the age of the oldest, in seconds.
pub async fn lag(db: &Database) -> Result<(i64, f64), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query!("SELECT set_config('jeex.worker', 'claim', true)").fetch_one(&mut tx).await?;
    let row =
        sqlx::query!(r#"SELECT count(*) AS "pending!", extract(epoch FROM now() - min(created_at))::float8 AS age FROM vector_outbox"#)
            .fetch_one(&mut tx)
            .await?;
    tx.commit().await?;
    Ok((row.pending, row.age.unwrap_or(0.0).max(0.0)))
}

/// Live vectors of the scoped project (reindex progress).
pub async fn vector_count(s: &mut Scoped<impl Level>, dim: u64) -> Result<i64, sqlx::Error> {
    let (scope, conn) = s.parts();
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM documents
           WHERE project_id = $1 AND deleted_at IS NULL AND embedding IS NOT NULL AND cardinality(embedding) = $2"#,
        scope.project_id(),
        i32::try_from(dim).unwrap_or(i32::MAX)
    )
    .fetch_one(conn)
    .await
}
