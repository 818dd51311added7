//! What the CLI commands do: `serve` runs the server until a shutdown signal; `check`
//! validates configuration and probes every configured dependency; `migrate` applies the
//! schema; `token issue` signs a user in from the command line.

use std::{net::SocketAddr, time::Duration};

use crate::{
    app,
    auth::{
        jwt::AccessTokens,
        keys::KeyError,
        tokens::{self, TokenPair},
    },
    config::{Config, ConfigError, DatabaseSource, Environment},
    db::{
        gate::Refusal,
        migrate::{self, MigrateError, Report},
        roles, users,
    },
    deps::{Dependencies, SetupError},
    devdb::{self, DevDatabase, DevDbError},
    error::ApiError,
    events::EventBus,
    health::{self, ComponentStatus},
    server,
    state::AppState,
    telemetry::Telemetry,
    vectors::IndexError,
};

/// Why the server could not start or stopped with an error. Displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The private development database failed.
    #[error(transparent)]
    DevDb(#[from] DevDbError),
    /// A dependency client could not be set up.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr} (JEEX_HTTP_ADDR): {source}")]
    Bind {
        /// Address from config.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("server error: {0}")]
    Serve(std::io::Error),
    /// A configuration value only checkable now (a key file, a missing URL).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A JWT key could not be loaded.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// Migrating failed.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// The database schema is older than this binary.
    #[error("{0}")]
    SchemaBehind(String),
    /// The server's database role would bypass row-level security (refused in production).
    #[error("{0}")]
    UnsafeRole(String),
    /// The vector collection was built with another dimension or distance.
    #[error("{0}")]
    VectorIndex(String),
    /// A request-level failure in a CLI command.
    #[error("{0}")]
    Api(String),
}

impl From<ApiError> for RunError {
    fn from(e: ApiError) -> Self {
        Self::Api(e.to_string())
    }
}

impl RunError {
    /// Configuration and key problems exit 2 (like a bad variable); the rest 1.
    pub fn is_config(&self) -> bool {
        matches!(self, Self::Config(_) | Self::Keys(_) | Self::VectorIndex(_))
    }
}

/// The database URLs a command works with.
struct Database {
    /// The server's URL.
    url: String,
    /// The owner's URL for migrations, when known.
    owner_url: Option<String>,
    /// The role `migrate` creates or updates and grants privileges to, when it differs from
    /// the owner.
    app_role: Option<migrate::AppRole>,
    /// The private development cluster, when one was started.
    private: Option<DevDatabase>,
}

impl Database {
    async fn stop(&self) {
        if let Some(db) = &self.private {
            db.stop().await;
        }
    }
}

/// The database URLs, starting the private development cluster when no `DATABASE_URL` is
/// configured (the caller stops it). The private cluster is the first-look mode: it is
/// migrated here, and only here does anything migrate implicitly.
async fn resolve_database(config: &Config) -> Result<Database, RunError> {
    match &config.database {
        DatabaseSource::Url(url) => {
            let owner_url = match &config.migrate_database_url {
                Some(owner) => Some(owner.expose().to_owned()),
                None if config.env == Environment::Development => Some(url.clone()),
                None => None,
            };
            let app_role = match &config.migrate_database_url {
                Some(_) => migrate::AppRole::of_url(url),
                None => None,
            };
            Ok(Database { url: url.clone(), owner_url, app_role, private: None })
        }
        DatabaseSource::PrivateCluster(dir) => {
            let db = DevDatabase::start(dir).await?;
            let database = Database {
                url: db.url.clone(),
                owner_url: Some(db.owner_url.clone()),
                app_role: Some(migrate::AppRole::named(devdb::APP_ROLE)),
                private: Some(db),
            };
            let owner = database.owner_url.clone().unwrap_or_default();
            match migrate::run(&owner, database.app_role.as_ref()).await {
                Ok(report) => {
                    for (version, description) in &report.applied {
                        tracing::info!(version, description, "applied migration to the private database");
                    }
                    Ok(database)
                }
                Err(e) => {
                    database.stop().await;
                    Err(e.into())
                }
            }
        }
    }
}

/// Runs the server until SIGTERM/SIGINT, then drains, closes pools and flushes telemetry.
///
/// `started` runs once, when the app is built and the socket bound, just before the first
/// connection is accepted (the binary hands start-up memory back to the system there).
pub async fn serve(config: Config, telemetry: Telemetry, started: impl FnOnce()) -> Result<(), RunError> {
    // Keys first: a bad key file fails in milliseconds, before any database work.
    let tokens = AccessTokens::load(&config.auth).await?;
    let db = resolve_database(&config).await?;
    let result = serve_on(&config, &telemetry, &db.url, db.private.is_some(), tokens, started).await;
    db.stop().await;
    telemetry.shutdown();
    result
}

/// Refuses to serve a schema older than this binary and (in production) a role that bypasses
/// row-level security. An unreachable database is only logged: start-up never waits for
/// dependencies, and readiness keeps checking until the database has answered.
async fn startup_checks(state: &AppState) -> Result<(), RunError> {
    let timeout = state.config().health_timeout.max(Duration::from_secs(5));
    match state.database_gate().verdict(&state.deps().db, timeout).await {
        Ok(None) => Ok(()),
        Ok(Some(Refusal::SchemaBehind(problem))) => Err(RunError::SchemaBehind(problem)),
        Ok(Some(Refusal::UnsafeRole(problem))) => Err(RunError::UnsafeRole(problem)),
        Err(()) => {
            tracing::warn!("the database did not answer at start-up; readiness stays 503 until its schema and role are checked");
            Ok(())
        }
    }
}

/// Creates the vector collection when missing and refuses one of another shape. An index
/// that does not answer is only logged: document changes wait in the outbox until it does.
async fn prepare_vectors(state: &AppState) -> Result<(), RunError> {
    let index = &state.deps().vectors;
    let engine = index.engine_name();
    let timeout = state.config().health_timeout.max(Duration::from_secs(5));
    match tokio::time::timeout(timeout, index.check_at_start()).await {
        Ok(Ok(())) => {
            tracing::info!(engine, collection = %index.shape().collection, dim = index.shape().dim, "vector index ready");
            Ok(())
        }
        Ok(Err(IndexError::Mismatch(problem))) => Err(RunError::VectorIndex(problem)),
        Ok(Err(IndexError::Disabled)) => {
            tracing::info!("no vector index configured (QDRANT_URL unset, embedded engine not built in); vector search answers 503");
            Ok(())
        }
        Ok(Err(e)) => {
            tracing::warn!(engine, error = %e, "the vector index is unavailable at start-up; document changes wait in the outbox");
            Ok(())
        }
        Err(_) => {
            tracing::warn!(engine, "the vector index did not answer at start-up; document changes wait in the outbox");
            Ok(())
        }
    }
}

async fn serve_on(
    config: &Config,
    telemetry: &Telemetry,
    database_url: &str,
    private_database: bool,
    tokens: AccessTokens,
    started: impl FnOnce(),
) -> Result<(), RunError> {
    let deps = Dependencies::connect(config, database_url)?;
    let state = AppState::new(config.clone(), deps.clone(), telemetry.metrics.clone(), tokens);
    if let Err(e) = startup_checks(&state).await {
        deps.close().await;
        return Err(e);
    }
    if let Err(e) = prepare_vectors(&state).await {
        deps.close().await;
        return Err(e);
    }
    {
        let db = deps.db.clone();
        telemetry.metrics.observe_pool(move || db.connections(), config.pool.max_connections());
    }
    let bound = server::bind(config.http_addr).await.map_err(|source| RunError::Bind { addr: config.http_addr, source })?;
    let addr = bound.local_addr;
    tracing::info!(%addr, env = config.env.as_str(), private_database, "listening");
    tracing::info!("Swagger UI: http://{addr}/docs");
    let workers = crate::ops::worker::spawn(&state);
    // Until the server stops: open streams end when their caller's access does.
    let stream_watch = crate::api::access::StreamWatch::spawn(state.clone());
    let outbox = crate::vectors::outbox::spawn(deps.db.clone(), deps.vectors.clone());
    // Recorded operation events, from PostgreSQL to the event history.
    let relay = crate::events::relay::spawn(deps.db.clone(), state.events().clone());
    let events = state.events().clone();
    let app = app::build(state);
    started();
    let served = server::serve(bound, app, draining(events.clone(), server::shutdown_signal()), config.shutdown_grace).await;
    stream_watch.stop().await;
    outbox.stop().await;
    workers.stop().await;
    relay.stop().await;
    // After the workers: what they recorded while handing operations back goes out too (the
    // stopped relay's lock may take a moment to go).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        match crate::events::relay::pass(&deps.db, &events).await {
            Ok(crate::events::relay::Pass::Busy) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Ok(_) => break,
            Err(e) => {
                tracing::debug!(error = %e, "last relay pass failed; another replica or the next start relays the rest");
                break;
            }
        }
    }
    deps.close().await;
    tracing::info!("stopped");
    served.map_err(RunError::Serve)
}

