//! Logs and OpenTelemetry: the log format and filter, the OTLP endpoint, service name, trace
//! sampling and the span export queue.

use jeex_types::MAX_SPAN_QUEUE;

use super::{
    error::{ConfigError, err},
    parse::{check_url, parse_whole, parse_with},
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
    /// Spans that may wait for export; the ones beyond are dropped.
    pub span_queue: usize,
    /// Spans sent in one export.
    pub span_batch: usize,
    /// The longest a span waits for a batch to fill before it is sent anyway.
    pub span_delay: std::time::Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// `RUST_LOG`-style filter.
    pub log_filter: String,
}

/// Reads the `OTEL_*` variables, `JEEX_LOG_FORMAT` (pretty in development unless set) and
/// `RUST_LOG`. The `OTEL_BSP_*` variables are the OpenTelemetry SDK's own, read here so that a
/// wrong value stops the server with its name instead of being ignored.
pub(super) fn parse(get: &impl Fn(&str) -> Option<String>, dev: bool) -> Result<TelemetryConfig, ConfigError> {
    let otlp_endpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT")
        .map(|u| check_url("OTEL_EXPORTER_OTLP_ENDPOINT", &u, &["http", "https"], "http://otel-collector:4317"))
        .transpose()?;
    let sample_ratio = parse_with(get, "OTEL_TRACES_SAMPLER_ARG", "1.0", "0.25", |v| match v.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{v:?} is not a number between 0.0 and 1.0")),
    })?;
    let span_queue = parse_whole(get, "OTEL_BSP_MAX_QUEUE_SIZE", "2048", "8192", 1..=MAX_SPAN_QUEUE)?;
    // Unset, the batch is the SDK's 512 or the whole of a smaller queue.
    let span_batch = parse_whole(get, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", &span_queue.min(512).to_string(), "512", 1..=MAX_SPAN_QUEUE)?;
    if span_batch > span_queue {
        return Err(err(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            format!("{span_batch} is larger than the queue (OTEL_BSP_MAX_QUEUE_SIZE={span_queue}): a batch would never fill"),
            span_queue.min(512).to_string(),
        ));
    }
    // Milliseconds, as the OpenTelemetry specification defines the variable.
    let span_delay = parse_with(get, "OTEL_BSP_SCHEDULE_DELAY", "5000", "1000", |v| match v.parse::<u64>() {
        Ok(ms) if (1..=3_600_000).contains(&ms) => Ok(std::time::Duration::from_millis(ms)),
        _ => Err(format!("{v:?} is not a whole number of milliseconds from 1 to 3600000")),
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
        span_queue,
        span_batch,
        span_delay,
        log_format,
        log_filter: parse_with(get, "RUST_LOG", "info", "info,jeex_api=debug", |v| {
            tracing_subscriber::EnvFilter::try_new(v).map(|_| v.to_owned()).map_err(|e| format!("{v:?} is not a log filter: {e}"))
        })?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_env(vars: &[(&str, &str)]) -> Result<TelemetryConfig, ConfigError> {
        let get = |name: &str| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned());
        parse(&get, false)
    }

    #[test]
    fn the_span_queue_defaults_to_the_sdks_and_can_be_set() {
        let default = parse_env(&[]).unwrap();
        assert_eq!((default.span_queue, default.span_batch, default.span_delay.as_millis()), (2048, 512, 5000));
        let set = parse_env(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "32768"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2048"),
            ("OTEL_BSP_SCHEDULE_DELAY", "250"),
        ])
        .unwrap();
        assert_eq!((set.span_queue, set.span_batch, set.span_delay.as_millis()), (32768, 2048, 250));
        // A queue smaller than the default batch, the batch unset: the batch is the queue.
        assert_eq!(parse_env(&[("OTEL_BSP_MAX_QUEUE_SIZE", "256")]).unwrap().span_batch, 256);
    }

    #[test]
    fn a_wrong_span_queue_setting_names_its_variable() {
        for (vars, name) in [
            (&[("OTEL_BSP_MAX_QUEUE_SIZE", "0")][..], "OTEL_BSP_MAX_QUEUE_SIZE"),
            (&[("OTEL_BSP_MAX_QUEUE_SIZE", "lots")][..], "OTEL_BSP_MAX_QUEUE_SIZE"),
            (&[("OTEL_BSP_MAX_QUEUE_SIZE", "200000")][..], "OTEL_BSP_MAX_QUEUE_SIZE"),
            (&[("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096")][..], "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
            (&[("OTEL_BSP_SCHEDULE_DELAY", "5s")][..], "OTEL_BSP_SCHEDULE_DELAY"),
        ] {
            let message = parse_env(vars).unwrap_err().to_string();
            assert!(message.contains(name), "{vars:?}: {message}");
        }
    }
}
