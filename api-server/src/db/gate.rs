//! May this database be served? The schema must not be older than the binary, and outside
//! development the server's role must not bypass row-level security. Checked at start-up when
//! the database answers; otherwise readiness keeps asking until it does, so a server started
//! before its database never serves unchecked.
use super::Database;

use std::time::Duration;

use tokio::sync::OnceCell;

use super::{migrate, roles};

/// Why the database may not be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Migrations are pending.
    #[error("{0}")]
    SchemaBehind(String),
    /// The server's role bypasses row-level security or owns tables (outside development).
    #[error("{0}")]
    UnsafeRole(String),
}

/// The remembered verdict: `None` once checked and fine, `Some(refusal)` when refused.
pub struct DatabaseGate {
    verdict: OnceCell<Option<Refusal>>,
    strict: bool,
}

impl DatabaseGate {
    /// A gate that refuses unsafe roles when `strict` (staging and production: either would
    /// silently serve without row-level security); in development they are logged.
    pub fn new(strict: bool) -> Self {
        Self { verdict: OnceCell::new(), strict }
    }

    /// The verdict, checking the database (within `timeout`) until it has answered once.
    /// `Err` means the database did not answer.
    pub async fn verdict(&self, db: &Database, timeout: Duration) -> Result<Option<Refusal>, ()> {
        if let Some(v) = self.verdict.get() {
            return Ok(v.clone());
        }
        let checked = tokio::time::timeout(timeout, inspect(db, self.strict)).await.map_err(drop)?.map_err(drop)?;
        Ok(self.verdict.get_or_init(|| async { checked }).await.clone())
    }
}

async fn inspect(db: &Database, strict: bool) -> Result<Option<Refusal>, sqlx::Error> {
    let pending = migrate::pending(db).await?;
    if !pending.is_empty() {
        let versions: Vec<String> = pending.iter().map(i64::to_string).collect();
        return Ok(Some(Refusal::SchemaBehind(format!(
            "the database schema is older than this jeex-api: {} migration(s) pending ({}); run `jeex-api migrate`",
            pending.len(),
            versions.join(", ")
        ))));
    }
    let role = roles::inspect(db).await?;
    match role.problem() {
        Some(problem) if strict => Ok(Some(Refusal::UnsafeRole(problem))),
        Some(problem) => {
            tracing::warn!("{problem}");
            Ok(None)
        }
        None => Ok(None),
    }
}
