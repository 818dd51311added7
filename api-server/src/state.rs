//! Shared application state, built once at start-up and handed to handlers.

use std::{sync::Arc, time::Instant};

use crate::{auth::jwt::AccessTokens, config::Config, deps::Dependencies, telemetry::metrics::Metrics};

/// What every handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    deps: Dependencies,
    metrics: Metrics,
    tokens: AccessTokens,
    started: Instant,
}

impl AppState {
    /// Assembles the state.
    pub fn new(config: Config, deps: Dependencies, metrics: Metrics, tokens: AccessTokens) -> Self {
        Self { inner: Arc::new(Inner { config, deps, metrics, tokens, started: Instant::now() }) }
    }

    /// Access-token issuing and verification.
    pub fn access_tokens(&self) -> &AccessTokens {
        &self.inner.tokens
    }

    /// Validated configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Connections.
    pub fn deps(&self) -> &Dependencies {
        &self.inner.deps
    }

    /// Metric instruments.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// When the state was built (≈ process start).
    pub fn started(&self) -> Instant {
        self.inner.started
    }
}
