//! Helpers shared by the benches: processes under test, readiness, /proc readings.

#![allow(dead_code)] // each bench uses a different part

pub mod round_trips;

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The value at fraction `p` (0.0–1.0) of `sorted`, which must not be empty.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Runs a bench's async body under `cargo bench` only: `cargo test --benches` runs every
/// bench once as a test, which must not take minutes of load.
pub fn run_bench<F: std::future::Future<Output = ()>>(name: &str, run: impl FnOnce() -> F) {
    if !std::env::args().any(|a| a == "--bench") {
        println!("{name}: skipped (run with `cargo bench -p jeex-api --bench {name}`)");
        return;
    }
    tokio::runtime::Runtime::new().expect("tokio runtime").block_on(run());
}

/// A server process under test; killed (and its scratch folder removed) when dropped.
pub struct Target {
    pub child: Child,
    pub addr: SocketAddr,
    /// The server's `JEEX_DATA_DIR`, when it has one of its own.
    pub data_dir: Option<PathBuf>,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `jeex-api serve` on `addr` in production mode (JSON logs at `info`, test signing keys),
/// with a scratch data folder of its own: the embedded vector index never lands in the
/// source tree, and two instances never contend for one index. Spawn it with [`spawn`].
/// `JEEX_BENCH_SERVER_LOGS=1` shows the servers' logs (for a bench that fails).
pub fn serve_command(addr: SocketAddr) -> (Command, PathBuf) {
    let data_dir = std::env::temp_dir().join(format!("jeex-bench-{}", uuid::Uuid::now_v7().simple()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jeex-api"));
    cmd.arg("serve")
        .env("JEEX_ENV", "production")
        .env("JEEX_HTTP_ADDR", addr.to_string())
        .env("JEEX_DATA_DIR", &data_dir)
        .env("JEEX_JWT_PRIVATE_KEY", key("k1.key.pem"))
        .env("JEEX_JWT_PUBLIC_KEYS", key("k1.pub.pem"))
        // Production defaults: probes log at debug, so no line per request.
        .env_remove("RUST_LOG")
        .env_remove("JEEX_VECTOR_DIR")
        .stdout(if std::env::var_os("JEEX_BENCH_SERVER_LOGS").is_some() { Stdio::inherit() } else { Stdio::null() });
    (cmd, data_dir)
}

/// Starts a command from [`serve_command`] as the target at `addr`.
pub fn spawn(mut cmd: Command, data_dir: PathBuf, addr: SocketAddr) -> Target {
    let child = cmd.spawn().expect("start jeex-api");
    Target { child, addr, data_dir: Some(data_dir) }
}

pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Waits until `path` answers 200; the moment it did.
pub fn wait_for_200(addr: SocketAddr, path: &str) -> Instant {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if rt.block_on(get_once(addr, path)).is_some_and(|s| s == 200) {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "{addr}{path} never answered 200");
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub async fn get_once(addr: SocketAddr, path: &str) -> Option<u16> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(conn);
    let req = Request::get(path).header("host", addr.to_string()).body(Empty::<Bytes>::new()).ok()?;
    let resp = sender.send_request(req).await.ok()?;
    Some(resp.status().as_u16())
}

/// CPU time the process has used, from /proc (clock ticks of 10 ms).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    let ticks = field(11) + field(12);
    Duration::from_millis(ticks * 10)
}

/// CPU time used so far by every running process whose command name is `comm` (e.g.
/// `redis-server`, `postgres`). A process that ends between two readings drops out, so
/// difference readings only over spans where those processes live on (pool connections).
pub fn cpu_time_of(comm: &str) -> Duration {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Duration::ZERO };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == comm))
        .map(cpu_time)
        .sum()
}

