//! Shared application state, built once at start-up and handed to handlers.

use std::{sync::Arc, time::Instant};

use crate::{
    auth::jwt::AccessTokens,
    config::{Config, Environment},
    db::gate::DatabaseGate,
    deps::Dependencies,
    events::{EventBus, Retention},
    ratelimit::Limiter,
    telemetry::metrics::Metrics,
};

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
    gate: DatabaseGate,
    limiter: Limiter,
    events: EventBus,
    started: Instant,
}

impl AppState {
    /// Assembles the state.
    pub fn new(config: Config, deps: Dependencies, metrics: Metrics, tokens: AccessTokens) -> Self {
        let gate = DatabaseGate::new(config.env == Environment::Production);
        let limiter = Limiter::new(
            config.rate_limit.clone(),
            config.redis_prefix.clone(),
            deps.redis.as_ref().map(|r| r.connection()),
            metrics.rate_limit_errors.clone(),
        );
        let retention = Retention { max_len: config.events.max_len as usize, ttl: config.events.ttl };
        let events = EventBus::new(deps.redis.as_ref().map(|r| (r.client(), r.connection())), &config.redis_prefix, retention);
        Self { inner: Arc::new(Inner { config, deps, metrics, tokens, gate, limiter, events, started: Instant::now() }) }
    }

    /// Project events.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// The rate limiter.
    pub fn limiter(&self) -> &Limiter {
        &self.inner.limiter
    }

    /// Whether the database may be served (schema version, role safety).
    pub fn database_gate(&self) -> &DatabaseGate {
        &self.inner.gate
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
