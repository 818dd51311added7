//! `jeex-api serve` as a process: start-up without dependencies, graceful shutdown, and the
//! first-look mode with its private PostgreSQL cluster.

use std::time::{Duration, Instant};

use reqwest::Method;

use jeex_e2e::{
    binary::{Server, run},
    http::{call, get},
    net::{FaultyListener, closed_port},
    services::{migrated_database_url, redis_url},
};

#[test]
fn starts_and_serves_while_every_dependency_is_down() {
    let db = format!("postgres://postgres@127.0.0.1:{}/jeex", closed_port());
    let redis = format!("redis://127.0.0.1:{}/0", closed_port());
    let server = Server::start(&[("DATABASE_URL", &db), ("REDIS_URL", &redis)]);
    assert_eq!(get(&server.url("/health/live")).0, 200);
    assert_eq!(get(&server.url("/health/ready")).0, 503);
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits_zero() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A Redis that never answers makes /health take its full timeout: a slow request.
    let hung = rt.block_on(FaultyListener::hung());
    let mut server = Server::start(&[
        ("DATABASE_URL", &migrated_database_url()),
        ("REDIS_URL", &format!("redis://{}/0", hung.addr)),
        ("JEEX_HEALTH_TIMEOUT", "2s"),
        ("JEEX_SHUTDOWN_GRACE", "10s"),
    ]);
    let url = server.url("/health");
    let in_flight: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            rt.spawn(async move {
                let r = reqwest::get(&url).await.expect("in-flight request must complete");
                (r.status().as_u16(), r.text().await.unwrap())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let sent = Instant::now();
    server.terminate();
    let status = server.wait(Duration::from_secs(12));
    assert!(status.success(), "exit status {status}");
    for handle in in_flight {
        let (code, body) = rt.block_on(handle).unwrap();
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("\"redis\""));
    }
    assert!(sent.elapsed() < Duration::from_secs(10), "drained well within the grace period");
    let logs = server.logs().join("\n");
    assert!(logs.contains("SIGTERM received"), "{logs}");
}

#[test]
fn first_look_runs_a_private_postgres_and_serves_swagger_ui() {
    let data = std::env::temp_dir().join(format!("jeex-first-look-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    // JEEX_ENV unset, as README command 1 runs it: no DATABASE_URL means the first look.
    let mut server = Server::start(&[("JEEX_ENV", ""), ("JEEX_DATA_DIR", data.to_str().unwrap()), ("REDIS_URL", &redis_url())]);
    assert_eq!(get(&server.url("/health/live")).0, 200);
    let (status, docs) = get(&server.url("/docs"));
    assert_eq!(status, 200);
    assert!(docs.contains("SwaggerUIBundle"));
    let (_, health) = get(&server.url("/health"));
    let report: serde_json::Value = serde_json::from_str(&health).unwrap();
    let pg = report["components"].as_array().unwrap().iter().find(|c| c["name"] == "postgres").unwrap();
    assert_eq!(pg["status"], "healthy", "{report}");
    assert!(data.join("postgres/data/PG_VERSION").exists(), "cluster lives under JEEX_DATA_DIR");
    assert!(server.logs().iter().any(|l| l.contains("Swagger UI: http://")));

    // Signed in from the command line against the same private cluster and key pair, the
    // user can create a project: migrated schema, unprivileged role and keys all work.
    assert!(data.join("jwt/dev.key.pem").exists(), "the development key pair lives under JEEX_DATA_DIR");
    let (status, stdout, stderr) = run(&["token", "issue", "--email", "first@example.com"], &[("JEEX_DATA_DIR", data.to_str().unwrap())]);
    assert!(status.success(), "{stdout}{stderr}");
    let token = stdout.lines().find_map(|l| l.strip_prefix("access_token=")).expect("an access token").to_owned();
    let body = serde_json::json!({ "name": "First look" });
    let (status, created) = call(Method::POST, &server.url("/api/v1/projects"), &token, Some(body));
    assert_eq!(status, 201, "{created}");
    let (status, _) = call(Method::GET, &server.url("/api/v1/projects"), "forged", None);
    assert_eq!(status, 401);

    // A document with an embedding reaches the embedded vector engine and is found.
    let project = serde_json::from_str::<serde_json::Value>(&created).unwrap()["id"].as_str().unwrap().to_owned();
    let vector: Vec<f32> = (0..384).map(|i| (i % 7) as f32 - 3.0).collect();
    let document = serde_json::json!({ "title": "Vectors", "content": "words", "embedding": vector });
    let (status, body) = call(Method::POST, &server.url(&format!("/api/v1/projects/{project}/documents")), &token, Some(document));
    assert_eq!(status, 201, "{body}");
    let search = server.url(&format!("/api/v1/projects/{project}/documents/search"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, found) = call(Method::POST, &search, &token, Some(serde_json::json!({ "vector": vector })));
        assert_eq!(status, 200, "{found}");
        if found.contains("\"Vectors\"") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the document was never indexed: {found}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A first look is clean: no log record on the way is a warning or an error (the embedded
    // engine's start-up chatter included), and nothing panicked.
    let worries: Vec<String> = server
        .logs()
        .into_iter()
        .filter(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(record) => record["level"] == "WARN" || record["level"] == "ERROR",
            Err(_) => l.contains("panicked"),
        })
        .collect();
    assert!(worries.is_empty(), "warnings on a first look:\n{}", worries.join("\n"));

    server.terminate();
    assert!(server.wait(Duration::from_secs(30)).success());
    assert!(!data.join("postgres/data/postmaster.pid").exists(), "the private cluster is stopped with the server");

    // A second start reuses the cluster.
    let mut again = Server::start(&[("JEEX_DATA_DIR", data.to_str().unwrap())]);
    assert_eq!(get(&again.url("/health/ready")).0, 200);
    again.terminate();
    assert!(again.wait(Duration::from_secs(30)).success());
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn secrets_never_reach_the_logs() {
    let db = format!("postgres://jeex:db-pass-4f1e@127.0.0.1:{}/jeex", closed_port());
    let redis = format!("redis://:redis-pass-9c2a@127.0.0.1:{}/0", closed_port());
    let server = Server::start(&[("DATABASE_URL", &db), ("REDIS_URL", &redis), ("RUST_LOG", "debug"), ("JEEX_HEALTH_TIMEOUT", "500ms")]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        for path in ["/health", "/health/ready", "/nope?token=query-secret-77&api_key=query-secret-78"] {
            c.get(server.url(path))
                .header("Authorization", "Bearer header-secret-11")
                .header("Cookie", "session=cookie-secret-22")
                .header("X-API-Key", "apikey-secret-33")
                .send()
                .await
                .unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let logs = server.logs().join("\n");
    assert!(logs.contains("request completed"), "the requests were logged:\n{logs}");
    for secret in [
        "db-pass-4f1e",
        "redis-pass-9c2a",
        "header-secret-11",
        "cookie-secret-22",
        "apikey-secret-33",
        "query-secret-77",
        "query-secret-78",
    ] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs:\n{logs}");
    }
}
