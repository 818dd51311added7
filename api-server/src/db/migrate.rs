//! `jeex-api migrate`: applies the embedded migrations under a PostgreSQL advisory lock (two
//! concurrent runs are safe: the second waits, then finds nothing to do), refuses a database
//! that has a migration this binary does not know or whose checksum changed, and grants the
//! server's role exactly what it needs.

use std::{collections::HashMap, str::FromStr};

use sqlx::{
    ConnectOptions, Connection, PgConnection,
    migrate::{Migrate, Migrator},
    postgres::PgConnectOptions,
};

/// The migrations in `migrations/`, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Why migrating failed. Displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// No connection.
    #[error("cannot connect to the database to migrate (JEEX_MIGRATE_DATABASE_URL): {0}")]
    Connect(String),
    /// The database is ahead of this binary.
    #[error("the database has migration {0}, which this jeex-api does not know; run the newer jeex-api's migrate instead")]
    Unknown(i64),
    /// An applied migration was edited afterwards.
    #[error(
        "migration {version} ({description}) changed after it was applied (checksum differs); migrations are forward-only: add a new one"
    )]
    Changed {
        /// Version.
        version: i64,
        /// Its description.
        description: String,
    },
    /// A failed earlier run left a migration half-applied.
    #[error("migration {0} is marked partially applied (dirty); repair the database by hand")]
    Dirty(i64),
    /// A migration failed (and was rolled back).
    #[error("migration {version} ({description}) failed: {message}")]
    Failed {
        /// Version.
        version: i64,
        /// Its description.
        description: String,
        /// Database message.
        message: String,
    },
    /// The server role could not be granted its privileges.
    #[error("cannot grant the server role {role:?} (the DATABASE_URL user) its privileges: {message}")]
    Grant {
        /// Role name.
        role: String,
        /// Why.
        message: String,
    },
    /// Anything else the migration machinery reported.
    #[error("migration failed: {0}")]
    Other(String),
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    /// Migrations applied now: version and description.
    pub applied: Vec<(i64, String)>,
    /// Migrations found already applied.
    pub already_applied: usize,
    /// The role granted privileges, if any.
    pub granted: Option<String>,
}

/// The user name in a PostgreSQL URL (the server's role).
pub fn role_of(url: &str) -> Option<String> {
    PgConnectOptions::from_str(url).ok().map(|o| o.get_username().to_owned())
}

/// The role the server connects as, from its `DATABASE_URL`.
#[derive(Clone)]
pub struct AppRole {
    /// Role name.
    pub name: String,
    /// Its password, when the URL carries one: `migrate` then creates the role, or sets its
    /// password, so generated credentials (the operator's) work without a DBA.
    pub password: Option<String>,
}

impl std::fmt::Debug for AppRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppRole").field("name", &self.name).field("password", &self.password.as_ref().map(|_| "<redacted>")).finish()
    }
}

impl AppRole {
    /// Name only (the role exists and its password is managed elsewhere).
    pub fn named(name: &str) -> Self {
        Self { name: name.to_owned(), password: None }
    }

