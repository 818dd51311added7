//! Issue 4, acceptance 7: the (N+1)-th request in the window gets 429 with `Retry-After`,
//! `RateLimit` and `RateLimit-Policy`; two instances share one budget; a spoofed
//! `X-Forwarded-For` from an untrusted peer is ignored; with Redis down requests are still
//! served (fail-open) unless the policy says otherwise.

mod support;

use jeex_api::{
    config::Quota,
    ratelimit::{memory::MemoryStore, redis::RedisStore},
};
use jeex_e2e::net::closed_port;
use reqwest::Response;
use serde_json::Value;

fn header(resp: &Response, name: &str) -> String {
    resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

fn prefix() -> String {
    format!("rl-test:{}:", uuid::Uuid::now_v7().simple())
}

async fn get(app: &support::TestApp, path: &str, forwarded_for: Option<&str>) -> Response {
    let mut req = support::client().get(app.url(path));
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_over_quota_gets_429_with_the_draft_headers() {
    let p = prefix();
    let app = support::start(support::config(&[("JEEX_REDIS_PREFIX", &p), ("JEEX_RATE_LIMIT_READS", "3/60s")])).await;
    for remaining in [2, 1, 0] {
        let resp = get(&app, "/api/v1/projects", None).await;
        assert_eq!(resp.status(), 401, "counted before authentication");
        assert_eq!(header(&resp, "ratelimit-policy"), "\"reads\";q=3;w=60");
        let limit = header(&resp, "ratelimit");
        assert!(limit.starts_with(&format!("\"reads\";r={remaining};t=")), "{limit}");
    }
    let resp = get(&app, "/api/v1/projects", None).await;
    assert_eq!(resp.status(), 429);
    let retry_after: u64 = header(&resp, "retry-after").parse().unwrap();
    let limit = header(&resp, "ratelimit");
    let t: u64 = limit.rsplit("t=").next().unwrap().parse().unwrap();
    assert!(limit.starts_with("\"reads\";r=0;"), "{limit}");
    assert!(retry_after >= t && t >= 1, "Retry-After {retry_after} is never earlier than t={t}");
    assert!((19..=21).contains(&retry_after), "one slot frees after 60s/3: {retry_after}");
    assert_eq!(header(&resp, "content-type"), "application/problem+json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "https://iana.org/assignments/http-problem-types#quota-exceeded");
    assert_eq!(body["violated-policies"], serde_json::json!(["reads"]));
    assert_eq!((body["status"].as_u64(), body["code"].as_str()), (Some(429), Some("RATE_LIMITED")));
    // Writes have their own budget; health, metrics and docs are never limited.
    let resp = support::client().post(app.url("/api/v1/projects")).json(&serde_json::json!({"name": "x"})).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    for path in ["/health/live", "/health/ready", "/metrics", "/openapi.json"] {
        let resp = get(&app, path, None).await;
        assert_ne!(resp.status(), 429, "{path}");
        assert!(resp.headers().get("ratelimit").is_none(), "{path} carries no rate-limit fields");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_budget() {
    let p = prefix();
    let overrides = [("JEEX_REDIS_PREFIX", p.as_str()), ("JEEX_RATE_LIMIT_READS", "4/60s")];
    let one = support::start(support::config(&overrides)).await;
    let two = support::start(support::config(&overrides)).await;
    for app in [&one, &two, &one, &two] {
        assert_eq!(get(app, "/api/v1/projects", None).await.status(), 401);
    }
    assert_eq!(get(&one, "/api/v1/projects", None).await.status(), 429);
    assert_eq!(get(&two, "/api/v1/projects", None).await.status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_counts_only_from_a_trusted_proxy() {
    let untrusted = support::start(support::config(&[("JEEX_REDIS_PREFIX", &prefix()), ("JEEX_RATE_LIMIT_READS", "2/60s")])).await;
    let statuses: Vec<u16> = futures_util::future::join_all(
        ["203.0.113.1", "203.0.113.2", "203.0.113.3"].map(|ip| get(&untrusted, "/api/v1/projects", Some(ip))),
    )
    .await
    .iter()
    .map(|r| r.status().as_u16())
    .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 1, "a spoofed header does not buy a new budget: {statuses:?}");

    let trusted = support::start(support::config(&[
        ("JEEX_REDIS_PREFIX", &prefix()),
        ("JEEX_RATE_LIMIT_READS", "2/60s"),
        ("JEEX_TRUSTED_PROXIES", "127.0.0.0/8"),
    ]))
    .await;
    for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        assert_eq!(
            get(&trusted, "/api/v1/projects", Some(ip)).await.status(),
            401,
            "behind a trusted proxy each client has its own budget"
        );
    }
    assert_eq!(get(&trusted, "/api/v1/projects", Some("203.0.113.9, 203.0.113.1")).await.status(), 401);
    assert_eq!(get(&trusted, "/api/v1/projects", Some("203.0.113.9, 203.0.113.1")).await.status(), 429, "the nearest untrusted hop counts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_open_by_default_and_closed_when_configured() {
    let dead = format!("redis://127.0.0.1:{}/0", closed_port());
    let open = support::start(support::config(&[("REDIS_URL", &dead), ("JEEX_RATE_LIMIT_READS", "1/60s")])).await;
    for _ in 0..3 {
        assert_eq!(get(&open, "/api/v1/projects", None).await.status(), 401, "served despite the limiter failing");
    }
    let metrics = get(&open, "/metrics", None).await.text().await.unwrap();
    assert!(metrics.lines().any(|l| l.starts_with("jeex_rate_limit_errors_total") && !l.ends_with(" 0")), "{metrics}");

    let closed = support::start(support::config(&[
        ("REDIS_URL", &dead),
        ("JEEX_RATE_LIMIT_READS", "1/60s"),
        ("JEEX_RATE_LIMIT_ON_REDIS_ERROR", "closed"),
    ]))
    .await;
    let resp = get(&closed, "/api/v1/projects", None).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(header(&resp, "retry-after"), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_replica_limits_in_memory() {
    let app = support::start(support::config(&[("REDIS_URL", ""), ("JEEX_RATE_LIMIT_WRITES", "2/60s")])).await;
    let post = || support::client().post(app.url("/api/v1/auth/logout")).json(&serde_json::json!({})).send();
    // Auth endpoints have their own class; writes elsewhere share another.
    assert_eq!(post().await.unwrap().status(), 204);
    let write = || support::client().delete(app.url(&format!("/api/v1/projects/{}", uuid::Uuid::now_v7()))).send();
    let statuses =
        [write().await.unwrap().status().as_u16(), write().await.unwrap().status().as_u16(), write().await.unwrap().status().as_u16()];
    assert_eq!(statuses, [401, 401, 429]);
}

/// A GET of `path` as `ip` (through a trusted proxy) with extra headers.
async fn get_as(app: &support::TestApp, path: &str, ip: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = support::client().get(app.url(path)).header("x-forwarded-for", ip);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

/// Reads at `reads` per minute, each client address its own (the peer is a trusted proxy).
async fn behind_a_proxy(reads: &str) -> support::TestApp {
    support::start(support::config(&[
        ("JEEX_REDIS_PREFIX", &prefix()),
        ("JEEX_RATE_LIMIT_READS", reads),
        ("JEEX_TRUSTED_PROXIES", "127.0.0.0/8"),
    ]))
    .await
}

/// Issue 23, acceptance 3: the project's shared quota (10 × 3 here) is charged only after the
/// membership check. Eleven strangers with valid tokens send 33 reads to the project's paths
/// from addresses of their own: all 404, and the member's next read finds the quota whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_never_spend_a_projects_quota() {
    let app = behind_a_proxy("3/60s").await;
    let owner = support::session::login(&app, "quota-owner@example.com").await;
    let project = owner.project("Quota").await;
    let path = format!("/api/v1/projects/{project}/documents");
    for n in 0..11 {
        let stranger = support::session::login(&app, &format!("stranger-{n}@example.com")).await;
        let bearer = format!("Bearer {}", stranger.token);
        for _ in 0..3 {
            let resp = get_as(&app, &path, &format!("198.51.100.{n}"), &[("authorization", &bearer)]).await;
            assert_eq!(resp.status(), 404, "a stranger gets 404, never the project's 429");
            assert!(!header(&resp, "ratelimit").contains("project"), "nothing of the project's quota is shown to a stranger");
        }
    }
    let bearer = format!("Bearer {}", owner.token);
    let resp = get_as(&app, &path, "192.0.2.1", &[("authorization", &bearer)]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "ratelimit-policy"), "\"reads\";q=3;w=60, \"reads-project\";q=30;w=60");
    let limit = header(&resp, "ratelimit");
    assert!(limit.starts_with("\"reads\";r=2;") && limit.contains("\"reads-project\";r=29;"), "{limit}");
}

/// `bearer` (any case) is one scheme: the limiter counts the user exactly as with `Bearer`,
/// so changing the case does not escape the user's quota by moving address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lower_case_bearer_counts_against_its_user() {
    let app = behind_a_proxy("3/60s").await;
    let user = support::session::login(&app, "lower-case@example.com").await;
    for (n, scheme) in ["Bearer", "bearer", "BEARER"].into_iter().enumerate() {
        let resp =
            get_as(&app, "/api/v1/projects", &format!("198.51.100.{n}"), &[("authorization", &format!("{scheme} {}", user.token))]).await;
        assert_eq!(resp.status(), 200, "{scheme} authenticates");
        assert!(header(&resp, "ratelimit").starts_with(&format!("\"reads\";r={};", 2 - n)), "{scheme}: {}", header(&resp, "ratelimit"));
    }
    let resp = get_as(&app, "/api/v1/projects", "198.51.100.9", &[("authorization", &format!("bearer {}", user.token))]).await;
    assert_eq!(resp.status(), 429, "a fresh address does not buy the user a new quota");
}

/// API-key requests count per key and per project, and the `RateLimit` fields show both: a
/// key's quota follows it from address to address, and the project's shared quota (10 × 2)
/// refuses the key that would go over it, naming `reads-project`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_requests_count_per_key_and_per_project() {
    let app = behind_a_proxy("2/60s").await;
    let owner = support::session::login(&app, "key-owner@example.com").await;
    let project = owner.project("Keys").await;
    let mut keys = Vec::new();
    for n in 0..11 {
        let (status, key) = owner
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/projects/{project}/api-keys"),
                Some(serde_json::json!({ "name": format!("k{n}"), "role": "viewer" })),
            )
            .await;
        assert_eq!(status, 201, "{key}");
        keys.push(key["key"].as_str().unwrap().to_owned());
    }
    let path = format!("/api/v1/projects/{project}/documents");
    for n in 0..2 {
        let resp = get_as(&app, &path, &format!("198.51.100.{n}"), &[("x-api-key", &keys[0])]).await;
        assert_eq!(resp.status(), 200);
        let limit = header(&resp, "ratelimit");
        assert!(limit.starts_with(&format!("\"reads\";r={};", 1 - n)), "the key's own count: {limit}");
        assert!(limit.contains(&format!("\"reads-project\";r={};", 19 - n)), "the project's count: {limit}");
        assert_eq!(header(&resp, "ratelimit-policy"), "\"reads\";q=2;w=60, \"reads-project\";q=20;w=60");
    }
    let resp = get_as(&app, &path, "198.51.100.50", &[("x-api-key", &keys[0])]).await;
    assert_eq!(resp.status(), 429, "the key's quota follows it to a new address");
    // Keys 1..=9 spend the rest of the project's 20, each from an address of its own.
    for (n, key) in keys[1..10].iter().enumerate() {
        for _ in 0..2 {
            assert_eq!(get_as(&app, &path, &format!("203.0.113.{n}"), &[("x-api-key", key)]).await.status(), 200);
        }
    }
    let resp = get_as(&app, &path, "203.0.113.99", &[("x-api-key", &keys[10])]).await;
    assert_eq!(resp.status(), 429, "a fresh key and address, but the project's quota is spent");
    assert!(header(&resp, "retry-after").parse::<u64>().unwrap() >= 1);
    assert!(header(&resp, "ratelimit").starts_with("\"reads-project\";r=0;"), "{}", header(&resp, "ratelimit"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["violated-policies"], serde_json::json!(["reads-project"]));
    // A wrong key is counted under its own digest, spending nobody's quota but its sender's.
    let resp = get_as(&app, &path, "203.0.113.98", &[("x-api-key", "jeex_wrong")]).await;
    assert_eq!(resp.status(), 401);
}

/// Quota of the store-level tests below: four a minute.
const QUOTA: Quota = Quota { limit: 4, window: std::time::Duration::from_secs(60) };
/// Multiples of [`three_keys`]: IP, user, project.
const MULTIPLIERS: [u32; 3] = [1, 2, 10];

/// The Redis store on the test Redis.
async fn redis_store() -> RedisStore {
    RedisStore::new(
        jeex_api::deps::redis::Redis::connect(&jeex_e2e::services::redis_url(), std::time::Duration::from_secs(5)).unwrap().connection(),
    )
}

/// An IP, a user and a project key under prefix `p`.
fn three_keys(p: &str) -> Vec<String> {
    vec![format!("{p}ip"), format!("{p}user"), format!("{p}project")]
}

/// The Redis script and the in-memory store decide alike (`gcra`'s arithmetic): over a burst
/// on three keys with different multiples, one of them new halfway, they admit, count down,
/// report the reset and refuse alike.
#[tokio::test]
async fn the_redis_script_and_the_memory_store_agree() {
    let (redis, memory, quota, p) = (redis_store().await, MemoryStore::default(), QUOTA, prefix());
    let (mut keys, multipliers) = (three_keys(&p), MULTIPLIERS);
    let mut refused = 0;
    for step in 0..12 {
        if step == 6 {
            // A fresh user key beside a spent IP key: the tightest key still decides.
            keys[1] = format!("{p}other-user");
        }
        let (shared, local) = (redis.check(keys.clone(), &multipliers, quota).await.unwrap(), memory.check(&keys, &multipliers, quota));
        assert_eq!(shared, local, "step {step}");
        refused += usize::from(!shared.allowed);
    }
    assert_eq!(refused, 8, "four admitted, then the IP key refuses everything");
    let none = redis.check(Vec::new(), &[], quota).await.unwrap();
    assert!(none.allowed, "a request with no key to count against is admitted");
}

/// A burst that lands in one script run as one group gets, request by request, what the
/// in-memory store gives the same requests one at a time. On a current-thread runtime the
/// batching task cannot run until every check has queued, so all ten share one run.
#[tokio::test]
async fn a_burst_evaluated_as_one_group_matches_the_memory_store_request_by_request() {
    let (redis, memory, quota, p) = (redis_store().await, MemoryStore::default(), QUOTA, prefix());
    let (keys, multipliers) = (three_keys(&p), MULTIPLIERS);
    let shared = futures_util::future::join_all((0..10).map(|_| redis.check(keys.clone(), &multipliers, quota))).await;
    for (n, outcome) in shared.into_iter().enumerate() {
        assert_eq!(outcome.unwrap(), memory.check(&keys, &multipliers, quota), "request {n}");
    }
    let after = redis.check(keys.clone(), &multipliers, quota).await.unwrap();
    assert!(!after.allowed, "the group's admissions were stored");
    assert_eq!(after.reset_secs, 15);
}

/// Requests that share a round trip are still counted one after the other: of twenty at once
/// on one key with a quota of four, exactly four are admitted, each with its own `remaining`.
/// Half of them name identical keys (one client's burst, evaluated by the script as a group),
/// the other half each a user of its own, so groups and single requests share the IP key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_batched_into_one_script_run_are_counted_exactly() {
    let (store, quota, p) = (std::sync::Arc::new(redis_store().await), QUOTA, prefix());
    let checks: Vec<_> = (0..20)
        .map(|i| {
            let user = if i % 2 == 0 { "burst".to_string() } else { i.to_string() };
            let (store, keys) = (store.clone(), vec![format!("{p}ip"), format!("{p}user:{user}")]);
            tokio::spawn(async move { store.check(keys, &[1, 1], quota).await.unwrap() })
        })
        .collect();
    let mut remaining = Vec::new();
    for check in checks {
        let outcome = check.await.unwrap();
        if outcome.allowed {
            remaining.push(outcome.remaining);
        } else {
            assert_eq!(outcome.reset_secs, 15, "the next slot frees one interval after the fourth");
        }
    }
    remaining.sort_unstable();
    assert_eq!(remaining, [0, 1, 2, 3]);
}