/// What the server waits on before it drains: `signal`, after which every event stream is
/// told to end (with a `retry:` hint) so the drain does not wait out its grace period on
/// streams that never end by themselves; their clients resume on another replica.
pub async fn draining(events: EventBus, signal: impl Future<Output = ()>) {
    signal.await;
    events.end_streams();
}

async fn probe_all(config: &Config, database_url: &str) -> Result<Vec<health::ComponentReport>, RunError> {
    let deps = Dependencies::connect(config, database_url)?;
    let reports = health::check_all(&deps, config.health_timeout).await;
    deps.close().await;
    Ok(reports)
}

/// Probes every configured dependency once; returns one line per component and whether all
/// configured ones are healthy. Without `DATABASE_URL` (development) the private cluster is
/// started as `serve` would, probed, and stopped again.
pub async fn check(config: &Config) -> Result<(Vec<String>, bool), RunError> {
    let keys = AccessTokens::load(&config.auth).await;
    let db = resolve_database(config).await?;
    let probed = probe_all(config, &db.url).await;
    let schema = schema_lines(config, &db.url).await;
    db.stop().await;
    let reports = probed?;
    let mut lines: Vec<String> = reports
        .iter()
        .map(|r| match r.status {
            ComponentStatus::Healthy => match r.engine {
                Some(engine) => format!("{}: healthy ({engine}, {} ms)", r.name, r.response_time_ms.unwrap_or(0)),
                None => format!("{}: healthy ({} ms)", r.name, r.response_time_ms.unwrap_or(0)),
            },
            ComponentStatus::Disabled => format!("{}: disabled (not configured)", r.name),
            ComponentStatus::Unhealthy => format!("{}: UNHEALTHY: {}", r.name, r.error.as_deref().unwrap_or("no detail")),
        })
        .collect();
    let keys_ok = match keys {
        Ok(_) => {
            lines.push(format!("jwt: {:?} keys loaded", config.auth.algorithm));
            true
        }
        Err(e) => {
            lines.push(format!("jwt: UNUSABLE: {e}"));
            false
        }
    };
    let schema_ok = schema.iter().all(|(_, ok)| *ok);
    lines.extend(schema.into_iter().map(|(line, _)| line));
    Ok((lines, health::all_ready(&reports) && keys_ok && schema_ok))
}

