//! The middleware chain, exercised over HTTP against the real app.

mod support;

use reqwest::{Method, StatusCode, header};
use serde_json::Value;
use support::{client, config, start};

const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("strict-transport-security", "max-age=31536000; includeSubDomains"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
];

fn assert_security_headers(resp: &reqwest::Response) {
    let h = resp.headers();
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(h.get(*name).and_then(|v| v.to_str().ok()), Some(*value), "{name} on {} {}", resp.status(), resp.url());
    }
    assert!(h.contains_key("permissions-policy"));
    assert!(h.contains_key("content-security-policy"));
    assert!(!h.contains_key("server"), "no header may name the server software");
    assert!(!h.contains_key("x-powered-by"));
}

/// Reads a problem response and checks its shape.
async fn problem(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status of {}", resp.url());
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/problem+json");
    let id = resp.headers()["x-correlation-id"].to_str().unwrap().to_owned();
    let path = resp.url().path().to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert_eq!(body["code"], code);
    assert_eq!(body["correlation_id"], id.as_str(), "error body carries the echoed correlation ID");
    assert_eq!(body["instance"], path.as_str());
    for member in ["type", "title", "detail"] {
        assert!(body[member].as_str().is_some_and(|s| !s.is_empty()), "{member} in {body}");
    }
    body
}

#[tokio::test]
async fn every_response_carries_security_headers() {
    let app = start(config(&[("JEEX_BODY_LIMIT", "64")])).await;
    let c = client();
    let responses = [
        c.get(app.url("/health/live")).send().await.unwrap(),
        c.get(app.url("/nope")).send().await.unwrap(),
        c.delete(app.url("/health/live")).send().await.unwrap(),
        c.post(app.url("/test/echo")).json(&serde_json::json!({"name": "x".repeat(100)})).send().await.unwrap(),
        c.get(app.url("/test/panic")).send().await.unwrap(),
        c.get(app.url("/docs")).send().await.unwrap(),
        c.get(app.url("/openapi.json")).send().await.unwrap(),
    ];
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, [200, 404, 405, 413, 500, 200, 200]);
    for resp in &responses {
        assert_security_headers(resp);
    }
    let api_csp = &responses[0].headers()["content-security-policy"];
    assert_eq!(api_csp, "default-src 'none'; frame-ancestors 'none'");
    assert_eq!(responses[0].headers()["cache-control"], "no-store");
    assert_eq!(responses[1].headers()["cache-control"], "no-store");
    let docs_csp = responses[5].headers()["content-security-policy"].to_str().unwrap();
    assert!(
        docs_csp.contains("script-src 'sha256-") && !docs_csp.contains("unsafe-inline") && !docs_csp.contains("unsafe-eval"),
        "{docs_csp}"
    );
    assert!(docs_csp.contains("frame-ancestors 'none'"));
}

#[tokio::test]
async fn correlation_id_is_echoed_generated_or_replaced() {
    let app = start(config(&[])).await;
    let c = client();
    let id_of = |r: &reqwest::Response| r.headers()["x-correlation-id"].to_str().unwrap().to_owned();

    let r = c.get(app.url("/health/live")).header("X-Correlation-ID", "abc.DEF_123-x").send().await.unwrap();
    assert_eq!(id_of(&r), "abc.DEF_123-x");
    let r = c.get(app.url("/health/live")).header("X-Request-ID", "from-request-id").send().await.unwrap();
    assert_eq!(id_of(&r), "from-request-id");

    let generated = id_of(&c.get(app.url("/health/live")).send().await.unwrap());
    let uuid = generated.parse::<uuid_like::Uuid>().expect("a UUID");
    assert_eq!(uuid.version, 7, "generated IDs are UUIDv7: {generated}");

    for bad in ["has space", "semi;colon", &"a".repeat(129), ""] {
        let r = c.get(app.url("/health/live")).header("X-Correlation-ID", bad).send().await.unwrap();
        let id = id_of(&r);
        assert_ne!(id, bad);
        assert_eq!(id.parse::<uuid_like::Uuid>().unwrap().version, 7, "replaced by a UUIDv7");
    }
    let max = "a".repeat(128);
    assert_eq!(id_of(&c.get(app.url("/health/live")).header("X-Correlation-ID", &max).send().await.unwrap()), max);
}

