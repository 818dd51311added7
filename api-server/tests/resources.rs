//! The resources behave as documented: creates answer 201 + Location, lists page with
//! cursors, search ranks in the document's language, validation names the field, unique
//! violations are 409, the last owner stays, API keys work until revoked, and every change is
//! in the audit log with its correlation ID.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::{db::TestDatabase, session};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_page_search_and_validate() {
    let db = TestDatabase::create().await;
    let app = support::start(support::config(&[("DATABASE_URL", &db.app_url), ("JEEX_DOCUMENT_MAX_SIZE", "1KiB")])).await;
    let a = session::login(&app, "ann@example.com").await;
    let p = a.project("Docs").await;
    let docs = format!("/api/v1/projects/{p}/documents");

    let resp = a
        .req(Method::POST, &docs)
        .json(&json!({ "title": "Läufer", "content": "Die Läufer liefen schnell", "language": "de", "metadata": {"k": 1} }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let german: Value = resp.json().await.unwrap();
    assert_eq!(location, format!("{docs}/{}", german["id"].as_str().unwrap()));
    for i in 0..4 {
        a.document(&p, &format!("Note {i}"), "running shoes and runners").await;
    }

    // Cursor pagination, newest first, no duplicates, a null cursor at the end.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let (status, page) = a.call(Method::GET, &format!("{docs}?limit=2{q}"), None).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(page["items"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => {
                assert!(page.as_object().unwrap().contains_key("next_cursor"), "next_cursor is always present");
                break;
            }
        }
    }
    assert_eq!(seen.len(), 5);
    let mut sorted = seen.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(seen, sorted, "newest first");

    // Full-text search stems in each document's language.
    let (_, hits) = a.call(Method::GET, &format!("{docs}?q=run"), None).await;
    assert_eq!(hits["items"].as_array().unwrap().len(), 4, "English stemming: run ~ running/runners: {hits}");
    assert!(hits["items"][0]["rank"].as_f64().unwrap() > 0.0);
    let (_, hits) = a.call(Method::GET, &format!("{docs}?q=Läufer"), None).await;
    assert_eq!(hits["items"][0]["id"], german["id"], "German document found by its own stemming");

    // Validation: each problem names its field.
    let cases = [
        (json!({ "title": "   " }), "/title"),
        (json!({ "title": "x".repeat(501) }), "/title"),
        (json!({ "title": "ok", "language": "english" }), "/language"),
        (json!({ "title": "ok", "metadata": [1, 2] }), "/metadata"),
        (json!({ "title": "ok", "content": "ü".repeat(600) }), "/content"),
    ];
    for (body, field) in cases {
        let (status, problem) = a.call(Method::POST, &docs, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let (status, problem) = a.call(Method::POST, &docs, Some(json!({ "title": "ok", "owner": "me" }))).await;
    assert_eq!((status, problem["code"].as_str()), (400, Some("VALIDATION_FAILED")), "unknown fields are rejected: {problem}");
    let (status, problem) = a.call(Method::GET, "/api/v1/projects/not-a-uuid", None).await;
    assert_eq!(status, 400);
    assert!(problem.to_string().contains("project_id"), "the malformed parameter is named: {problem}");
    let (status, problem) = a.call(Method::GET, &format!("{docs}?limit=500"), None).await;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (400, Some("limit")));
    let (status, problem) = a.call(Method::GET, &format!("{docs}?cursor=bogus"), None).await;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (400, Some("cursor")));
    let (status, _) = a.call(Method::POST, "/api/v1/projects", Some(json!({ "name": "名".repeat(200) }))).await;
    assert_eq!(status, 201, "200 characters is the limit whatever their byte length");

    // Soft delete: gone from reads, still in the table.
    let id = german["id"].as_str().unwrap();
    assert_eq!(a.call(Method::DELETE, &format!("{docs}/{id}"), None).await.0, 204);
    assert_eq!(a.call(Method::GET, &format!("{docs}/{id}"), None).await.0, 404);
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM documents WHERE deleted_at IS NOT NULL").fetch_one(&db.owner_pool().await).await.unwrap();
    assert_eq!(kept, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_keys_and_audit() {
    let db = TestDatabase::create().await;
    let app = support::start(support::config(&[("DATABASE_URL", &db.app_url)])).await;
    let a = session::login(&app, "ann@example.com").await;
    let b = session::login(&app, "bob@example.com").await;
    let p = a.project("Team").await;
    let members = format!("/api/v1/projects/{p}/members");

    let (status, added) = a.call(Method::POST, &members, Some(json!({ "email": "BOB@example.com", "role": "editor" }))).await;
    assert_eq!((status, added["role"].as_str()), (201, Some("editor")));
    let fields = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    let (status, dup) = a.call(Method::POST, &members, Some(json!({ "email": "bob@example.com", "role": "viewer" }))).await;
    assert_eq!((status, dup["code"].as_str()), (409, Some("CONFLICT")), "a unique violation is 409, never 500");
    // Unknown addresses are invited, answering exactly like known ones (no account oracle).
    let (status, invited) = a.call(Method::POST, &members, Some(json!({ "email": "newcomer@example.com", "role": "viewer" }))).await;
    assert_eq!((status, invited["email"].as_str()), (201, Some("newcomer@example.com")));
    // Issue 23, acceptance 6: the same fields, and none that tells an account apart (no id
    // that dates it, no name).
    assert_eq!(fields(&added), fields(&invited));
    assert_eq!(fields(&added), ["email", "role", "added_at"]);
    let newcomer = session::login(&app, "newcomer@example.com").await;
    let (_, listed) = a.call(Method::GET, &members, None).await;
    let listed_newcomer = listed["items"].as_array().unwrap().iter().find(|m| m["email"] == "newcomer@example.com").unwrap().clone();
    assert_eq!(newcomer.id, listed_newcomer["user_id"].as_str().unwrap(), "signing in later joins the invited account");
    assert_eq!(newcomer.call(Method::GET, &format!("/api/v1/projects/{p}"), None).await.0, 200);
    assert_eq!(b.call(Method::POST, &format!("/api/v1/projects/{p}/documents"), Some(json!({ "title": "by bob" }))).await.0, 201);

    // The last owner stays.
    let me = format!("{members}/{}", a.id);
    let (status, body) = a.call(Method::DELETE, &me, None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("CONFLICT")));
    assert_eq!(a.call(Method::PATCH, &me, Some(json!({ "role": "viewer" }))).await.0, 409);
    assert_eq!(a.call(Method::PATCH, &format!("{members}/{}", b.id), Some(json!({ "role": "owner" }))).await.0, 200);
    assert_eq!(a.call(Method::PATCH, &me, Some(json!({ "role": "viewer" }))).await.0, 200, "with a second owner, demotion works");
    assert_eq!(a.call(Method::POST, &members, Some(json!({ "email": "x@example.com", "role": "viewer" }))).await.0, 403);

    // API keys: secret shown once, works with its role, stops when revoked.
    let keys = format!("/api/v1/projects/{p}/api-keys");
    assert_eq!(b.call(Method::POST, &keys, Some(json!({ "name": "boss", "role": "owner" }))).await.0, 400, "keys never own");
    let (status, created) = b.call(Method::POST, &keys, Some(json!({ "name": "reader" }))).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["key"].as_str().unwrap().to_owned();
    let (_, listed) = b.call(Method::GET, &keys, None).await;
    assert!(!listed.to_string().contains(&secret[10..]), "listing never shows the secret");
    let client = support::client();
    let by_key = |m: Method, path: &str| client.request(m, app.url(path)).header("X-API-Key", &secret);
    assert_eq!(by_key(Method::GET, &format!("/api/v1/projects/{p}/documents")).send().await.unwrap().status(), 200);
    let resp = by_key(Method::POST, &format!("/api/v1/projects/{p}/documents")).json(&json!({ "title": "x" })).send().await.unwrap();
    assert_eq!(resp.status(), 403, "a viewer key cannot write");
    let tampered = format!("{}x", &secret[..secret.len() - 1]);
    let resp = client.get(app.url(&format!("/api/v1/projects/{p}"))).header("X-API-Key", &tampered).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let key_id = created["id"].as_str().unwrap();
    assert_eq!(b.call(Method::DELETE, &format!("{keys}/{key_id}"), None).await.0, 204);
    assert_eq!(by_key(Method::GET, &format!("/api/v1/projects/{p}")).send().await.unwrap().status(), 401, "revoked at once");

    // The audit log: every change, with actor and correlation ID, owners only.
    let resp = b
        .req(Method::PATCH, &format!("/api/v1/projects/{p}"))
        .header("x-correlation-id", "audit-trace-1")
        .json(&json!({ "status": "active" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, log) = b.call(Method::GET, &format!("/api/v1/projects/{p}/audit?limit=100"), None).await;
    assert_eq!(status, 200);
    let actions: Vec<&str> = log["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for expected in
        ["project.create", "member.add", "member.update", "document.create", "api_key.create", "api_key.revoke", "project.update"]
    {
        assert!(actions.contains(&expected), "{expected} missing from {actions:?}");
    }
    let latest = &log["items"][0];
    assert_eq!((latest["action"].as_str(), latest["correlation_id"].as_str()), (Some("project.update"), Some("audit-trace-1")));
    assert_eq!(latest["actor_user_id"].as_str(), Some(b.id.as_str()));
    assert_eq!(a.call(Method::GET, &format!("/api/v1/projects/{p}/audit"), None).await.0, 403, "viewers cannot read it");

    // Owner-only soft delete: the project disappears for everyone.
    assert_eq!(b.call(Method::DELETE, &format!("/api/v1/projects/{p}"), None).await.0, 204);
    assert_eq!(a.call(Method::GET, &format!("/api/v1/projects/{p}"), None).await.0, 404);
    let (_, mine) = a.call(Method::GET, "/api/v1/projects", None).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 0);
}
