//! Reconcile scenarios against the API-server double and its simulated controllers, with the
//! dependency probes hitting the real PostgreSQL (and a closed port when a dependency is
//! down): a fresh resource, the migration Job succeeding, steady state, a failed Job and its
//! retry, a new image, and a dependency that is down.

mod support;

use http::Method;
use jeex_e2e::services::database_url;
use serde_json::json;
use support::{
    apiserver::Call,
    world::{EVENTS, JB, JOBS, World},
};

fn writes_to<'a>(calls: &'a [Call], path_part: &str) -> Vec<&'a Call> {
    calls.iter().filter(|c| c.writes() && c.path.contains(path_part)).collect()
}

#[tokio::test]
async fn a_fresh_resource_gets_its_secrets_then_a_migration_job_and_no_rollout() {
    let w = World::new("ghcr.io/jeex/jeex-api:1.0.0", &database_url());
    let calls = w.reconcile().await;
    let secrets = writes_to(&calls, "/secrets");
    assert_eq!(secrets.len(), 2, "the app credentials and the JWT key pair: {calls:?}");
    let job = calls.iter().position(|c| c.method == Method::POST && c.path == JOBS).expect("the migration Job is created");
    assert!(
        calls.iter().rposition(|c| c.method == Method::POST && c.path.contains("/secrets")).unwrap() < job,
        "secrets come before the Job"
    );
    assert!(writes_to(&calls, "/deployments").is_empty(), "no Deployment before the migrations succeed");
    assert_eq!(w.condition("SecretsReady").0, "True");
    assert_eq!(w.condition("DependenciesReady").0, "True");
    assert_eq!(
        w.condition("MigrationsSucceeded"),
        (
            "False".into(),
            "Migrating".into(),
            format!("Job {} is running", w.job_path("ghcr.io/jeex/jeex-api:1.0.0").rsplit('/').next().unwrap())
        )
    );
    assert_eq!(w.status()["phase"], "Migrating");
    // (100 - 10 spare - 2 for the Job) / 3 pods = 29 each: 20 + 9 overflow.
    assert_eq!((w.status()["pools"]["perReplica"].as_i64(), w.status()["pools"]["overflow"].as_i64()), (Some(20), Some(9)));
    let job = w.api.get(&w.job_path("ghcr.io/jeex/jeex-api:1.0.0")).unwrap();
    assert_eq!(job["spec"]["template"]["spec"]["containers"][0]["args"], json!(["migrate"]));
    assert!(w.events().contains(&"MigrationStarted".to_owned()));
}

#[tokio::test]
async fn after_the_job_succeeds_the_api_rolls_out_and_steady_state_makes_no_writes() {
    let image = "ghcr.io/jeex/jeex-api:1.0.0";
    let w = World::new(image, &database_url());
    w.reconcile().await;
    // Still running: nothing rolls.
    assert!(writes_to(&w.reconcile().await, "/deployments").is_empty());
    w.api.tick(8);
    let calls = w.reconcile().await;
    for kind in ["/deployments/jeex", "/services/jeex", "/poddisruptionbudgets/jeex"] {
        assert_eq!(writes_to(&calls, kind).len(), 1, "{kind} applied: {calls:?}");
    }
    assert!(
        writes_to(&calls, "/deployments").iter().all(|c| c.method == Method::PATCH && c.verb == "create"),
        "server-side apply that creates"
    );
    assert_eq!(w.deployment_image().as_deref(), Some(image));
    assert_eq!(w.status()["migratedImage"], image);
    assert_eq!(w.condition("MigrationsSucceeded").0, "True");
    assert_eq!(w.status()["phase"], "RollingOut");

    w.api.tick(5);
    w.reconcile().await;
    assert_eq!(w.condition("Ready").0, "True");
    assert_eq!(w.status()["phase"], "Ready");
    let steady = w.reconcile().await;
    assert!(
        steady.iter().all(|c| !c.writes()),
        "steady state writes nothing: {:?}",
        steady.iter().filter(|c| c.writes()).collect::<Vec<_>>()
    );
    assert!(!steady.is_empty());
}

