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

/// Runs the server until SIGTERM/SIGINT, then drains, closes pools and flushes telemetry.
pub async fn serve(config: Config, telemetry: Telemetry) -> Result<(), RunError> {
    let devdb = match &config.database {
        DatabaseSource::Url(_) => None,
        DatabaseSource::PrivateCluster(dir) => Some(DevDatabase::start(dir).await?),
    };
    let result = serve_with_database(&config, &telemetry, devdb.as_ref()).await;
    if let Some(db) = &devdb {
        db.stop().await;
    }
    telemetry.shutdown();
    result
}

async fn serve_with_database(config: &Config, telemetry: &Telemetry, devdb: Option<&DevDatabase>) -> Result<(), RunError> {
    let url = match (&config.database, devdb) {
        (DatabaseSource::Url(url), _) => url.clone(),
        (_, Some(db)) => db.url.clone(),
        (DatabaseSource::PrivateCluster(_), None) => unreachable!("serve starts the private cluster before this"),
    };
    let deps = Dependencies::connect(config, &url)?;
    telemetry.metrics.observe_pool(&deps.postgres, config.pool.max_connections());
    let state = AppState::new(config.clone(), deps.clone(), telemetry.metrics.clone());
    let bound = server::bind(config.http_addr).await.map_err(|source| RunError::Bind { addr: config.http_addr, source })?;
    let addr = bound.local_addr;
    tracing::info!(%addr, env = config.env.as_str(), private_database = devdb.is_some(), "listening");
    tracing::info!("Swagger UI: http://{addr}/docs");
    let served = server::serve(bound, app::build(state), server::shutdown_signal(), config.shutdown_grace).await;
    deps.close().await;
    tracing::info!("stopped");
    served.map_err(RunError::Serve)
}

/// Probes every configured dependency once; returns one line per component and whether all
/// configured ones are healthy.
pub async fn check(config: &Config) -> Result<(Vec<String>, bool), RunError> {
    let url = match &config.database {
        DatabaseSource::Url(url) => url.clone(),
        // No server to probe yet: `serve` would create it. Probe nothing that does not exist.
        DatabaseSource::PrivateCluster(_) => "postgres://postgres@127.0.0.1:1/unused".into(),
    };
    let deps = Dependencies::connect(config, &url)?;
    let reports = health::check_all(&deps, config.health_timeout).await;
    let mut ok = true;
    let lines = reports
        .iter()
        .map(|r| match (r.name, r.status) {
            ("postgres", _) if matches!(config.database, DatabaseSource::PrivateCluster(_)) => {
                "postgres: not probed (no DATABASE_URL: `serve` runs a private development cluster)".to_string()
            }
            (name, ComponentStatus::Healthy) => format!("{name}: healthy ({} ms)", r.response_time_ms.unwrap_or(0)),
            (name, ComponentStatus::Disabled) => format!("{name}: disabled (not configured)"),
            (name, ComponentStatus::Unhealthy) => {
                ok = false;
                format!("{name}: UNHEALTHY: {}", r.error.as_deref().unwrap_or("no detail"))
            }
        })
        .collect();
    deps.close().await;
    Ok((lines, ok))
}
