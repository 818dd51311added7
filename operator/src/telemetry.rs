//! Logs, traces and metrics. The operator reads the same OpenTelemetry variables as the API
//! server — `OTEL_EXPORTER_OTLP_ENDPOINT` (export is off without it), `OTEL_SERVICE_NAME`
//! (`jeex-operator`), `OTEL_TRACES_SAMPLER_ARG` (the share of reconciles traced, 1.0), and the
//! span queue's `OTEL_BSP_MAX_QUEUE_SIZE` / `_MAX_EXPORT_BATCH_SIZE` / `_SCHEDULE_DELAY`, checked
//! here (the SDK would ignore a wrong value without a word) — and
//! exports over OTLP/gRPC: a span per reconcile ([`crate::reconcile`]) with a client span per
//! API call ([`crate::api_calls`]) and per dependency probe beneath it, and the reconcile
//! metrics. A collector that is down costs dropped data, never a reconcile.

use std::time::Duration;

use jeex_types::MAX_SPAN_QUEUE;
use opentelemetry::{KeyValue, trace::TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    Resource,
    metrics::{PeriodicReader, SdkMeterProvider},
    trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider},
};
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

/// Upper bound on one export, so a hung collector only delays the exporter's own task.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The OpenTelemetry settings, from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; `None` turns export off.
    pub endpoint: Option<String>,
    /// `OTEL_SERVICE_NAME`.
    pub service_name: String,
    /// `OTEL_TRACES_SAMPLER_ARG`: the share of new traces kept.
    pub sample_ratio: f64,
    /// `OTEL_BSP_MAX_QUEUE_SIZE`: spans waiting for export, beyond which they are dropped.
    pub span_queue: usize,
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`: spans sent in one export (at most the queue).
    pub span_batch: usize,
    /// `OTEL_BSP_SCHEDULE_DELAY` (milliseconds): how long a span may wait for its batch.
    pub span_delay: Duration,
}

impl TelemetryConfig {
    /// Reads the variables through `get`; an unusable value is an error naming its variable.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let endpoint = match get("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|v| !v.is_empty()) {
            None => None,
            Some(url) => match url::Url::parse(&url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Some(url),
                _ => {
                    return Err(format!(
                        "OTEL_EXPORTER_OTLP_ENDPOINT: {url:?} is not an http(s) URL with a host (e.g. http://otel-collector:4317)"
                    ));
                }
            },
        };
        let sample_ratio = match get("OTEL_TRACES_SAMPLER_ARG") {
            None => 1.0,
            Some(v) => match v.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => r,
                _ => return Err(format!("OTEL_TRACES_SAMPLER_ARG: {v:?} is not a number between 0.0 and 1.0")),
            },
        };
        let service_name = get("OTEL_SERVICE_NAME").filter(|v| !v.is_empty()).unwrap_or_else(|| "jeex-operator".into());
        let span_queue = whole(&get, "OTEL_BSP_MAX_QUEUE_SIZE", 2048, MAX_SPAN_QUEUE as u64)?;
        // Unset, the batch is the SDK's 512 or the whole of a smaller queue.
        let span_batch = whole(&get, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", span_queue.min(512), MAX_SPAN_QUEUE as u64)?;
        if span_batch > span_queue {
            return Err(format!(
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE: {span_batch} is larger than the queue (OTEL_BSP_MAX_QUEUE_SIZE={span_queue})"
            ));
        }
        let span_delay = Duration::from_millis(whole(&get, "OTEL_BSP_SCHEDULE_DELAY", 5000, 3_600_000)? as u64);
        Ok(Self { endpoint, service_name, sample_ratio, span_queue, span_batch, span_delay })
    }

    /// The batch processor's settings.
    fn batches(&self) -> opentelemetry_sdk::trace::BatchConfig {
        BatchConfigBuilder::default()
            .with_max_queue_size(self.span_queue)
            .with_max_export_batch_size(self.span_batch)
            .with_scheduled_delay(self.span_delay)
            .build()
    }
}

/// `name`'s value, a whole number from 1 to `most`, or `default` when it is unset.
fn whole(get: &impl Fn(&str) -> Option<String>, name: &str, default: usize, most: u64) -> Result<usize, String> {
    let Some(v) = get(name).filter(|v| !v.is_empty()) else { return Ok(default) };
    match v.trim().parse::<u64>() {
        Ok(n) if (1..=most).contains(&n) => usize::try_from(n).map_err(|_| format!("{name}: {v:?} is too large")),
        _ => Err(format!("{name}: {v:?} is not a whole number from 1 to {most}")),
    }
}

/// The providers, flushed at shutdown.
pub struct Telemetry {
    tracer_provider: SdkTracerProvider,
    meter_provider: Option<SdkMeterProvider>,
}

impl Telemetry {
    /// Builds the providers without installing anything (a test installs its own subscriber
    /// with [`Telemetry::layer`]).
    pub fn build(cfg: &TelemetryConfig) -> Result<Self, String> {
        let resource = Resource::builder()
            .with_service_name(cfg.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(cfg.sample_ratio)));
        let mut tracer = SdkTracerProvider::builder().with_sampler(sampler).with_resource(resource.clone());
        let mut meter_provider = None;
        if let Some(endpoint) = &cfg.endpoint {
            let spans = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .with_timeout(EXPORT_TIMEOUT)
                .build()
                .map_err(|e| format!("OTLP span exporter for {endpoint}: {e}"))?;
            tracer = tracer.with_span_processor(BatchSpanProcessor::builder(spans).with_batch_config(cfg.batches()).build());
            let metrics = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .with_timeout(EXPORT_TIMEOUT)
                .build()
                .map_err(|e| format!("OTLP metric exporter for {endpoint}: {e}"))?;
            meter_provider =
                Some(SdkMeterProvider::builder().with_resource(resource).with_reader(PeriodicReader::builder(metrics).build()).build());
        }
        Ok(Self { tracer_provider: tracer.build(), meter_provider })
    }

    /// The `tracing` layer that turns spans into exported OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.tracer_provider.tracer("jeex-operator"))
            .with_tracked_inactivity(false)
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_level(false)
            // Spans only: log events (which may quote a dependency's error) stay in the log.
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| meta.is_span()))
    }

    /// The meter the reconcile metrics are recorded with, when they are exported.
    pub fn meter(&self) -> Option<opentelemetry::metrics::Meter> {
        use opentelemetry::metrics::MeterProvider as _;
        self.meter_provider.as_ref().map(|p| p.meter("jeex-operator"))
    }

    /// Installs the process's subscriber: `filter`ed logs in `json` or pretty lines, plus the
    /// span export when an endpoint is configured.
    pub fn install(&self, filter: EnvFilter, json: bool, exporting: bool) -> Result<(), String> {
        let fmt = if json {
            tracing_subscriber::fmt::layer().json().flatten_event(true).boxed()
        } else {
            tracing_subscriber::fmt::layer().boxed()
        };
        tracing_subscriber::registry()
            .with(filter)
            .with(fmt)
            .with(exporting.then(|| self.layer()))
            .try_init()
            .map_err(|e| format!("logging already initialised: {e}"))
    }

    /// Sends what is buffered.
    pub fn flush(&self) {
        let _ = self.tracer_provider.force_flush();
        if let Some(p) = &self.meter_provider {
            let _ = p.force_flush();
        }
    }

    /// Flushes (bounded by the export timeout) and stops the exporters.
    pub fn shutdown(&self) {
        let _ = self.tracer_provider.shutdown();
        if let Some(p) = &self.meter_provider {
            let _ = p.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::TelemetryConfig;

    fn parse(vars: &[(&str, &str)]) -> Result<TelemetryConfig, String> {
        TelemetryConfig::from_env(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn defaults_and_refusals_name_their_variable() {
        let defaults = TelemetryConfig {
            endpoint: None,
            service_name: "jeex-operator".into(),
            sample_ratio: 1.0,
            span_queue: 2048,
            span_batch: 512,
            span_delay: Duration::from_millis(5000),
        };
        assert_eq!(parse(&[]).unwrap(), defaults);
        let on = parse(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4317"), ("OTEL_TRACES_SAMPLER_ARG", "0.25")]).unwrap();
        assert_eq!((on.endpoint.as_deref(), on.sample_ratio), (Some("http://otel:4317"), 0.25));
        assert!(parse(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "otel:4317")]).unwrap_err().starts_with("OTEL_EXPORTER_OTLP_ENDPOINT:"));
        assert!(parse(&[("OTEL_TRACES_SAMPLER_ARG", "2")]).unwrap_err().starts_with("OTEL_TRACES_SAMPLER_ARG:"));
    }

    #[test]
    fn the_span_queue_is_checked_not_left_to_the_sdk() {
        let set = parse(&[("OTEL_BSP_MAX_QUEUE_SIZE", "256"), ("OTEL_BSP_SCHEDULE_DELAY", "200")]).unwrap();
        assert_eq!(
            (set.span_queue, set.span_batch, set.span_delay),
            (256, 256, Duration::from_millis(200)),
            "the batch follows a smaller queue"
        );
        for (name, value) in [
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "lots"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "200000"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "-1"),
            ("OTEL_BSP_SCHEDULE_DELAY", "5s"),
        ] {
            let refused = parse(&[(name, value)]).unwrap_err();
            assert!(refused.starts_with(&format!("{name}: ")), "{refused}");
        }
        let too_big = parse(&[("OTEL_BSP_MAX_QUEUE_SIZE", "100"), ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "512")]).unwrap_err();
        assert!(too_big.starts_with("OTEL_BSP_MAX_EXPORT_BATCH_SIZE: 512 is larger than the queue"), "{too_big}");
    }
}
