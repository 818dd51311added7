//! Acceptance 5: `If-Match` with a stale ETag answers 412 and changes nothing; concurrent
//! PATCHes never overwrite each other unseen.

mod support;

use reqwest::Method;
use serde_json::json;
use support::{db::TestDatabase, session};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_etags_are_refused_and_concurrent_patches_are_never_lost() {
    let db = TestDatabase::create().await;
    let app = support::start(support::config(&[("DATABASE_URL", &db.app_url)])).await;
    let a = session::login(&app, "ann@example.com").await;
    let project = a.project("Versioned").await;
    let path = format!("/api/v1/projects/{project}");

    let resp = a.req(Method::GET, &path).send().await.unwrap();
    assert_eq!(resp.headers()["etag"], "\"1\"");
    let resp = a.req(Method::PATCH, &path).header("if-match", "\"1\"").json(&json!({ "name": "First" })).send().await.unwrap();
    assert_eq!((resp.status().as_u16(), resp.headers()["etag"].to_str().unwrap()), (200, "\"2\""));
    for stale in ["\"1\"", "W/\"2\"", "nonsense"] {
        let resp = a.req(Method::PATCH, &path).header("if-match", stale).json(&json!({ "name": "Lost" })).send().await.unwrap();
        let (status, body) = session::split(resp).await;
        assert_eq!((status, body["code"].as_str()), (412, Some("PRECONDITION_FAILED")), "If-Match {stale}");
    }
    let resp = a.req(Method::DELETE, &path).header("if-match", "\"1\"").send().await.unwrap();
    assert_eq!(resp.status(), 412, "a stale delete is refused too");
    let (_, current) = a.call(Method::GET, &path, None).await;
    assert_eq!((current["name"].as_str(), current["version"].as_i64()), (Some("First"), Some(2)), "nothing changed");

    // Ten writers holding the same ETag: exactly one wins, nine learn they lost.
    let racers =
        (0..10).map(|i| a.req(Method::PATCH, &path).header("if-match", "\"2\"").json(&json!({ "name": format!("Racer {i}") })).send());
    let statuses: Vec<u16> = futures_util::future::join_all(racers).await.into_iter().map(|r| r.unwrap().status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 412).count(), 9, "{statuses:?}");

    // Ten writers without If-Match: every update applies atomically, each on its own version.
    let writers = (0..10).map(|i| a.req(Method::PATCH, &path).json(&json!({ "current_step": i + 1 })).send());
    let mut versions = Vec::new();
    for resp in futures_util::future::join_all(writers).await {
        let (status, body) = session::split(resp.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        versions.push(body["version"].as_i64().unwrap());
    }
    versions.sort();
    assert_eq!(versions, (4..=13).collect::<Vec<i64>>(), "no two updates saw the same state");
    let updates: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'project.update'")
        .fetch_one(&db.owner_pool().await)
        .await
        .unwrap();
    assert_eq!(updates, 12, "every applied update is audited");

    // Documents follow the same rules.
    let doc = a.document(&project, "Draft", "v1").await;
    let doc_path = format!("/api/v1/projects/{project}/documents/{doc}");
    let resp = a.req(Method::PATCH, &doc_path).header("if-match", "\"7\"").json(&json!({ "content": "lost" })).send().await.unwrap();
    assert_eq!(resp.status(), 412);
    let (_, body) = a.call(Method::GET, &doc_path, None).await;
    assert_eq!(body["content"], "v1");
}
