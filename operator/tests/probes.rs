//! The dependency probes against the real PostgreSQL and Redis, and against a closed port.

use std::time::Duration;

use jeex_e2e::services::{database_url, redis_url};
use jeex_operator::probes::{Targets, probe};

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn real_postgres_and_redis_are_ready() {
    let targets = Targets { postgres: database_url(), redis: Some(redis_url()), qdrant: None };
    assert_eq!(probe(&targets, Duration::from_secs(5)).await, Vec::new());
}

#[tokio::test]
async fn each_dependency_that_is_down_is_named_with_its_reason_and_no_secret() {
    let port = closed_port();
    let targets = Targets {
        postgres: format!("postgres://owner:hunter2@127.0.0.1:{port}/jeex"),
        redis: Some(format!("redis://:hunter2@127.0.0.1:{port}/0")),
        qdrant: Some((format!("http://127.0.0.1:{port}"), Some("hunter2".into()))),
    };
    let down = probe(&targets, Duration::from_secs(3)).await;
    let names: Vec<&str> = down.iter().map(|d| d.dependency).collect();
    assert_eq!(names, ["postgres", "redis", "qdrant"]);
    for d in &down {
        assert!(!d.reason.is_empty());
        assert!(!d.to_string().contains("hunter2"), "{d}");
    }
    assert!(down[0].reason.contains("cannot connect"), "{}", down[0].reason);
}

#[tokio::test]
async fn a_wrong_password_is_reported_as_the_database_says() {
    let url = database_url().replacen("postgres://postgres", "postgres://no_such_role_jeex", 1);
    let down = probe(&Targets { postgres: url, ..Targets::default() }, Duration::from_secs(5)).await;
    // Trust auth still refuses a role that does not exist.
    assert_eq!(down.len(), 1);
    assert!(down[0].reason.contains("SQLSTATE 28000"), "{}", down[0].reason);
}

#[tokio::test]
async fn a_dependency_that_never_answers_is_cut_at_the_timeout() {
    // Accepts connections and never speaks.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = std::time::Instant::now();
    let down =
        probe(&Targets { postgres: format!("postgres://owner@{addr}/jeex"), ..Targets::default() }, Duration::from_millis(500)).await;
    assert_eq!(down[0].reason, "no answer within 0.5s");
    assert!(started.elapsed() < Duration::from_secs(2));
}
