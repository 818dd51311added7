//! Logging, tracing and metrics. Export to a collector is optional and never fatal.

pub mod export;
pub mod metrics;
pub mod redact;
mod span_fields;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    Resource,
    trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider},
};
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::{EnvFilter, Layer, filter, layer::SubscriberExt, util::SubscriberInitExt};

use self::{export::FailureLog, metrics::Metrics};
use crate::{
    client_span,
    config::{LogFormat, TelemetryConfig},
};

pub use export::EXPORT_TIMEOUT;

/// Crates whose own logs would echo the exporter's traffic or flood the output. Placed before
/// `RUST_LOG`, whose directives for the same targets win.
///
/// The embedded vector engine warns, whenever it reads them, that two settings a Qdrant server
/// initialises at its start were never set; qdrant-edge 0.7 offers no way to set them, and the
/// defaults it then takes are the ones it documents. Only those two modules are held to errors
/// (which also hides the engine's notice that `QDRANT_NO_MULTI_MMAP` is set); a `RUST_LOG`
/// directive naming one of them exactly brings its warnings back.
const QUIET: &str = "h2=warn,hyper=warn,hyper_util=warn,tonic=warn,tower=warn,sqlx=warn,\
                     opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off,\
                     qdrant_edge::common::flags=error,qdrant_edge::common::mmap::ops=error";

/// Handles that must be flushed at shutdown.
pub struct Telemetry {
    tracer_provider: SdkTracerProvider,
    /// Why OTLP export is off although an endpoint is configured (the server runs without it).
    pub export_error: Option<String>,
    /// Metric instruments and the Prometheus registry.
    pub metrics: Metrics,
}

/// The OpenTelemetry resource describing this process.
fn resource(cfg: &TelemetryConfig) -> Resource {
    Resource::builder()
        .with_service_name(cfg.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The layer that makes `tracing` spans OpenTelemetry spans of `tracer`. The
/// semantic-convention attributes are the spans' own; the source location, thread and level
/// would only add bytes to every span. (Public for the bench that measures its cost.)
pub fn span_layer<S>(tracer: SdkTracer) -> OpenTelemetryLayer<S, SdkTracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_level(false)
}

impl Telemetry {
    /// Installs the global `tracing` subscriber (the one piece of process-wide state, as
    /// `tracing` requires) and builds the tracer and meter providers.
    pub fn init(cfg: &TelemetryConfig) -> Result<Self, String> {
        let telemetry = Self::build(cfg)?;
        let tracer = telemetry.tracer_provider.tracer("jeex-api");
        // RUST_LOG was validated with the configuration.
        let filter = EnvFilter::try_new(format!("{QUIET},{}", cfg.log_filter)).map_err(|e| format!("RUST_LOG: {e}"))?;
        let fmt_layer: Box<dyn Layer<_> + Send + Sync> = match cfg.log_format {
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .with_writer(redact::RedactingWriter(std::io::stdout))
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .fmt_fields(span_fields::JsonSpanFields)
                .boxed(),
            LogFormat::Pretty => tracing_subscriber::fmt::layer().with_writer(redact::RedactingWriter(std::io::stdout)).boxed(),
        };
        // Client spans (made only when exporting) are for traces only: a line logged during a
        // statement keeps the request span (and its correlation ID) as its span. Without export
        // the filter would cost every span and event for nothing.
        let fmt_layer = if cfg.otlp_endpoint.is_some() {
            fmt_layer.with_filter(filter::filter_fn(|meta| !(meta.is_span() && meta.target() == client_span::TARGET))).boxed()
        } else {
            fmt_layer
        };
        // Spans become OpenTelemetry spans only when they are exported: building them costs
        // several microseconds a request for nothing otherwise.
        // Spans only: log events would become span events with their fields as logged, past
        // the redaction that guards every log line.
        let otel_layer = cfg.otlp_endpoint.is_some().then(|| span_layer(tracer).with_filter(filter::filter_fn(|meta| meta.is_span())));
        tracing_subscriber::registry()
            .with(filter)
            .with(fmt_layer)
            .with(otel_layer)
            .try_init()
            .map_err(|e| format!("logging already initialised: {e}"))?;
        if let Some(error) = &telemetry.export_error {
            tracing::error!(%error, "OTLP export is off; the server runs without it");
        }
        Ok(telemetry)
    }

    /// Builds the providers without touching process-wide state (for in-process tests).
    pub fn build(cfg: &TelemetryConfig) -> Result<Self, String> {
        let failures = FailureLog::default();
        let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(cfg.sample_ratio)));
        let mut tracer_builder = SdkTracerProvider::builder().with_sampler(sampler).with_resource(resource(cfg));
        // An exporter that cannot even be built must not stop the server either.
        let mut export_error = None;
        let mut metrics_export = None;
        if let Some(endpoint) = &cfg.otlp_endpoint {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .with_timeout(EXPORT_TIMEOUT)
                .build();
            match exporter {
                Ok(exporter) => {
                    // The batch processor's queue is bounded (spans beyond it are dropped), so a
                    // dead collector costs a fixed amount of memory. At 100 % sampling under heavy
                    // load the default 2,048 drops spans too (`OTEL_BSP_*`, docs/tracing.md).
                    let batches = BatchConfigBuilder::default()
                        .with_max_queue_size(cfg.span_queue)
                        .with_max_export_batch_size(cfg.span_batch)
                        .with_scheduled_delay(cfg.span_delay)
                        .build();
                    let processor =
                        BatchSpanProcessor::builder(export::Guarded::new(exporter, failures.clone())).with_batch_config(batches).build();
                    tracer_builder = tracer_builder.with_span_processor(processor);
                    metrics_export = Some((endpoint.as_str(), failures));
                }
                Err(e) => export_error = Some(format!("OTLP exporter for {endpoint}: {e}")),
            }
        }
        let metrics = Metrics::new(resource(cfg), metrics_export)?;
        Ok(Self { tracer_provider: tracer_builder.build(), export_error, metrics })
    }

    /// Flushes what is buffered (bounded by the export timeout) and stops the exporters.
    pub fn shutdown(&self) {
        let _ = self.tracer_provider.shutdown();
        self.metrics.shutdown();
    }
}
