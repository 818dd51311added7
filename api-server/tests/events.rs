//! The event bus against real Redis (and in process): history resumes exactly after an ID,
//! a trimmed history answers reset, live events published on one instance reach another's
//! subscribers through its single shared subscription, and operations publish their life.

mod support;

use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use jeex_api::access::ProjectScope;
use jeex_api::events::{EventBus, History, Retention};
use reqwest::Method;
use serde_json::json;
use support::{db::TestDatabase, scope::project_scopes, session};
use uuid::Uuid;

fn redis_bus(prefix: &str, max_len: usize) -> EventBus {
    let redis = jeex_api::deps::redis::Redis::connect(&jeex_e2e::services::redis_url(), std::time::Duration::from_secs(5)).unwrap();
    EventBus::new(Some((redis.client(), redis.connection())), prefix, Retention { max_len, ttl: Duration::from_secs(60) })
}

fn ids(history: &History) -> Vec<String> {
    match history {
        History::Events(events) => events.iter().map(|e| e.id.clone()).collect(),
        History::Reset(_) => panic!("unexpected reset"),
    }
}

async fn exact_resume(bus: &EventBus, project: &ProjectScope, other: &ProjectScope) {
    let mut published = Vec::new();
    for i in 0..10 {
        published.push(bus.publish(project, "test.tick", None, json!({ "i": i })).await.unwrap().id);
    }
    assert_eq!(ids(&bus.history(project, None).await.unwrap()), published);
    // A client that saw the fourth event, away while 1,000 more are published.
    let seen = published[3].clone();
    for i in 10..1_010 {
        published.push(bus.publish(project, "test.tick", None, json!({ "i": i })).await.unwrap().id);
    }
    let missed = bus.history(project, Some(&seen)).await.unwrap();
    assert_eq!(ids(&missed), published[4..], "exactly the missed events, in order");
    let History::Events(events) = missed else { unreachable!() };
    assert_eq!(events.last().unwrap().data["i"], 1_009);
    assert_eq!(ids(&bus.history(project, Some(published.last().unwrap())).await.unwrap()), Vec::<String>::new());
    // Another project's history is its own.
    assert_eq!(ids(&bus.history(other, None).await.unwrap()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_resumes_exactly_after_an_id_in_redis_and_in_process() {
    let db = TestDatabase::create().await;
    let scopes = project_scopes(&db, 4).await;
    let prefix = format!("ev-test:{}:", Uuid::now_v7().simple());
    exact_resume(&redis_bus(&prefix, 10_000), &scopes[0], &scopes[1]).await;
    exact_resume(&EventBus::new(None, "", Retention { max_len: 10_000, ttl: Duration::from_secs(60) }), &scopes[2], &scopes[3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_older_than_the_history_gets_a_reset() {
    let db = TestDatabase::create().await;
    let scopes = project_scopes(&db, 3).await;
    let prefix = format!("ev-test:{}:", Uuid::now_v7().simple());
    for (bus, project) in
        [redis_bus(&prefix, 10), EventBus::new(None, "", Retention { max_len: 10, ttl: Duration::from_secs(60) })].into_iter().zip(&scopes)
    {
        let first = bus.publish(project, "test.tick", None, json!({})).await.unwrap().id;
        for _ in 0..500 {
            bus.publish(project, "test.tick", None, json!({})).await.unwrap();
        }
        let History::Reset(kept) = bus.history(project, Some(&first)).await.unwrap() else { panic!("no reset") };
        assert!(!kept.is_empty() && kept.len() <= 501, "the reset carries what the history holds: {}", kept.len());
    }
    // A history that expired entirely also resets a resuming client.
    let bus = redis_bus(&prefix, 10);
    assert_eq!(bus.history(&scopes[2], Some("1-0")).await.unwrap(), History::Reset(Vec::new()));
}

/// Issue 24: a history Redis lost (here: its stream deleted, as a restart without persistence
/// does) begins again with a new generation; an ID from the old one — older than the new
/// stream's first entry, or newer than anything it generated — cannot prove continuity and
/// gets a reset carrying the new history's events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_from_a_lost_history_gets_a_reset_with_the_new_events() {
    let db = TestDatabase::create().await;
    let scopes = project_scopes(&db, 1).await;
    let project = &scopes[0];
    let prefix = format!("ev-test:{}:", Uuid::now_v7().simple());
    let bus = redis_bus(&prefix, 10_000);
    let seen = bus.publish(project, "test.old", None, json!({})).await.unwrap().id;
    let mut conn = redis::Client::open(jeex_e2e::services::redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::AsyncCommands::del(&mut conn, format!("{prefix}events:{}", project.project_id())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let new = bus.publish(project, "test.new", None, json!({})).await.unwrap();
    let History::Reset(events) = bus.history(project, Some(&seen)).await.unwrap() else { panic!("no reset for an older generation") };
    assert_eq!(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["test.new"]);
    let History::Reset(_) = bus.history(project, Some("99999999999999-0")).await.unwrap() else {
        panic!("no reset for an ID never generated")
    };
    assert_eq!(bus.history(project, Some(&new.id)).await.unwrap(), History::Events(Vec::new()), "the new generation resumes exactly");
    // In process, a restart is the same: a new bus has no history an earlier ID belongs to.
    let before = EventBus::new(None, "", Retention { max_len: 10, ttl: Duration::from_secs(60) });
    let seen = before.publish(project, "test.old", None, json!({})).await.unwrap().id;
    let after = EventBus::new(None, "", Retention { max_len: 10, ttl: Duration::from_secs(60) });
    assert_eq!(after.history(project, Some(&seen)).await.unwrap(), History::Reset(Vec::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_reach_subscribers_of_another_instance() {
    let prefix = format!("ev-test:{}:", Uuid::now_v7().simple());
    let (one, two) = (redis_bus(&prefix, 1_000), redis_bus(&prefix, 1_000));
    let db = TestDatabase::create().await;
    let scopes = project_scopes(&db, 2).await;
    let (project, other) = (&scopes[0], &scopes[1]);
    let mut rx = two.subscribe(project);
    let mut other_rx = two.subscribe(other);
    tokio::time::sleep(Duration::from_millis(300)).await; // the shared subscription connects
    let sent = one.publish(project, "test.live", None, json!({ "hello": 1 })).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(2), rx.next()).await.expect("delivered").unwrap().unwrap();
    assert_eq!((got.id.clone(), got.data.clone()), (sent.id, json!({ "hello": 1 })));
    assert!(other_rx.next().now_or_never().is_none(), "another project's subscriber receives nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_publish_their_life_in_order() {
    let db = TestDatabase::create().await;
    let app = support::start(support::config(&[("DATABASE_URL", &db.app_url), ("JEEX_IMPORT_BATCH_SIZE", "10")])).await;
    let a = session::login(&app, "ann@example.com").await;
    let p = a.project("Events").await;
    let docs: Vec<_> = (0..30).map(|i| json!({ "title": format!("E{i}") })).collect();
    let (_, op) = a
        .call(
            Method::POST,
            &format!("/api/v1/projects/{p}/operations"),
            Some(json!({ "kind": "documents.import", "input": { "documents": docs } })),
        )
        .await;
    let path = format!("/api/v1/projects/{p}/operations/{}", op["id"].as_str().unwrap());
    a.wait_for(&path, Duration::from_secs(10), |op| op["status"] == "succeeded").await;
    // Read the app's history through a bus on the same Redis prefix.
    let reader = redis_bus(&app.redis_prefix, 1_000);
    let History::Events(events) = reader.history(&support::scope::of(&app, &a, &p).await, None).await.unwrap() else { panic!("reset") };
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["operation.queued", "operation.running", "operation.progress", "operation.progress", "operation.progress", "operation.succeeded"]
    );
    assert!(events.iter().all(|e| e.operation_id.map(|o| o.to_string()) == op["id"].as_str().map(str::to_owned)));
    assert_eq!(events[4].data["progress"], 100);
}
