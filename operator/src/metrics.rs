//! Controller metrics for `/metrics`: reconciles, failures and their duration.

use std::time::Duration;

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, Registry, TextEncoder};

/// The operator's metrics, registered in their own registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    reconciles: IntCounter,
    failures: IntCounter,
    duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounter::new("jeex_operator_reconciliations_total", "Reconciles run").expect("valid metric");
        let failures = IntCounter::new("jeex_operator_reconcile_errors_total", "Reconciles that failed").expect("valid metric");
        let duration = Histogram::with_opts(
            HistogramOpts::new("jeex_operator_reconcile_duration_seconds", "Time a reconcile took")
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
        )
        .expect("valid metric");
        for c in
            [Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>, Box::new(failures.clone()), Box::new(duration.clone())]
        {
            registry.register(c).expect("unique metric names");
        }
        Self { registry, reconciles, failures, duration }
    }
}

impl Metrics {
    /// Records one reconcile.
    pub fn observe(&self, took: Duration, failed: bool) {
        self.reconciles.inc();
        if failed {
            self.failures.inc();
        }
        self.duration.observe(took.as_secs_f64());
    }

    /// Reconciles so far.
    pub fn reconciles(&self) -> u64 {
        self.reconciles.get()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
