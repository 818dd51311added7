//! Issue 23, acceptance 1: hostile input, table-driven, against the real binary on a database
//! of its own. Every endpoint that takes a body gets every hostile variant of a body it would
//! otherwise accept (NUL in values and keys, lone surrogates, nesting 100,000 deep in known and
//! ignored fields, out-of-range and non-finite numbers, 10 MB strings, duplicate keys, a BOM,
//! invalid UTF-8, wrong content types), and every endpoint that takes a query gets hostile
//! queries. Each answer is a 4xx problem document; afterwards no table has changed and the
//! server has logged no ERROR line.

use jeex_e2e::{
    binary::{Server, run},
    http::{exchange, json as answer},
    services::{database_url, redis_url},
};
use reqwest::Client;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

/// Bodies the endpoints accept, with `__V__` where a string value goes.
const BODIES: &[(&str, &str, &str)] = &[
    ("POST", "/api/v1/auth/dev-login", r#"{"email":"__V__"}"#),
    ("POST", "/api/v1/auth/refresh", r#"{"refresh_token":"__V__"}"#),
    ("POST", "/api/v1/auth/logout", r#"{"refresh_token":"__V__"}"#),
    ("POST", "/api/v1/projects", r#"{"name":"__V__"}"#),
    ("PATCH", "/api/v1/projects/{p}", r#"{"name":"__V__"}"#),
    ("POST", "/api/v1/projects/{p}/members", r#"{"email":"__V__","role":"viewer"}"#),
    ("POST", "/api/v1/projects/{p}/documents", r#"{"title":"t","metadata":{"k":"__V__"}}"#),
    ("PATCH", "/api/v1/projects/{p}/documents/{d}", r#"{"content":"__V__"}"#),
    ("POST", "/api/v1/projects/{p}/documents/search", r#"{"text":"__V__"}"#),
    ("POST", "/api/v1/projects/{p}/api-keys", r#"{"name":"__V__"}"#),
    // An import: the ignored `id` of an exported document takes any JSON at all.
    ("POST", "/api/v1/projects/{p}/operations", r#"{"kind":"documents.import","input":{"documents":[{"title":"t","id":"__V__"}]}}"#),
    (
        "POST",
        "/api/v1/projects/{p}/operations",
        r#"{"kind":"documents.import","input":{"documents":[{"title":"t","metadata":{"m":"__V__"}}]}}"#,
    ),
];

/// Queries the endpoints take, each hostile.
const QUERIES: &[&str] = &[
    "/api/v1/projects?cursor=a%00b",
    "/api/v1/projects?status=%00",
    "/api/v1/projects?limit=99999999999999999999",
    "/api/v1/projects?limit=-1",
    "/api/v1/projects?limit=1e400",
    "/api/v1/projects?limit=NaN",
    "/api/v1/projects/{p}/documents?q=a%00b",
    "/api/v1/projects/{p}/documents?q=%ED%A0%80",
    "/api/v1/projects/{p}/documents?q=%FF%FE",
    "/api/v1/projects/{p}/documents?limit=0",
    "/api/v1/projects/{p}/members?cursor=%00",
    "/api/v1/projects/{p}/api-keys?limit=101",
    "/api/v1/projects/{p}/audit?cursor=%ED%A0%80",
    "/api/v1/projects/{p}/operations?status=%00",
    "/api/v1/projects/{p}/events?last_event_id=%00",
    "/api/v1/projects/{p}/events?last_event_id=-1-1",
    "/api/v1/projects/{p}/operations/{o}/events?last_event_id=1-%00",
    "/api/v1/projects/{p}/events?ticket=%00",
];

/// Tables whose rows hostile input must never change.
const TABLES: &[&str] = &["users", "projects", "project_members", "documents", "api_keys", "refresh_tokens", "audit_log", "operations"];

/// Each hostile variant of a body template, as (what, content type, bytes).
fn variants(template: &str) -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let with = |value: &str| template.replace("__V__", value).into_bytes();
    let replace_string = |raw: &str| template.replace("\"__V__\"", raw).replace("__V__", "x").into_bytes();
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let json = "application/json";
    let first_key = template.split('"').nth(1).unwrap_or("a").to_owned();
    vec![
        ("NUL escape in a value", json, with("a\\u0000b")),
        ("raw NUL byte in a value", json, with("a\0b")),
        ("NUL in a key", json, template.replacen('{', "{\"k\\u0000\":1,", 1).replace("__V__", "x").into_bytes()),
        ("lone high surrogate", json, with("a\\ud800b")),
        ("lone low surrogate", json, with("\\udc00")),
        ("high surrogate without its low half", json, with("\\ud800\\u0041")),
        ("nesting 100,000 deep in a known field", json, replace_string(&deep)),
        (
            "nesting 100,000 deep in an ignored field",
            json,
            template.replacen('{', &format!("{{\"zz\":{deep},"), 1).replace("__V__", "x").into_bytes(),
        ),
        ("a number beyond f64", json, replace_string("1e400")),
        ("a negative number beyond f64", json, replace_string("-1e400")),
        ("NaN", json, replace_string("NaN")),
        ("Infinity", json, replace_string("Infinity")),
        ("a 10 MB string", json, with(&"x".repeat(10 << 20))),
        ("duplicate keys", json, template.replacen('{', &format!("{{\"{first_key}\":null,"), 1).replace("__V__", "x").into_bytes()),
        ("a byte-order mark", json, [b"\xEF\xBB\xBF".as_slice(), with("x").as_slice()].concat()),
        ("invalid UTF-8", json, [&with("x")[..2], b"\xFF\xFE", &with("x")[2..]].concat()),
        ("text/plain", "text/plain", with("x")),
        ("form data", "application/x-www-form-urlencoded", b"name=x".to_vec()),
        ("no content type", "", with("x")),
    ]
}

/// Status, whether the answer is problem JSON, and its body.
async fn send(addr: &str, method: &str, path: &str, token: &str, content_type: &str, body: Vec<u8>) -> (u16, bool, String) {
    let mut headers = vec![format!("Authorization: Bearer {token}")];
    if !content_type.is_empty() {
        headers.push(format!("Content-Type: {content_type}"));
    }
    let (status, head, body) = exchange(addr, method, path, &headers, body).await;
    (status, head.lines().any(|l| l.eq_ignore_ascii_case("content-type: application/problem+json")), body)
}

async fn counts(db: &str) -> Vec<i64> {
    let mut conn = PgConnection::connect(db).await.unwrap();
    let mut out = Vec::new();
    for table in TABLES {
        out.push(sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut conn).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_a_4xx_problem_and_changes_nothing() {
    // A database of its own: nothing else writes to it while the rows are counted.
    let name = format!("jeex_t_{}", uuid::Uuid::now_v7().simple());
    let mut admin = PgConnection::connect(&database_url()).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
    let (base, _) = database_url().rsplit_once('/').map(|(b, d)| (b.to_owned(), d.to_owned())).unwrap();
    let db = format!("{base}/{name}");
    let (status, out, err) = run(&["migrate"], &[("DATABASE_URL", &db)]);
    assert!(status.success(), "{out}{err}");
    let server = Server::start(&[
        ("DATABASE_URL", &db),
        ("REDIS_URL", &redis_url()),
        ("JEEX_REDIS_PREFIX", &format!("hostile:{}:", uuid::Uuid::now_v7().simple())),
        ("JEEX_RATE_LIMIT_READS", "off"),
        ("JEEX_RATE_LIMIT_WRITES", "off"),
        ("JEEX_RATE_LIMIT_AUTH", "off"),
        ("JEEX_VECTOR_DIM", "4"),
    ]);
    let client = Client::new();
    let pair = answer(client.post(server.url("/api/v1/auth/dev-login")).json(&json!({ "email": "owner@example.com" }))).await;
    let token = pair["access_token"].as_str().unwrap().to_owned();
    let created = |path: String, body: Value| answer(client.post(server.url(&path)).bearer_auth(&token).json(&body));
    let p = created("/api/v1/projects".into(), json!({ "name": "Target" })).await["id"].as_str().unwrap().to_owned();
    let d = created(format!("/api/v1/projects/{p}/documents"), json!({ "title": "Doc" })).await["id"].as_str().unwrap().to_owned();
    let o =
        created(format!("/api/v1/projects/{p}/operations"), json!({ "kind": "project.export" })).await["id"].as_str().unwrap().to_owned();
    // The export runs in the background; let it finish before counting.
    for _ in 0..100 {
        let op = answer(client.get(server.url(&format!("/api/v1/projects/{p}/operations/{o}"))).bearer_auth(&token)).await;
        if op["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let fill = |path: &str| path.replace("{p}", &p).replace("{d}", &d).replace("{o}", &o);
    let before = counts(&db).await;

    let mut cases = 0;
    let mut failures = Vec::new();
    let addr = server.url("").trim_start_matches("http://").to_owned();
    for (method, path, template) in BODIES {
        for (what, content_type, body) in variants(template) {
            let (status, problem, text) = send(&addr, method, &fill(path), &token, content_type, body).await;
            cases += 1;
            if !(400..500).contains(&status) || !problem || serde_json::from_str::<Value>(&text).is_err() {
                failures.push(format!("{method} {path} with {what}: {status} {}", &text[..text.len().min(200)]));
            }
        }
    }
    for query in QUERIES {
        let resp = client.get(server.url(&fill(query))).bearer_auth(&token).send().await.unwrap();
        let status = resp.status().as_u16();
        let problem = resp.headers().get("content-type").is_some_and(|v| v == "application/problem+json");
        cases += 1;
        if !(400..500).contains(&status) || !problem {
            failures.push(format!("GET {query}: {status} {}", resp.text().await.unwrap_or_default()));
        }
    }
    assert!(failures.is_empty(), "{} of {cases} cases were not a 4xx problem:\n{}", failures.len(), failures.join("\n"));
    assert!(cases >= 100, "{cases} cases");
    assert_eq!(counts(&db).await, before, "hostile input changed rows ({TABLES:?})");
    let errors: Vec<String> = server.logs().into_iter().filter(|l| l.contains("\"level\":\"ERROR\"")).collect();
    assert!(errors.is_empty(), "the server logged ERROR lines:\n{}", errors.join("\n"));
    drop(server);
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await.unwrap();
}
