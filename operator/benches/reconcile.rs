//! `cargo bench -p jeex-operator --bench reconcile`: reconciles of one `JeexBackend` in steady
//! state against the API-server double (RBAC from the chart as Helm renders it: set `JEEX_HELM`
//! or have `helm` on the PATH; the dependency probes on the real PostgreSQL). Prints API calls
//! per reconcile (target: reads only) and reconciles per second.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::world::World;

const ROUNDS: usize = 300;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("reconcile: skipped (run with `cargo bench -p jeex-operator --bench reconcile`)");
        return;
    }
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let world = World::ready_on("ghcr.io/jeex/jeex-api:1.0.0").await;
        world.reconcile().await;
        let (mut reads, mut writes) = (0usize, 0usize);
        let mut slowest = Duration::ZERO;
        let started = Instant::now();
        for _ in 0..ROUNDS {
            let one = Instant::now();
            for call in world.reconcile().await {
                if call.writes() { writes += 1 } else { reads += 1 }
            }
            slowest = slowest.max(one.elapsed());
        }
        let took = started.elapsed();
        println!("\n{ROUNDS} steady-state reconciles of one JeexBackend (API-server double, real PostgreSQL probe)");
        println!(
            "API calls per reconcile: {:.1} reads, {:.1} writes (target: reads only: {})",
            reads as f64 / ROUNDS as f64,
            writes as f64 / ROUNDS as f64,
            if writes == 0 { "met" } else { "MISSED" }
        );
        println!(
            "{:.0} reconciles/s, mean {:.2} ms, slowest {:.2} ms",
            ROUNDS as f64 / took.as_secs_f64(),
            took.as_secs_f64() * 1000.0 / ROUNDS as f64,
            slowest.as_secs_f64() * 1000.0
        );
    });
}
