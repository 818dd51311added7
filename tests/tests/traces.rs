//! Issue 26: traces a platform team can use. The real server exports over OTLP/gRPC to the
//! repository's receiver ([`jeex_e2e::otlp`], the collector protocol's own services), and
//! the tests assert on what arrives: span names, attributes, parent and child, links, status —
//! and that no token, key, password or query string is in any of it.

use std::time::Duration;

use jeex_e2e::{
    binary::Server,
    http::json as answer,
    net::closed_port,
    otlp::{Collector, Span, tree},
    services::{migrated_database_url, redis_url},
};
use reqwest::Client;
use serde_json::json;

/// A server exporting every trace to `collector`, batches sent every 100 ms.
fn traced_server(collector: &Collector, redis: &str) -> Server {
    Server::start(&[
        ("DATABASE_URL", &migrated_database_url()),
        ("REDIS_URL", redis),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint()),
        ("OTEL_TRACES_SAMPLER_ARG", "1.0"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
        ("JEEX_HEALTH_TIMEOUT", "300ms"),
    ])
}

/// A fresh W3C trace context: (traceparent, trace id, parent span id).
fn trace_context(n: u8) -> (String, String, String) {
    let trace_id = format!("{:032x}", uuid::Uuid::now_v7().as_u128() ^ u128::from(n));
    let parent = format!("{:016x}", 0x00f0_67aa_0ba9_0200_u64 + u64::from(n));
    (format!("00-{trace_id}-{parent}-01"), trace_id, parent)
}

