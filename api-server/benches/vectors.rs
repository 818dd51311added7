//! `cargo bench -p jeex-api --bench vectors`: the embedded vector engine (384 dimensions,
//! cosine), as the server uses it, with baselines measured in the same run.
//!
//! 1. Search latency in one project among 10: the searched project holds N vectors (10k, then
//!    100k) and each of the 9 others N/10; vectors cluster around 200 topics, as embeddings do. 500 queries, 10 neighbours each, through
//!    `VectorIndex::search` (the project filter always on), after the optimisation the outbox
//!    worker runs. Baseline: an exact brute-force scan of the project's N vectors in plain
//!    Rust; the engine's recall@10 against it is printed too.
//! 2. Upsert throughput through the outbox: 10,000 documents with embeddings written to
//!    PostgreSQL (the triggers queue their intents), then drained by the outbox worker's
//!    `drain_once` into a fresh index; versus upserting the same vectors straight into an
//!    index. Prints documents/s and the ratio.

mod common;

use std::time::{Duration, Instant};

use common::BenchDatabase;
use jeex_api::{
    access::{Caller, Principal, Viewer},
    config::{VectorConfig, VectorDistance, VectorEngine},
    db::Database,
    vectors::{IndexPoint, VectorIndex, VectorQuery, VectorScope, outbox},
};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

const DIM: usize = 384;
const PROJECTS: usize = 10;
const QUERIES: usize = 500;
const K: usize = 10;
const OUTBOX_DOCS: i64 = 10_000;

fn main() {
    common::run_bench("vectors", run);
}

fn index_at(dir: &std::path::Path) -> VectorIndex {
    let config = VectorConfig {
        engine: VectorEngine::Embedded(dir.to_path_buf()),
        collection: "bench".into(),
        dim: DIM as u64,
        distance: VectorDistance::Cosine,
    };
    VectorIndex::new(&config).expect("embedded index")
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("jeex-bench-{name}-{}", Uuid::now_v7().simple()))
}

/// A small deterministic generator (splitmix64): the same vectors every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

fn random_vector(rng: &mut Rng) -> Vec<f32> {
    (0..DIM).map(|_| rng.next()).collect()
}

