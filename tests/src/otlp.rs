//! A real OTLP/gRPC receiver for tests: serves the OpenTelemetry collector's `TraceService`
//! and `MetricsService` (the protocol's own generated code, over tonic) on loopback, keeps what
//! arrives, and answers each export as a collector does. Tests assert on the spans exactly as
//! a Jaeger or Tempo behind a collector would receive them.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::{
    collector::{
        metrics::v1::{
            ExportMetricsServiceRequest, ExportMetricsServiceResponse,
            metrics_service_server::{MetricsService, MetricsServiceServer},
        },
        trace::v1::{
            ExportTraceServiceRequest, ExportTraceServiceResponse,
            trace_service_server::{TraceService, TraceServiceServer},
        },
    },
    common::v1::{AnyValue, KeyValue, any_value},
};
use serde_json::Value;
use tokio::{net::TcpListener, sync::oneshot};

/// One received span, flattened for assertions.
#[derive(Debug, Clone)]
pub struct Span {
    /// `service.name` of the resource that sent it.
    pub service: String,
    /// Trace ID, 32 hex digits.
    pub trace_id: String,
    /// Span ID, 16 hex digits.
    pub span_id: String,
    /// The parent's span ID; empty for a root.
    pub parent_span_id: String,
    /// Name.
    pub name: String,
    /// `server`, `client`, `internal`, `producer`, `consumer` (or `unspecified`).
    pub kind: &'static str,
    /// Attributes, values as JSON.
    pub attributes: BTreeMap<String, Value>,
    /// `unset`, `ok` or `error`.
    pub status: &'static str,
    /// Links as `(trace_id, span_id)`.
    pub links: Vec<(String, String)>,
}

impl Span {
    /// A string attribute.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(Value::as_str)
    }

    /// An integer attribute.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.attributes.get(key).and_then(Value::as_i64)
    }
}

#[derive(Default)]
struct Received {
    /// Whether spans are kept (or only counted: a benchmark's millions would fill memory).
    keep: bool,
    count: std::sync::atomic::AtomicU64,
    spans: Mutex<Vec<Span>>,
    metrics: Mutex<Vec<(String, String)>>,
}

struct Traces(Arc<Received>);
struct Metrics(Arc<Received>);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn value(v: &AnyValue) -> Value {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => Value::from(*d),
        Some(any_value::Value::ArrayValue(a)) => Value::Array(a.values.iter().map(value).collect()),
        Some(any_value::Value::KvlistValue(kv)) => Value::Object(kv.values.iter().map(|kv| (kv.key.clone(), kv_value(kv))).collect()),
        Some(any_value::Value::BytesValue(b)) => Value::String(hex(b)),
        _ => Value::Null,
    }
}

fn kv_value(kv: &KeyValue) -> Value {
    kv.value.as_ref().map(value).unwrap_or(Value::Null)
}

/// The `service.name` of a resource.
fn service_of(resource: Option<&opentelemetry_proto::tonic::resource::v1::Resource>) -> String {
    resource
        .into_iter()
        .flat_map(|r| &r.attributes)
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv_value(kv).as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn kind(k: i32) -> &'static str {
    ["unspecified", "internal", "server", "client", "producer", "consumer"].get(k as usize).copied().unwrap_or("unspecified")
}

#[tonic::async_trait]
impl TraceService for Traces {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let request = request.into_inner();
        let n: usize = request.resource_spans.iter().flat_map(|rs| &rs.scope_spans).map(|s| s.spans.len()).sum();
        self.0.count.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        if !self.0.keep {
            return Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }));
        }
        let mut spans = Vec::new();
        for rs in request.resource_spans {
            let service = service_of(rs.resource.as_ref());
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                spans.push(Span {
                    service: service.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    kind: kind(span.kind),
                    attributes: span.attributes.iter().map(|kv| (kv.key.clone(), kv_value(kv))).collect(),
                    status: match span.status.map(|s| s.code) {
                        Some(1) => "ok",
                        Some(2) => "error",
                        _ => "unset",
                    },
                    links: span.links.iter().map(|l| (hex(&l.trace_id), hex(&l.span_id))).collect(),
                });
            }
        }
        self.0.spans.lock().unwrap().extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tonic::async_trait]
impl MetricsService for Metrics {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut names = Vec::new();
        for rm in request.into_inner().resource_metrics {
            let service = service_of(rm.resource.as_ref());
            for metric in rm.scope_metrics.into_iter().flat_map(|s| s.metrics) {
                names.push((service.clone(), metric.name));
            }
        }
        self.0.metrics.lock().unwrap().extend(names);
        Ok(tonic::Response::new(ExportMetricsServiceResponse { partial_success: None }))
    }
}

/// The receiver; stops when dropped.
pub struct Collector {
    addr: SocketAddr,
    received: Arc<Received>,
    _stop: oneshot::Sender<()>,
}

impl Collector {
    /// Starts receiving on a free loopback port (on the current Tokio runtime).
    pub async fn start() -> Self {
        Self::serve(true).await
    }

    /// Like [`Collector::start`], but only counts the spans (see [`Collector::span_count`]).
    pub async fn counting() -> Self {
        Self::serve(false).await
    }

    /// Spans received so far, kept or not.
    pub fn span_count(&self) -> u64 {
        self.received.count.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn serve(keep: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Received { keep, ..Received::default() });
        let (stop, stopped) = oneshot::channel();
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Traces(received.clone())))
            .add_service(MetricsServiceServer::new(Metrics(received.clone())))
            .serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(listener), async {
                let _ = stopped.await;
            });
        tokio::spawn(server);
        Self { addr, received, _stop: stop }
    }

    /// The OTLP endpoint to configure (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.received.spans.lock().unwrap().clone()
    }

    /// `(service.name, metric name)` of every metric received so far.
    pub fn metrics(&self) -> Vec<(String, String)> {
        self.received.metrics.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the spans received (checked every 50 ms), up to `limit`;
    /// returns them either way.
    pub async fn wait_for(&self, limit: Duration, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let start = Instant::now();
        loop {
            let spans = self.spans();
            if done(&spans) || start.elapsed() > limit {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The spans of one trace, each with its children: for readable assertion messages.
pub fn tree(spans: &[Span], trace_id: &str) -> String {
    fn walk(spans: &[&Span], parent: &str, depth: usize, out: &mut String) {
        for s in spans.iter().filter(|s| s.parent_span_id == parent) {
            out.push_str(&format!("{}{} [{}] {:?}\n", "  ".repeat(depth), s.name, s.kind, s.attributes));
            walk(spans, &s.span_id, depth + 1, out);
        }
    }
    let in_trace: Vec<&Span> = spans.iter().filter(|s| s.trace_id == trace_id).collect();
    let ids: Vec<&str> = in_trace.iter().map(|s| s.span_id.as_str()).collect();
    let mut out = String::new();
    // Roots here are spans whose parent is not in this trace's received spans (a remote parent).
    for root in in_trace.iter().filter(|s| !ids.contains(&s.parent_span_id.as_str())) {
        out.push_str(&format!("{} [{}] {:?}\n", root.name, root.kind, root.attributes));
        walk(&in_trace, &root.span_id, 1, &mut out);
    }
    out
}