/// Minimal UUID text parsing, enough to read the version nibble.
mod uuid_like {
    pub struct Uuid {
        pub version: u8,
    }
    impl std::str::FromStr for Uuid {
        type Err = ();
        fn from_str(s: &str) -> Result<Self, ()> {
            let groups: Vec<&str> = s.split('-').collect();
            let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
            if lens != [8, 4, 4, 4, 12] || !s.chars().all(|c| c == '-' || c.is_ascii_hexdigit()) {
                return Err(());
            }
            Ok(Uuid { version: u8::from_str_radix(&groups[2][..1], 16).map_err(|_| ())? })
        }
    }
}

#[tokio::test]
async fn cors_allows_listed_origins_only() {
    let app = start(config(&[])).await;
    let c = client();
    let listed = "https://app.example.com";

    let r = c.get(app.url("/health/live")).header("Origin", listed).send().await.unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], listed);
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    assert!(r.headers()["access-control-expose-headers"].to_str().unwrap().contains("x-correlation-id"));
    assert!(r.headers().get_all("vary").iter().any(|v| v.to_str().unwrap().contains("Origin")));

    let pre = c
        .request(Method::OPTIONS, app.url("/test/echo"))
        .header("Origin", listed)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type, authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), StatusCode::NO_CONTENT);
    assert_eq!(pre.headers()["access-control-allow-origin"], listed);
    assert_eq!(pre.headers()["access-control-allow-credentials"], "true");
    assert!(pre.headers()["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    assert!(pre.headers()["access-control-allow-headers"].to_str().unwrap().contains("authorization"));
    assert!(pre.headers().contains_key("access-control-max-age"));
    assert_security_headers(&pre);

    let other = "https://evil.example.net";
    let r = c.get(app.url("/health/live")).header("Origin", other).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().keys().all(|k| !k.as_str().starts_with("access-control-")), "unlisted origin got CORS headers");
    let pre = c
        .request(Method::OPTIONS, app.url("/test/echo"))
        .header("Origin", other)
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert!(pre.headers().keys().all(|k| !k.as_str().starts_with("access-control-")));
    problem(pre, 403, "FORBIDDEN").await;

    // A listed origin asking for a header outside the allowed set is refused too.
    let pre = c
        .request(Method::OPTIONS, app.url("/test/echo"))
        .header("Origin", listed)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "x-evil")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn wildcard_origin_never_gets_credentials() {
    let app = start(config(&[("JEEX_CORS_ORIGINS", "*")])).await;
    let r = client().get(app.url("/health/live")).header("Origin", "https://any.example.org").send().await.unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(!r.headers().contains_key("access-control-allow-credentials"));
}