#[tokio::test]
async fn a_new_image_migrates_first_and_a_failed_job_leaves_the_deployment_alone() {
    let w = World::ready_on("ghcr.io/jeex/jeex-api:1.0.0").await;
    w.set_image("ghcr.io/jeex/jeex-api:2.0.0");
    w.api
        .state
        .lock()
        .unwrap()
        .sim
        .failing_migrations
        .insert("ghcr.io/jeex/jeex-api:2.0.0".into(), "applying 20261201000001\nerror: column \"slug\" already exists\n".into());
    let calls = w.reconcile().await;
    assert_eq!(calls.iter().filter(|c| c.method == Method::POST && c.path == JOBS).count(), 1, "a Job for the new image");
    assert!(writes_to(&calls, "/deployments").is_empty());
    assert_eq!(w.deployment_image().as_deref(), Some("ghcr.io/jeex/jeex-api:1.0.0"));

    // The Job fails; its pod's log says why.
    let job = w.job_path("ghcr.io/jeex/jeex-api:2.0.0");
    w.api.tick(8);
    let calls = w.reconcile().await;
    assert!(writes_to(&calls, "/deployments").is_empty(), "the Deployment stays on 1.0.0");
    assert_eq!(w.deployment_image().as_deref(), Some("ghcr.io/jeex/jeex-api:1.0.0"));
    let (status, reason, message) = w.condition("MigrationsSucceeded");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "MigrationFailed"));
    assert!(message.contains("BackoffLimitExceeded") && message.contains("column \"slug\" already exists"), "{message}");
    assert_eq!(w.condition("Stalled").0, "True");
    assert!(w.events().contains(&"MigrationFailed".to_owned()));
    assert_eq!(w.status()["phase"], "Failed");
    // It stays failed, quietly, until someone acts.
    assert!(w.reconcile().await.iter().all(|c| !c.writes()));

    // Asking for a retry removes the leftover Job, then runs a fresh one of the same name.
    w.api.state.lock().unwrap().sim.failing_migrations.clear();
    w.api.edit(JB, "kubectl-annotate", json!({ "metadata": { "annotations": { "jeex.dev/retry-migration": "1" } } }));
    let calls = w.reconcile().await;
    assert!(calls.iter().any(|c| c.method == Method::DELETE && c.path == job), "{calls:?}");
    w.api.tick(1);
    let calls = w.reconcile().await;
    assert!(calls.iter().any(|c| c.method == Method::POST && c.path == JOBS), "{calls:?}");
    w.api.tick(8);
    w.reconcile().await;
    assert_eq!(w.deployment_image().as_deref(), Some("ghcr.io/jeex/jeex-api:2.0.0"));
}

#[tokio::test]
async fn with_a_dependency_down_nothing_starts_and_the_condition_names_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let w = World::new("ghcr.io/jeex/jeex-api:1.0.0", &format!("postgres://owner:pw@127.0.0.1:{port}/jeex"));
    let calls = w.reconcile().await;
    assert!(!calls.iter().any(|c| c.method == Method::POST && c.path == JOBS), "no migration Job");
    assert!(writes_to(&calls, "/deployments").is_empty());
    let (status, reason, message) = w.condition("DependenciesReady");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "DependencyDown"));
    assert!(message.starts_with("postgres: cannot connect"), "{message}");
    assert!(!message.contains("pw@"), "no credentials in the status");
    assert_eq!(w.status()["phase"], "WaitingForDependencies");
}

#[tokio::test]
async fn a_missing_owner_secret_is_named_and_nothing_is_created() {
    let w = World::new("img", &database_url());
    w.api.take_calls();
    let mut objects = w.api.get("/api/v1/namespaces/prod/secrets/owner").unwrap();
    objects["data"] = json!({});
    w.api.put("/api/v1/namespaces/prod/secrets/owner", objects);
    let calls = w.reconcile().await;
    assert!(calls.iter().filter(|c| c.writes()).all(|c| c.path.starts_with(JB) || c.path.starts_with(EVENTS)), "{calls:?}");
    let (status, reason, message) = w.condition("SecretsReady");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "SecretMissing"));
    assert!(message.contains("Secret owner with key \"url\""), "{message}");
}

