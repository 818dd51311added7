//! What the CLI commands do: `serve` runs the server until a shutdown signal; `check`
//! validates configuration and probes every configured dependency.

use std::net::SocketAddr;

use crate::{
    app,
    config::{Config, DatabaseSource},
    deps::{Dependencies, SetupError},
    devdb::{DevDatabase, DevDbError},
    health::{self, ComponentStatus},
    server,
    state::AppState,
    telemetry::Telemetry,
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
}

/// The URL of the database to use, starting the private development cluster when no
/// `DATABASE_URL` is configured (the caller stops it).
async fn resolve_database(config: &Config) -> Result<(String, Option<DevDatabase>), RunError> {
    match &config.database {
        DatabaseSource::Url(url) => Ok((url.clone(), None)),
        DatabaseSource::PrivateCluster(dir) => {
            let db = DevDatabase::start(dir).await?;
            Ok((db.url.clone(), Some(db)))
        }
    }
}

/// Runs the server until SIGTERM/SIGINT, then drains, closes pools and flushes telemetry.
pub async fn serve(config: Config, telemetry: Telemetry) -> Result<(), RunError> {
    let (url, devdb) = resolve_database(&config).await?;
    let result = serve_on(&config, &telemetry, &url, devdb.is_some()).await;
    if let Some(db) = &devdb {
        db.stop().await;
    }
    telemetry.shutdown();
    result
}

async fn serve_on(config: &Config, telemetry: &Telemetry, database_url: &str, private_database: bool) -> Result<(), RunError> {
    let deps = Dependencies::connect(config, database_url)?;
    telemetry.metrics.observe_pool(&deps.postgres, config.pool.max_connections());
    let state = AppState::new(config.clone(), deps.clone(), telemetry.metrics.clone());
    let bound = server::bind(config.http_addr).await.map_err(|source| RunError::Bind { addr: config.http_addr, source })?;
    let addr = bound.local_addr;
    tracing::info!(%addr, env = config.env.as_str(), private_database, "listening");
    tracing::info!("Swagger UI: http://{addr}/docs");
    let served = server::serve(bound, app::build(state), server::shutdown_signal(), config.shutdown_grace).await;
    deps.close().await;
    tracing::info!("stopped");
    served.map_err(RunError::Serve)
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
    let (url, devdb) = resolve_database(config).await?;
    let probed = probe_all(config, &url).await;
    if let Some(db) = &devdb {
        db.stop().await;
    }
    let reports = probed?;
    let lines = reports
        .iter()
        .map(|r| match r.status {
            ComponentStatus::Healthy => format!("{}: healthy ({} ms)", r.name, r.response_time_ms.unwrap_or(0)),
            ComponentStatus::Disabled => format!("{}: disabled (not configured)", r.name),
            ComponentStatus::Unhealthy => format!("{}: UNHEALTHY: {}", r.name, r.error.as_deref().unwrap_or("no detail")),
        })
        .collect();
    Ok((lines, health::all_ready(&reports)))
}