/// CPU time the whole machine has spent busy (user, nice, system, irq and softirq: not idle,
/// iowait or steal; guest time is already inside user), from /proc/stat.
pub fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    let busy: u64 = fields.iter().take(7).enumerate().filter(|(i, _)| ![3, 4].contains(i)).map(|(_, v)| v).sum();
    Duration::from_millis(busy * 10)
}

/// Resident memory of `pid` in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// The role the benchmarked server connects as (owns nothing, not superuser).
const BENCH_ROLE: &str = "jeex_bench_app";

/// A fresh database migrated by the real `migrate`, with one user owning one project.
pub struct BenchDatabase {
    /// URL for the server (the unprivileged role).
    pub app_url: String,
    /// URL as the owner (a superuser: no row-level security), for bare baselines.
    pub owner_url: String,
    /// The user.
    pub user: uuid::Uuid,
    /// Their project.
    pub project: uuid::Uuid,
    name: String,
    admin: sqlx::PgConnection,
}

impl BenchDatabase {
    /// Creates it on the test PostgreSQL (`TEST_DATABASE_URL`).
    pub async fn create() -> Self {
        use sqlx::Connection;
        let base = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/jeex_test".into());
        let host = base.split_once('@').map_or("127.0.0.1:5432", |(_, r)| r.split('/').next().unwrap_or("127.0.0.1:5432")).to_owned();
        let name = format!("jeex_bench_{}", uuid::Uuid::now_v7().simple());
        let mut admin = sqlx::PgConnection::connect(&format!("postgres://postgres@{host}/postgres")).await.expect("connect as postgres");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
        let _ = sqlx::query(&format!("CREATE ROLE {BENCH_ROLE} LOGIN")).execute(&mut admin).await;
        let owner_url = format!("postgres://postgres@{host}/{name}");
        jeex_api::db::migrate::run(&owner_url, Some(&jeex_api::db::migrate::AppRole::named(BENCH_ROLE))).await.expect("migrate");
        let mut owner = sqlx::PgConnection::connect(&owner_url).await.unwrap();
        let (user, project) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        sqlx::query("INSERT INTO users (id, email, name) VALUES ($1, 'bench@example.com', 'Bench')")
            .bind(user)
            .execute(&mut owner)
            .await
            .unwrap();
        sqlx::query("INSERT INTO projects (id, name, created_by) VALUES ($1, 'Bench', $2)")
            .bind(project)
            .bind(user)
            .execute(&mut owner)
            .await
            .unwrap();
        sqlx::query("INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, 'owner')")
            .bind(project)
            .bind(user)
            .execute(&mut owner)
            .await
            .unwrap();
        owner.close().await.ok();
        Self { app_url: format!("postgres://{BENCH_ROLE}@{host}/{name}"), owner_url, user, project, name, admin }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database.
    pub async fn drop(mut self) {
        let _ = sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name)).execute(&mut self.admin).await;
    }
}

/// Path of a test key file.
pub fn key(file: &str) -> String {
    format!("{}/tests/keys/{file}", env!("CARGO_MANIFEST_DIR"))
}

/// `Bearer <RS256 access token>` for `user`, signed with test key k1, valid for an hour.
pub fn bearer(user: uuid::Uuid) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({
        "iss": "jeex", "aud": "jeex-api", "sub": user.to_string(), "exp": now + 3600, "nbf": now, "iat": now, "jti": "bench",
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    let signing = EncodingKey::from_rsa_pem(&std::fs::read(key("k1.key.pem")).unwrap()).unwrap();
    format!("Bearer {}", jsonwebtoken::encode(&header, &claims, &signing).unwrap())
}

/// Pool settings for a bench's own `Database` handle.
#[allow(dead_code)] // not every bench opens one
pub fn pool_config(size: u32) -> jeex_api::config::PoolConfig {
    jeex_api::config::PoolConfig {
        size,
        max_overflow: 0,
        acquire_timeout: Duration::from_secs(5),
        max_lifetime: Duration::from_secs(600),
        idle_timeout: Duration::from_secs(60),
    }
}
