//! `cargo bench -p jeex-api --bench data`: the data path with auth, the membership check and
//! row-level security, against bare single statements, in the same run.
//!
//! 1. Throughput: `GET /api/v1/projects/{id}` and `POST /api/v1/projects/{id}/documents`
//!    through the release `jeex-api` (JWT verified, membership and role checked, RLS settings
//!    applied, audit row written), closed loop; versus the least PostgreSQL can do for each,
//!    from tasks on a pool of the same size and kind (the server's own, [`jeex_api::access::Pool`])
//!    in this process: the single prepared `SELECT` of the same row, and the single prepared statement inserting a document and its audit row (both
//!    as the owner, so without row-level security or any check). Prints the ratio (target for
//!    the read >= 0.5). Also, for the read, the ceiling that row-level security as it stands
//!    sets any design: the same `SELECT`, as the server's role, in one statement that applies the
//!    scope's settings and nothing else (no membership check, no function), on a pool of the
//!    same size. Its ratio to the owner's `SELECT` is the most a scoped read can reach while the
//!    policies read per-transaction settings. And the owner's `SELECT` once more on sqlx's own
//!    pool, which sends a `Sync` and waits for its answer each time it takes a connection back
//!    (the baseline of earlier runs). And HTTP's own floor: `GET /health/live` on the same
//!    server from the same clients (no token check, no database), the most any endpoint here
//!    can reach against the same baseline.
//! 2. Round trips to PostgreSQL per request, counted on the wire by a proxy in this process
//!    ([`common::round_trips`]) in front of a third instance (targets: 1 for the read, at most
//!    2 for the write).
//! 3. The Redis rate limiter: `GET /api/v1/projects/{id}` on a second instance with the limiter
//!    on (Redis, a quota never reached) against the first with it off, measured in turns
//!    (off, on, on, off, …) so that the machine's drift during the run weighs on both alike.
//!    Prints the ratio (target >= 0.8).
//! 4. Latency: both endpoints at a fixed 1,000 req/s (open loop: latency counts from each
//!    request's scheduled time, so a stall is not hidden). Prints p50/p99 (target for the read: p99 < 5 ms).

mod common;

