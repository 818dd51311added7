//! Issue 26, acceptance 4: the operator's reconcile of a scripted resource, exported by the
//! operator's own telemetry over OTLP/gRPC to the repository's receiver
//! ([`jeex_e2e::otlp`]), is one span with its Kubernetes API calls and its dependency probes
//! beneath it — and the Secrets it generates appear in none of them.

mod support;

use std::time::Duration;

use jeex_e2e::{
    otlp::{Collector, tree},
    services::database_url,
};
use jeex_operator::{
    metrics::Metrics,
    telemetry::{Telemetry, TelemetryConfig},
};
use support::world::World;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test]
async fn a_reconcile_is_a_span_with_its_api_calls_and_probes_beneath() {
    let collector = Collector::start().await;
    let endpoint = collector.endpoint();
    let config = TelemetryConfig::from_env(|k| (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| endpoint.clone())).unwrap();
    let telemetry = Telemetry::build(&config).unwrap();
    // This test's thread (a current-thread runtime: the double's tasks run here too) exports.
    let _exporting = tracing::subscriber::set_default(tracing_subscriber::registry().with(telemetry.layer()));

    let w = World::new("ghcr.io/jeex/jeex-api:1.0.0", &database_url());
    let calls = w.reconcile().await;
    Metrics::exported_with(&telemetry.meter().expect("metrics are exported")).observe(Duration::from_millis(20), false);
    // Off this thread: the export runs on this runtime, which must keep turning meanwhile.
    let telemetry = std::sync::Arc::new(telemetry);
    let flushing = telemetry.clone();
    tokio::task::spawn_blocking(move || flushing.flush()).await.unwrap();

    let spans = collector
        .wait_for(Duration::from_secs(10), |spans| spans.iter().any(|s| s.name == "reconcile" && s.parent_span_id.is_empty()))
        .await;
    let reconcile = spans.iter().find(|s| s.name == "reconcile").unwrap_or_else(|| panic!("no reconcile span: {spans:#?}"));
    let shown = tree(&spans, &reconcile.trace_id);
    assert_eq!(reconcile.service, "jeex-operator");
    assert_eq!(reconcile.parent_span_id, "", "a reconcile is the root of its trace");
    assert_eq!(reconcile.attr("k8s.namespace.name"), Some("prod"));
    assert_eq!(reconcile.attr("jeex.backend.name"), Some("jeex"));
    // A fresh resource waits for its migration Job: the reconcile comes back.
    assert_eq!(reconcile.attr("jeex.reconcile.outcome"), Some("requeue"), "{shown}");
    assert_eq!(reconcile.status, "unset");

    let children: Vec<_> = spans.iter().filter(|s| s.parent_span_id == reconcile.span_id).collect();
    let api: Vec<_> = children.iter().filter(|s| s.attributes.contains_key("url.template")).collect();
    assert_eq!(api.len(), calls.len(), "one span per API call the double answered:\n{shown}");
    for s in &api {
        assert_eq!(s.kind, "client", "{s:?}");
        let method = s.attr("http.request.method").unwrap_or_default();
        assert_eq!(s.name, format!("{method} {}", s.attr("url.template").unwrap()), "{s:?}");
        assert!(s.int("http.response.status_code").is_some(), "{s:?}");
    }
    let names: Vec<&str> = api.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "GET /api/v1/namespaces/{namespace}/secrets/{name}",
        "POST /api/v1/namespaces/{namespace}/secrets",
        "POST /apis/batch/v1/namespaces/{namespace}/jobs",
        "PATCH /apis/jeex.dev/v1alpha1/namespaces/{namespace}/jeexbackends/{name}/status",
    ] {
        assert!(names.contains(&expected), "{expected:?} among the calls:\n{shown}");
    }
    // A missing Secret's 404 is an error of that call, not of the reconcile.
    assert!(api.iter().any(|s| s.int("http.response.status_code") == Some(404) && s.status == "error"), "{shown}");
    let probe = children.iter().find(|s| s.name == "probe postgres").unwrap_or_else(|| panic!("the PostgreSQL probe:\n{shown}"));
    assert_eq!((probe.kind, probe.attr("db.system.name"), probe.status), ("client", Some("postgresql"), "unset"));

    // The generated Secrets (passwords, the signing key) are in no exported attribute.
    let exported = serde_json::to_string(&spans.iter().map(|s| &s.attributes).collect::<Vec<_>>()).unwrap();
    for secret in ["PRIVATE KEY", "password", "postgres://"] {
        assert!(!exported.contains(secret), "{secret:?} was exported");
    }
    let metrics = collector.metrics();
    assert!(metrics.iter().any(|(service, name)| service == "jeex-operator" && name == "jeex.operator.reconcile.duration"), "{metrics:?}");
}