#[tokio::test]
async fn existing_secrets_are_never_overwritten() {
    use support::world::secret;
    let w = World::new("img:1", &database_url());
    // Secrets that already exist under the generated names (e.g. restored from a backup).
    let app = secret("jeex-db-app", &[("url", "postgres://mine:kept@db/jeex")]);
    let mut jwt = secret("jeex-jwt", &[("k-mine.key.pem", "PRIVATE"), ("k-mine.pub.pem", "PUBLIC")]);
    jwt["metadata"]["annotations"] = json!({ "jeex.dev/current-kid": "k-mine" });
    w.api.put("/api/v1/namespaces/prod/secrets/jeex-db-app", app.clone());
    w.api.put("/api/v1/namespaces/prod/secrets/jeex-jwt", jwt.clone());
    for _ in 0..2 {
        let calls = w.reconcile().await;
        assert!(calls.iter().filter(|c| c.path.contains("/secrets")).all(|c| !c.writes()), "{calls:?}");
    }
    assert_eq!(w.api.get("/api/v1/namespaces/prod/secrets/jeex-db-app").unwrap()["data"], app["data"]);
    assert_eq!(w.api.get("/api/v1/namespaces/prod/secrets/jeex-jwt").unwrap()["data"], jwt["data"]);
}

#[tokio::test]
async fn migrations_run_one_at_a_time() {
    let w = World::ready_on("img:1").await;
    w.set_image("img:2");
    w.reconcile().await;
    // Changed again while the Job for img:2 still runs: img:3 waits for it.
    w.set_image("img:3");
    let calls = w.reconcile().await;
    assert!(!calls.iter().any(|c| c.method == Method::POST && c.path == JOBS), "no second Job while one runs: {calls:?}");
    assert!(w.condition("Ready").2.contains("waiting for Job"), "{:?}", w.condition("Ready"));
    w.api.tick(8);
    let calls = w.reconcile().await;
    assert!(calls.iter().any(|c| c.method == Method::POST && c.path == JOBS), "then img:3 migrates");
    assert!(w.api.get(&w.job_path("img:3")).is_some());
}

#[tokio::test]
async fn a_refused_call_reaches_the_status_keeps_what_was_done_and_backs_off() {
    use std::sync::Arc;

    use jeex_operator::{
        metrics::Metrics,
        reconcile::{Context, error_policy, retry_delay},
    };
    use support::{apiserver::ApiServer, rbac::Authorizer, world::manifest};

    // The chart as it was: no `create` on deployments, so the first rollout's apply is refused.
    let mut objects = support::chart::rendered().to_vec();
    for o in objects.iter_mut().filter(|o| o["kind"] == "ClusterRole") {
        for rule in o["rules"].as_array_mut().unwrap() {
            if rule["resources"] == json!(["deployments"]) {
                rule["verbs"].as_array_mut().unwrap().retain(|v| v != "create");
            }
        }
    }
    let api = ApiServer::new(Authorizer::from_objects(&objects, "ops", "jeex-operator"));
    api.put(JB, manifest("img:1"));
    api.put("/api/v1/namespaces/prod/secrets/owner", support::world::secret("owner", &[("url", &database_url())]));
    let w = World { ctx: Arc::new(Context::with_clock(api.client(), Metrics::default(), api.clock())), api };
    w.reconcile().await;
    w.api.tick(8);
    let (result, calls) = w.try_reconcile().await;
    let error = result.unwrap_err();
    assert!(error.contains("403") || error.contains("forbidden"), "{error}");
    assert!(calls.iter().any(|c| c.code == 403 && c.resource == "deployments"), "{calls:?}");
    // The status says why, and keeps the migration that did succeed (no re-run when the Job expires).
    let (stalled, reason, message) = w.condition("Stalled");
    assert_eq!((stalled.as_str(), reason.as_str()), ("True", "Forbidden"));
    assert!(message.contains("cannot create resource \"deployments\""), "{message}");
    assert_eq!(w.status()["migratedImage"], "img:1");
    assert!(w.events().contains(&"Forbidden".to_owned()), "{:?}", w.events());
    // Back-off grows per failure, capped at five minutes, and resets on success.
    let jb = Arc::new(w.resource());
    let delays: Vec<_> = (0..3).map(|_| error_policy(jb.clone(), &jeex_operator::reconcile::Error::Timeout, w.ctx.clone())).collect();
    let after = |s| kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(s));
    assert_eq!(delays, vec![after(5), after(10), after(20)]);
    assert_eq!((retry_delay(1).as_secs(), retry_delay(2).as_secs(), retry_delay(30).as_secs()), (5, 10, 300));
}

