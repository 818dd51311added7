//! `cargo bench -p jeex-api --bench live`: `GET /health/live` through the full middleware chain
//! of the release `jeex-api` binary, against a bare hyper hello-world, both as separate
//! processes driven by the same load generator in the same run. Prints throughput ratio, p99
//! latency, idle RSS and start-up time (process start to first 200, dependencies excluded).

use std::{
    convert::Infallible,
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

const CONNECTIONS: usize = 32;
const WARMUP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(5);
const ROUNDS: usize = 2;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--baseline-server") {
        return baseline_server();
    }
    // `cargo test --benches` runs benches once as tests; measure only under `cargo bench`.
    if !args.iter().any(|a| a == "--bench") {
        println!("live: skipped (run with `cargo bench -p jeex-api --bench live`)");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();

    let (jeex, startup, idle_rss) = start_jeex();
    let baseline = start_baseline();
    let mut results: Vec<(&str, Stats)> = Vec::new();
    for _ in 0..ROUNDS {
        results.push(("hyper hello-world", rt.block_on(load(&baseline))));
        results.push(("jeex-api /health/live", rt.block_on(load(&jeex))));
    }
    let best =
        |name: &str| results.iter().filter(|(n, _)| *n == name).map(|(_, s)| s.clone()).max_by(|a, b| a.rps.total_cmp(&b.rps)).unwrap();
    let base = best("hyper hello-world");
    let ours = best("jeex-api /health/live");
    let loaded_rss = rss_mib(jeex.child.id());
    let ratio = ours.rps / base.rps;

    println!("\nGET /health/live, {CONNECTIONS} keep-alive connections, {}s per round, best of {ROUNDS} rounds", MEASURE.as_secs());
    println!("{:<24} {:>12} {:>10} {:>10} {:>14}", "target", "req/s", "p50 ms", "p99 ms", "server CPU µs/req");
    for (name, s) in [("hyper hello-world", &base), ("jeex-api /health/live", &ours)] {
        println!("{name:<24} {:>12.0} {:>10.3} {:>10.3} {:>14.1}", s.rps, s.p50_ms, s.p99_ms, s.cpu_us);
    }
    println!("throughput ratio jeex/hyper: {ratio:.2} (target >= 0.70: {})", verdict(ratio >= 0.7));
    println!("idle RSS: {idle_rss:.1} MiB (target < 30: {}), after load: {loaded_rss:.1} MiB", verdict(idle_rss < 30.0));
    println!("start to first 200: {:.0} ms (target < 1000: {})", startup.as_secs_f64() * 1000.0, verdict(startup < Duration::from_secs(1)));
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

struct Target {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// The release binary, on a lazily connected pool (no dependency is contacted by the probe).
fn start_jeex() -> (Target, Duration, f64) {
    let addr = free_addr();
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_jeex-api"))
        .arg("serve")
        .env("JEEX_ENV", "production")
        .env("DATABASE_URL", "postgres://jeex@127.0.0.1:5432/jeex")
        .env("JEEX_HTTP_ADDR", addr.to_string())
        // Production defaults: JSON logs at info (probes log at debug, so no line per request).
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .spawn()
        .expect("start jeex-api");
    let first_ok = wait_for_200(addr, "/health/live");
    let startup = first_ok - started;
    std::thread::sleep(Duration::from_millis(500));
    let idle = rss_mib(child.id());
    (Target { child, addr }, startup, idle)
}

fn start_baseline() -> Target {
    let addr = free_addr();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--baseline-server", &addr.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .expect("start baseline");
    wait_for_200(addr, "/");
    Target { child, addr }
}

/// A bare hyper HTTP/1 hello-world on the same multi-threaded tokio runtime jeex-api uses.
fn baseline_server() {
    let addr: SocketAddr = std::env::args().nth(2).unwrap().parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await.unwrap();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{\"status\":\"ok\"}"))))
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
}

fn wait_for_200(addr: SocketAddr, path: &str) -> Instant {
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

async fn get_once(addr: SocketAddr, path: &str) -> Option<u16> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(conn);
    let req = Request::get(path).header("host", addr.to_string()).body(Empty::<Bytes>::new()).ok()?;
    let resp = sender.send_request(req).await.ok()?;
    Some(resp.status().as_u16())
}

#[derive(Clone)]
struct Stats {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Server CPU time (user + system) per request: steadier than throughput on a busy machine.
    cpu_us: f64,
}

/// CPU time the process has used, from /proc (clock ticks of 10 ms).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    let ticks = field(11) + field(12);
    Duration::from_millis(ticks * 10)
}

/// Closed-loop load: each connection sends the next request when the previous answer is in.
async fn load(target: &Target) -> Stats {
    let addr = target.addr;
    // The baseline answers every path, so both targets get the same request.
    let path = "/health/live";
    let start = Instant::now();
    let measure_from = start + WARMUP;
    let end = measure_from + MEASURE;
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            tokio::spawn(async move {
                let stream = TcpStream::connect(addr).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
                tokio::spawn(conn);
                let mut latencies = Vec::new();
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let req = Request::get(path).header("host", "bench").body(Empty::<Bytes>::new()).unwrap();
                    let resp = sender.send_request(req).await.expect("request failed");
                    assert!(resp.status().is_success(), "status {}", resp.status());
                    resp.into_body().collect().await.unwrap();
                    if sent >= measure_from {
                        latencies.push(sent.elapsed());
                    }
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_at_start = cpu_time(target.child.id());
    tokio::time::sleep_until(end.into()).await;
    let cpu = cpu_time(target.child.id()) - cpu_at_start;
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0;
    Stats {
        rps: all.len() as f64 / MEASURE.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        cpu_us: cpu.as_secs_f64() * 1e6 / all.len() as f64,
    }
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}
