//! Serves the real app (with test-only operations mounted inside the same middleware chain)
//! on an ephemeral port, against the real PostgreSQL and Redis.

#![allow(dead_code)] // each test file uses a different part

pub mod db;
pub mod scope;
pub mod session;
pub mod sse;

use std::{collections::HashMap, time::Duration};

use futures_util::stream;
use jeex_api::{app, auth::jwt::AccessTokens, config::Config, deps::Dependencies, server, state::AppState, telemetry::Telemetry};
use poem_openapi::{
    Object, OpenApi,
    param::{Path, Query},
    payload::{EventStream, Json, PlainText},
};
use tokio::sync::oneshot;

/// Body of the echo operation.
#[derive(Object, Clone)]
pub struct Echo {
    /// Any text.
    pub name: String,
}

/// Operations that exercise the chain: they take bodies, panic, sleep, stream.
pub struct TestApi;

#[OpenApi(prefix_path = "/test")]
impl TestApi {
    #[oai(path = "/echo", method = "post")]
    async fn echo(&self, body: Json<Echo>) -> Json<Echo> {
        body
    }

    #[oai(path = "/panic", method = "get")]
    async fn panic(&self) -> PlainText<String> {
        panic!("boom")
    }

    #[oai(path = "/slow", method = "get")]
    async fn slow(&self, ms: Query<u64>) -> PlainText<String> {
        tokio::time::sleep(Duration::from_millis(ms.0)).await;
        PlainText("done".into())
    }

    #[oai(path = "/big", method = "get")]
    async fn big(&self) -> PlainText<String> {
        PlainText("jeex ".repeat(1000))
    }

    #[oai(path = "/items/:id", method = "get")]
    async fn item(&self, id: Path<i64>) -> PlainText<String> {
        PlainText(id.0.to_string())
    }

    #[oai(path = "/stream", method = "get")]
    async fn stream(&self) -> EventStream<stream::Iter<std::vec::IntoIter<String>>> {
        EventStream::new(stream::iter(vec!["x".repeat(200); 20]))
    }
}

/// A served app with its operation workers; stops when dropped.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The Redis key prefix this app writes under.
    pub redis_prefix: String,
    /// The app's connections (the vector index included).
    pub deps: Dependencies,
    stop: Option<oneshot::Sender<()>>,
    workers: Option<jeex_api::ops::worker::Workers>,
    outbox: Option<jeex_api::vectors::outbox::OutboxWorker>,
    stream_watch: Option<jeex_api::api::access::StreamWatch>,
    relay: Option<jeex_api::events::relay::Relay>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// Stops the workers gracefully, as a replica shutting down does.
    pub async fn stop_workers(&mut self) {
        if let Some(workers) = self.workers.take() {
            workers.stop().await;
        }
    }

    /// Stops serving and every worker, and waits until the app has let go of everything it
    /// held (the embedded vector index is closed once the last handle is gone).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            let _ = served.await;
        }
        if let Some(watch) = self.stream_watch.take() {
            watch.stop().await;
        }
        self.stop_workers().await;
        if let Some(outbox) = self.outbox.take() {
            outbox.stop().await;
        }
        if let Some(relay) = self.relay.take() {
            relay.stop().await;
        }
    }

    /// Kills the workers abruptly, as a crashed replica would: no heartbeat, no cleanup.
    pub fn kill_workers(&mut self) {
        self.workers.take();
    }

    /// Full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Path of a test key file (tests/keys).
pub fn key(name: &str) -> String {
    format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The configuration tests start from: the real services, RS256 with test keys `k1` (signing)
/// and `k2` (also accepted), plus `overrides` (an empty value removes a variable).
pub fn config(overrides: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("JEEX_ENV".into(), "development".into()),
        ("DATABASE_URL".into(), jeex_e2e::services::migrated_database_url()),
        ("REDIS_URL".into(), jeex_e2e::services::redis_url()),
        ("JEEX_CORS_ORIGINS".into(), "https://app.example.com".into()),
        ("JEEX_HEALTH_TIMEOUT".into(), "1s".into()),
        ("JEEX_JWT_PRIVATE_KEY".into(), key("k1.key.pem")),
        ("JEEX_JWT_PUBLIC_KEYS".into(), format!("{},{}", key("k1.pub.pem"), key("k2.pub.pem"))),
        // Tests share one Redis and one client address: generous quotas, and keys of their own.
        ("JEEX_REDIS_PREFIX".into(), format!("test:{}:", uuid::Uuid::now_v7().simple())),
        ("JEEX_RATE_LIMIT_READS".into(), "100000/60s".into()),
        ("JEEX_RATE_LIMIT_WRITES".into(), "100000/60s".into()),
        ("JEEX_RATE_LIMIT_AUTH".into(), "100000/60s".into()),
        ("JEEX_EVENTS_TTL".into(), "10m".into()),
        // The embedded vector index lives under the data folder: one per test app.
        ("JEEX_DATA_DIR".into(), temp_dir().display().to_string()),
    ]);
    for (k, v) in overrides {
        vars.insert((*k).into(), (*v).into());
    }
    Config::from_map(&vars).expect("test configuration is valid")
}

/// A fresh folder under the system's temporary directory.
pub fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("jeex-test-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("create a temporary folder");
    dir
}

/// Serves the app built from `config`.
pub async fn start(config: Config) -> TestApp {
    let telemetry = Telemetry::build(&config.telemetry).expect("telemetry");
    let url = match &config.database {
        jeex_api::config::DatabaseSource::Url(u) => u.clone(),
        other => panic!("tests need DATABASE_URL, got {other:?}"),
    };
    let deps = Dependencies::connect(&config, &url).expect("dependencies");
    {
        let db = deps.db.clone();
        telemetry.metrics.observe_pool(move || db.connections(), config.pool.max_connections());
    }
    let grace = config.shutdown_grace;
    let tokens = AccessTokens::load(&config.auth).await.expect("test keys load");
    let state = AppState::new(config.clone(), deps.clone(), telemetry.metrics.clone(), tokens);
    let bound = server::bind("127.0.0.1:0".parse().unwrap()).await.expect("bind");
    let base = format!("http://{}", bound.local_addr);
    let (stop, stopped) = oneshot::channel::<()>();
    let workers = jeex_api::ops::worker::spawn(&state);
    let outbox = jeex_api::vectors::outbox::spawn(deps.db.clone(), deps.vectors.clone());
    let stream_watch = jeex_api::api::access::StreamWatch::spawn(state.clone());
    let relay = jeex_api::events::relay::spawn(deps.db.clone(), state.events().clone());
    let stopping = jeex_api::run::draining(state.events().clone(), async move { drop(stopped.await) });
    let served = tokio::spawn(server::serve(bound, app::build_with(state, TestApi), stopping, grace));
    TestApp {
        base,
        redis_prefix: config.redis_prefix.clone(),
        deps,
        stop: Some(stop),
        workers: Some(workers),
        outbox: Some(outbox),
        stream_watch: Some(stream_watch),
        relay: Some(relay),
        served: Some(served),
    }
}

/// A client that neither follows redirects nor decompresses, so tests see the wire.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_gzip().no_brotli().build().unwrap()
}