/// The server span of `trace_id`, once it has arrived.
async fn server_span(collector: &Collector, trace_id: &str) -> (Span, Vec<Span>) {
    collector.wait_for(Duration::from_secs(15), |spans| spans.iter().any(|s| s.trace_id == trace_id && s.kind == "server")).await;
    // The request's children are exported with it or just before it; give a straggler a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spans = collector.spans();
    let server = spans.iter().find(|s| s.trace_id == trace_id && s.kind == "server").cloned();
    let server = server.unwrap_or_else(|| {
        panic!("no server span in trace {trace_id}; received:\n{:#?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>())
    });
    (server, spans.into_iter().filter(|s| s.trace_id == trace_id).collect())
}

fn children<'a>(spans: &'a [Span], parent: &Span) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.parent_span_id == parent.span_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_statements_operations_and_events_are_traced() {
    let collector = Collector::start().await;
    let server = traced_server(&collector, &redis_url());
    let client = Client::builder().timeout(Duration::from_secs(20)).user_agent("jeex-trace-test/1.0").build().unwrap();
    let pair = answer(client.post(server.url("/api/v1/auth/dev-login")).json(&json!({ "email": "traced@example.com" }))).await;
    let access = pair["access_token"].as_str().expect("tokens").to_owned();
    let refresh = pair["refresh_token"].as_str().unwrap().to_owned();
    let project = answer(client.post(server.url("/api/v1/projects")).bearer_auth(&access).json(&json!({ "name": "traced" }))).await;
    let project = project["id"].as_str().expect("project").to_owned();

    // Acceptance 1: a GET with a traceparent; the query string carries things no span may hold.
    let (traceparent, trace_id, parent) = trace_context(1);
    let resp = client
        .get(server.url(&format!("/api/v1/projects/{project}?ticket=hunter2-ticket&password=hunter2-password")))
        .bearer_auth(&access)
        .header("traceparent", &traceparent)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let correlation_id = resp.headers()["x-correlation-id"].to_str().unwrap().to_owned();
    let (span, trace) = server_span(&collector, &trace_id).await;
    let shown = tree(&trace, &trace_id);
    assert_eq!(span.name, "GET /api/v1/projects/{project_id}", "{shown}");
    assert_eq!(span.parent_span_id, parent, "the incoming traceparent is the server span's parent");
    assert_eq!(span.status, "unset");
    for (key, expected) in [
        ("http.request.method", "GET"),
        ("http.route", "/api/v1/projects/{project_id}"),
        ("url.scheme", "http"),
        ("server.address", "127.0.0.1"),
        ("client.address", "127.0.0.1"),
        ("user_agent.original", "jeex-trace-test/1.0"),
        ("network.protocol.version", "1.1"),
        ("jeex.correlation_id", correlation_id.as_str()),
        ("jeex.project_id", project.as_str()),
    ] {
        assert_eq!(span.attr(key), Some(expected), "{key} on {:?}", span.attributes);
    }
    assert_eq!(span.attr("url.path"), Some(format!("/api/v1/projects/{project}").as_str()));
    assert_eq!(span.int("http.response.status_code"), Some(200));
    assert!(span.int("server.port").is_some_and(|p| p > 0), "{:?}", span.attributes);
    assert!(!span.attributes.contains_key("error.type") && !span.attributes.contains_key("url.query"), "{:?}", span.attributes);

    // Its PostgreSQL statement, a client span beneath it, without parameter values: one, since
    // the read enters its project itself (issue 27).
    let statements: Vec<&Span> = children(&trace, &span).into_iter().filter(|s| s.attr("db.system.name") == Some("postgresql")).collect();
    let names: Vec<&str> = statements.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["SELECT projects"], "the statements under the server span\n{shown}");
    for s in &statements {
        assert_eq!(s.kind, "client", "{s:?}");
        assert_eq!(s.attr("db.namespace"), migrated_database_url().rsplit('/').next(), "{s:?}");
        assert!(s.attr("db.operation.name").is_some() && s.attr("db.query.summary") == Some(s.name.as_str()), "{s:?}");
        let text = s.attr("db.query.text").unwrap_or_default();
        assert!(!text.contains(&project) && !text.contains("traced@example.com"), "a parameter value in {text:?}");
    }
    // The limiter's Redis call belongs to the request too.
    let redis: Vec<&Span> = trace.iter().filter(|s| s.attr("db.system.name") == Some("redis")).collect();
    assert!(
        redis.iter().any(|s| s.attr("db.operation.name") == Some("EVALSHA") && s.kind == "client"),
        "a Redis span in the trace:\n{shown}"
    );

    // Acceptance 2, the 4xx half: a 404 is the client's error, not the server's.
    let (traceparent, missing_trace, _) = trace_context(2);
    let missing = format!("/api/v1/projects/{}", uuid::Uuid::now_v7());
    let resp = client.get(server.url(&missing)).bearer_auth(&access).header("traceparent", traceparent).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let (span, _) = server_span(&collector, &missing_trace).await;
    assert_eq!((span.name.as_str(), span.status), ("GET /api/v1/projects/{project_id}", "unset"));
    assert_eq!(span.int("http.response.status_code"), Some(404));
    assert!(!span.attributes.contains_key("error.type"), "{:?}", span.attributes);
    assert!(!span.attributes.contains_key("jeex.project_id"), "no scope was opened: {:?}", span.attributes);

    // Acceptance 3: an import's worker trace links to the request that queued it, and its
    // events carry the trace they were recorded in.
    let (traceparent, import_trace, _) = trace_context(3);
    // The project's stream is open before the import starts, as a frontend's would be.
    let stream = tokio::spawn(project_events(client.clone(), server.url(&format!("/api/v1/projects/{project}/events")), access.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let docs: Vec<_> = (0..5).map(|i| json!({ "title": format!("D{i}") })).collect();
    let resp = client
        .post(server.url(&format!("/api/v1/projects/{project}/operations")))
        .bearer_auth(&access)
        .header("traceparent", traceparent)
        .json(&json!({ "kind": "documents.import", "input": { "documents": docs } }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let operation = resp.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let (queued_by, _) = server_span(&collector, &import_trace).await;
    collector
        .wait_for(Duration::from_secs(20), |spans| {
            spans.iter().any(|s| s.name == "operation documents.import" && s.attr("jeex.operation.id") == Some(operation.as_str()))
                && spans.iter().any(|s| s.name == "finish")
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spans = collector.spans();
    let run = spans
        .iter()
        .find(|s| s.name == "operation documents.import" && s.attr("jeex.operation.id") == Some(operation.as_str()))
        .unwrap_or_else(|| panic!("no worker span; got {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>()));
    assert_eq!(run.parent_span_id, "", "a run is the root of a trace of its own");
    assert_eq!(run.kind, "consumer");
    assert_eq!(run.links, vec![(import_trace.clone(), queued_by.span_id.clone())], "linked to the request that queued it");
    assert_eq!(run.attr("jeex.project_id"), Some(project.as_str()));
    let worker_trace = run.trace_id.clone();
    let shown = tree(&spans, &worker_trace);
    let steps: Vec<&str> = children(&spans, run).iter().map(|s| s.name.as_str()).collect();
    for step in ["claim", "import batch", "finish"] {
        assert!(steps.contains(&step), "{step:?} beneath the run:\n{shown}");
    }
    for step in children(&spans, run) {
        assert!(
            spans.iter().any(|s| s.parent_span_id == step.span_id && s.attr("db.system.name") == Some("postgresql")),
            "{} has its statements beneath it:\n{shown}",
            step.name
        );
    }
    let events = tokio::time::timeout(Duration::from_secs(20), stream).await.expect("the stream saw the import end").unwrap();
    let traced: Vec<(String, Option<String>)> =
        events.iter().map(|e| (e["type"].as_str().unwrap_or_default().to_owned(), e["trace_id"].as_str().map(str::to_owned))).collect();
    assert!(
        traced.contains(&("operation.queued".into(), Some(import_trace.clone()))),
        "the queued event names the request's trace: {traced:?}"
    );
    for kind in ["operation.running", "operation.progress", "operation.succeeded"] {
        assert!(traced.contains(&(kind.into(), Some(worker_trace.clone()))), "{kind} names the worker's trace: {traced:?}");
    }

    // Acceptance 5: nothing secret in anything exported — the tokens, the query string, the
    // API key of a refused request.
    client.get(server.url("/api/v1/projects")).header("x-api-key", "jeex_ABCDEFGHIJKL_hunter2hunter2hunter2hunter2").send().await.unwrap();
    client.post(server.url("/api/v1/auth/refresh")).json(&json!({ "refresh_token": refresh })).send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let exported = serde_json::to_string(&collector.spans().iter().map(|s| (&s.name, &s.attributes)).collect::<Vec<_>>()).unwrap();
    for secret in [access.as_str(), refresh.as_str(), "hunter2", "ticket=", "password="] {
        assert!(!exported.contains(secret), "{secret:?} was exported");
    }
    assert!(collector.spans().iter().all(|s| !s.attributes.contains_key("url.query")));
    // The metrics go to the same receiver, under the same service.
    let metrics = collector.metrics();
    assert!(metrics.iter().any(|(service, name)| service == "jeex-api" && name == "http.server.request.duration"), "{metrics:?}");
}

/// The events of the project's stream, up to the first `operation.succeeded`.
async fn project_events(client: Client, url: String, access: String) -> Vec<serde_json::Value> {
    let mut resp = client.get(&url).bearer_auth(&access).header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut text = String::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        text.push_str(&String::from_utf8_lossy(&chunk));
        if text.contains("event: operation.succeeded") && text.ends_with("\n\n") {
            break;
        }
    }
    text.lines().filter_map(|l| l.strip_prefix("data: ")).filter_map(|d| serde_json::from_str(d).ok()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_is_an_error_span() {
    // Acceptance 2, the 5xx half: Redis is unreachable, so readiness answers 503.
    let collector = Collector::start().await;
    let server = traced_server(&collector, &format!("redis://127.0.0.1:{}", closed_port()));
    let (traceparent, trace_id, _) = trace_context(4);
    let resp = Client::new().get(server.url("/health/ready")).header("traceparent", traceparent).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let (span, _) = server_span(&collector, &trace_id).await;
    assert_eq!(span.name, "GET /health/ready");
    assert_eq!(span.status, "error");
    assert_eq!(span.attr("error.type"), Some("503"));
    assert_eq!(span.int("http.response.status_code"), Some(503));
}
