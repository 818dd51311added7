//! Issue 23, acceptance 4: the one redaction point. A server started with credentials in every
//! URL it is given (PostgreSQL, Redis, Qdrant, a JWKS URL with a token in its query), whose
//! dependencies fail so that their clients' error texts (sqlx, redis, reqwest, qdrant) are
//! logged, and which is sent bearer tokens (any case), API keys and refresh tokens, logs none
//! of them — at debug level. [`jeex_e2e::leaks`] then checks its whole log again on drop, as
//! it does for every server of the suite.

use jeex_e2e::{binary::Server, http::json as answer, net::closed_port, services::migrated_database_url};
use reqwest::Client;

/// The API server's test key pair: outside development no key is generated.
fn signing_keys() -> (String, String) {
    let keys = format!("{}/../api-server/tests/keys", env!("CARGO_MANIFEST_DIR"));
    (format!("{keys}/k1.key.pem"), format!("{keys}/k1.pub.pem"))
}

#[tokio::test]
async fn no_credential_reaches_the_log_whichever_library_wrote_it() {
    let database = migrated_database_url().replacen("postgres://postgres@", "postgres://postgres:hunter2-db@", 1);
    assert!(database.contains("hunter2-db"), "the test database URL has the expected form: {database}");
    let redis = format!("redis://:hunter2-redis@127.0.0.1:{}/0", closed_port());
    let qdrant = format!("http://qdrant:hunter2-qdrant@127.0.0.1:{}", closed_port());
    let jwks = format!("http://idp:hunter2-jwks@127.0.0.1:{}/jwks.json?access_token=hunter2-jwks-token", closed_port());
    let (private, public) = signing_keys();
    let server = Server::start(&[
        ("JEEX_JWT_PRIVATE_KEY", &private),
        ("JEEX_JWT_PUBLIC_KEYS", &public),
        ("DATABASE_URL", &database),
        ("REDIS_URL", &redis),
        ("QDRANT_URL", &qdrant),
        ("QDRANT_API_KEY", "hunter2-qdrant-key"),
        ("JEEX_JWT_JWKS_URL", &jwks),
        ("JEEX_HEALTH_TIMEOUT", "500ms"),
        ("RUST_LOG", "debug"),
    ]);
    let client = Client::builder().timeout(std::time::Duration::from_secs(20)).build().unwrap();
    // Health: every dependency is asked, Redis and Qdrant fail with their clients' errors.
    let health = client.get(server.url("/health")).send().await.unwrap().text().await.unwrap();
    // Sign in; the tokens travel in headers and bodies the server must not echo to its log.
    let pair = answer(client.post(server.url("/api/v1/auth/dev-login")).json(&serde_json::json!({ "email": "leak@example.com" }))).await;
    let access = pair["access_token"].as_str().expect("dev-login answers tokens").to_owned();
    let refresh = pair["refresh_token"].as_str().unwrap().to_owned();
    for scheme in ["Bearer", "bearer"] {
        client.get(server.url("/api/v1/auth/me")).header("authorization", format!("{scheme} {access}")).send().await.unwrap();
    }
    // A token with an unknown key id sends the server to the JWKS URL (reqwest's error names it).
    let unknown_kid = "eyJhbGciOiJSUzI1NiIsImtpZCI6InVua25vd24ifQ.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl";
    client.get(server.url("/api/v1/auth/me")).bearer_auth(unknown_kid).send().await.unwrap();
    let api_key = "jeex_ABCDEFGHIJKL_hunter2hunter2hunter2hunter2";
    client.get(server.url("/api/v1/projects")).header("x-api-key", api_key).send().await.unwrap();
    client.post(server.url("/api/v1/auth/refresh")).json(&serde_json::json!({ "refresh_token": refresh })).send().await.unwrap();
    client
        .post(server.url("/api/v1/auth/refresh"))
        .json(&serde_json::json!({ "refresh_token": "hunter2-not-a-token" }))
        .send()
        .await
        .unwrap();
    client.get(server.url("/api/v1/projects?token=hunter2-query&password=hunter2-query")).bearer_auth(&access).send().await.unwrap();
    // A document whose content would be embedded, reaching for the unreachable Qdrant.
    let project = answer(client.post(server.url("/api/v1/projects")).bearer_auth(&access).json(&serde_json::json!({ "name": "p" }))).await;
    if let Some(id) = project["id"].as_str() {
        client
            .post(server.url(&format!("/api/v1/projects/{id}/documents/search")))
            .bearer_auth(&access)
            .json(&serde_json::json!({ "vector": vec![0.5; 384] }))
            .send()
            .await
            .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let logs = server.logs();
    let all = logs.join("\n");
    for secret in [access.as_str(), refresh.as_str(), api_key, "hunter2"] {
        assert!(!all.contains(secret), "a secret reached the log:\n{}", logs.iter().find(|l| l.contains(secret)).unwrap());
    }
    assert!(!health.contains("hunter2"), "{health}");
    // The failing paths were taken and logged, masked: Redis's and the JWKS client's errors.
    assert!(all.contains("***"), "the masked credentials appear masked:\n{all}");
    assert!(logs.iter().any(|l| l.to_lowercase().contains("redis")), "Redis errors were logged:\n{all}");
    assert!(logs.iter().any(|l| l.contains("jwks") || l.contains("JWKS")), "the JWKS fetch was logged:\n{all}");
}

/// sqlx's path: a database that refuses connections, reached with a password. Its errors are
/// logged by readiness, the health report and every request that needs it.
#[tokio::test]
async fn a_database_error_never_logs_the_password() {
    let (private, public) = signing_keys();
    let database = format!("postgres://jeex:hunter2-db@127.0.0.1:{}/jeex", closed_port());
    let server = Server::start(&[
        ("DATABASE_URL", &database),
        ("JEEX_JWT_PRIVATE_KEY", &private),
        ("JEEX_JWT_PUBLIC_KEYS", &public),
        ("JEEX_HEALTH_TIMEOUT", "500ms"),
        ("JEEX_DB_ACQUIRE_TIMEOUT", "500ms"),
        ("RUST_LOG", "debug"),
    ]);
    let client = Client::builder().timeout(std::time::Duration::from_secs(20)).build().unwrap();
    for path in ["/health", "/health/ready", "/api/v1/projects"] {
        let body = client.get(server.url(path)).bearer_auth("x").send().await.unwrap().text().await.unwrap();
        assert!(!body.contains("hunter2"), "{path}: {body}");
    }
    client.post(server.url("/api/v1/auth/dev-login")).json(&serde_json::json!({ "email": "a@example.com" })).send().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let logs = server.logs();
    assert!(logs.iter().any(|l| l.contains("postgres") || l.contains("database")), "database errors were logged:\n{}", logs.join("\n"));
    assert!(!logs.join("\n").contains("hunter2"), "the password reached the log");
}
