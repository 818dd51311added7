//! Health probes against the real PostgreSQL and Redis, and against faults: a closed port,
//! a listener that never answers, a dependency that comes back, and a PostgreSQL restart.

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use jeex_api::access::{Caller, Principal};
use jeex_e2e::net::{FaultyListener, Proxy, closed_port};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{client, config, start};

fn component<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["components"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()
}

#[tokio::test]
async fn all_up_answers_200_everywhere() {
    let app = start(config(&[])).await;
    let c = client();
    assert_eq!(c.get(app.url("/health/live")).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(c.get(app.url("/health/ready")).send().await.unwrap().status(), StatusCode::OK);
    let r = c.get(app.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["status"], "healthy");
    assert_eq!(report["version"], env!("CARGO_PKG_VERSION"));
    assert!(report["uptime_seconds"].is_u64());
    assert_eq!(component(&report, "postgres")["status"], "healthy");
    assert_eq!(component(&report, "redis")["status"], "healthy");
    assert!(component(&report, "redis")["response_time_ms"].is_u64());
    // No QDRANT_URL: the embedded engine, caught up.
    let qdrant = component(&report, "qdrant");
    assert_eq!((qdrant["status"].as_str(), qdrant["engine"].as_str()), (Some("healthy"), Some("embedded")), "{qdrant}");
    assert_eq!(qdrant["outbox"]["pending"], 0, "{qdrant}");
}

#[tokio::test]
async fn redis_on_a_closed_port_makes_ready_fail_but_not_live() {
    let redis = format!("redis://127.0.0.1:{}/0", closed_port());
    let app = start(config(&[("REDIS_URL", &redis)])).await;
    let c = client();
    assert_eq!(c.get(app.url("/health/live")).send().await.unwrap().status(), StatusCode::OK);

    let ready = c.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.headers()["content-type"], "application/problem+json");
    let body: Value = ready.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("redis"), "names the failing dependency: {body}");
    assert!(!body["detail"].as_str().unwrap().contains("postgres"));

    let report: Value = c.get(app.url("/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(report["status"], "degraded");
    let redis = component(&report, "redis");
    assert_eq!(redis["status"], "unhealthy");
    assert!(redis["error"].as_str().is_some_and(|e| !e.is_empty()), "{redis}");
    assert_eq!(component(&report, "postgres")["status"], "healthy");
}

#[tokio::test]
async fn postgres_down_is_unhealthy_and_start_up_still_succeeds() {
    let db = format!("postgres://postgres@127.0.0.1:{}/jeex", closed_port());
    let app = start(config(&[("DATABASE_URL", &db)])).await;
    let c = client();
    assert_eq!(c.get(app.url("/health/live")).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(c.get(app.url("/health/ready")).send().await.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
    let r = c.get(app.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["status"], "unhealthy");
}

#[tokio::test]
async fn a_dependency_that_never_answers_cannot_hold_a_probe_past_its_timeout() {
    let hung = FaultyListener::hung().await;
    let port = hung.addr.port();
    let app = start(config(&[
        ("DATABASE_URL", &format!("postgres://postgres@127.0.0.1:{port}/jeex")),
        ("REDIS_URL", &format!("redis://127.0.0.1:{port}/0")),
        ("QDRANT_URL", &format!("http://127.0.0.1:{port}")),
        ("JEEX_HEALTH_TIMEOUT", "1s"),
    ]))
    .await;
    let c = client();
    let limit = Duration::from_millis(1500);
    for path in ["/health/live", "/health/ready", "/health", "/health/ready"] {
        let started = Instant::now();
        let r = c.get(app.url(path)).send().await.unwrap();
        let took = started.elapsed();
        assert!(took <= limit, "{path} took {took:?}, over the 1 s timeout + 0.5 s");
        if path == "/health" {
            let report: Value = r.json().await.unwrap();
            for name in ["postgres", "redis", "qdrant"] {
                assert_eq!(component(&report, name)["status"], "unhealthy", "{name}: {report}");
            }
        }
    }
}

#[tokio::test]
async fn readiness_recovers_by_itself_when_redis_comes_back() {
    let mut proxy = Proxy::down(&jeex_e2e::services::redis_addr());
    let app = start(config(&[("REDIS_URL", &format!("redis://127.0.0.1:{}/15", proxy.port))])).await;
    let c = client();
    assert_eq!(c.get(app.url("/health/ready")).send().await.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);

    proxy.up().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if c.get(app.url("/health/ready")).send().await.unwrap().status() == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "not ready 5 s after Redis came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn outside_development_health_errors_name_the_kind_not_the_details() {
    let redis = format!("redis://127.0.0.1:{}/0", closed_port());
    let app = start(config(&[("REDIS_URL", &redis), ("JEEX_EXPOSE_ERROR_DETAILS", "false")])).await;
    let c = client();
    let report: Value = c.get(app.url("/health")).send().await.unwrap().json().await.unwrap();
    let error = component(&report, "redis")["error"].as_str().unwrap().to_owned();
    assert!(["connection refused", "timed out", "unavailable"].contains(&error.as_str()), "raw error leaked: {error}");
    let ready: Value = c.get(app.url("/health/ready")).send().await.unwrap().json().await.unwrap();
    assert!(!ready["detail"].as_str().unwrap().contains("os error"), "{ready}");
}

#[tokio::test]
async fn readiness_refuses_an_old_schema_and_outside_development_a_role_that_bypasses_rls() {
    let db = support::db::TestDatabase::create().await;
    let owner = db.owner_pool().await;
    let app = start(config(&[("DATABASE_URL", &db.owner_url), ("JEEX_ENV", "production")])).await;
    let (status, body) = support::session::split(client().get(app.url("/health/ready")).send().await.unwrap()).await;
    assert_eq!(status, 503);
    assert!(body["detail"].as_str().unwrap().contains("superuser"), "{body}");
    // Staging too: a warning there would silently serve without row-level security.
    let app = start(config(&[("DATABASE_URL", &db.owner_url), ("JEEX_ENV", "staging")])).await;
    let (status, body) = support::session::split(client().get(app.url("/health/ready")).send().await.unwrap()).await;
    assert_eq!(status, 503);
    assert!(body["detail"].as_str().unwrap().contains("superuser"), "{body}");

    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)").execute(&owner).await.unwrap();
    let app = start(config(&[("DATABASE_URL", &db.app_url)])).await;
    let (status, body) = support::session::split(client().get(app.url("/health/ready")).send().await.unwrap()).await;
    assert_eq!(status, 503);
    assert!(body["detail"].as_str().unwrap().contains("jeex-api migrate"), "{body}");
}

/// Issue 27: connections are no longer tested before each use, so a PostgreSQL restart reaches
/// requests. It still loses no acknowledged write, the server recovers by itself, and only the
/// statement that finds the dead connections out fails: the pool then drops the rest unused. A
/// real restart (`pg_ctl restart -m fast`) of a private cluster, first under concurrent writes,
/// then with an idle pool.
#[tokio::test]
async fn a_postgres_restart_loses_no_acknowledged_write_and_readiness_recovers() {
    use jeex_api::{db::migrate, devdb::DevDatabase};

    let dir = support::temp_dir();
    let pg = DevDatabase::start(&dir).await.expect("a private PostgreSQL cluster");
    migrate::run(&pg.owner_url, Some(&migrate::AppRole::named(jeex_api::devdb::APP_ROLE))).await.expect("migrate");
    let app = start(config(&[("DATABASE_URL", &pg.url)])).await;
    let user = support::session::login(&app, "restart@example.com").await;
    let project = user.project("Restart").await;
    let project_path = format!("/api/v1/projects/{project}");

    // Four writers, each remembering what the server acknowledged (201).
    let writing = Arc::new(AtomicBool::new(true));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (user, project, writing) = (user.clone(), project.clone(), writing.clone());
            tokio::spawn(async move {
                let (mut acknowledged, mut refused) = (Vec::new(), 0u32);
                let mut n = 0;
                while writing.load(Ordering::SeqCst) {
                    n += 1;
                    let body = json!({ "title": format!("writer {w} note {n}"), "content": "kept" });
                    let (status, doc) = user.call(Method::POST, &format!("/api/v1/projects/{project}/documents"), Some(body)).await;
                    match status {
                        201 => acknowledged.push(doc["id"].as_str().unwrap().to_owned()),
                        // The statements on their way when the database went: refused, never a panic.
                        503 => refused += 1,
                        other => panic!("a write during the restart answered {other}: {doc}"),
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (acknowledged, refused)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    pg.restart().await.expect("pg_ctl restart");
    let restarted = Instant::now();

    // Readiness comes back without the server being touched.
    let c = client();
    loop {
        if c.get(app.url("/health/ready")).send().await.unwrap().status() == StatusCode::OK {
            break;
        }
        assert!(restarted.elapsed() < Duration::from_secs(15), "/health/ready did not recover within 15 s of the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    writing.store(false, Ordering::SeqCst);
    let (mut acknowledged, mut refused) = (Vec::new(), 0);
    for w in writers {
        let (a, r) = w.await.unwrap();
        acknowledged.extend(a);
        refused += r;
    }
    assert!(acknowledged.len() > 40, "writes went on around the restart: {} acknowledged", acknowledged.len());

    // Every acknowledged write is in the database, read back as the owner (no RLS).
    let mut owner = <sqlx::PgConnection as sqlx::Connection>::connect(&pg.owner_url).await.unwrap();
    let ids: Vec<uuid::Uuid> = acknowledged.iter().map(|id| id.parse().unwrap()).collect();
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM documents WHERE id = ANY($1)").bind(&ids).fetch_one(&mut owner).await.unwrap();
    assert_eq!(stored, ids.len() as i64, "every acknowledged write survived ({refused} refused during the restart)");
    drop(owner);

    // After the restart, requests work again on new connections.
    assert_eq!(user.call(Method::GET, &project_path, None).await.0, 200);
    let user_id: uuid::Uuid = user.id.parse().unwrap();
    app.shutdown().await;

    // An idle pool of six connections across a second restart, with nothing else using it (the
    // server's pollers would otherwise find the dead connections first): the first statement
    // finds its connection dead; the pool then drops the other five, opened before the restart,
    // instead of handing each to a statement that would fail in turn.
    let pool = jeex_api::config::PoolConfig {
        size: 6,
        max_overflow: 0,
        acquire_timeout: Duration::from_secs(5),
        max_lifetime: Duration::from_secs(600),
        idle_timeout: Duration::from_secs(600),
    };
    let db = jeex_api::db::Database::connect_lazy(&pg.url, &pool).unwrap();
    let caller = Caller { principal: Principal::User { user_id }, correlation_id: "restart".into() };
    let held = futures_util::future::join_all((0..6).map(|_| db.user(&caller))).await;
    assert!(held.iter().all(Result::is_ok), "six transactions at once");
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(db.connections(), (6, 6), "six idle connections (open, idle)");
    pg.restart().await.expect("pg_ctl restart");
    let mut probes = Vec::new();
    for _ in 0..6 {
        probes.push(db.probe().await.is_ok());
    }
    let failed = probes.iter().filter(|ok| !**ok).count();
    assert!(failed <= 1, "only the statement that found the dead connections out fails: {probes:?}");
    assert!(probes[1..].iter().all(|ok| *ok), "{probes:?}");
    db.close().await;

    pg.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