use std::{
    str::FromStr,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use common::{
    BenchDatabase, Target, cpu_time, cpu_time_of, free_addr, machine_busy, percentile, round_trips::Proxy, serve_command, spawn,
    wait_for_200,
};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use jeex_api::{
    access::{Backend, Limits, Pool, Pooled},
    client_span::Endpoint,
};
use sqlx::{
    Executor, PgPool, Postgres,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio::{net::TcpStream, sync::mpsc};
use uuid::Uuid;

const CONNECTIONS: usize = 32;
const POOL: u32 = 30;
const WARMUP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(5);
/// Turns each of the limiter's two instances gets, and the length of one turn.
const TURNS: u32 = 6;
const TURN: Duration = Duration::from_millis(2_500);
/// Warm-up before each turn: the connections are opened anew.
const TURN_WARMUP: Duration = Duration::from_millis(500);
const RATE: u64 = 1000;
const DOC_BODY: &str =
    r#"{"title":"Benchmark note","content":"Row-level security keeps every project's documents apart.","language":"en"}"#;

fn main() {
    common::run_bench("data", run);
}

async fn run() {
    let db = BenchDatabase::create().await;
    let (user, project, app_url) = (db.user, db.project, db.app_url.clone());
    let proxy = Proxy::start(pg_addr(&app_url)).await;
    let start = |limited: bool, database_url: &str| {
        let addr = free_addr();
        let (mut cmd, data_dir) = serve_command(addr);
        cmd.env("DATABASE_URL", database_url).env("JEEX_DB_POOL_SIZE", (POOL - 10).to_string()).env("JEEX_DB_POOL_MAX_OVERFLOW", "10");
        if limited {
            // The limiter runs on every request, but the quota is never reached.
            let redis = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/15".into());
            cmd.env("REDIS_URL", redis)
                .env("JEEX_REDIS_PREFIX", format!("bench:{}:", Uuid::now_v7().simple()))
                .env("JEEX_RATE_LIMIT_READS", "1000000/1s")
                .env("JEEX_RATE_LIMIT_WRITES", "1000000/1s");
        } else {
            cmd.env("JEEX_RATE_LIMIT_READS", "off").env("JEEX_RATE_LIMIT_WRITES", "off");
        }
        if database_url != app_url {
            cmd.env("JEEX_WORKERS", "0");
        }
        let target = spawn(cmd, data_dir, addr);
        // wait_for_200 runs its own runtime: give it a thread outside this one.
        std::thread::spawn(move || wait_for_200(addr, "/health/live")).join().expect("jeex-api answers");
        target
    };
    let server = start(false, &app_url);
    let limited = start(true, &app_url);
    // Only requests reach this one's database: no workers, no limiter.
    let counted = start(false, &proxy.url(&app_url));
    let bearer = Arc::new(common::bearer(user));
    let get_path = Arc::new(format!("/api/v1/projects/{project}"));
    let post_path = Arc::new(format!("/api/v1/projects/{project}/documents"));

    let trips_get = round_trips(&counted, &proxy, &get_path, None, &bearer).await;
    let trips_post = round_trips(&counted, &proxy, &post_path, Some(DOC_BODY), &bearer).await;
    drop(counted);

    // One pool at a time beside the servers' own, within PostgreSQL's connection limit.
    let app_pool = BarePool::Server(server_pool(&app_url));
    let ceiling_get = bare(&app_pool, user, project, Bare::ScopedRead).await;
    app_pool.close().await;
    let sqlx_pool = BarePool::Sqlx(PgPoolOptions::new().max_connections(POOL).connect(&db.owner_url).await.unwrap());
    let sqlx_get = bare(&sqlx_pool, user, project, Bare::Read).await;
    sqlx_pool.close().await;
    let pool = BarePool::Server(server_pool(&db.owner_url));
    let bare_get = bare(&pool, user, project, Bare::Read).await;
    let http_get = closed_loop(&server, &get_path, None, &bearer, WARMUP, MEASURE).await.0;
    let floor_get = closed_loop(&server, &Arc::new("/health/live".to_owned()), None, &bearer, WARMUP, MEASURE).await.0;
    let (unlimited, limited_cost) = limiter_turns(&server, &limited, &get_path, &bearer).await;
    let (unlimited_get, limited_get) = (unlimited.rate / f64::from(TURNS), limited_cost.rate / f64::from(TURNS));
    let bare_post = bare(&pool, user, project, Bare::Write).await;
    let http_post = closed_loop(&server, &post_path, Some(DOC_BODY), &bearer, WARMUP, MEASURE).await.0;
    let fixed_get = open_loop(&server, &get_path, None, &bearer).await;
    let fixed_post = open_loop(&server, &post_path, Some(DOC_BODY), &bearer).await;

    println!("\nthroughput, {CONNECTIONS} concurrent clients, pool of {POOL}, {}s each", MEASURE.as_secs());
    println!("{:<44} {:>12} {:>10} {:>8}", "", "1 statement/s", "HTTP req/s", "ratio");
    let ratio = http_get / bare_get;
    println!("{:<44} {bare_get:>12.0} {http_get:>10.0} {ratio:>8.2}  (target >= 0.50: {})", "GET /projects/{id}", verdict(ratio >= 0.5));
    println!("{:<44} {bare_post:>12.0} {http_post:>10.0} {:>8.2}", "POST /projects/{id}/documents", http_post / bare_post);
    println!(
        "{:<44} {:>12} {floor_get:>10.0} {:>8.2}  (HTTP's own floor on this machine: the same server and clients, no token check, no database)",
        "  GET /health/live",
        "",
        floor_get / bare_get
    );
    println!(
        "{:<44} {ceiling_get:>12.0} {:>10} {:>8.2}  (row-level security's ceiling for any scoped read: settings + SELECT as the server's role, no check)",
        "  the same SELECT, scoped, 1 statement",
        "",
        ceiling_get / bare_get
    );
    println!(
        "{:<44} {sqlx_get:>12.0} {:>10} {:>8.2}  (the owner's SELECT on sqlx's pool, which pings each connection it takes back: earlier runs' baseline)",
        "  the same SELECT, on sqlx's pool",
        "",
        http_get / sqlx_get
    );
    println!("\nround trips to PostgreSQL per request (counted by a proxy; {TRIPS} requests each)");
    for (name, (statements, checks), most) in [("GET /projects/{id}", trips_get, 1.0), ("POST /projects/{id}/documents", trips_post, 2.0)] {
        println!(
            "{name:<44} {statements:>5.2} running statements (target <= {most}: {}), {checks:>5.2} without one (pool checks, preparing)",
            verdict(statements <= most + 0.005)
        );
    }
    let ratio = limited_get / unlimited_get;
    println!(
        "\nrate limiter: GET /projects/{{id}} {limited_get:.0} req/s with the Redis limiter on, {unlimited_get:.0} off ({TURNS} turns of {}s each, alternating)",
        TURN.as_secs_f64()
    );
    println!("ratio on/off {ratio:.2}  (target >= 0.80: {})", verdict(ratio >= 0.8));
    unlimited.print("limiter off");
    limited_cost.print("limiter on");
    println!("\nlatency at a fixed {RATE} req/s for {}s (open loop)", MEASURE.as_secs());
    let (p50, p99, sent) = fixed_get;
    println!(
        "{:<44} p50 {p50:>6.2} ms  p99 {p99:>6.2} ms  ({sent} requests; p99 target < 5 ms: {})",
        "GET /projects/{id}",
        verdict(p99 < 5.0)
    );
    let (p50, p99, sent) = fixed_post;
    println!("{:<44} p50 {p50:>6.2} ms  p99 {p99:>6.2} ms  ({sent} requests)", "POST /projects/{id}/documents");

    drop(server);
    drop(limited);
    pool.close().await;
    db.drop().await;
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// What a loop of [`bare_once`] runs.
#[derive(Clone, Copy)]
enum Bare {
    /// The single prepared `SELECT` of the project's row, as the owner (no row-level security).
    Read,
    /// The single prepared statement inserting a document and its audit row, as the owner.
    Write,
    /// The same `SELECT`, as the server's role, in one statement that first applies the scope's
    /// settings (transaction-locally, as the server does): row-level security's own cost, with no
    /// membership check. The row must come back, or the settings did not reach the policies.
    ScopedRead,
}

/// The pool a loop of [`bare_once`] runs on.
#[derive(Clone)]
enum BarePool {
    /// The server's own pool: no round trip when a connection is taken back.
    Server(Pool),
    /// sqlx's pool: a `Sync` round trip each time it takes a connection back.
    Sqlx(PgPool),
}

impl BarePool {
    async fn close(&self) {
        match self {
            Self::Server(pool) => pool.close().await,
            Self::Sqlx(pool) => pool.close().await,
        }
    }
}

/// A pool like the server's (the kind, and the size the bench gives the servers), on `url`.
fn server_pool(url: &str) -> Pool {
    let options = PgConnectOptions::from_str(url).expect("a PostgreSQL URL");
    let endpoint = Endpoint { namespace: "bench".into(), address: options.get_host().into(), port: options.get_port() };
    let hour = Duration::from_secs(3600);
    let limits = Limits {
        max_connections: POOL,
        acquire_timeout: Duration::from_secs(30),
        max_lifetime: hour,
        idle_timeout: hour,
        settle_timeout: Duration::from_secs(5),
    };
    Pool::new(options, limits, Arc::new(Backend::new(endpoint)))
}

/// The least PostgreSQL can do for each request, straight on a pool: see [`Bare`].
async fn bare_once(pool: &BarePool, user: Uuid, project: Uuid, what: Bare) {
    match pool {
        BarePool::Server(pool) => bare_statement(Pooled::new(pool), user, project, what).await,
        BarePool::Sqlx(pool) => bare_statement(pool, user, project, what).await,
    }
}

async fn bare_statement<'p, X: Executor<'p, Database = Postgres> + Copy>(pool: X, user: Uuid, project: Uuid, what: Bare) {
    match what {
        Bare::Write => {
            sqlx::query(
                "WITH created AS (INSERT INTO documents (id, project_id, title, content, language, metadata, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     RETURNING id, project_id, title, content, language, metadata, created_by, created_at, updated_at, version), \
                 recorded AS (INSERT INTO audit_log (id, project_id, actor_user_id, actor_api_key_id, action, entity_type, entity_id, correlation_id, details) \
                     SELECT $8, $2, $7, NULL, 'document.create', 'document', created.id, 'bench', jsonb_build_object('title', created.title) FROM created) \
                 SELECT * FROM created",
            )
            .bind(Uuid::now_v7())
            .bind(project)
            .bind("Benchmark note")
            .bind("Row-level security keeps every project's documents apart.")
            .bind("en")
            .bind(serde_json::json!({}))
            .bind(user)
            .bind(Uuid::now_v7())
            .fetch_one(pool)
            .await
            .unwrap();
        }
        Bare::Read => {
            sqlx::query("SELECT id, name, status, current_step, language, created_by, created_at, updated_at, version FROM projects WHERE id = $1 AND deleted_at IS NULL")
                .bind(project)
                .fetch_one(pool)
                .await
                .unwrap();
        }
        Bare::ScopedRead => {
            // The settings come from a sub-select the row's LATERAL sub-select depends on, so
            // the policies read them after they are made (as in the server's own statements).
            sqlx::query(
                "SELECT p.id, p.name, p.status, p.current_step, p.language, p.created_by, p.created_at, p.updated_at, p.version \
                 FROM (SELECT set_config('jeex.user_id', $1::text, true) AS u, set_config('jeex.project_id', $2::text, true) AS p OFFSET 0) s \
                 CROSS JOIN LATERAL (SELECT * FROM projects WHERE id = $2 AND deleted_at IS NULL AND s.u IS NOT NULL AND s.p IS NOT NULL OFFSET 0) p",
            )
            .bind(user)
            .bind(project)
            .fetch_one(pool)
            .await
            .expect("the scoped row (row-level security saw the settings)");
        }
    }
}

/// Operations per second of [`bare_once`] from `CONNECTIONS` tasks.
async fn bare(pool: &BarePool, user: Uuid, project: Uuid, what: Bare) -> f64 {
    let measure_from = Instant::now() + WARMUP;
    let end = measure_from + MEASURE;
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < end {
                    let started = Instant::now();
                    bare_once(&pool, user, project, what).await;
                    if started >= measure_from {
                        done += 1;
                    }
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / MEASURE.as_secs_f64()
}

/// PostgreSQL's address in a `postgres://user@host:port/db` URL.
fn pg_addr(url: &str) -> std::net::SocketAddr {
    let host_port = url.split_once('@').and_then(|(_, rest)| rest.split('/').next()).expect("host in the URL");
    std::net::ToSocketAddrs::to_socket_addrs(host_port).unwrap().next().unwrap()
}

/// Requests one after another for the round-trip count.
const TRIPS: u64 = 1_000;

/// Round trips per request to PostgreSQL, from the proxy's counts over `TRIPS` requests sent
/// one after another (after a warm-up that prepares the statements), less what the proxy sees
/// in as long a time with no request (measured over three times as long). The pool checks a connection after each request, once
/// the answer is out, so the count waits for them.
async fn round_trips(server: &Target, proxy: &Proxy, path: &Arc<String>, body: Option<&'static str>, bearer: &Arc<String>) -> (f64, f64) {
    let mut sender = connect(server.addr).await;
    for _ in 0..20 {
        send(&mut sender, path, body, bearer).await;
    }
    let settle = Duration::from_millis(300);
    tokio::time::sleep(settle).await;
    let before = proxy.seen();
    let started = Instant::now();
    for _ in 0..TRIPS {
        send(&mut sender, path, body, bearer).await;
    }
    tokio::time::sleep(settle).await;
    let elapsed = started.elapsed();
    let during = proxy.seen() - before;
    // The background loops' own statements (the event relay's and the vector outbox's polls,
    // the latter at jittered intervals), over a quiet stretch three times as long: their rate
    // is then known well enough to take away.
    let quiet_from = proxy.seen();
    tokio::time::sleep(elapsed * 3).await;
    let idle = proxy.seen() - quiet_from;
    let per = |n: u64, idle: u64| (n as f64 - idle as f64 / 3.0).max(0.0) / TRIPS as f64;
    (per(during.statements, idle.statements), per(during.checks, idle.checks))
}

async fn connect(addr: std::net::SocketAddr) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    sender
}

fn request(path: &str, body: Option<&'static str>, bearer: &str) -> Request<Full<Bytes>> {
    let builder = Request::builder().uri(path).header("host", "bench").header("authorization", bearer);
    match body {
        Some(b) => builder.method("POST").header("content-type", "application/json").body(Full::new(Bytes::from_static(b.as_bytes()))),
        None => builder.method("GET").body(Full::new(Bytes::new())),
    }
    .unwrap()
}

async fn send(sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>, path: &str, body: Option<&'static str>, bearer: &str) {
    // The connection takes the next request only once it has finished with the last one.
    sender.ready().await.expect("connection closed");
    let resp = sender.send_request(request(path, body, bearer)).await.expect("request failed");
    let status = resp.status();
    resp.into_body().collect().await.unwrap();
    assert!(status.is_success(), "status {status}");
}

/// What one instance's turns cost: requests served and CPU time spent on them.
#[derive(Default)]
struct TurnCost {
    /// Measured requests per second, summed over turns.
    rate: f64,
    /// Requests served, warm-ups included (the CPU readings span them too).
    requests: u64,
    server: Duration,
    redis: Duration,
    postgres: Duration,
    generator: Duration,
    machine: Duration,
}

impl TurnCost {
    /// Runs one turn against `target` and adds its figures.
    async fn turn(&mut self, target: &Target, path: &Arc<String>, bearer: &Arc<String>) {
        let cpu = || {
            (
                cpu_time(target.child.id()),
                cpu_time_of("redis-server"),
                cpu_time_of("postgres"),
                cpu_time(std::process::id()),
                machine_busy(),
            )
        };
        let before = cpu();
        let (rate, requests) = closed_loop(target, path, None, bearer, TURN_WARMUP, TURN).await;
        let after = cpu();
        self.rate += rate;
        self.requests += requests;
        self.server += after.0.saturating_sub(before.0);
        self.redis += after.1.saturating_sub(before.1);
        self.postgres += after.2.saturating_sub(before.2);
        self.generator += after.3.saturating_sub(before.3);
        self.machine += after.4.saturating_sub(before.4);
    }

    /// One line: req/s, then µs of CPU per request for each part and the machine.
    fn print(&self, name: &str) {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / self.requests.max(1) as f64;
        let other = self.machine.saturating_sub(self.server + self.redis + self.postgres + self.generator);
        println!(
            "{name:<14} {:>7.0} req/s   CPU µs/request: jeex-api {:>5.1}  redis {:>4.1}  postgres {:>5.1}  load generator {:>5.1}  other {:>4.1}  machine {:>5.1}",
            self.rate / f64::from(TURNS),
            per(self.server),
            per(self.redis),
            per(self.postgres),
            per(self.generator),
            per(other),
            per(self.machine),
        );
    }
}

/// `GET` on the instance without the limiter and on the one with it, measured in alternating
/// turns (off, on, on, off, …: each gets the earlier and the later slot alike).
async fn limiter_turns(off: &Target, on: &Target, path: &Arc<String>, bearer: &Arc<String>) -> (TurnCost, TurnCost) {
    let (mut without, mut with) = (TurnCost::default(), TurnCost::default());
    for turn in 0..TURNS {
        for limited in if turn % 2 == 0 { [false, true] } else { [true, false] } {
            if limited { with.turn(on, path, bearer).await } else { without.turn(off, path, bearer).await }
        }
    }
    (without, with)
}

/// Requests per second with each of `CONNECTIONS` clients sending the next request as soon as
/// the previous answer is in, and every request served, warm-up included.
async fn closed_loop(
    server: &Target,
    path: &Arc<String>,
    body: Option<&'static str>,
    bearer: &Arc<String>,
    warmup: Duration,
    measure: Duration,
) -> (f64, u64) {
    let measure_from = Instant::now() + warmup;
    let end = measure_from + measure;
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (addr, path, bearer) = (server.addr, path.clone(), bearer.clone());
            tokio::spawn(async move {
                let mut sender = connect(addr).await;
                let (mut done, mut all) = (0u64, 0u64);
                while Instant::now() < end {
                    let started = Instant::now();
                    send(&mut sender, &path, body, &bearer).await;
                    all += 1;
                    if started >= measure_from {
                        done += 1;
                    }
                }
                (done, all)
            })
        })
        .collect();
    let (mut total, mut all) = (0, 0);
    for t in tasks {
        let (done, served) = t.await.unwrap();
        total += done;
        all += served;
    }
    (total as f64 / measure.as_secs_f64(), all)
}

/// p50 and p99 in ms at a fixed `RATE`: a ticker schedules each request; idle connections take
/// them; latency runs from the scheduled time to the answer.
async fn open_loop(server: &Target, path: &Arc<String>, body: Option<&'static str>, bearer: &Arc<String>) -> (f64, f64, usize) {
    let (tx, rx) = mpsc::channel::<Instant>(100_000);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let workers: Vec<_> = (0..64)
        .map(|_| {
            let (addr, path, bearer, rx) = (server.addr, path.clone(), bearer.clone(), rx.clone());
            tokio::spawn(async move {
                let mut sender = connect(addr).await;
                let mut latencies = Vec::new();
                loop {
                    let Some(scheduled) = rx.lock().await.recv().await else { break };
                    send(&mut sender, &path, body, &bearer).await;
                    latencies.push(scheduled.elapsed());
                }
                latencies
            })
        })
        .collect();
    let start = Instant::now();
    let total = RATE * (WARMUP + MEASURE).as_secs();
    for i in 0..total {
        let at = start + Duration::from_micros(i * 1_000_000 / RATE);
        tokio::time::sleep_until(at.into()).await;
        tx.send(at).await.unwrap();
    }
    drop(tx);
    let skip = (RATE * WARMUP.as_secs()) as usize;
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    all.sort();
    // The warm-up share is dropped from the fastest end: conservative for the percentiles.
    let measured: Vec<Duration> = all.into_iter().skip(skip).collect();
    let pct = |p: f64| percentile(&measured, p).as_secs_f64() * 1000.0;
    (pct(0.50), pct(0.99), measured.len())
}
