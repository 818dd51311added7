//! The vector index end to end: isolation, the outbox across an outage, validation, reindex,
//! language filter, text fallback and hybrid search. Each scenario runs against the embedded
//! engine, and again against a real Qdrant when `QDRANT_URL` is set (it says so when it is
//! not).

mod support;

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use jeex_api::{
    config::{VectorConfig, VectorDistance, VectorEngine},
    vectors::{IndexError, VectorIndex, VectorScope},
};
use reqwest::Method;
use serde_json::{Value, json};
use support::{TestApp, client, config, db::TestDatabase, session::User, start, temp_dir};
use uuid::Uuid;

const DIM: usize = 8;

/// Which engine a scenario runs against.
#[derive(Clone)]
enum Engine {
    /// The embedded engine in this folder.
    Embedded(std::path::PathBuf),
    /// A Qdrant server, in a collection of the test's own.
    Server { url: String, collection: String },
}

impl Engine {
    fn name(&self) -> &'static str {
        match self {
            Self::Embedded(_) => "embedded",
            Self::Server { .. } => "qdrant-server",
        }
    }

    /// Config overrides selecting this engine.
    fn vars(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Embedded(dir) => vec![("JEEX_DATA_DIR", dir.display().to_string())],
            Self::Server { url, collection } => {
                vec![("QDRANT_URL", url.clone()), ("JEEX_QDRANT_COLLECTION", collection.clone()), ("JEEX_QDRANT_TIMEOUT", "2s".into())]
            }
        }
    }
}

/// The embedded engine, plus a real Qdrant when `QDRANT_URL` is set.
fn engines() -> Vec<Engine> {
    let mut engines = vec![Engine::Embedded(temp_dir())];
    match std::env::var("QDRANT_URL") {
        Ok(url) if !url.is_empty() => {
            engines.push(Engine::Server { url, collection: format!("jeex_test_{}", Uuid::now_v7().simple()) });
        }
        _ => eprintln!("SKIPPED: the real-Qdrant run of this test (QDRANT_URL is unset); the embedded engine ran"),
    }
    engines
}

/// A deterministic pseudo-random vector (splitmix64).
fn vector(seed: u64) -> Vec<f64> {
    let mut x = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    (0..DIM)
        .map(|_| {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z % 2000) as f64 / 1000.0 - 1.0
        })
        .collect()
}

async fn serve(db: &TestDatabase, engine: &Engine, extra: &[(&str, &str)]) -> TestApp {
    let vars = engine.vars();
    let mut overrides: Vec<(&str, &str)> = vec![("DATABASE_URL", &db.app_url), ("JEEX_VECTOR_DIM", "8")];
    overrides.extend(vars.iter().map(|(k, v)| (*k, v.as_str())));
    overrides.extend_from_slice(extra);
    start(config(&overrides)).await
}

async fn health(app: &TestApp) -> Value {
    client().get(app.url("/health")).send().await.unwrap().json().await.unwrap()
}

fn qdrant(report: &Value) -> Value {
    report["components"].as_array().unwrap().iter().find(|c| c["name"] == "qdrant").cloned().unwrap()
}

