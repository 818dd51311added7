//! `cargo bench -p jeex-api --bench sse`: 5,000 concurrent SSE clients of one release
//! `jeex-api` instance, subscribed to one project, while events are published at 100/s from
//! another process's bus through Redis. Prints delivery latency p50/p99 (publish to client
//! receipt; target p99 < 50 ms) and the server's resident memory per connection (target
//! <= 20 KiB).

mod common;

use std::{
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use common::{BenchDatabase, Target, free_addr, key, rss_mib, wait_for_200};
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, sync::Barrier};
use uuid::Uuid;

const CLIENTS: usize = 5_000;
const RATE: u64 = 100;
const MEASURE: Duration = Duration::from_secs(10);

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("sse: skipped (run with `cargo bench -p jeex-api --bench sse`)");
        return;
    }
    tokio::runtime::Runtime::new().unwrap().block_on(run());
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_micros() as u64
}

async fn run() {
    let redis_url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/15".into());
    let db = BenchDatabase::create().await;
    let (project, app_url) = (db.project, db.app_url.clone());
    let prefix = format!("ssebench:{}:", Uuid::now_v7().simple());
    let addr = free_addr();
    let child = Command::new(env!("CARGO_BIN_EXE_jeex-api"))
        .arg("serve")
        .env("JEEX_ENV", "production")
        .env("DATABASE_URL", &app_url)
        .env("REDIS_URL", &redis_url)
        .env("JEEX_REDIS_PREFIX", &prefix)
        .env("JEEX_HTTP_ADDR", addr.to_string())
        .env("JEEX_JWT_PRIVATE_KEY", key("k1.key.pem"))
        .env("JEEX_JWT_PUBLIC_KEYS", key("k1.pub.pem"))
        .env("JEEX_RATE_LIMIT_READS", "off")
        .env("JEEX_SSE_MAX_STREAMS_PER_USER", "10000")
        .env("JEEX_WORKERS", "0")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .spawn()
        .expect("start jeex-api");
    std::thread::spawn(move || wait_for_200(addr, "/health/live")).join().expect("jeex-api answers");
    let server = Target { child, addr };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = rss_mib(server.child.id());

    let auth = Arc::new(common::bearer(db.user));
    let path = Arc::new(format!("/api/v1/projects/{project}/events"));

    // Connect every client; each records the latency of every event it receives.
    let connected = Arc::new(Barrier::new(CLIENTS + 1));
    let stop_at = Arc::new(tokio::sync::OnceCell::<Instant>::new());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (auth, path, connected, stop_at) = (auth.clone(), path.clone(), connected.clone(), stop_at.clone());
            tokio::spawn(async move {
                let stream = TcpStream::connect(addr).await.expect("connect");
                let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
                tokio::spawn(conn);
                let req = Request::get(path.as_str())
                    .header("host", "bench")
                    .header("authorization", auth.as_str())
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let resp = sender.send_request(req).await.expect("stream request");
                assert!(resp.status().is_success(), "status {}", resp.status());
                connected.wait().await;
                let mut body = resp.into_body();
                let mut latencies = Vec::new();
                let mut text = String::new();
                loop {
                    let frame = tokio::time::timeout(Duration::from_secs(2), body.frame()).await;
                    let Ok(Some(Ok(frame))) = frame else { break };
                    let Ok(chunk) = frame.into_data() else { continue };
                    let received = now_micros();
                    text.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(end) = text.find("\n\n") {
                        let block: String = text.drain(..end + 2).collect();
                        if let Some(i) = block.find("\"sent\":") {
                            let digits: String = block[i + 7..].chars().take_while(char::is_ascii_digit).collect();
                            if let Ok(sent) = digits.parse::<u64>() {
                                latencies.push(received.saturating_sub(sent));
                            }
                        }
                    }
                    if stop_at.get().is_some_and(|at| Instant::now() >= *at) {
                        break;
                    }
                }
                latencies
            })
        })
        .collect();
    connected.wait().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded_rss = rss_mib(server.child.id());

    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let manager = redis::aio::ConnectionManager::new(client.clone()).await.unwrap();
    let bus = jeex_api::events::EventBus::new(
        Some((client, manager)),
        &prefix,
        jeex_api::events::Retention { max_len: 10_000, ttl: Duration::from_secs(600) },
    );
    let started = Instant::now();
    let total = RATE * MEASURE.as_secs();
    for i in 0..total {
        tokio::time::sleep_until((started + Duration::from_micros(i * 1_000_000 / RATE)).into()).await;
        bus.publish(project, "bench.tick", None, serde_json::json!({ "sent": now_micros() })).await.unwrap();
    }
    let _ = stop_at.set(Instant::now() + Duration::from_secs(1));
    let mut all: Vec<u64> = Vec::new();
    for c in clients {
        all.extend(c.await.unwrap());
    }
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))] as f64 / 1000.0;
    let expected = total as usize * CLIENTS;
    let per_conn_kib = (loaded_rss - idle_rss) * 1024.0 / CLIENTS as f64;
    println!("\n{CLIENTS} SSE clients of one project, {RATE} events/s for {}s through Redis", MEASURE.as_secs());
    println!("delivered {} of {expected} events", all.len());
    if !all.is_empty() {
        let p99 = pct(0.99);
        println!(
            "delivery latency p50 {:.2} ms, p99 {p99:.2} ms (target p99 < 50 ms: {})",
            pct(0.5),
            if p99 < 50.0 { "met" } else { "MISSED" }
        );
    }
    println!(
        "server RSS idle {idle_rss:.1} MiB, with {CLIENTS} streams {loaded_rss:.1} MiB: {per_conn_kib:.1} KiB per connection (target <= 20: {})",
        if per_conn_kib <= 20.0 { "met" } else { "MISSED" }
    );
    drop(server);
    db.drop().await;
}
