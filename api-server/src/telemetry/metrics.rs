//! Metrics: OpenTelemetry instruments named by the semantic conventions, read by a Prometheus
//! registry for `GET /metrics` and, when a collector is configured, pushed over OTLP too.

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use opentelemetry::{
    KeyValue,
    metrics::{Counter, Histogram, Meter, MeterProvider as _},
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    Resource,
    metrics::{PeriodicReader, SdkMeterProvider},
};
use prometheus::{Encoder, Registry, TextEncoder};

use super::export::{EXPORT_TIMEOUT, FailureLog, Guarded};

/// Latency buckets from the HTTP semantic conventions, in seconds.
const DURATION_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

/// `http.request.method` values, in [`ActiveRequests`] slot order: the standard methods, then
/// `_OTHER` for any other (as the semantic conventions ask).
pub const METHODS: [&str; 8] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "_OTHER"];

/// The method's slot in [`METHODS`]; methods outside the standard set share `_OTHER`.
pub fn method_slot(method: &poem::http::Method) -> usize {
    use poem::http::Method;
    const STANDARD: [Method; 7] = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::HEAD, Method::OPTIONS];
    STANDARD.iter().position(|m| m == method).unwrap_or(STANDARD.len())
}

/// `http.server.active_requests` by method, counted in atomics and read at each collection:
/// an up-down counter would hash the attributes and take a lock twice per request.
#[derive(Clone)]
pub struct ActiveRequests(Arc<[AtomicI64; METHODS.len()]>);

impl ActiveRequests {
    fn register(meter: &Meter) -> Self {
        let active = Self(Arc::new(Default::default()));
        let counts = active.0.clone();
        meter
            .i64_observable_up_down_counter("http.server.active_requests")
            .with_unit("{request}")
            .with_description("Number of active HTTP server requests.")
            .with_callback(move |obs| {
                for (count, method) in counts.iter().zip(METHODS) {
                    obs.observe(count.load(Ordering::Relaxed), &[KeyValue::new("http.request.method", method)]);
                }
            })
            .build();
        active
    }

    /// Adds `delta` to the count of method slot `method` (an index into [`METHODS`]).
    pub fn add(&self, method: usize, delta: i64) {
        self.0[method].fetch_add(delta, Ordering::Relaxed);
    }
}

/// The instruments the server records and the registry `/metrics` renders.
#[derive(Clone)]
pub struct Metrics {
    provider: SdkMeterProvider,
    registry: Registry,
    /// `http.server.request.duration` (s), by method, route template and status.
    pub request_duration: Histogram<f64>,
    /// `http.server.active_requests`, by method.
    pub active_requests: ActiveRequests,
    /// `jeex.rate_limit.errors`: limiter checks that failed because Redis did not answer.
    pub rate_limit_errors: Counter<u64>,
}

impl Metrics {
    /// Builds the meter provider. With `otlp`, metrics are also pushed to the collector.
    pub fn new(resource: Resource, otlp: Option<(&str, FailureLog)>) -> Result<Self, String> {
        let registry = Registry::new();
        let prometheus = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_target_info()
            .scope_info_enabled(false)
            .build()
            .map_err(|e| format!("prometheus exporter: {e}"))?;
        let mut builder = SdkMeterProvider::builder().with_resource(resource).with_reader(prometheus);
        if let Some((endpoint, log)) = otlp {
            let exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(EXPORT_TIMEOUT)
                .build()
                .map_err(|e| format!("OTLP metric exporter: {e}"))?;
            // Interval from OTEL_METRIC_EXPORT_INTERVAL (default 60 s), as the SDK reads it.
            let reader = PeriodicReader::builder(Guarded::new(exporter, log)).build();
            builder = builder.with_reader(reader);
        }
        let provider = builder.build();
        let meter = provider.meter("jeex-api");
        Ok(Self {
            request_duration: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description("Duration of HTTP server requests.")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            active_requests: ActiveRequests::register(&meter),
            rate_limit_errors: meter
                .u64_counter("jeex.rate_limit.errors")
                .with_description("Rate-limit checks that failed because Redis did not answer.")
                .build(),
            provider,
            registry,
        })
    }

    /// The meter the server's instruments belong to.
    fn meter(&self) -> Meter {
        self.provider.meter("jeex-api")
    }

    /// Reports the PostgreSQL pool's usage (`db.client.connection.count` by state and
    /// `db.client.connection.max`) from the pool itself at each collection.
    pub fn observe_pool(&self, connections: impl Fn() -> (u32, usize) + Send + Sync + 'static, max: u32) {
        let meter = self.meter();
        meter
            .i64_observable_up_down_counter("db.client.connection.count")
            .with_unit("{connection}")
            .with_description("Connections in the pool, by state.")
            .with_callback(move |obs| {
                let (size, idle) = connections();
                let (size, idle) = (i64::from(size), idle as i64);
                let name = KeyValue::new("db.client.connection.pool.name", "postgres");
                obs.observe(idle, &[name.clone(), KeyValue::new("db.client.connection.state", "idle")]);
                obs.observe(size - idle, &[name, KeyValue::new("db.client.connection.state", "used")]);
            })
            .build();
        meter
            .i64_observable_up_down_counter("db.client.connection.max")
            .with_unit("{connection}")
            .with_description("Most connections the pool may open.")
            .with_callback(move |obs| obs.observe(i64::from(max), &[KeyValue::new("db.client.connection.pool.name", "postgres")]))
            .build();
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families, which the exporter produces.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "rendering metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// Pushes the last metrics and stops the readers.
    pub fn shutdown(&self) {
        let _ = self.provider.shutdown();
    }
}