    /// The role and password of a PostgreSQL URL.
    pub fn of_url(url: &str) -> Option<Self> {
        let name = role_of(url)?;
        let password = url::Url::parse(url).ok().and_then(|u| u.password().map(percent_decode)).filter(|p| !p.is_empty());
        Some(Self { name, password })
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Applies pending migrations with `owner_url`, then (when it differs from the owner) creates
/// the app role or sets its password when one is given, and grants it the privileges the
/// server needs.
pub async fn run(owner_url: &str, app_role: Option<&AppRole>) -> Result<Report, MigrateError> {
    let options = PgConnectOptions::from_str(owner_url)
        .map_err(|_| MigrateError::Connect("the URL does not parse".into()))?
        .application_name("jeex-api migrate");
    let mut conn = options.connect().await.map_err(|e| MigrateError::Connect(crate::db::describe(&e)))?;
    // Lock first: the migrations table itself is created under the lock (a concurrent
    // CREATE TABLE IF NOT EXISTS can fail).
    conn.lock().await.map_err(other)?;
    let result = locked(&mut conn, app_role).await;
    let unlocked = conn.unlock().await.map_err(other);
    let _ = conn.close().await;
    let report = result?;
    unlocked?;
    Ok(report)
}

async fn locked(conn: &mut PgConnection, app_role: Option<&AppRole>) -> Result<Report, MigrateError> {
    conn.ensure_migrations_table().await.map_err(other)?;
    if let Some(version) = conn.dirty_version().await.map_err(other)? {
        return Err(MigrateError::Dirty(version));
    }
    let applied: HashMap<i64, Vec<u8>> =
        conn.list_applied_migrations().await.map_err(other)?.into_iter().map(|m| (m.version, m.checksum.into_owned())).collect();
    let known: HashMap<i64, &sqlx::migrate::Migration> = MIGRATOR.iter().map(|m| (m.version, m)).collect();
    if let Some(unknown) = applied.keys().filter(|v| !known.contains_key(v)).max() {
        return Err(MigrateError::Unknown(*unknown));
    }
    let mut report = Report::default();
    for migration in MIGRATOR.iter() {
        match applied.get(&migration.version) {
            Some(checksum) if *checksum == *migration.checksum => report.already_applied += 1,
            Some(_) => {
                return Err(MigrateError::Changed { version: migration.version, description: migration.description.to_string() });
            }
            None => {
                conn.apply(migration).await.map_err(|e| MigrateError::Failed {
                    version: migration.version,
                    description: migration.description.to_string(),
                    message: e.to_string(),
                })?;
                report.applied.push((migration.version, migration.description.to_string()));
            }
        }
    }
    if let Some(role) = app_role {
        let owner: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(&mut *conn).await.map_err(|e| other(e.into()))?;
        if owner != role.name {
            let failed = |message| MigrateError::Grant { role: role.name.clone(), message };
            ensure_role(conn, role).await.map_err(failed)?;
            grant(conn, &role.name).await.map_err(failed)?;
            report.granted = Some(role.name.clone());
        }
    }
    Ok(report)
}

/// Least privilege: no DDL, no TRUNCATE, no DELETE except memberships, drained outbox rows and
/// ended operations past their retention, append-only audit.
const GRANTS: &[&str] = &[
    "GRANT USAGE ON SCHEMA {schema} TO {role}",
    "GRANT SELECT, INSERT, UPDATE ON users, projects, documents, api_keys, refresh_tokens TO {role}",
    // Deleted only by the workers' pruning, and only once ended (the table's row policies).
    "GRANT SELECT, INSERT, UPDATE, DELETE ON operations TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON project_members TO {role}",
    "GRANT SELECT, INSERT ON audit_log TO {role}",
    // Written by triggers, drained (read, then deleted) by the outbox worker.
    "GRANT SELECT, INSERT, DELETE ON vector_outbox TO {role}",
    // Written with operation changes, relayed (read, then deleted) by every replica.
    "GRANT SELECT, INSERT, DELETE ON event_outbox TO {role}",
    "GRANT SELECT ON _sqlx_migrations TO {role}",
];

/// Creates the role (LOGIN, nothing else) or sets its password, when a password is given.
async fn ensure_role(conn: &mut PgConnection, role: &AppRole) -> Result<(), String> {
    let Some(password) = &role.password else { return Ok(()) };
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(&role.name)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    // The server quotes both (format's %I and %L): no identifier or literal is spliced here.
    let template = if exists { "ALTER ROLE %I WITH LOGIN PASSWORD %L" } else { "CREATE ROLE %I WITH LOGIN PASSWORD %L" };
    let sql: String = sqlx::query_scalar("SELECT format($1, $2::text, $3::text)")
        .bind(template)
        .bind(&role.name)
        .bind(password)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    match sqlx::query(&sql).execute(&mut *conn).await {
        Ok(_) => Ok(()),
        // An existing role whose password someone else manages: leave it.
        Err(sqlx::Error::Database(e)) if exists && e.code().as_deref() == Some("42501") => {
            tracing::warn!(role = %role.name, "the owner may not set the app role's password; leaving it as it is");
            Ok(())
        }
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => {
            Err("the role does not exist and the owner may not create it (it needs CREATEROLE); create it (LOGIN, no other attributes) and run migrate again".into())
        }
        Err(e) => Err(e.to_string()),
    }
}

async fn grant(conn: &mut PgConnection, role: &str) -> Result<(), String> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(role)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    if !exists {
        return Err("the role does not exist; create it (LOGIN, no other attributes) and run migrate again".into());
    }
    let schema: String = sqlx::query_scalar("SELECT current_schema()::text").fetch_one(&mut *conn).await.map_err(|e| e.to_string())?;
    for template in GRANTS {
        let sql = template.replace("{schema}", &quote_ident(&schema)).replace("{role}", &quote_ident(role));
        sqlx::query(&sql).execute(&mut *conn).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Versions embedded in this binary that the database has not applied (all of them when the
/// migrations table does not exist yet).
pub async fn pending(db: &super::Database) -> Result<Vec<i64>, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(db.exec()).await?;
    let applied: Vec<i64> = if exists {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(db.exec()).await?
    } else {
        Vec::new()
    };
    Ok(MIGRATOR.iter().map(|m| m.version).filter(|v| !applied.contains(v)).collect())
}

fn other(e: sqlx::migrate::MigrateError) -> MigrateError {
    MigrateError::Other(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_roles_read_from_urls() {
        assert_eq!(quote_ident("jeex_app"), "\"jeex_app\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(role_of("postgres://jeex_app:pw@db:5432/jeex").as_deref(), Some("jeex_app"));
    }
}
