//! Operations: imports and exports run in the background with progress; a cancel lands within
//! a second; a replica whose worker dies mid-import is replaced by another after the lease
//! expires, and every document exists exactly once (issue 4, acceptance 3 and 4).

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::{db::TestDatabase, session};

fn docs(n: usize) -> Value {
    let documents: Vec<Value> =
        (0..n).map(|i| json!({ "title": format!("Imported {i}"), "content": "body text", "language": "en" })).collect();
    json!({ "kind": "documents.import", "input": { "documents": documents } })
}

async fn count_documents(db: &TestDatabase, project: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM documents WHERE project_id = $1::uuid AND deleted_at IS NULL")
        .bind(project)
        .fetch_one(&db.owner_pool().await)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_exports_cancels_and_stays_in_its_project() {
    let db = TestDatabase::create().await;
    let app = support::start(support::config(&[("DATABASE_URL", &db.app_url), ("JEEX_IMPORT_BATCH_SIZE", "50")])).await;
    let a = session::login(&app, "ann@example.com").await;
    let b = session::login(&app, "bob@example.com").await;
    let p = a.project("Imports").await;
    let ops = format!("/api/v1/projects/{p}/operations");

    let resp = a.req(Method::POST, &ops).json(&docs(250)).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let op: Value = resp.json().await.unwrap();
    assert_eq!(op["status"], "queued");
    let (status, early) = a.call(Method::GET, &format!("{location}/result"), None).await;
    assert!(status == 409 || early["documents"] == 250, "no result before success: {early}");
    let done = a.wait_for(&location, Duration::from_secs(20), |op| op["status"] == "succeeded").await;
    assert_eq!((done["progress"].as_i64(), done["attempt"].as_i64()), (Some(100), Some(1)));
    assert_eq!(count_documents(&db, &p).await, 250);
    let (_, result) = a.call(Method::GET, &format!("{location}/result"), None).await;
    assert_eq!(result["documents"], 250);

    // Export: the bundle holds the project and every document, each exactly as written
    // (the bundle is built and served as text, so escaping must survive both ways).
    let awkward = "\"quoted\" \\ back\nslash\ttab ünïcødé 🚀 \u{1}";
    let (status, _) =
        a.call(Method::POST, &format!("/api/v1/projects/{p}/documents"), Some(json!({ "title": "Awkward", "content": awkward }))).await;
    assert_eq!(status, 201);
    let (status, export) = a.call(Method::POST, &ops, Some(json!({ "kind": "project.export" }))).await;
    assert_eq!(status, 202, "{export}");
    let export_path = format!("{ops}/{}", export["id"].as_str().unwrap());
    a.wait_for(&export_path, Duration::from_secs(20), |op| op["status"] == "succeeded").await;
    let resp = a.req(Method::GET, &format!("{export_path}/result")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json; charset=utf-8");
    let bundle: Value = resp.json().await.unwrap();
    assert_eq!(
        (bundle["format"].as_str(), bundle["project"]["name"].as_str(), bundle["documents"].as_array().map(Vec::len)),
        (Some("jeex.export.v1"), Some("Imports"), Some(251))
    );
    let exported = bundle["documents"].as_array().unwrap().iter().find(|d| d["title"] == "Awkward").unwrap();
    assert_eq!(exported["content"], awkward);

    // Validation up front: nothing is queued for a bad input.
    for bad in [
        docs(10_001),
        json!({ "kind": "documents.import", "input": { "documents": [{ "title": "" }] } }),
        json!({ "kind": "project.export", "input": { "x": 1 } }),
        json!({ "kind": "reindex" }),
    ] {
        let (status, body) = a.call(Method::POST, &ops, Some(bad)).await;
        assert_eq!(status, 400, "{body}");
    }

    // Another user's project: 404 everywhere, exactly like a missing one.
    for (method, path) in [
        (Method::GET, ops.clone()),
        (Method::GET, location.clone()),
        (Method::GET, format!("{location}/result")),
        (Method::POST, format!("{location}/cancel")),
    ] {
        assert_eq!(b.call(method.clone(), &path, None).await.0, 404, "{method} {path}");
    }
    assert_eq!(b.call(Method::POST, &ops, Some(docs(1))).await.0, 404);
    // Cancelling is no DELETE: that method is not served on an operation (405, with Allow).
    let resp = a.req(Method::DELETE, &location).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, HEAD, OPTIONS");

    // Cancel: a running import stops within a second, between batches.
    let (_, big) = a.call(Method::POST, &ops, Some(docs(10_000))).await;
    let big_path = format!("{ops}/{}", big["id"].as_str().unwrap());
    a.wait_for(&big_path, Duration::from_secs(20), |op| op["status"] == "running" && op["progress"].as_i64() > Some(0)).await;
    let asked = Instant::now();
    let (status, cancelling) = a.call(Method::POST, &format!("{big_path}/cancel"), None).await;
    assert_eq!(status, 202, "{cancelling}");
    let ended = a.wait_for(&big_path, Duration::from_secs(5), |op| op["status"] == "cancelled").await;
    assert!(asked.elapsed() < Duration::from_secs(1), "cancelled after {:?}", asked.elapsed());
    assert!(ended["finished_at"].is_string());
    assert!(count_documents(&db, &p).await < 10_250, "the import stopped part-way");
    let (_, listed) = a.call(Method::GET, &format!("{ops}?status=cancelled"), None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_replica_finishes_an_import_whose_worker_died() {
    let db = TestDatabase::create().await;
    let cfg =
        [("DATABASE_URL", db.app_url.as_str()), ("JEEX_IMPORT_BATCH_SIZE", "20"), ("JEEX_OPERATION_LEASE", "1s"), ("JEEX_WORKERS", "1")];
    let mut first = support::start(support::config(&cfg)).await;
    let a = session::login(&first, "ann@example.com").await;
    let p = a.project("Crash").await;
    let (_, op) = a.call(Method::POST, &format!("/api/v1/projects/{p}/operations"), Some(docs(2_000))).await;
    let path = format!("/api/v1/projects/{p}/operations/{}", op["id"].as_str().unwrap());
    a.wait_for(&path, Duration::from_secs(20), |op| op["progress"].as_i64() >= Some(10)).await;
    first.kill_workers();
    let stalled = a.call(Method::GET, &path, None).await.1;
    assert_eq!(stalled["status"], "running", "the dead worker's operation waits for its lease to expire");

    let second = support::start(support::config(&cfg)).await;
    let a2 = session::login(&second, "ann@example.com").await;
    let done = a2.wait_for(&path, Duration::from_secs(30), |op| op["status"] == "succeeded").await;
    assert_eq!(done["attempt"], 2, "resumed by a second claim");
    assert_eq!(count_documents(&db, &p).await, 2_000, "every document exactly once");
    let distinct: i64 = sqlx::query_scalar("SELECT count(DISTINCT title) FROM documents WHERE project_id = $1::uuid")
        .bind(&p)
        .fetch_one(&db.owner_pool().await)
        .await
        .unwrap();
    assert_eq!(distinct, 2_000);
    drop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_hands_running_work_back_without_spending_an_attempt() {
    let db = TestDatabase::create().await;
    let cfg = [("DATABASE_URL", db.app_url.as_str()), ("JEEX_IMPORT_BATCH_SIZE", "10"), ("JEEX_WORKERS", "1")];
    let mut app = support::start(support::config(&cfg)).await;
    let a = session::login(&app, "ann@example.com").await;
    let p = a.project("Deploy").await;
    let (_, op) = a.call(Method::POST, &format!("/api/v1/projects/{p}/operations"), Some(docs(3_000))).await;
    let path = format!("/api/v1/projects/{p}/operations/{}", op["id"].as_str().unwrap());
    a.wait_for(&path, Duration::from_secs(20), |op| op["progress"].as_i64() >= Some(5)).await;
    app.stop_workers().await;
    let (_, handed_back) = a.call(Method::GET, &path, None).await;
    assert_eq!((handed_back["status"].as_str(), handed_back["attempt"].as_i64()), (Some("queued"), Some(0)), "{handed_back}");
    let next = support::start(support::config(&cfg)).await;
    let done = a.wait_for(&path, Duration::from_secs(60), |op| op["status"] == "succeeded").await;
    assert_eq!(done["attempt"], 1, "the deploy cost no attempt");
    assert_eq!(count_documents(&db, &p).await, 3_000);
    drop(next);
}

/// A `POST …/operations` whose head and first bytes are sent and whose rest never comes:
/// the server is left holding one of its upload slots until the connection closes.
async fn stalled_upload(base: &str, path: &str, token: Option<&str>) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await.unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head = format!("POST {path} HTTP/1.1\r\nHost: test\r\n{auth}Content-Type: application/json\r\nContent-Length: 3000000\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(br#"{"kind": "documents.import", "input": {"documents": ["#).await.unwrap();
    stream
}

/// POSTs an oversized `body`, reading the early 413 while writing.
async fn oversized_post(base: &str, path: &str, token: &str, body: Vec<u8>) -> (u16, Value) {
    let headers = [format!("Authorization: Bearer {token}"), "Content-Type: application/json".to_owned()];
    let (status, _, body) = jeex_e2e::http::exchange(base.trim_start_matches("http://"), "POST", path, &headers, body).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_has_a_body_limit_of_its_own_and_few_large_ones_are_read_at_once() {
    let db = TestDatabase::create().await;
    let app = support::start(support::config(&[("DATABASE_URL", &db.app_url), ("JEEX_IMPORT_BODY_LIMIT", "8MiB")])).await;
    let a = session::login(&app, "ann@example.com").await;
    let p = a.project("Uploads").await;
    let ops = format!("/api/v1/projects/{p}/operations");

    // 10,000 documents of ordinary size: far over the general 1 MiB limit, within the
    // import's own.
    let documents: Vec<Value> = (0..10_000)
        .map(|i| json!({ "title": format!("Imported {i}"), "content": format!("{i} {}", "lorem ipsum ".repeat(40)), "language": "en" }))
        .collect();
    let body = serde_json::to_vec(&json!({ "kind": "documents.import", "input": { "documents": documents } })).unwrap();
    assert!(body.len() > 4 << 20, "{} bytes", body.len());
    let resp = a.req(Method::POST, &ops).header("content-type", "application/json").body(body).send().await.unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let done = a.wait_for(&location, Duration::from_secs(120), |op| op["status"] != "queued" && op["status"] != "running").await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(count_documents(&db, &p).await, 10_000);

    // Over the import's limit: 413, and nothing queued.
    let huge = json!({ "kind": "documents.import", "input": { "documents": [{ "title": "t", "content": "x".repeat(9 << 20) }] } });
    let (status, problem) = oversized_post(&app.base, &ops, &a.token, serde_json::to_vec(&huge).unwrap()).await;
    assert_eq!((status, problem["code"].as_str()), (413, Some("PAYLOAD_TOO_LARGE")), "{problem}");
    // Every other route keeps the general limit.
    let big_document = serde_json::to_vec(&json!({ "title": "t", "content": "x".repeat(2 << 20) })).unwrap();
    let (status, _) = oversized_post(&app.base, &format!("/api/v1/projects/{p}/documents"), &a.token, big_document).await;
    assert_eq!(status, 413);
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM operations WHERE project_id = $1::uuid")
        .bind(&p)
        .fetch_one(&db.owner_pool().await)
        .await
        .unwrap();
    assert_eq!(queued, 1, "only the first import was queued");

    // No slot, and no body read, for a caller who may not start operations here: the answer
    // comes while the body is still on its way.
    let b = session::login(&app, "bob@example.com").await;
    for (token, status) in [(None, "401"), (Some(b.token.as_str()), "404")] {
        let mut stalled = stalled_upload(&app.base, &ops, token).await;
        let mut head = [0u8; 12];
        tokio::time::timeout(Duration::from_secs(5), tokio::io::AsyncReadExt::read_exact(&mut stalled, &mut head))
            .await
            .expect("answered before the body arrived")
            .unwrap();
        assert_eq!(&head[9..12], status.as_bytes(), "{}", String::from_utf8_lossy(&head));
    }

    // Two uploads that never finish hold both slots: a third large one is turned away with
    // 503 and Retry-After, while a small import still goes through.
    let stalled = [stalled_upload(&app.base, &ops, Some(&a.token)).await, stalled_upload(&app.base, &ops, Some(&a.token)).await];
    let large = || {
        let documents: Vec<Value> = (0..300).map(|i| json!({ "title": format!("Large {i}"), "content": "y".repeat(4000) })).collect();
        json!({ "kind": "documents.import", "input": { "documents": documents } })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let refused = loop {
        let resp = a.req(Method::POST, &ops).json(&large()).send().await.unwrap();
        if resp.status() == 503 || Instant::now() > deadline {
            break resp;
        }
        // The stalled heads were not read yet, so this upload took a slot and went through.
        assert_eq!(resp.status(), 202);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(refused.status(), 503, "both slots taken");
    assert_eq!(refused.headers()["retry-after"], "1");
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "SERVICE_UNAVAILABLE");
    assert!(problem["detail"].as_str().unwrap().contains("large uploads"), "{problem}");
    let (status, body) = a.call(Method::POST, &ops, Some(docs(3))).await;
    assert_eq!(status, 202, "a small import needs no slot: {body}");

    // The stalled clients go away: their slots are free again.
    drop(stalled);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = a.req(Method::POST, &ops).json(&large()).send().await.unwrap().status();
        if status == 202 {
            break;
        }
        assert!(status == 503 && Instant::now() < deadline, "slots never freed: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_operations_drop_their_input_and_go_after_their_retention() {
    let db = TestDatabase::create().await;
    let owner = db.owner_pool().await;
    let input_kept = |id: String| {
        let owner = owner.clone();
        async move {
            let kept: bool = sqlx::query_scalar("SELECT input IS NOT NULL FROM operations WHERE id = $1::uuid")
                .bind(id)
                .fetch_one(&owner)
                .await
                .unwrap();
            kept
        }
    };
    // A replica that runs no operations: what is started stays queued, and nothing is pruned.
    let idle = support::start(support::config(&[("DATABASE_URL", &db.app_url), ("JEEX_WORKERS", "0")])).await;
    let a = session::login(&idle, "ann@example.com").await;
    let p = a.project("Retention").await;
    let ops = format!("/api/v1/projects/{p}/operations");
    let (_, cancelled) = a.call(Method::POST, &ops, Some(docs(3))).await;
    let cancelled = cancelled["id"].as_str().unwrap().to_owned();
    assert!(input_kept(cancelled.clone()).await, "a queued operation keeps its input for its worker");
    assert_eq!(a.call(Method::POST, &format!("{ops}/{cancelled}/cancel"), None).await.0, 202);
    assert!(!input_kept(cancelled.clone()).await, "a cancelled operation's input is gone");
    let (_, queued) = a.call(Method::POST, &ops, Some(docs(3))).await;
    let queued = queued["id"].as_str().unwrap().to_owned();
    // The cancel happened "8 days ago"; the queued import was created as long ago.
    sqlx::query(
        "UPDATE operations SET created_at = now() - interval '8 days', \
             finished_at = CASE WHEN finished_at IS NULL THEN NULL ELSE now() - interval '8 days' END \
         WHERE project_id = $1::uuid",
    )
    .bind(&p)
    .execute(&owner)
    .await
    .unwrap();
    drop(idle);

    // A replica with workers (and the default 7-day retention) prunes at start-up: the long
    // ended operation goes; the long queued one runs and stays, its input dropped on success.
    let worker = support::start(support::config(&[("DATABASE_URL", &db.app_url), ("JEEX_WORKERS", "1")])).await;
    let a = session::login(&worker, "ann@example.com").await;
    a.wait_for(&format!("{ops}/{queued}"), Duration::from_secs(20), |op| op["status"] == "succeeded").await;
    assert!(!input_kept(queued.clone()).await, "a succeeded operation's input is gone");
    assert_eq!(a.call(Method::GET, &format!("{ops}/{queued}/result"), None).await.1["documents"], 3, "its result stays");
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.call(Method::GET, &format!("{ops}/{cancelled}"), None).await.0 != 404 {
        assert!(Instant::now() < deadline, "the operation past its retention was not deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, listed) = a.call(Method::GET, &ops, None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
}
