//! OTLP export must never hurt the server: with the collector's port closed, or a listener
//! that resets every connection, the server starts, answers 1,000 requests without an error,
//! keeps its memory flat, and logs the export failure at most once a minute.

use std::time::Duration;

use jeex_e2e::{
    binary::Server,
    net::{FaultyListener, closed_port},
    services::migrated_database_url,
};

fn hammer_and_measure(endpoint: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = Server::start(&[
        ("DATABASE_URL", &migrated_database_url()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        // Export often, so the failures happen during the test.
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
    ]);
    let client = reqwest::Client::new();
    let url = server.url("/health/live");
    let burst = |n: usize| {
        let client = client.clone();
        let url = url.clone();
        rt.block_on(async move {
            let mut errors = 0;
            for _ in 0..n {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {}
                    _ => errors += 1,
                }
            }
            errors
        })
    };
    assert_eq!(burst(200), 0, "warm-up requests failed");
    std::thread::sleep(Duration::from_millis(500));
    let before = server.rss_kib();
    assert_eq!(burst(1000), 0, "requests failed while the collector is unreachable");
    std::thread::sleep(Duration::from_millis(1000));
    let after = server.rss_kib();
    assert!(after < before + 8 * 1024, "memory grew from {before} KiB to {after} KiB");

    let failures = server.logs().iter().filter(|l| l.contains("telemetry export failed")).count();
    assert_eq!(failures, 1, "export failure logged exactly once in this minute:\n{}", server.logs().join("\n"));
}

#[test]
fn collector_port_closed() {
    hammer_and_measure(&format!("http://127.0.0.1:{}", closed_port()));
}

#[test]
fn collector_resets_every_connection() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reset = rt.block_on(FaultyListener::resetting());
    let _guard = rt.enter();
    hammer_and_measure(&format!("http://{}", reset.addr));
    drop(reset);
}

#[test]
fn collector_hangs() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hung = rt.block_on(FaultyListener::hung());
    let server = Server::start(&[
        ("DATABASE_URL", &migrated_database_url()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("http://{}", hung.addr)),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]);
    let client = reqwest::Client::new();
    rt.block_on(async {
        for _ in 0..300 {
            let r = tokio::time::timeout(Duration::from_secs(2), client.get(server.url("/health/live")).send()).await;
            assert!(matches!(r, Ok(Ok(ref resp)) if resp.status() == 200), "request failed or hung with a hung collector");
        }
    });
}
