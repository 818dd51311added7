//! Day 1 and day 2 of one `JeexBackend` against the API-server double, every call authorized
//! by the rendered chart's RBAC, with the simulated Deployment, ReplicaSet, Job and garbage
//! collection controllers: install, scaling 4 → 8 → 2 at a budget of 100 with the connection
//! meter never over it, a signing-key rotation in which no live pod ever rejects another's
//! token, a failed migration fixed by a new image, a rollout past its deadline, a hand-edited
//! Deployment restored, a rollback, and the resource deleted and re-created with its Secrets.

mod support;

use jeex_e2e::services::database_url;
use serde_json::{Value, json};
use support::world::{DB_APP, DEPLOYMENT, JB, JWT, World, manifest};

fn peak(w: &World) -> (i64, String) {
    w.api.state.lock().unwrap().sim.peak.clone()
}

fn reset_peak(w: &World) {
    w.api.state.lock().unwrap().sim.peak = (0, String::new());
}

fn clean(w: &World) {
    let state = w.api.state.lock().unwrap();
    assert!(state.sim.token_rejections.is_empty(), "a live pod rejected another's token: {:#?}", state.sim.token_rejections);
    assert!(state.sim.start_failures.is_empty(), "a pod could not start: {:#?}", state.sim.start_failures);
}

fn pods_pool(w: &World) -> Vec<i64> {
    let state = w.api.state.lock().unwrap();
    state.sim.pods.iter().filter(|(p, _)| p.contains("/pods/jeex-") && !p.contains("-migrate-")).map(|(_, f)| f.connections).collect()
}

/// Scales to `replicas` and waits for Ready: every pod ends with a pool of `pool`, and the
/// connections held never exceeded the budget of 100 on the way.
async fn scale(w: &World, replicas: i64, pool: i64) {
    let from = w.resource().spec.replicas;
    reset_peak(w);
    w.set_spec(json!({ "replicas": replicas }));
    w.until_ready(80).await;
    assert_eq!(pods_pool(w), vec![pool; replicas as usize], "{replicas} pods with pools of {pool}");
    let (most, when) = peak(w);
    assert!(most <= 100, "over budget during {from} -> {replicas}: {when}");
    eprintln!("{from} -> {replicas}: peak {when}");
}

fn annotations(path: &str, w: &World) -> Value {
    w.api.get(path).unwrap()["metadata"]["annotations"].clone()
}

#[tokio::test]
async fn day_one_and_day_two() {
    // Install: dependencies probed (the real PostgreSQL), migration Job, rollout, Ready.
    let w = World::new("img:1", &database_url());
    w.until_ready(30).await;
    assert_eq!(w.status()["migratedImages"], json!(["img:1"]));
    clean(&w);

    // Scale to 4, then 4 → 8 and 8 → 2 at a budget of 100: never over it at any instant.
    scale(&w, 4, 17).await;
    scale(&w, 8, 9).await;
    scale(&w, 2, 29).await;
    clean(&w);

    // Rotate the signing key: every step waits for the pods; no live pod rejects a token.
    let first = annotations(JWT, &w)["jeex.dev/current-kid"].as_str().unwrap().to_owned();
    w.api.edit(JB, "kubectl-annotate", json!({ "metadata": { "annotations": { "jeex.dev/rotate-signing-key": "2026-12-01" } } }));
    for _ in 0..60 {
        w.run(1, 5).await;
        let a = annotations(JWT, &w);
        if a["jeex.dev/current-kid"] != first.as_str() && a.get("jeex.dev/retiring-kid").is_none() && a.get("jeex.dev/next-kid").is_none() {
            break;
        }
    }
    let a = annotations(JWT, &w);
    let second = a["jeex.dev/current-kid"].as_str().unwrap().to_owned();
    assert_ne!(second, first, "rotated: {a}");
    assert!(a[format!("retires.jeex.dev/{first}")].is_string(), "the old public key retires later: {a}");
    let data = w.api.get(JWT).unwrap()["data"].clone();
    assert!(data.get(format!("{first}.key.pem")).is_none() && data.get(format!("{first}.pub.pem")).is_some(), "{data}");
    w.until_ready(20).await;
    clean(&w);
    // A day later the old public key is no longer accepted, and then its file goes.
    w.api.advance(25 * 3600);
    for _ in 0..20 {
        w.run(1, 5).await;
        if w.api.get(JWT).unwrap()["data"].get(format!("{first}.pub.pem")).is_none() {
            break;
        }
    }
    assert!(w.api.get(JWT).unwrap()["data"].get(format!("{first}.pub.pem")).is_none(), "{}", w.api.get(JWT).unwrap());
    w.until_ready(20).await;
    clean(&w);

    // A failed migration leaves the API on its image; a fixed image recovers.
    w.api.state.lock().unwrap().sim.failing_migrations.insert("img:2".into(), "error: relation \"x\" does not exist\n".into());
    w.set_image("img:2");
    w.run(4, 5).await;
    assert_eq!((w.condition("Stalled").0.as_str(), w.condition("Stalled").1.as_str()), ("True", "MigrationFailed"));
    assert!(w.condition("MigrationsSucceeded").2.contains("relation \"x\" does not exist"));
    assert_eq!(w.deployment_image().as_deref(), Some("img:1"));
    w.set_image("img:3");
    w.until_ready(30).await;
    assert_eq!(w.deployment_image().as_deref(), Some("img:3"));

    // A rollout whose pods never become ready: Stalled once past its deadline; a new image recovers.
    w.api.state.lock().unwrap().sim.broken_images.insert("img:4".into());
    w.set_spec(json!({ "image": "img:4", "rollout": { "progressDeadlineSeconds": 60 } }));
    w.run(20, 5).await;
    let (stalled, reason, message) = w.condition("Stalled");
    assert_eq!((stalled.as_str(), reason.as_str()), ("True", "ProgressDeadlineExceeded"), "{message}");
    assert_eq!(w.condition("Ready").0, "False");
    w.set_image("img:5");
    w.until_ready(40).await;

    // Rolling back to an image migrated before runs no migration.
    let jobs_before = w.api.list(support::world::JOBS).len();
    w.set_image("img:3");
    let calls = w.run(1, 1).await;
    assert!(!calls.iter().any(|c| c.path == support::world::JOBS && c.method == http::Method::POST), "no migration Job for a rollback");
    w.until_ready(30).await;
    assert!(w.api.list(support::world::JOBS).len() <= jobs_before);

    // Someone scales the Deployment by hand: the next reconcile restores it.
    w.api.edit(DEPLOYMENT, "kubectl-scale", json!({ "spec": { "replicas": 7 } }));
    w.reconcile().await;
    assert_eq!(w.api.get(DEPLOYMENT).unwrap()["spec"]["replicas"], 2, "drift corrected");
    w.until_ready(30).await;

    // Deleted and re-created (an Argo CD replace): the same Secrets, nobody logged out.
    let (jwt, app) = (w.api.get(JWT).unwrap()["data"].clone(), w.api.get(DB_APP).unwrap()["data"].clone());
    w.api.delete(JB);
    w.api.tick(2);
    assert!(w.api.get(DEPLOYMENT).is_none(), "owned objects are garbage-collected");
    assert!(w.api.get(JWT).is_some() && w.api.get(DB_APP).is_some(), "generated Secrets are retained");
    w.api.put(JB, manifest("img:3"));
    w.until_ready(40).await;
    assert_eq!(w.api.get(JWT).unwrap()["data"], jwt, "the same signing keys");
    assert_eq!(w.api.get(DB_APP).unwrap()["data"], app, "the same database password");
    clean(&w);
}