#[tokio::test]
async fn framework_errors_are_problem_json() {
    let app = start(config(&[("JEEX_BODY_LIMIT", "1KiB")])).await;
    let c = client();

    problem(c.get(app.url("/no/such/route")).send().await.unwrap(), 404, "NOT_FOUND").await;

    let r = c.put(app.url("/health/live")).send().await.unwrap();
    let allow = r.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET") && !allow.contains("PUT"), "Allow: {allow}");
    problem(r, 405, "METHOD_NOT_ALLOWED").await;

    let r = c.post(app.url("/test/echo")).header("content-type", "text/plain").body("name=x").send().await.unwrap();
    problem(r, 415, "UNSUPPORTED_MEDIA_TYPE").await;

    let r = c.post(app.url("/test/echo")).header("content-type", "application/json").body("{\"name\": ").send().await.unwrap();
    let body = problem(r, 400, "VALIDATION_FAILED").await;
    assert!(body["errors"].as_array().is_some_and(|e| !e.is_empty()), "field errors listed: {body}");

    let r = c.post(app.url("/test/echo")).json(&serde_json::json!({"nom": "x"})).send().await.unwrap();
    problem(r, 400, "VALIDATION_FAILED").await;

    let r = c.get(app.url("/test/items/not-a-number")).send().await.unwrap();
    problem(r, 400, "VALIDATION_FAILED").await;

    // Over the limit, declared up front…
    let r = c.post(app.url("/test/echo")).json(&serde_json::json!({"name": "x".repeat(2000)})).send().await.unwrap();
    problem(r, 413, "PAYLOAD_TOO_LARGE").await;
    // …and streamed without a Content-Length.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..8).map(|_| Ok(vec![b' '; 512])).collect();
    let r = c
        .post(app.url("/test/echo"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    problem(r, 413, "PAYLOAD_TOO_LARGE").await;

    // The valid request still works.
    let r = c.post(app.url("/test/echo")).json(&serde_json::json!({"name": "ok"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_server_keeps_serving() {
    let app = start(config(&[("JEEX_EXPOSE_ERROR_DETAILS", "false")])).await;
    let c = client();
    for _ in 0..3 {
        let body = problem(c.get(app.url("/test/panic")).send().await.unwrap(), 500, "INTERNAL_ERROR").await;
        assert!(!body["detail"].as_str().unwrap().contains("boom"), "internal detail leaked: {body}");
        assert_eq!(c.get(app.url("/health/live")).send().await.unwrap().status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn slow_requests_time_out_with_retry_after() {
    let app = start(config(&[("JEEX_REQUEST_TIMEOUT", "300ms")])).await;
    let c = client();
    let started = std::time::Instant::now();
    let r = c.get(app.url("/test/slow?ms=5000")).send().await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(r.headers()["retry-after"], "1");
    problem(r, 503, "REQUEST_TIMEOUT").await;
    assert_eq!(c.get(app.url("/test/slow?ms=10")).send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn large_bodies_are_compressed_small_bodies_and_event_streams_are_not() {
    let app = start(config(&[])).await;
    let c = client();
    for (accept, expected) in [("br", "br"), ("gzip", "gzip"), ("gzip, br", "br")] {
        let r = c.get(app.url("/test/big")).header("accept-encoding", accept).send().await.unwrap();
        assert_eq!(r.headers()["content-encoding"], expected);
        assert!(r.bytes().await.unwrap().len() < 5000 / 4, "compressed body is much smaller");
    }
    let r = c.get(app.url("/test/big")).send().await.unwrap();
    assert!(!r.headers().contains_key("content-encoding"));
    assert_eq!(r.bytes().await.unwrap().len(), 5000);

    let r = c.get(app.url("/health/live")).header("accept-encoding", "gzip, br").send().await.unwrap();
    assert!(!r.headers().contains_key("content-encoding"), "bodies under 1 KiB are sent as they are");

    let r = c.get(app.url("/test/stream")).header("accept-encoding", "gzip, br").send().await.unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    assert!(!r.headers().contains_key("content-encoding"), "event streams are never compressed");
    assert!(r.text().await.unwrap().len() > 4000);

    // A client that decompresses gets the original.
    let plain = reqwest::Client::new().get(app.url("/test/big")).send().await.unwrap();
    assert_eq!(plain.text().await.unwrap(), "jeex ".repeat(1000));
}

#[tokio::test]
async fn docs_and_spec_are_served() {
    let app = start(config(&[])).await;
    let c = client();
    let docs = c.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = docs.text().await.unwrap();
    assert!(html.contains("SwaggerUIBundle") && html.contains("\"openapi\""), "Swagger UI with the spec");

    let spec: Value = c.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(spec["info"]["title"], "JEEX API");
    assert!(spec["paths"]["/health/live"]["get"].is_object());
    assert!(spec["components"]["schemas"]["Problem"]["properties"]["correlation_id"].is_object());
    let yaml = c.get(app.url("/openapi.yaml")).send().await.unwrap();
    assert!(yaml.headers()["content-type"].to_str().unwrap().contains("yaml"));
    assert!(yaml.text().await.unwrap().contains("openapi:"));
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let app = start(config(&[])).await;
    let c = client();
    for id in 1..=3 {
        c.get(app.url(&format!("/test/items/{id}"))).send().await.unwrap();
    }
    c.get(app.url("/nope/1")).send().await.unwrap();
    let text = c.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("http_server_request_duration_seconds_count") && l.contains("http_route=\"/test/items/{id}\""))
        .unwrap_or_else(|| panic!("no count for the template in:\n{text}"));
    assert!(line.contains("http_response_status_code=\"200\"") && line.ends_with(" 3"), "{line}");
    assert!(!text.contains("/test/items/1"), "raw paths must not become labels");
    assert!(text.contains("http_server_active_requests"));
    assert!(text.contains("db_client_connection_max{db_client_connection_pool_name=\"postgres\"} 30"));
    assert!(text.contains("db_client_connection_count"));
}

#[tokio::test]
async fn plain_options_lists_the_allowed_methods() {
    let app = start(config(&[])).await;
    let c = client();
    let r = c.request(Method::OPTIONS, app.url("/test/echo")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["allow"], "POST, OPTIONS");
    assert_security_headers(&r);
    let r = c.head(app.url("/health/live")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "HEAD is allowed where GET is");
    problem(c.request(Method::OPTIONS, app.url("/nope")).send().await.unwrap(), 404, "NOT_FOUND").await;
}

/// One response read off a raw connection: its head, lower-cased.
async fn raw_response(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut chunk)).await.expect("answered").unwrap();
        assert!(n > 0, "closed before the response ended: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse::<usize>().unwrap());
            if body.len() >= length {
                return head.to_owned();
            }
        }
    }
}

/// A request refused before its body was read leaves bytes on the connection: a small body that
/// has arrived is read past and the connection kept; otherwise the response says
/// `Connection: close` and the server closes, so a client does not send its next request into
/// it. A request whose body was read keeps its connection.
#[tokio::test]
async fn a_body_refused_before_it_was_read_closes_the_connection_and_says_so() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = start(config(&[("JEEX_BODY_LIMIT", "64")])).await;
    let addr = app.url("/").trim_start_matches("http://").trim_end_matches('/').to_owned();

    let mut kept = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = r#"{"name":"x"}"#;
    for _ in 0..2 {
        let request = format!(
            "POST /test/echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        kept.write_all(request.as_bytes()).await.unwrap();
        let head = raw_response(&mut kept).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(!head.contains("connection: close"), "a read body keeps the connection: {head}");
    }

    // Refused before its small body was read: what has arrived of it is read and discarded, and
    // the connection carries the next request.
    let mut small = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = r#"{"kind":"documents.import","input":{"documents":[]}}"#;
    let path = "/api/v1/projects/00000000-0000-0000-0000-000000000000/operations";
    let request =
        format!("POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    small.write_all(request.as_bytes()).await.unwrap();
    let head = raw_response(&mut small).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(!head.contains("connection: close"), "a small body is read past: {head}");
    small.write_all(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
    let next = raw_response(&mut small).await;
    assert!(next.starts_with("http/1.1 200"), "{next}");

    // Refused with most of its body still to come: the connection closes, and the response says so.
    let mut refused = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = "POST /test/echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"name\":\"";
    refused.write_all(head.as_bytes()).await.unwrap();
    let answer = raw_response(&mut refused).await;
    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    let mut rest = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), refused.read_to_end(&mut rest))
        .await
        .expect("the server closes the connection")
        .unwrap();
}
