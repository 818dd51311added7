//! Issue 24, acceptance 2: events survive a Redis outage. With a Redis server of the test's
//! own stopped (and later started again with its data gone), an import started on one replica
//! finishes; its events wait in PostgreSQL's outbox; once Redis is back they reach a client
//! streaming the project from another replica — every recorded event, in order, once — and
//! both replicas are ready again within seconds.

mod support;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use jeex_e2e::redis_server::RedisServer;
use serde_json::Value;
use sqlx::Connection;
use support::{db::TestDatabase, session, sse::Message};
use uuid::Uuid;

/// Follows `url` as `EventSource` does: whenever the stream ends (or cannot be opened) it
/// reconnects with the last ID it received as `Last-Event-ID`. Every message lands in `into`.
async fn follow(url: String, token: String, into: Arc<Mutex<Vec<Message>>>) {
    let client = support::client();
    let mut last: Option<String> = None;
    loop {
        let mut req = client.get(&url).bearer_auth(&token);
        if let Some(id) = &last {
            req = req.header("Last-Event-ID", id);
        }
        if let Ok(resp) = req.send().await
            && resp.status() == 200
        {
            let mut body = resp.bytes_stream();
            let mut text = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                text.push_str(&String::from_utf8_lossy(&chunk));
                for message in support::sse::drain(&mut text) {
                    if message.id.is_some() {
                        last.clone_from(&message.id);
                    }
                    into.lock().unwrap().push(message);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn of(received: &Mutex<Vec<Message>>, operation: &str) -> Vec<Message> {
    received.lock().unwrap().iter().filter(|m| m.data["operation_id"] == operation).cloned().collect()
}

async fn until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

async fn ready(app: &support::TestApp) -> bool {
    support::client().get(app.url("/health/ready")).send().await.is_ok_and(|r| r.status() == 200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_recorded_while_redis_is_down_reach_another_replica_once_it_is_back() {
    let db = TestDatabase::create().await;
    let mut redis = RedisServer::start();
    let prefix = format!("outage:{}:", Uuid::now_v7().simple());
    let url = redis.url();
    let common = [("DATABASE_URL", db.app_url.as_str()), ("REDIS_URL", url.as_str()), ("JEEX_REDIS_PREFIX", prefix.as_str())];
    let with = |extra: (&'static str, &'static str)| {
        let mut vars: Vec<(&str, &str)> = common.to_vec();
        vars.extend([("JEEX_IMPORT_BATCH_SIZE", "25"), extra]);
        support::config(&vars)
    };
    // The runner runs operations; the streamer runs none and only streams.
    let runner = support::start(with(("JEEX_WORKERS", "2"))).await;
    let streamer = support::start(with(("JEEX_WORKERS", "0"))).await;
    let on_runner = session::login(&runner, "outage@example.com").await;
    let on_streamer = session::login(&streamer, "outage@example.com").await;
    let p = on_runner.project("Outage").await;
    let received = Arc::new(Mutex::new(Vec::new()));
    let following =
        tokio::spawn(follow(streamer.url(&format!("/api/v1/projects/{p}/events")), on_streamer.token.clone(), received.clone()));

    // Before the outage: the client holds a Last-Event-ID of the history Redis will lose.
    let before = on_runner.import(&p, 50).await;
    assert!(
        until(Duration::from_secs(20), || of(&received, &before).iter().any(|m| m.event == "operation.succeeded")).await,
        "the first import's events arrive while Redis is up: {:?}",
        received.lock().unwrap()
    );

    redis.stop();
    let during = on_runner.import(&p, 200).await;
    let op_path = format!("/api/v1/projects/{p}/operations/{during}");
    let op = on_runner.wait_for(&op_path, Duration::from_secs(30), |op| op["status"] == "succeeded").await;
    assert_eq!(op["progress"], 100, "the operation finished while Redis was down");
    // What was recorded for it: the relay cannot move it yet.
    let mut owner = sqlx::PgConnection::connect(&db.owner_url).await.unwrap();
    let recorded: Vec<(String, Value)> = sqlx::query_as("SELECT kind, data FROM event_outbox WHERE operation_id = $1 ORDER BY seq")
        .bind(Uuid::parse_str(&during).unwrap())
        .fetch_all(&mut owner)
        .await
        .unwrap();
    let kinds: Vec<&str> = recorded.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"operation.queued"), "{kinds:?}");
    assert_eq!(kinds.get(1), Some(&"operation.running"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "operation.progress").count(), 8, "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"operation.succeeded"), "{kinds:?}");
    assert!(of(&received, &during).is_empty(), "nothing was delivered while Redis was down");

    // Redis returns, empty.
    redis.restart();
    let back = Instant::now();
    let mut both = false;
    while !both && back.elapsed() < Duration::from_secs(5) {
        both = ready(&runner).await && ready(&streamer).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(both, "both replicas are ready within 5 s of Redis returning");
    let ready_after = back.elapsed();
    assert!(
        until(Duration::from_secs(15), || of(&received, &during).iter().any(|m| m.event == "operation.succeeded")).await,
        "the events reach the other replica's stream after Redis returns: {:?}",
        received.lock().unwrap()
    );
    let delivered_after = back.elapsed();
    following.abort();

    // Every recorded event, in order, once; a reset (this client's ID is from the lost history)
    // may come first.
    let got = of(&received, &during);
    let streamed: Vec<(String, Value)> = got.iter().map(|m| (m.event.clone(), m.data["data"].clone())).collect();
    assert_eq!(streamed, recorded, "the stream carries exactly what was recorded");
    let all = received.lock().unwrap().clone();
    let ids: Vec<&String> = all.iter().filter_map(|m| m.id.as_ref()).collect();
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no event twice");
    let resets = all.iter().filter(|m| m.event == "reset").count();
    assert!(resets <= 1, "{resets} resets");
    let first_after = all.iter().position(|m| m.data["operation_id"] == during.as_str()).unwrap();
    let first_reset = all.iter().position(|m| m.event == "reset");
    assert!(first_reset.is_none_or(|r| r < first_after), "a reset, if any, comes before the events");
    let outbox_left: i64 = sqlx::query_scalar("SELECT count(*) FROM event_outbox").fetch_one(&mut owner).await.unwrap();
    assert_eq!(outbox_left, 0, "the outbox is drained");
    println!("ready {ready_after:?} and delivered {delivered_after:?} after Redis returned; resets: {resets}");
    runner.shutdown().await;
    streamer.shutdown().await;
}
