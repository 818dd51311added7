//! Rate limiting: GCRA per route class, keyed per client IP, per user (or API key) and per
//! project (charged by the membership check: [`meter`]), evaluated atomically in Redis when configured (one script round trip), in memory
//! otherwise.

pub mod gcra;
pub mod memory;
pub mod meter;
pub mod redis;

use std::time::{Duration, Instant};

use opentelemetry::metrics::Counter;

use self::{gcra::Outcome, memory::MemoryStore, redis::RedisStore};
use crate::config::{Quota, RateLimitConfig};

/// Route classes, each with its own quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// GET/HEAD API requests.
    Reads,
    /// Other API requests.
    Writes,
    /// `/api/v1/auth/*`.
    Auth,
}

impl Class {
    /// The policy name in `RateLimit-Policy`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Reads => "reads",
            Self::Writes => "writes",
            Self::Auth => "auth",
        }
    }
}

/// Where buckets live.
enum Store {
    Redis(RedisStore),
    Memory(MemoryStore),
}

/// The limiter: quotas, the store, and the policy for a failing Redis.
pub struct Limiter {
    config: RateLimitConfig,
    prefix: String,
    store: Store,
    errors: Counter<u64>,
    last_warning: std::sync::Mutex<Option<Instant>>,
}

/// What the chain does with a request.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Serve it, with these figures for the headers.
    Allowed(Class, Quota, Outcome),
    /// Answer 429.
    Refused(Class, Quota, Outcome),
    /// The limiter could not decide and fails closed: answer 503.
    Unavailable,
    /// Not limited (class off, or failing open).
    Unlimited,
}

impl Limiter {
    /// A limiter on Redis when `redis` is given, in memory otherwise.
    pub fn new(config: RateLimitConfig, prefix: String, redis: Option<crate::deps::redis::Connection>, errors: Counter<u64>) -> Self {
        let store = match redis {
            Some(conn) => Store::Redis(RedisStore::new(conn)),
            None => Store::Memory(MemoryStore::default()),
        };
        Self { config, prefix, store, errors, last_warning: std::sync::Mutex::new(None) }
    }

    /// The quota of a class, if limited.
    pub fn quota(&self, class: Class) -> Option<Quota> {
        match class {
            Class::Reads => self.config.reads,
            Class::Writes => self.config.writes,
            Class::Auth => self.config.auth,
        }
    }

    /// Trusted proxies.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Counts one request of `class` against every identity (`ip:…`, `user:…`, `project:…`),
    /// each allowed its multiple of the class quota.
    pub async fn check(&self, class: Class, identities: &[(String, u32)]) -> Verdict {
        let Some(quota) = self.quota(class) else { return Verdict::Unlimited };
        let keys: Vec<String> = identities.iter().map(|(id, _)| format!("{}rl:{}:{id}", self.prefix, class.name())).collect();
        let multipliers: Vec<u32> = identities.iter().map(|(_, m)| *m).collect();
        let outcome = match &self.store {
            Store::Memory(store) => Ok(store.check(&keys, &multipliers, quota)),
            Store::Redis(store) => store.check(keys, &multipliers, quota).await,
        };
        match outcome {
            Ok(o) if o.allowed => Verdict::Allowed(class, quota, o),
            Ok(o) => Verdict::Refused(class, quota, o),
            Err(e) => {
                self.errors.add(1, &[]);
                self.warn(&e);
                if self.config.fail_open { Verdict::Unlimited } else { Verdict::Unavailable }
            }
        }
    }

    /// At most one warning a minute: a Redis outage must not flood the log.
    fn warn(&self, e: &redis::StoreError) {
        let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            *last = Some(Instant::now());
            let policy = if self.config.fail_open { "serving requests unlimited" } else { "refusing requests with 503" };
            tracing::warn!(error = %e, "rate limiter cannot reach Redis; {policy} (JEEX_RATE_LIMIT_ON_REDIS_ERROR)");
        }
    }
}