/// Schema version and role safety, as `check` lines with their verdicts.
async fn schema_lines(config: &Config, url: &str) -> Vec<(String, bool)> {
    let Ok(deps) = Dependencies::connect(config, url) else { return Vec::new() };
    let db = &deps.db;
    let mut lines = Vec::new();
    let timeout = config.health_timeout;
    match tokio::time::timeout(timeout, migrate::pending(db)).await {
        Ok(Ok(pending)) if pending.is_empty() => lines.push(("schema: up to date".to_owned(), true)),
        Ok(Ok(pending)) => lines.push((format!("schema: BEHIND: {} migration(s) pending; run `jeex-api migrate`", pending.len()), false)),
        _ => {}
    }
    if let Ok(Ok(role)) = tokio::time::timeout(timeout, roles::inspect(db)).await {
        match role.problem() {
            None => lines.push((format!("database role: {} (no superuser, no BYPASSRLS, owns no table)", role.role), true)),
            Some(problem) => lines.push((format!("database role: UNSAFE: {problem}"), config.env == Environment::Development)),
        }
    }
    deps.close().await;
    lines
}

/// `jeex-api migrate`: applies pending migrations as the owner role and grants the server's
/// role. Outside development, `JEEX_MIGRATE_DATABASE_URL` is required.
pub async fn migrate(config: &Config) -> Result<Report, RunError> {
    if let DatabaseSource::PrivateCluster(dir) = &config.database {
        // resolve_database migrates the private cluster; report what it did.
        let db = DevDatabase::start(dir).await?;
        let result = migrate::run(&db.owner_url, Some(&migrate::AppRole::named(devdb::APP_ROLE))).await;
        db.stop().await;
        return Ok(result?);
    }
    let db = resolve_database(config).await?;
    let owner = db.owner_url.clone().ok_or_else(|| ConfigError {
        variable: "JEEX_MIGRATE_DATABASE_URL",
        problem: format!("is required by `migrate` when JEEX_ENV={}", config.env.as_str()),
        example: "postgres://jeex_owner:secret@db:5432/jeex".into(),
    })?;
    Ok(migrate::run(&owner, db.app_role.as_ref()).await?)
}

/// `jeex-api token issue`: finds or creates the user and issues a token pair.
pub async fn issue_token(config: &Config, email: &str, name: Option<&str>) -> Result<(users::User, TokenPair), RunError> {
    let tokens = AccessTokens::load(&config.auth).await?;
    let db = resolve_database(config).await?;
    let result = async {
        let deps = Dependencies::connect(config, &db.url)?;
        let issued = async {
            let user = users::login(&deps.db, email, name).await?;
            let pair = tokens::issue(&tokens, config.auth.refresh_ttl, &deps.db, user.id).await?;
            Ok::<_, RunError>((user, pair))
        }
        .await;
        deps.close().await;
        issued
    }
    .await;
    db.stop().await;
    result
}