/// Real embeddings cluster by topic (uniform random vectors in 384 dimensions are nearly
/// orthogonal, the worst case for any approximate index): a point near one of 200 topics.
fn clustered_vector(rng: &mut Rng, topics: &[Vec<f32>]) -> Vec<f32> {
    let topic = &topics[((rng.next() + 1.0) / 2.0 * (topics.len() - 1) as f32) as usize];
    topic.iter().map(|t| t + 0.35 * rng.next()).collect()
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
    v.iter().map(|x| x / norm).collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn run() {
    let db = BenchDatabase::create().await;
    let base = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/jeex_test".into());
    let owner_url = format!("{}/{}", base.rsplit_once('/').map_or(base.as_str(), |(b, _)| b), db.name());
    let owner = PgPoolOptions::new().max_connections(2).connect(&owner_url).await.unwrap();
    let app = Database::connect_lazy(&db.app_url, &common::pool_config(4)).unwrap();
    // Ten projects of the bench user; their scopes come from the real membership check.
    let mut projects = vec![db.project];
    for i in 1..PROJECTS {
        let id = Uuid::now_v7();
        sqlx::query("INSERT INTO projects (id, name, created_by) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(format!("Bench {i}"))
            .bind(db.user)
            .execute(&owner)
            .await
            .unwrap();
        sqlx::query("INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, 'owner')")
            .bind(id)
            .bind(db.user)
            .execute(&owner)
            .await
            .unwrap();
        projects.push(id);
    }
    let caller = Caller { principal: Principal::User { user_id: db.user }, correlation_id: "bench".into() };
    let mut scopes = Vec::new();
    for p in &projects {
        let s = app.scoped::<Viewer>(&caller, *p).await.unwrap();
        scopes.push(VectorScope::from(s.scope()));
    }

    println!("vector search: embedded engine, {DIM} dimensions, cosine, {K} neighbours, {QUERIES} queries, one project among {PROJECTS}");
    for n in [10_000usize, 100_000] {
        search_latency(&scopes, n).await;
    }
    outbox_throughput(&owner, &app, scopes[0]).await;

    drop((owner, app));
    db.drop().await;
}

async fn search_latency(scopes: &[VectorScope], n: usize) {
    let dir = temp("search");
    let index = index_at(&dir);
    index.prepare().await.unwrap();
    let mut rng = Rng(n as u64);
    let topics: Vec<Vec<f32>> = (0..200).map(|_| random_vector(&mut rng)).collect();
    let mut target: Vec<(Uuid, Vec<f32>)> = Vec::with_capacity(n);
    let started = Instant::now();
    for (p, scope) in scopes.iter().enumerate() {
        let count = if p == 0 { n } else { n / 10 };
        for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
            let points: Vec<IndexPoint> = chunk
                .iter()
                .map(|_| IndexPoint { document_id: Uuid::now_v7(), language: "en".into(), vector: clustered_vector(&mut rng, &topics) })
                .collect();
            if p == 0 {
                target.extend(points.iter().map(|pt| (pt.document_id, normalized(&pt.vector))));
            }
            index.upsert(*scope, points).await.unwrap();
        }
    }
    let loaded = started.elapsed();
    let started = Instant::now();
    index.optimize().await.unwrap();
    let optimized = started.elapsed();

    let queries: Vec<Vec<f32>> = (0..QUERIES).map(|_| clustered_vector(&mut rng, &topics)).collect();
    // Warm-up.
    for q in queries.iter().take(20) {
        let query = VectorQuery { vector: q.clone(), language: None, limit: K, score_threshold: None };
        index.search(scopes[0], query).await.unwrap();
    }
    let mut engine = Vec::with_capacity(QUERIES);
    let mut found = Vec::with_capacity(QUERIES);
    for q in &queries {
        let query = VectorQuery { vector: q.clone(), language: None, limit: K, score_threshold: None };
        let t = Instant::now();
        let hits = index.search(scopes[0], query).await.unwrap();
        engine.push(t.elapsed());
        found.push(hits.into_iter().map(|h| h.document_id).collect::<Vec<_>>());
    }
    let mut exact = Vec::with_capacity(QUERIES);
    let mut recall_hits = 0usize;
    for (q, got) in queries.iter().zip(&found) {
        let q = normalized(q);
        let t = Instant::now();
        let mut scored: Vec<(f32, Uuid)> = target.iter().map(|(id, v)| (v.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>(), *id)).collect();
        scored.select_nth_unstable_by(K - 1, |a, b| b.0.total_cmp(&a.0));
        scored.truncate(K);
        exact.push(t.elapsed());
        recall_hits += scored.iter().filter(|(_, id)| got.contains(id)).count();
    }
    engine.sort();
    exact.sort();
    let total = n + (PROJECTS - 1) * (n / 10);
    println!(
        "  {n:>6} vectors in the project ({total} in the index; loaded in {:.1} s, optimised in {:.1} s): \
         p50 {:.2} ms, p99 {:.2} ms; exact scan p50 {:.2} ms, p99 {:.2} ms; engine/scan p50 ratio {:.2}; recall@{K} {:.3}",
        loaded.as_secs_f64(),
        optimized.as_secs_f64(),
        ms(percentile(&engine, 0.5)),
        ms(percentile(&engine, 0.99)),
        ms(percentile(&exact, 0.5)),
        ms(percentile(&exact, 0.99)),
        percentile(&engine, 0.5).as_secs_f64() / percentile(&exact, 0.5).as_secs_f64(),
        recall_hits as f64 / (QUERIES * K) as f64,
    );
    drop(index);
    let _ = std::fs::remove_dir_all(dir);
}

async fn outbox_throughput(owner: &sqlx::PgPool, app: &Database, scope: VectorScope) {
    // Documents with random embeddings; the triggers queue one intent each.
    let started = Instant::now();
    for _ in 0..(OUTBOX_DOCS / 1000) {
        sqlx::query(
            "INSERT INTO documents (id, project_id, title, embedding) \
             SELECT gen_random_uuid(), $1, 'doc ' || g, ARRAY(SELECT (random() * 2 - 1)::real FROM generate_series(1, $2) WHERE g > 0) \
             FROM generate_series(1, 1000) AS g",
        )
        .bind(scope.project_id())
        .bind(DIM as i32)
        .execute(owner)
        .await
        .unwrap();
    }
    let written = started.elapsed();
    let vectors: Vec<(Uuid, Vec<f32>)> =
        sqlx::query_as("SELECT id, embedding FROM documents WHERE project_id = $1 AND embedding IS NOT NULL")
            .bind(scope.project_id())
            .fetch_all(owner)
            .await
            .unwrap();

    let dir = temp("outbox");
    let index = index_at(&dir);
    index.prepare().await.unwrap();
    let started = Instant::now();
    let mut applied = 0;
    loop {
        let n = outbox::drain_once(app, &index).await.unwrap();
        if n == 0 {
            break;
        }
        applied += n;
    }
    let drained = started.elapsed();
    assert_eq!(applied as i64, OUTBOX_DOCS, "every intent applied");
    assert_eq!(index.count(scope).await.unwrap(), OUTBOX_DOCS as u64, "every vector indexed");

    let direct_dir = temp("direct");
    let direct = index_at(&direct_dir);
    direct.prepare().await.unwrap();
    let started = Instant::now();
    for chunk in vectors.chunks(outbox::BATCH as usize) {
        let points = chunk.iter().map(|(id, v)| IndexPoint { document_id: *id, language: "en".into(), vector: v.clone() }).collect();
        direct.upsert(scope, points).await.unwrap();
    }
    let straight = started.elapsed();
    let rate = |d: Duration| OUTBOX_DOCS as f64 / d.as_secs_f64();
    println!(
        "upserts through the outbox: {OUTBOX_DOCS} documents (PostgreSQL writes {:.0} docs/s); drained at {:.0} docs/s, \
         straight into an index {:.0} docs/s; outbox/straight ratio {:.2}",
        rate(written),
        rate(drained),
        rate(straight),
        straight.as_secs_f64() / drained.as_secs_f64(),
    );
    drop((index, direct));
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(direct_dir);
}
