//! `cargo bench -p jeex-api --bench live`: `GET /health/live` through the full middleware chain
//! of the release `jeex-api` binary, against a bare hyper hello-world, both as separate
//! processes driven by the same load generator in the same run. Prints throughput ratio, p99
//! latency, idle RSS and start-up time (process start to first 200, dependencies excluded).
//! A second `jeex-api` exports every request's span (100 % sampling) over OTLP/gRPC to a
//! receiver in this process ([`jeex_e2e::otlp`], counting what arrives): the export-on/off
//! ratio is the cost of tracing. That receiver shares the machine's cores with both servers,
//! as a collector on another host would not.

mod common;

use std::{
    convert::Infallible,
    net::SocketAddr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{Target, cpu_time, free_addr, percentile, rss_mib, serve_command, spawn, wait_for_200};

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

    let (jeex, startup, idle_rss) = start_jeex(&[]);
    let collector = rt.block_on(jeex_e2e::otlp::Collector::counting());
    let endpoint = collector.endpoint();
    let (exporting, _, _) = start_jeex(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint), ("OTEL_TRACES_SAMPLER_ARG", "1.0")]);
    let baseline = start_baseline();
    let mut results: Vec<(&str, Stats)> = Vec::new();
    let mut requests_exported = 0;
    for _ in 0..ROUNDS {
        results.push(("hyper hello-world", rt.block_on(load(&baseline))));
        results.push(("jeex-api /health/live", rt.block_on(load(&jeex))));
        let stats = rt.block_on(load(&exporting));
        requests_exported += stats.requests;
        results.push((EXPORTING, stats));
    }
    let best =
        |name: &str| results.iter().filter(|(n, _)| *n == name).map(|(_, s)| s.clone()).max_by(|a, b| a.rps.total_cmp(&b.rps)).unwrap();
    let base = best("hyper hello-world");
    let ours = best("jeex-api /health/live");
    let traced = best(EXPORTING);
    let loaded_rss = rss_mib(jeex.child.id());
    let ratio = ours.rps / base.rps;

    println!("\nGET /health/live, {CONNECTIONS} keep-alive connections, {}s per round, best of {ROUNDS} rounds", MEASURE.as_secs());
    println!("{:<24} {:>12} {:>10} {:>10} {:>14}", "target", "req/s", "p50 ms", "p99 ms", "server CPU µs/req");
    for (name, s) in [("hyper hello-world", &base), ("jeex-api /health/live", &ours), (EXPORTING, &traced)] {
        println!("{name:<24} {:>12.0} {:>10.3} {:>10.3} {:>14.1}", s.rps, s.p50_ms, s.p99_ms, s.cpu_us);
    }
    println!("throughput ratio jeex/hyper: {ratio:.2} (target >= 0.70: {})", verdict(ratio >= 0.7));
    // Every span the exporting server sent, over every request it answered (its batch queue
    // drops spans beyond 2,048 waiting, rather than grow).
    std::thread::sleep(Duration::from_secs(2));
    let export = traced.rps / ours.rps;
    println!(
        "throughput ratio export on/off: {export:.2} (target >= 0.85: {}); spans received {} for {} requests",
        verdict(export >= 0.85),
        collector.span_count(),
        requests_exported
    );
    println!("idle RSS: {idle_rss:.1} MiB (target < 30: {}), after load: {loaded_rss:.1} MiB", verdict(idle_rss < 30.0));
    println!("start to first 200: {:.0} ms (target < 1000: {})", startup.as_secs_f64() * 1000.0, verdict(startup < Duration::from_secs(1)));
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// The name of the exporting server's rows.
const EXPORTING: &str = "… with OTLP export";

/// The release binary, on a lazily connected pool (no dependency is contacted by the probe),
/// with `env` besides.
fn start_jeex(env: &[(&str, &str)]) -> (Target, Duration, f64) {
    let addr = free_addr();
    let started = Instant::now();
    let (mut cmd, data_dir) = serve_command(addr);
    cmd.env("DATABASE_URL", "postgres://jeex@127.0.0.1:5432/jeex");
    cmd.envs(env.iter().copied());
    let target = spawn(cmd, data_dir, addr);
    let first_ok = wait_for_200(addr, "/health/live");
    let startup = first_ok - started;
    std::thread::sleep(Duration::from_millis(500));
    let idle = rss_mib(target.child.id());
    (target, startup, idle)
}

fn start_baseline() -> Target {
    let addr = free_addr();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--baseline-server", &addr.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .expect("start baseline");
    wait_for_200(addr, "/");
    Target { child, addr, data_dir: None }
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

#[derive(Clone)]
struct Stats {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Server CPU time (user + system) per request: steadier than throughput on a busy machine.
    cpu_us: f64,
    /// Every request answered, warm-up included.
    requests: u64,
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
                let mut answered = 0u64;
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let req = Request::get(path).header("host", "bench").body(Empty::<Bytes>::new()).unwrap();
                    let resp = sender.send_request(req).await.expect("request failed");
                    assert!(resp.status().is_success(), "status {}", resp.status());
                    resp.into_body().collect().await.unwrap();
                    answered += 1;
                    if sent >= measure_from {
                        latencies.push(sent.elapsed());
                    }
                }
                (latencies, answered)
            })
        })
        .collect();
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_at_start = cpu_time(target.child.id());
    tokio::time::sleep_until(end.into()).await;
    let cpu = cpu_time(target.child.id()) - cpu_at_start;
    let mut all = Vec::new();
    let mut requests = 0;
    for t in tasks {
        let (latencies, answered) = t.await.unwrap();
        all.extend(latencies);
        requests += answered;
    }
    all.sort();
    let pct = |p: f64| percentile(&all, p).as_secs_f64() * 1000.0;
    Stats {
        rps: all.len() as f64 / MEASURE.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        cpu_us: cpu.as_secs_f64() * 1e6 / all.len() as f64,
        requests,
    }
}
