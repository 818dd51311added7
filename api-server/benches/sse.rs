//! `cargo bench -p jeex-api --bench sse`: 5,000 concurrent SSE clients of one release
//! `jeex-api` instance, subscribed to one project, while events are published at 100/s from
//! another process's bus through Redis. Prints delivery latency p50/p99 (publish to client
//! receipt; target p99 < 50 ms) and the server's resident memory per connection (target
//! <= 20 KiB).

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use common::{BenchDatabase, cpu_time, free_addr, rss_mib, serve_command, spawn, wait_for_200};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{Barrier, Semaphore},
};
use uuid::Uuid;

const CLIENTS: usize = 5_000;
const RATE: u64 = 100;
const MEASURE: Duration = Duration::from_secs(10);
/// Connections being opened at once.
const CONNECTING: usize = 64;

fn main() {
    common::run_bench("sse", run);
}

/// The `"sent":<micros>` stamps in a run of complete messages.
fn sent_stamps(text: &[u8]) -> impl Iterator<Item = u64> + '_ {
    const KEY: &[u8] = b"\"sent\":";
    let mut rest = text;
    std::iter::from_fn(move || {
        let at = rest.windows(KEY.len()).position(|w| w == KEY)?;
        rest = &rest[at + KEY.len()..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let value = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok();
        rest = &rest[digits..];
        value
    })
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
    let (mut cmd, data_dir) = serve_command(addr);
    cmd.env("DATABASE_URL", &app_url)
        .env("REDIS_URL", &redis_url)
        .env("JEEX_REDIS_PREFIX", &prefix)
        .env("JEEX_RATE_LIMIT_READS", "off")
        .env("JEEX_SSE_MAX_STREAMS_PER_USER", "10000")
        .env("JEEX_WORKERS", "0");
    let server = spawn(cmd, data_dir, addr);
    std::thread::spawn(move || wait_for_200(addr, "/health/live")).join().expect("jeex-api answers");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = rss_mib(server.child.id());

    let auth = Arc::new(common::bearer(db.user));
    let path = Arc::new(format!("/api/v1/projects/{project}/events"));

    // Connect every client, a few at a time (so the figure is what an open stream holds, not the
    // transient peak of 5,000 simultaneous handshakes); each records the latency of every event.
    let gate = Arc::new(Semaphore::new(CONNECTING));
    let connected = Arc::new(Barrier::new(CLIENTS + 1));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (auth, path, connected, gate) = (auth.clone(), path.clone(), connected.clone(), gate.clone());
            tokio::spawn(async move {
                let permit = gate.acquire_owned().await.unwrap();
                // A raw HTTP/1.1 client: one task and one read per wake-up, so the load
                // generator takes as little of the two cores as it can.
                let mut stream = TcpStream::connect(addr).await.expect("connect");
                stream.set_nodelay(true).unwrap();
                let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: {auth}\r\n\r\n");
                stream.write_all(request.as_bytes()).await.expect("send the request");
                let mut buf = vec![0u8; 16 * 1024];
                let n = stream.read(&mut buf).await.expect("response head");
                assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
                drop(permit);
                connected.wait().await;
                let mut latencies = Vec::with_capacity((RATE * MEASURE.as_secs()) as usize);
                // Bytes after the last complete message (chunk framing is never mistaken for
                // a stamp, so it needs no parsing).
                let mut carry: Vec<u8> = Vec::new();
                // The stream ends when the server is stopped after the last event.
                loop {
                    let n = match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let received = now_micros();
                    carry.extend_from_slice(&buf[..n]);
                    let Some(end) = carry.windows(2).rposition(|w| w == b"\n\n") else { continue };
                    latencies.extend(sent_stamps(&carry[..end]).map(|sent| received.saturating_sub(sent)));
                    carry.drain(..end + 2);
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
    eprintln!("sse bench: {CLIENTS} clients connected; publishing");
    let (server_cpu, own_cpu) = (cpu_time(server.child.id()), cpu_time(std::process::id()));
    let started = Instant::now();
    let total = RATE * MEASURE.as_secs();
    for i in 0..total {
        tokio::time::sleep_until((started + Duration::from_micros(i * 1_000_000 / RATE)).into()).await;
        bus.publish(project, "bench.tick", None, serde_json::json!({ "sent": now_micros() })).await.unwrap();
    }
    let publishing = started.elapsed().as_secs_f64();
    let server_cores = (cpu_time(server.child.id()) - server_cpu).as_secs_f64() / publishing;
    let generator_cores = (cpu_time(std::process::id()) - own_cpu).as_secs_f64() / publishing;
    // Let the last events arrive, then stop the server: every stream ends.
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(server);
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
    println!("while publishing: server {server_cores:.2} cores, load generator {generator_cores:.2} cores (of 2)");
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
    db.drop().await;
}
