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
    streams: StreamCounter,
    started: Instant,
}

/// Open event streams per principal on this replica (the per-user cap).
#[derive(Default)]
pub struct StreamCounter {
    open: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// Holds one stream slot; dropping it frees the slot.
pub struct StreamSlot {
    state: AppState,
    who: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.state.inner.streams.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.who) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.who);
            }
        }
    }
}

impl AppState {
    /// Assembles the state.
    pub fn new(config: Config, deps: Dependencies, metrics: Metrics, tokens: AccessTokens) -> Self {
        let gate = DatabaseGate::new(config.env != Environment::Development);
        let limiter = Limiter::new(
            config.rate_limit.clone(),
            config.redis_prefix.clone(),
            deps.redis.as_ref().map(|r| r.connection()),
            metrics.rate_limit_errors.clone(),
        );
        let retention = Retention { max_len: config.events.max_len as usize, ttl: config.events.ttl };
        let events = EventBus::new(deps.redis.as_ref().map(|r| (r.client(), r.connection())), &config.redis_prefix, retention);
        let streams = StreamCounter::default();
        Self { inner: Arc::new(Inner { config, deps, metrics, tokens, gate, limiter, events, streams, started: Instant::now() }) }
    }

    /// Takes one of `who`'s stream slots, or `None` when they already hold `max`.
    pub fn open_stream(&self, who: String, max: usize) -> Option<StreamSlot> {
        let mut open = self.inner.streams.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(who.clone()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(StreamSlot { state: self.clone(), who })
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
