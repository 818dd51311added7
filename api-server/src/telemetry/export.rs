//! OTLP exporters wrapped so that a collector that is down, resets connections or hangs can
//! never hurt the server: every export is bounded in time, failures are swallowed after being
//! logged at most once a minute (across traces and metrics), and the SDK's queues are bounded.

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use opentelemetry_sdk::{
    error::{OTelSdkError, OTelSdkResult},
    metrics::{Temporality, data::ResourceMetrics, exporter::PushMetricExporter},
    trace::{SpanData, SpanExporter},
};

/// Upper bound on one export call, so a hung collector only delays the exporter's own thread.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often an export failure may be logged.
pub const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Remembers when an export failure was last logged; shared by all exporters of a process.
#[derive(Clone, Default)]
pub struct FailureLog {
    last: Arc<Mutex<Option<Instant>>>,
}

impl FailureLog {
    /// Logs `err` unless a failure was logged less than [`FAILURE_LOG_INTERVAL`] ago.
    pub fn report(&self, signal: &str, err: &OTelSdkError) {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if last.is_some_and(|at| now.duration_since(at) < FAILURE_LOG_INTERVAL) {
            return;
        }
        *last = Some(now);
        drop(last);
        tracing::warn!(target: "jeex_api::telemetry", signal, error = %err, "telemetry export failed; dropping data, next report in at most a minute");
    }
}

/// A span exporter whose failures are reported through a [`FailureLog`] and then dropped.
pub struct Guarded<E> {
    inner: E,
    log: FailureLog,
}

impl<E> Guarded<E> {
    /// Wraps `inner`.
    pub fn new(inner: E, log: FailureLog) -> Self {
        Self { inner, log }
    }
}

impl<E> fmt::Debug for Guarded<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Guarded")
    }
}

impl<E: SpanExporter> SpanExporter for Guarded<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if let Err(e) = self.inner.export(batch).await {
            self.log.report("traces", &e);
        }
        // The batch is gone either way; reporting success keeps the SDK from logging again.
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: PushMetricExporter> PushMetricExporter for Guarded<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        if let Err(e) = self.inner.export(metrics).await {
            self.log.report("metrics", &e);
        }
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_reported_once_per_interval() {
        let log = FailureLog::default();
        log.report("traces", &OTelSdkError::InternalFailure("down".into()));
        let first = log.last.lock().unwrap().unwrap();
        log.report("metrics", &OTelSdkError::InternalFailure("down".into()));
        assert_eq!(log.last.lock().unwrap().unwrap(), first, "second failure within the interval must not be logged");
    }
}
