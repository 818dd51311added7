//! Controller metrics for `/metrics` (reconciles, failures and their duration) and the
//! liveness the operator reports on `/healthz`: a reconcile still running well past its
//! deadline means the control loop is stuck (the deadline's own timer did not fire), and a
//! leader whose Lease renewals stopped must not keep reconciling.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, Registry, TextEncoder};

/// The operator's metrics, registered in their own registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    reconciles: IntCounter,
    failures: IntCounter,
    duration: Histogram,
    running: Arc<Mutex<(u64, BTreeMap<u64, Instant>)>>,
    renewed: Arc<Mutex<Option<Instant>>>,
    /// The same reconcile measures, exported over OTLP when telemetry is on.
    exported: Option<Exported>,
}

/// The OpenTelemetry instruments (semantic-convention style names).
#[derive(Clone)]
struct Exported {
    duration: opentelemetry::metrics::Histogram<f64>,
    reconciles: opentelemetry::metrics::Counter<u64>,
}

/// A reconcile in flight; dropping it ends it.
pub struct Running {
    id: u64,
    running: Arc<Mutex<(u64, BTreeMap<u64, Instant>)>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut r) = self.running.lock() {
            r.1.remove(&self.id);
        }
    }
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
        Self { registry, reconciles, failures, duration, running: Arc::default(), renewed: Arc::default(), exported: None }
    }
}

impl Metrics {
    /// Metrics also recorded with `meter`, which exports them (`jeex.operator.reconcile.duration`
    /// and `jeex.operator.reconciles`, each with its `outcome`).
    pub fn exported_with(meter: &opentelemetry::metrics::Meter) -> Self {
        let exported = Exported {
            duration: meter
                .f64_histogram("jeex.operator.reconcile.duration")
                .with_unit("s")
                .with_description("Time a reconcile took")
                .with_boundaries(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
                .build(),
            reconciles: meter.u64_counter("jeex.operator.reconciles").with_description("Reconciles run").build(),
        };
        Self { exported: Some(exported), ..Self::default() }
    }

    /// Records one reconcile.
    pub fn observe(&self, took: Duration, failed: bool) {
        if let Some(e) = &self.exported {
            let outcome = [opentelemetry::KeyValue::new("outcome", if failed { "error" } else { "success" })];
            e.duration.record(took.as_secs_f64(), &outcome);
            e.reconciles.add(1, &outcome);
        }
        self.reconciles.inc();
        if failed {
            self.failures.inc();
        }
        self.duration.observe(took.as_secs_f64());
    }

    /// Marks a reconcile as running until the returned guard drops.
    pub fn running(&self) -> Running {
        let mut r = self.running.lock().expect("not poisoned");
        r.0 += 1;
        let id = r.0;
        r.1.insert(id, Instant::now());
        Running { id, running: self.running.clone() }
    }

    /// Records that the leader renewed its Lease.
    pub fn renewed(&self) {
        *self.renewed.lock().expect("not poisoned") = Some(Instant::now());
    }

    /// Why the process is not live, if it is not: a reconcile running longer than `stuck`, or
    /// (when leading) no Lease renewal for `stuck`.
    pub fn unhealthy(&self, stuck: Duration, leading: bool) -> Option<String> {
        let now = Instant::now();
        if let Some(oldest) = self.running.lock().expect("not poisoned").1.values().min()
            && now.duration_since(*oldest) > stuck
        {
            return Some(format!("a reconcile has been running for {}s", now.duration_since(*oldest).as_secs()));
        }
        if leading
            && let Some(at) = *self.renewed.lock().expect("not poisoned")
            && now.duration_since(at) > stuck
        {
            return Some(format!("the leader Lease was last renewed {}s ago", now.duration_since(at).as_secs()));
        }
        None
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconcile_running_too_long_makes_the_process_unhealthy() {
        let m = Metrics::default();
        assert_eq!(m.unhealthy(Duration::from_millis(20), false), None);
        let running = m.running();
        std::thread::sleep(Duration::from_millis(40));
        assert!(m.unhealthy(Duration::from_millis(20), false).unwrap().contains("a reconcile has been running"));
        drop(running);
        assert_eq!(m.unhealthy(Duration::from_millis(20), false), None, "it ended");
        m.renewed();
        std::thread::sleep(Duration::from_millis(40));
        assert!(m.unhealthy(Duration::from_millis(20), true).unwrap().contains("Lease"));
        assert_eq!(m.unhealthy(Duration::from_millis(20), false), None, "a follower renews nothing");
    }
}