#[tokio::test]
async fn a_rotation_waits_while_the_gate_is_closed_or_the_rollout_held() {
    use support::world::JWT;
    let w = World::ready_on("img:1").await;
    let before = w.api.get(JWT).unwrap();
    w.api.edit(JB, "kubectl-annotate", json!({ "metadata": { "annotations": { "jeex.dev/rotate-signing-key": "now" } } }));
    // Held: nothing moves.
    w.set_spec(json!({ "rollout": { "paused": true } }));
    w.run(3, 5).await;
    assert_eq!(w.api.get(JWT).unwrap()["data"], before["data"], "paused: no key added");
    // Gate closed (PostgreSQL unreachable): nothing moves either.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    w.api.put(
        "/api/v1/namespaces/prod/secrets/owner",
        support::world::secret("owner", &[("url", &format!("postgres://o:p@127.0.0.1:{port}/x"))]),
    );
    w.set_spec(json!({ "rollout": { "paused": false } }));
    w.run(2, 5).await;
    assert_eq!(w.condition("DependenciesReady").0, "False");
    assert_eq!(w.api.get(JWT).unwrap()["data"], before["data"], "gate closed: no key added");
    // Gate open again: the first step (a new key, accepted but not yet signing) goes out.
    w.api.put("/api/v1/namespaces/prod/secrets/owner", support::world::secret("owner", &[("url", &database_url())]));
    w.reconcile().await;
    let after = w.api.get(JWT).unwrap();
    assert_ne!(after["data"], before["data"]);
    assert_eq!(after["metadata"]["annotations"]["jeex.dev/current-kid"], before["metadata"]["annotations"]["jeex.dev/current-kid"]);
    assert!(after["metadata"]["annotations"]["jeex.dev/next-kid"].is_string());
}

#[tokio::test]
async fn rotating_a_referenced_redis_secret_rolls_the_pods() {
    use support::world::DEPLOYMENT;
    let redis = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/15".into());
    let w = World::new("img:1", &database_url());
    w.api.put("/api/v1/namespaces/prod/secrets/redis", support::world::secret("redis", &[("url", &redis)]));
    w.set_spec(json!({ "redis": { "urlSecret": { "name": "redis", "key": "url" }, "maxConnections": 50 } }));
    w.until_ready(30).await;
    let checksum =
        |w: &World| w.api.get(DEPLOYMENT).unwrap()["spec"]["template"]["metadata"]["annotations"]["jeex.dev/config-checksum"].clone();
    let before = checksum(&w);
    // Same URL, new password field: a rotated Secret.
    w.api.put("/api/v1/namespaces/prod/secrets/redis", support::world::secret("redis", &[("url", &redis), ("password", "rotated")]));
    w.reconcile().await;
    assert_ne!(checksum(&w), before, "the pod template changed: the pods roll");
    assert!(jeex_operator::secrets::referenced(&w.resource()).contains(&"redis".to_owned()), "and the controller watches it");
}
