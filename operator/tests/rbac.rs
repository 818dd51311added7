//! The chart's RBAC, as `helm template` renders it, grants exactly what the controller uses:
//! every call recorded while the reconcile scenarios and leader election run (each one
//! authorized by the double against those same rules), plus the controller's watches, and
//! nothing more (an unused verb fails this test as surely as a missing one).

mod support;

use std::collections::BTreeSet;

use http::Method;
use jeex_operator::lease::Elector;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use support::{
    apiserver::Call,
    chart,
    world::{JB, World},
};

type Grant = (String, String, String);

fn grant(group: &str, resource: &str, verb: &str) -> Grant {
    (group.to_owned(), resource.to_owned(), verb.to_owned())
}

/// `(group, resource[/subresource], verb)` of one call, as the double authorized it (an
/// apply that created the object counts as the `create` it was authorized as, besides `patch`).
fn verbs_of(call: &Call) -> Vec<Grant> {
    let mut out = vec![grant(&call.group, &call.resource, &call.verb)];
    if call.verb == "create" && call.method == Method::PATCH {
        out.push(grant(&call.group, &call.resource, "patch"));
    }
    out
}

/// The rules of one rendered RBAC object.
fn rules(kind: &str, name: &str) -> BTreeSet<Grant> {
    let role = chart::object(kind, name);
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    out.insert(grant(group.as_str().unwrap(), resource.as_str().unwrap(), verb.as_str().unwrap()));
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn the_chart_grants_exactly_the_verbs_the_controller_uses() {
    let mut used: BTreeSet<Grant> = BTreeSet::new();
    let mut record = |calls: Vec<Call>| {
        for call in &calls {
            assert_ne!(call.code, 403, "the rendered chart's RBAC refused {call:?}");
        }
        used.extend(calls.iter().flat_map(verbs_of));
    };

    // Everything a resource goes through: creation, migration, rollout, a new image whose
    // migration fails (its log read), its retry, a key rotation, scaling to one replica (PDB
    // removed).
    let w = World::new("img:1", &jeex_e2e::services::database_url());
    for _ in 0..6 {
        record(w.reconcile().await);
        w.api.tick(5);
    }
    assert_eq!(w.condition("Ready").0, "True", "{:?}", w.status());
    w.set_image("img:2");
    w.api.state.lock().unwrap().sim.failing_migrations.insert("img:2".into(), "error\n".into());
    record(w.reconcile().await);
    w.api.tick(8);
    record(w.reconcile().await);
    w.api.state.lock().unwrap().sim.failing_migrations.clear();
    w.api.edit(
        JB,
        "kubectl-annotate",
        json!({ "metadata": { "annotations": { "jeex.dev/retry-migration": "1", "jeex.dev/rotate-signing-key": "1" } } }),
    );
    for _ in 0..8 {
        record(w.reconcile().await);
        w.api.tick(5);
    }
    w.set_spec(json!({ "replicas": 1 }));
    for _ in 0..4 {
        record(w.reconcile().await);
        w.api.tick(5);
    }
    assert!(w.api.get("/apis/policy/v1/namespaces/prod/poddisruptionbudgets/jeex").is_none(), "the PDB went");

    // Leader election.
    let elector = Elector::new(w.api.client(), "ops", "jeex-operator", "a");
    elector.try_claim(Timestamp::now()).await.unwrap();
    elector.try_claim(Timestamp::now()).await.unwrap();
    record(w.api.take_calls());

    // The controller's watches (list + watch of the resource, what it owns and the Secrets it
    // reads), and the Event recorder's update of a repeated Event's series.
    for resource in [("jeex.dev", "jeexbackends"), ("apps", "deployments"), ("batch", "jobs"), ("", "secrets")] {
        used.insert(grant(resource.0, resource.1, "list"));
        used.insert(grant(resource.0, resource.1, "watch"));
    }
    used.insert(grant("events.k8s.io", "events", "patch"));

    let (leases, cluster): (BTreeSet<Grant>, BTreeSet<Grant>) = used.into_iter().partition(|g| g.1 == "leases");
    let chart = rules("ClusterRole", chart::RELEASE);
    let missing: Vec<_> = cluster.difference(&chart).collect();
    let unused: Vec<_> = chart.difference(&cluster).collect();
    assert!(missing.is_empty() && unused.is_empty(), "ClusterRole: missing {missing:?}, unused {unused:?}");
    assert_eq!(rules("Role", &format!("{}-leader", chart::RELEASE)), leases, "the leader Lease Role");
}