/// Waits until the index is reachable and every intent is applied.
async fn drained(app: &TestApp, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let q = qdrant(&health(app).await);
        if q["status"] == "healthy" && q["outbox"]["pending"] == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the outbox did not drain within {within:?}: {q}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create(user: &User, project: &str, body: Value) -> String {
    let (status, doc) = user.call(Method::POST, &format!("/api/v1/projects/{project}/documents"), Some(body)).await;
    assert_eq!(status, 201, "{doc}");
    doc["id"].as_str().unwrap().to_owned()
}

async fn search(user: &User, project: &str, body: Value) -> (u16, Value) {
    user.call(Method::POST, &format!("/api/v1/projects/{project}/documents/search"), Some(body)).await
}

fn ids(results: &Value) -> Vec<String> {
    results["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

/// The project's scope as `user` (through the real membership check).
async fn scope_of(app: &TestApp, user: &User, project: &str) -> VectorScope {
    VectorScope::from(&support::scope::of(app, user, project).await)
}

/// Every document id the index holds for the project.
async fn indexed(app: &TestApp, scope: VectorScope) -> HashSet<String> {
    let mut all = HashSet::new();
    let mut from = None;
    loop {
        let (page, next) = app.deps.vectors.scroll(scope, from, 100).await.unwrap();
        all.extend(page.into_iter().map(|id| id.to_string()));
        match next {
            Some(next) => from = Some(next),
            None => return all,
        }
    }
}

#[tokio::test]
async fn searches_in_one_project_never_return_another_projects_documents() {
    for engine in engines() {
        isolation(&engine).await;
    }
}

async fn isolation(engine: &Engine) {
    let db = TestDatabase::create().await;
    let app = serve(&db, engine, &[]).await;
    let alice = support::session::login(&app, "alice@vectors.test").await;
    let bob = support::session::login(&app, "bob@vectors.test").await;
    let a = alice.project("A").await;
    let b = bob.project("B").await;
    let mut in_b = HashSet::new();
    for i in 0..20u64 {
        let language = if i % 2 == 0 { "en" } else { "de" };
        // Identical embeddings (and titles) in both projects.
        let doc = json!({ "title": format!("doc {i}"), "content": "shared words", "language": language, "embedding": vector(i) });
        create(&alice, &a, doc.clone()).await;
        in_b.insert(create(&bob, &b, doc).await);
    }
    drained(&app, Duration::from_secs(20)).await;

    for language in [None, Some("en"), Some("de"), Some("fr")] {
        let matching = match language {
            None => 20,
            Some("fr") => 0,
            Some(_) => 10,
        };
        for limit in [1, 5, 10, 20, 100] {
            for seed in [0u64, 7, 13] {
                let mut body = json!({ "vector": vector(seed), "limit": limit });
                if let Some(l) = language {
                    body["language"] = json!(l);
                }
                let (status, found) = search(&bob, &b, body).await;
                assert_eq!(status, 200, "{found}");
                let found = ids(&found);
                assert_eq!(found.len(), matching.min(limit), "{}: language {language:?}, limit {limit}", engine.name());
                assert!(found.iter().all(|id| in_b.contains(id)), "{}: a result outside project B: {found:?}", engine.name());
            }
        }
    }

    // Hybrid and text searches are scoped too.
    let (_, found) = search(&bob, &b, json!({ "vector": vector(3), "text": "shared", "limit": 100 })).await;
    assert_eq!(ids(&found).len(), 20);
    assert!(ids(&found).iter().all(|id| in_b.contains(id)));

    // A forged filter or project in the body is refused, not merged.
    let a_filter = json!({ "must": [{ "key": "project_id", "match": { "value": a } }] });
    for forged in [
        json!({ "vector": vector(1), "filter": a_filter }),
        json!({ "vector": vector(1), "project_id": a }),
        json!({ "vector": vector(1), "should": [{ "key": "project_id", "match": { "value": a } }] }),
    ] {
        let (status, problem) = search(&bob, &b, forged).await;
        assert_eq!(status, 400, "{problem}");
    }
    // Another project's member: 404, as if it did not exist.
    let (status, _) = search(&alice, &b, json!({ "vector": vector(1) })).await;
    assert_eq!(status, 404);

    // The index itself answers per project.
    let (scope_a, scope_b) = (scope_of(&app, &alice, &a).await, scope_of(&app, &bob, &b).await);
    assert_eq!(app.deps.vectors.count(scope_a).await.unwrap(), 20);
    assert_eq!(indexed(&app, scope_b).await, in_b);
}

/// How a scenario takes the index away and brings it back.
enum Outage {
    /// The embedded engine's folder is a file: it cannot be opened.
    Blocked(std::path::PathBuf),
    /// A Qdrant server behind a proxy that is down.
    Proxied(jeex_e2e::net::Proxy),
}

#[tokio::test]
async fn writes_succeed_while_the_index_is_away_and_it_catches_up_exactly() {
    for engine in engines() {
        let (engine, mut outage) = match engine {
            Engine::Embedded(dir) => {
                std::fs::write(dir.join("vectors"), b"not a folder").unwrap();
                (Engine::Embedded(dir.clone()), Outage::Blocked(dir.join("vectors")))
            }
            Engine::Server { url, collection } => {
                let addr = url.trim_start_matches("http://").trim_end_matches('/').to_owned();
                let proxy = jeex_e2e::net::Proxy::down(&addr);
                (Engine::Server { url: format!("http://127.0.0.1:{}", proxy.port), collection }, Outage::Proxied(proxy))
            }
        };
        outbox_across_an_outage(&engine, &mut outage).await;
    }
}

async fn outbox_across_an_outage(engine: &Engine, outage: &mut Outage) {
    let db = TestDatabase::create().await;
    let app = serve(&db, engine, &[]).await;
    let bob = support::session::login(&app, "bob@outbox.test").await;
    let p = bob.project("P").await;
    assert_eq!(qdrant(&health(&app).await)["status"], "unhealthy");
    let docs = format!("/api/v1/projects/{p}/documents");

    // 500 writes: 300 creates with embeddings, 50 new embeddings, 50 content changes without
    // one (stale), 50 deletes, 50 creates without embeddings.
    let mut id = Vec::new();
    for i in 0..300u64 {
        let language = ["en", "de", "fr"][i as usize % 3];
        id.push(
            create(
                &bob,
                &p,
                json!({ "title": format!("d{i}"), "content": format!("body {i}"), "language": language, "embedding": vector(i) }),
            )
            .await,
        );
    }
    for (i, doc_id) in id.iter().enumerate().take(50) {
        let (status, doc) =
            bob.call(Method::PATCH, &format!("{docs}/{doc_id}"), Some(json!({ "embedding": vector(1000 + i as u64) }))).await;
        assert_eq!((status, doc["embedding_status"].as_str()), (200, Some("current")), "{doc}");
    }
    for doc_id in &id[50..100] {
        let (status, doc) = bob.call(Method::PATCH, &format!("{docs}/{doc_id}"), Some(json!({ "content": "rewritten" }))).await;
        assert_eq!((status, doc["embedding_status"].as_str()), (200, Some("stale")), "{doc}");
    }
    for doc_id in &id[100..150] {
        let (status, _) = bob.call(Method::DELETE, &format!("{docs}/{doc_id}"), None).await;
        assert_eq!(status, 204);
    }
    for i in 0..50 {
        create(&bob, &p, json!({ "title": format!("plain {i}") })).await;
    }

    let q = qdrant(&health(&app).await);
    assert_eq!(q["status"], "unhealthy", "{q}");
    assert!(q["outbox"]["pending"].as_i64().unwrap() >= 450, "every vector change waits in the outbox: {q}");
    assert_eq!(q["engine"], engine.name());

    match outage {
        Outage::Blocked(file) => std::fs::remove_file(file).unwrap(),
        Outage::Proxied(proxy) => proxy.up().await,
    }
    // The worker backs off up to 30 s between attempts while the index is away.
    drained(&app, Duration::from_secs(60)).await;

    let expected: HashSet<String> = id[0..50].iter().chain(&id[150..300]).cloned().collect();
    let scope = scope_of(&app, &bob, &p).await;
    assert_eq!(indexed(&app, scope).await, expected, "{}: the index holds exactly the live vectors", engine.name());
    // …and each holds its current vector: its own embedding finds it first, with similarity 1.
    for (i, doc) in id.iter().enumerate().filter(|(i, _)| *i < 50 || *i >= 150) {
        let current = if i < 50 { vector(1000 + i as u64) } else { vector(i as u64) };
        let (_, found) = search(&bob, &p, json!({ "vector": current, "limit": 1 })).await;
        assert_eq!(found["results"][0]["id"], json!(doc), "{found}");
        assert!(found["results"][0]["score"].as_f64().unwrap() > 0.999, "{found}");
    }
}

#[tokio::test]
async fn bad_embeddings_are_refused_naming_the_field_and_a_collection_of_another_shape_refuses_start_up() {
    let db = TestDatabase::create().await;
    let dir = temp_dir();
    let engine = Engine::Embedded(dir.clone());
    let app = serve(&db, &engine, &[]).await;
    let bob = support::session::login(&app, "bob@shape.test").await;
    let p = bob.project("P").await;
    let docs = format!("/api/v1/projects/{p}/documents");

    let field = |problem: &Value| problem["errors"][0]["field"].as_str().unwrap_or_default().to_owned();
    let (status, problem) = bob.call(Method::POST, &docs, Some(json!({ "title": "t", "embedding": vec![0.1; 7] }))).await;
    assert_eq!((status, field(&problem)), (400, "/embedding".to_owned()), "{problem}");
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("exactly 8"), "{problem}");
    let mut huge = vector(1);
    huge[3] = 1e39; // finite in JSON, infinite as a 32-bit float
    let (status, problem) = bob.call(Method::POST, &docs, Some(json!({ "title": "t", "embedding": huge }))).await;
    assert_eq!((status, field(&problem)), (400, "/embedding/3".to_owned()), "{problem}");
    let (status, problem) = bob.call(Method::POST, &docs, Some(json!({ "title": "t", "embedding": [1, 2, "x", 4, 5, 6, 7, 8] }))).await;
    assert_eq!(status, 400, "{problem}");
    let good = create(&bob, &p, json!({ "title": "t", "embedding": vector(1) })).await;
    let (status, problem) = bob.call(Method::PATCH, &format!("{docs}/{good}"), Some(json!({ "embedding": vec![0.5; 9] }))).await;
    assert_eq!((status, field(&problem)), (400, "/embedding".to_owned()), "{problem}");
    let (status, problem) = search(&bob, &p, json!({ "vector": vec![0.5; 3] })).await;
    assert_eq!((status, field(&problem)), (400, "/vector".to_owned()), "{problem}");
    let (status, problem) = search(&bob, &p, json!({ "vector": vector(1), "limit": 101 })).await;
    assert_eq!((status, field(&problem)), (400, "/limit".to_owned()), "{problem}");
    let (status, problem) = search(&bob, &p, json!({})).await;
    assert_eq!((status, field(&problem)), (400, "/vector".to_owned()), "{problem}");
    let (status, problem) = search(&bob, &p, json!({ "text": "x", "score_threshold": 0.5 })).await;
    assert_eq!((status, field(&problem)), (400, "/score_threshold".to_owned()), "{problem}");
    // Nothing half-written: only the good document exists.
    let (_, list) = bob.call(Method::GET, &docs, None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    drained(&app, Duration::from_secs(20)).await;
    app.shutdown().await;

    // The same folder with another dimension or distance: refused, saying what to do.
    for (dim, distance) in [(16, VectorDistance::Cosine), (8, VectorDistance::Dot)] {
        let config = VectorConfig { engine: VectorEngine::Embedded(dir.join("vectors")), collection: "c".into(), dim, distance };
        let refused = VectorIndex::new(&config).unwrap().prepare().await;
        let Err(IndexError::Mismatch(message)) = refused else { panic!("expected a refusal, got {refused:?}") };
        assert!(message.contains("8-dimensional cosine") && message.contains("JEEX_VECTOR_DIM"), "{message}");
    }
}

#[tokio::test]
async fn a_reindex_after_the_index_folder_is_deleted_restores_identical_results() {
    let db = TestDatabase::create().await;
    let dir = temp_dir();
    let engine = Engine::Embedded(dir.clone());
    let app = serve(&db, &engine, &[]).await;
    let bob = support::session::login(&app, "bob@reindex.test").await;
    let p = bob.project("P").await;
    for i in 0..120u64 {
        let language = if i % 4 == 0 { "de" } else { "en" };
        create(
            &bob,
            &p,
            json!({ "title": format!("d{i}"), "content": format!("topic {}", i % 7), "language": language, "embedding": vector(i) }),
        )
        .await;
    }
    drained(&app, Duration::from_secs(20)).await;
    let queries = [
        json!({ "vector": vector(5), "limit": 20 }),
        json!({ "vector": vector(77), "language": "de", "limit": 10 }),
        json!({ "vector": vector(9), "text": "topic", "limit": 30 }),
    ];
    let mut before = Vec::new();
    for q in &queries {
        let (status, found) = search(&bob, &p, q.clone()).await;
        assert_eq!(status, 200, "{found}");
        before.push(found);
    }
    app.shutdown().await;

    std::fs::remove_dir_all(dir.join("vectors")).unwrap();
    let app = serve(&db, &engine, &[]).await;
    let bob = support::session::login(&app, "bob@reindex.test").await;
    let (_, empty) = search(&bob, &p, queries[0].clone()).await;
    assert_eq!(ids(&empty).len(), 0, "the new folder starts empty: {empty}");

    let (status, op) =
        bob.call(Method::POST, &format!("/api/v1/projects/{p}/operations"), Some(json!({ "kind": "documents.reindex" }))).await;
    assert_eq!(status, 202, "{op}");
    let op_path = format!("/api/v1/projects/{p}/operations/{}", op["id"].as_str().unwrap());
    // Its event stream: the history from `queued`, progress while it runs, and the end.
    let stream = bob.req(Method::GET, &format!("{op_path}/events")).send().await.unwrap();
    let events = tokio::time::timeout(Duration::from_secs(30), stream.text()).await.expect("the stream ends with the operation").unwrap();
    let kinds: Vec<&str> = events.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(kinds.last(), Some(&"operation.succeeded"), "{events}");
    assert!(kinds.contains(&"operation.progress"), "{events}");
    assert!(events.contains(r#""progress":100"#), "{events}");
    let (status, result) = bob.call(Method::GET, &format!("{op_path}/result"), None).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!((result["indexed"].as_i64(), result["removed"].as_i64()), (Some(120), Some(0)), "{result}");
    for (q, expected) in queries.iter().zip(&before) {
        let (_, found) = search(&bob, &p, q.clone()).await;
        assert_eq!(&found, expected, "identical results after the reindex for {q}");
    }
}

#[tokio::test]
async fn language_filter_text_fallback_and_hybrid_search() {
    for engine in engines() {
        modes(&engine).await;
    }
}

async fn modes(engine: &Engine) {
    let db = TestDatabase::create().await;
    let app = serve(&db, engine, &[]).await;
    let bob = support::session::login(&app, "bob@modes.test").await;
    let p = bob.project("P").await;
    let near = |delta: f64| vector(42).into_iter().map(|v| v + delta).collect::<Vec<f64>>();
    let revenue = create(
        &bob,
        &p,
        json!({ "title": "Quarterly revenue report", "content": "Revenue grew in the north.", "language": "en", "embedding": vector(1) }),
    )
    .await;
    let offsite = create(
        &bob,
        &p,
        json!({ "title": "Team offsite", "content": "Agenda for the offsite.", "language": "en", "embedding": near(0.01) }),
    )
    .await;
    let umsatz = create(
        &bob,
        &p,
        json!({ "title": "Umsatzbericht", "content": "Der Umsatz wuchs im Norden.", "language": "de", "embedding": near(0.02) }),
    )
    .await;
    let forecast =
        create(&bob, &p, json!({ "title": "Forecast", "content": "The revenue forecast for next year.", "language": "en" })).await;
    drained(&app, Duration::from_secs(20)).await;

    // Vector: nearest first; the language filter keeps only that language.
    let (_, found) = search(&bob, &p, json!({ "vector": near(0.0) })).await;
    assert_eq!(found["mode"], "vector");
    assert_eq!(ids(&found)[..2], [offsite.clone(), umsatz.clone()]);
    assert_eq!(ids(&found).len(), 3, "the document without an embedding is not a neighbour");
    let (_, found) = search(&bob, &p, json!({ "vector": near(0.0), "language": "de" })).await;
    assert_eq!(ids(&found), std::slice::from_ref(&umsatz));
    let (_, found) = search(&bob, &p, json!({ "vector": near(0.0), "language": "en" })).await;
    assert_eq!(ids(&found), [offsite.clone(), revenue.clone()]);
    let (_, found) = search(&bob, &p, json!({ "vector": near(0.0), "score_threshold": 0.99 })).await;
    assert_eq!(ids(&found), [offsite.clone(), umsatz.clone()], "the threshold drops the far one");

    // Text only: PostgreSQL full-text ranking, documents without vectors included.
    let (_, found) = search(&bob, &p, json!({ "text": "revenue" })).await;
    assert_eq!(found["mode"], "text");
    assert_eq!(ids(&found).into_iter().collect::<HashSet<_>>(), HashSet::from([revenue.clone(), forecast.clone()]));
    assert!(found["results"][0]["snippet"].as_str().unwrap().contains("**"), "the snippet marks the match: {found}");
    let (_, found) = search(&bob, &p, json!({ "text": "Umsatz", "language": "de" })).await;
    assert_eq!(ids(&found), std::slice::from_ref(&umsatz));
    let (_, found) = search(&bob, &p, json!({ "text": "revenue", "language": "de" })).await;
    assert!(ids(&found).is_empty());

    // Both: fused; some results found by one ranking, some by the other, one by both.
    let (_, found) = search(&bob, &p, json!({ "vector": near(0.0), "text": "revenue" })).await;
    assert_eq!(found["mode"], "hybrid");
    let matched = |id: &str| found["results"].as_array().unwrap().iter().find(|r| r["id"] == id).map(|r| r["matched_by"].clone());
    assert_eq!(matched(&offsite), Some(json!(["vector"])));
    assert_eq!(matched(&forecast), Some(json!(["text"])));
    assert_eq!(matched(&revenue), Some(json!(["vector", "text"])));
    assert_eq!(ids(&found)[0], revenue, "found by both, it ranks first: {found}");

    // Content changed without a new embedding: stale, and out of the index.
    let (_, doc) =
        bob.call(Method::PATCH, &format!("/api/v1/projects/{p}/documents/{offsite}"), Some(json!({ "content": "New agenda." }))).await;
    assert_eq!(doc["embedding_status"], "stale");
    drained(&app, Duration::from_secs(20)).await;
    let (_, found) = search(&bob, &p, json!({ "vector": near(0.0) })).await;
    assert_eq!(ids(&found), [umsatz, revenue]);
}

/// Starts an operation in `project` and waits until it succeeds; its result.
async fn run_operation(user: &User, project: &str, body: Value) -> Value {
    let ops = format!("/api/v1/projects/{project}/operations");
    let (status, op) = user.call(Method::POST, &ops, Some(body)).await;
    assert_eq!(status, 202, "{op}");
    let path = format!("{ops}/{}", op["id"].as_str().unwrap());
    let op = user
        .wait_for(&path, Duration::from_secs(20), |op| matches!(op["status"].as_str(), Some("succeeded" | "failed" | "cancelled")))
        .await;
    assert_eq!(op["status"], "succeeded", "{op}");
    user.call(Method::GET, &format!("{path}/result"), None).await.1
}

#[tokio::test]
async fn an_export_carries_embeddings_and_importing_it_elsewhere_restores_the_same_search() {
    for engine in engines() {
        export_and_import(&engine).await;
    }
}

async fn export_and_import(engine: &Engine) {
    let db = TestDatabase::create().await;
    let app = serve(&db, engine, &[]).await;
    let alice = support::session::login(&app, "alice@vectors.test").await;
    let (a, b) = (alice.project("Source").await, alice.project("Copy").await);

    // An import may carry embeddings; one without any is kept, just not indexed.
    let mut documents: Vec<Value> =
        (0..6u64).map(|i| json!({ "title": format!("doc {i}"), "content": "words", "language": "en", "embedding": vector(i) })).collect();
    documents.push(json!({ "title": "no vector", "content": "words" }));
    let bad = json!({ "kind": "documents.import", "input": { "documents": [{ "title": "short", "embedding": [0.5] }] } });
    let (status, problem) = alice.call(Method::POST, &format!("/api/v1/projects/{a}/operations"), Some(bad)).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "/input/documents/0/embedding", "{problem}");
    run_operation(&alice, &a, json!({ "kind": "documents.import", "input": { "documents": documents } })).await;
    drained(&app, Duration::from_secs(20)).await;
    let (_, found) = search(&alice, &a, json!({ "vector": vector(4), "limit": 10 })).await;
    let titles =
        |found: &Value| found["results"].as_array().unwrap().iter().map(|r| r["title"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let source_titles = titles(&found);
    assert_eq!((source_titles.len(), source_titles[0].as_str()), (6, "doc 4"), "{found}");

    // The export holds each embedding as stored (32-bit floats).
    let bundle = run_operation(&alice, &a, json!({ "kind": "project.export" })).await;
    let exported = bundle["documents"].as_array().unwrap();
    assert_eq!(exported.len(), 7);
    for doc in exported {
        let title = doc["title"].as_str().unwrap();
        match title.strip_prefix("doc ") {
            Some(i) => {
                let stored: Vec<f32> = serde_json::from_value(doc["embedding"].clone()).unwrap();
                let given: Vec<f32> = vector(i.parse().unwrap()).into_iter().map(|v| v as f32).collect();
                assert_eq!(stored, given, "{title}");
            }
            None => assert!(doc["embedding"].is_null(), "{doc}"),
        }
    }

    // The bundle, imported as it stands into another project: the same documents answer the
    // same search there.
    run_operation(&alice, &b, json!({ "kind": "documents.import", "input": bundle })).await;
    drained(&app, Duration::from_secs(20)).await;
    let (_, found) = search(&alice, &b, json!({ "vector": vector(4), "limit": 10 })).await;
    assert_eq!(titles(&found), source_titles, "{found}");
    let (scope_a, scope_b) = (scope_of(&app, &alice, &a).await, scope_of(&app, &alice, &b).await);
    assert!(indexed(&app, scope_a).await.is_disjoint(&indexed(&app, scope_b).await), "the copy has documents of its own");
    assert_eq!(app.deps.vectors.count(scope_b).await.unwrap(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_waiting_on_a_slow_index_holds_no_database_connection() {
    let db = TestDatabase::create().await;
    // The kernel accepts connections here and nobody ever answers: every index call waits
    // out JEEX_QDRANT_TIMEOUT.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let app = start(config(&[
        ("DATABASE_URL", &db.app_url),
        ("JEEX_VECTOR_DIM", "8"),
        ("QDRANT_URL", &url),
        ("JEEX_QDRANT_TIMEOUT", "3s"),
        ("JEEX_DB_POOL_SIZE", "2"),
        ("JEEX_DB_POOL_MAX_OVERFLOW", "0"),
        ("JEEX_DB_ACQUIRE_TIMEOUT", "10s"),
    ]))
    .await;
    let alice = support::session::login(&app, "alice@vectors.test").await;
    let p = alice.project("Slow index").await;

    // As many searches as the pool has connections wait on the index; meanwhile another
    // request still gets a connection at once.
    let waiting = async {
        let started = Instant::now();
        let (a, b) = tokio::join!(search(&alice, &p, json!({ "vector": vector(1) })), search(&alice, &p, json!({ "vector": vector(2) })));
        (a.0, b.0, started.elapsed())
    };
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let asked = Instant::now();
        let (status, _) = alice.call(Method::GET, &format!("/api/v1/projects/{p}"), None).await;
        (status, asked.elapsed())
    };
    let ((a, b, searching), (status, answered)) = tokio::join!(waiting, meanwhile);
    assert_eq!((a, b), (503, 503), "the index never answered");
    assert!(searching >= Duration::from_secs(3), "the searches waited for the index: {searching:?}");
    assert_eq!(status, 200);
    assert!(answered < Duration::from_secs(1), "a request waited {answered:?} for a connection held by a search");
    drop(silent);
}
