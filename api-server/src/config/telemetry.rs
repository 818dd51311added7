//! Logs and OpenTelemetry: the log format and filter, the OTLP endpoint, service name and
//! trace sampling.

use super::{
    error::{ConfigError, err},
    parse::{check_url, parse_with},
};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log shippers.
    Json,
    /// Human-readable, for a terminal.
    Pretty,
}

/// OpenTelemetry settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// OTLP/gRPC endpoint; `None` disables export.
    pub otlp_endpoint: Option<String>,
    /// `service.name`.
    pub service_name: String,
    /// Sampling ratio for new traces.
    pub sample_ratio: f64,
    /// Log format.
    pub log_format: LogFormat,
    /// `RUST_LOG`-style filter.
    pub log_filter: String,
}

/// Reads the `OTEL_*` variables, `JEEX_LOG_FORMAT` (pretty in development unless set) and
/// `RUST_LOG`.
pub(super) fn parse(get: &impl Fn(&str) -> Option<String>, dev: bool) -> Result<TelemetryConfig, ConfigError> {
    let otlp_endpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT")
        .map(|u| check_url("OTEL_EXPORTER_OTLP_ENDPOINT", &u, &["http", "https"], "http://otel-collector:4317"))
        .transpose()?;
    let sample_ratio = parse_with(get, "OTEL_TRACES_SAMPLER_ARG", "1.0", "0.25", |v| match v.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{v:?} is not a number between 0.0 and 1.0")),
    })?;
    let log_format = match get("JEEX_LOG_FORMAT").as_deref() {
        None if dev => LogFormat::Pretty,
        None => LogFormat::Json,
        Some("json") => LogFormat::Json,
        Some("pretty") => LogFormat::Pretty,
        Some(other) => return Err(err("JEEX_LOG_FORMAT", format!("unknown format {other:?}; use json or pretty"), "json")),
    };
    Ok(TelemetryConfig {
        otlp_endpoint,
        service_name: get("OTEL_SERVICE_NAME").unwrap_or_else(|| "jeex-api".into()),
        sample_ratio,
        log_format,
        log_filter: parse_with(get, "RUST_LOG", "info", "info,jeex_api=debug", |v| {
            tracing_subscriber::EnvFilter::try_new(v).map(|_| v.to_owned()).map_err(|e| format!("{v:?} is not a log filter: {e}"))
        })?,
    })
}
