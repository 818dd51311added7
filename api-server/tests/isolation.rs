//! Acceptance 1: the isolation matrix. User B probing every endpoint that takes a project or
//! document id on user A's project gets exactly the 404 a missing id gets, and changes nothing;
//! B's lists never show A's data; A's API key for PA gets 404 on B's project.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::{db::TestDatabase, session};

/// The members of a problem body that must not differ between "not yours" and "missing".
fn shape(body: &Value) -> Value {
    json!({ "type": body["type"], "title": body["title"], "status": body["status"], "detail": body["detail"], "code": body["code"] })
}

async fn snapshot(db: &TestDatabase) -> Vec<i64> {
    let pool = db.owner_pool().await;
    let mut out = Vec::new();
    for sql in [
        "SELECT count(*) FROM projects WHERE deleted_at IS NULL",
        "SELECT count(*) FROM documents WHERE deleted_at IS NULL",
        "SELECT count(*) FROM project_members",
        "SELECT count(*) FROM api_keys WHERE deleted_at IS NULL",
        "SELECT count(*) FROM audit_log",
        "SELECT coalesce(sum(version), 0)::bigint FROM projects",
        "SELECT coalesce(sum(version), 0)::bigint FROM documents",
        "SELECT count(*) FROM project_members WHERE role = 'owner'",
    ] {
        out.push(sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.unwrap());
    }
    pool.close().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_project_is_indistinguishable_from_a_missing_one() {
    let db = TestDatabase::create().await;
    let app = support::start(support::config(&[("DATABASE_URL", &db.app_url)])).await;
    let a = session::login(&app, "ann@example.com").await;
    let b = session::login(&app, "bob@example.com").await;
    let pa = a.project("Alpha").await;
    let pb = b.project("Beta").await;
    let da = a.document(&pa, "Alpha plan", "secret alpha roadmap").await;
    let db_doc = b.document(&pb, "Beta plan", "beta roadmap").await;
    let (status, key) =
        a.call(Method::POST, &format!("/api/v1/projects/{pa}/api-keys"), Some(json!({ "name": "ci", "role": "editor" }))).await;
    assert_eq!(status, 201, "{key}");
    let key_id = key["id"].as_str().unwrap().to_owned();
    let key_secret = key["key"].as_str().unwrap().to_owned();

    let missing = uuid::Uuid::now_v7().to_string();
    let before = snapshot(&db).await;
    // (method, path template with {p} = project and {d} = document / member / key id, body)
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/v1/projects/{p}".into(), None),
        (Method::PATCH, "/api/v1/projects/{p}".into(), Some(json!({ "name": "pwned" }))),
        (Method::DELETE, "/api/v1/projects/{p}".into(), None),
        (Method::GET, "/api/v1/projects/{p}/members".into(), None),
        (Method::POST, "/api/v1/projects/{p}/members".into(), Some(json!({ "email": "bob@example.com", "role": "owner" }))),
        (Method::PATCH, format!("/api/v1/projects/{{p}}/members/{}", a.id), Some(json!({ "role": "viewer" }))),
        (Method::DELETE, format!("/api/v1/projects/{{p}}/members/{}", a.id), None),
        (Method::GET, "/api/v1/projects/{p}/documents".into(), None),
        (Method::GET, "/api/v1/projects/{p}/documents?q=alpha".into(), None),
        (Method::POST, "/api/v1/projects/{p}/documents".into(), Some(json!({ "title": "planted" }))),
        (Method::GET, format!("/api/v1/projects/{{p}}/documents/{da}"), None),
        (Method::PATCH, format!("/api/v1/projects/{{p}}/documents/{da}"), Some(json!({ "title": "pwned" }))),
        (Method::DELETE, format!("/api/v1/projects/{{p}}/documents/{da}"), None),
        (Method::GET, "/api/v1/projects/{p}/api-keys".into(), None),
        (Method::POST, "/api/v1/projects/{p}/api-keys".into(), Some(json!({ "name": "stolen" }))),
        (Method::DELETE, format!("/api/v1/projects/{{p}}/api-keys/{key_id}"), None),
        (Method::GET, "/api/v1/projects/{p}/audit".into(), None),
    ];
    for (method, template, body) in &cases {
        let probe = template.replace("{p}", &pa);
        let control = template.replace("{p}", &missing);
        let (status, got) = b.call(method.clone(), &probe, body.clone()).await;
        let (control_status, expected) = b.call(method.clone(), &control, body.clone()).await;
        assert_eq!((status, control_status), (404, 404), "{method} {probe}: {got}");
        assert_eq!(shape(&got), shape(&expected), "{method} {probe} must look exactly like a missing project");
    }
    // A document of A's project addressed through B's own project.
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let body = (method == Method::PATCH).then(|| json!({ "title": "pwned" }));
        let (status, got) = b.call(method.clone(), &format!("/api/v1/projects/{pb}/documents/{da}"), body.clone()).await;
        let (_, expected) = b.call(method.clone(), &format!("/api/v1/projects/{pb}/documents/{missing}"), body).await;
        assert_eq!(status, 404, "{method} A's document via B's project: {got}");
        assert_eq!(shape(&got), shape(&expected));
    }
    assert_eq!(snapshot(&db).await, before, "B's attempts changed nothing");

    // B's lists never include A's data.
    let (_, mine) = b.call(Method::GET, "/api/v1/projects?limit=100", None).await;
    let ids: Vec<&str> = mine["items"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [pb.as_str()]);
    let (_, docs) = b.call(Method::GET, &format!("/api/v1/projects/{pb}/documents?q=roadmap"), None).await;
    let doc_ids: Vec<&str> = docs["items"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(doc_ids, [db_doc.as_str()], "search stays inside the project");

    // A's API key acts in PA only.
    let client = support::client();
    let with_key = |method: Method, path: String| client.request(method, app.url(&path)).header("X-API-Key", &key_secret);
    assert_eq!(with_key(Method::GET, format!("/api/v1/projects/{pa}")).send().await.unwrap().status(), 200);
    for path in
        [format!("/api/v1/projects/{pb}"), format!("/api/v1/projects/{pb}/documents"), format!("/api/v1/projects/{pb}/documents/{db_doc}")]
    {
        let (status, got) = session::split(with_key(Method::GET, path.clone()).send().await.unwrap()).await;
        let (_, expected) = session::split(with_key(Method::GET, format!("/api/v1/projects/{missing}")).send().await.unwrap()).await;
        assert_eq!(status, 404, "key on {path}");
        assert_eq!(shape(&got), shape(&expected));
    }
    let (status, _) = session::split(
        with_key(Method::POST, format!("/api/v1/projects/{pb}/documents")).json(&json!({"title": "x"})).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(snapshot(&db).await, before, "the key's attempts changed nothing");

    // A member whose role is too low gets 403, not 404.
    let (status, _) = a
        .call(Method::POST, &format!("/api/v1/projects/{pa}/members"), Some(json!({ "email": "bob@example.com", "role": "viewer" })))
        .await;
    assert_eq!(status, 201);
    assert_eq!(b.call(Method::GET, &format!("/api/v1/projects/{pa}"), None).await.0, 200);
    for (method, path, body) in [
        (Method::PATCH, format!("/api/v1/projects/{pa}"), Some(json!({ "name": "x" }))),
        (Method::POST, format!("/api/v1/projects/{pa}/documents"), Some(json!({ "title": "x" }))),
        (Method::GET, format!("/api/v1/projects/{pa}/audit"), None),
        (Method::GET, format!("/api/v1/projects/{pa}/api-keys"), None),
        (Method::DELETE, format!("/api/v1/projects/{pa}"), None),
    ] {
        let (status, got) = b.call(method.clone(), &path, body).await;
        assert_eq!(status, 403, "{method} {path}: {got}");
        assert_eq!(got["code"], "FORBIDDEN");
    }

    // A deleted user's still-valid token opens nothing.
    let owner = db.owner_pool().await;
    sqlx::query("UPDATE users SET deleted_at = now() WHERE email = 'bob@example.com'").execute(&owner).await.unwrap();
    assert_eq!(b.call(Method::GET, "/api/v1/projects", None).await.0, 401);
    assert_eq!(b.call(Method::GET, &format!("/api/v1/projects/{pa}"), None).await.0, 404);
    assert_eq!(b.call(Method::GET, &format!("/api/v1/projects/{pb}"), None).await.0, 404);
}
