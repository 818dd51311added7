//! The chart's RBAC grants exactly what the controller uses: every call recorded while the
//! reconcile scenarios and leader election run, plus the controller's watches, and nothing
//! more (an unused verb fails this test as surely as a missing one).

mod support;

use std::collections::BTreeSet;

use http::Method;
use jeex_operator::lease::Elector;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use support::{
    apiserver::Call,
    world::{JB, World},
};

type Grant = (String, String, String);

fn grant(group: &str, resource: &str, verb: &str) -> Grant {
    (group.to_owned(), resource.to_owned(), verb.to_owned())
}

/// `(group, resource[/subresource], verb)` of one call.
fn verb_of(call: &Call) -> Grant {
    let parts: Vec<&str> = call.path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts[0] {
        "api" => ("", &parts[2..]),
        _ => (parts[1], &parts[3..]),
    };
    // rest: namespaces/<ns>/<resource>[/<name>[/<subresource>]]
    let rest = if rest.first() == Some(&"namespaces") { &rest[2..] } else { rest };
    let resource = match rest.len() {
        3 => format!("{}/{}", rest[0], rest[2]),
        _ => rest[0].to_owned(),
    };
    let verb = match (&call.method, rest.len()) {
        (&Method::GET, 1) => "list",
        (&Method::GET, _) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, _) => "delete",
        _ => "unknown",
    };
    grant(group, &resource, verb)
}

/// The rules of a chart template (its `rules:` block is plain YAML).
fn rules(template: &str) -> BTreeSet<Grant> {
    let text = std::fs::read_to_string(format!("{}/../charts/jeex-operator/templates/{template}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let first_doc = text.split("\n---").next().unwrap();
    let block = &first_doc[first_doc.find("rules:").expect("a rules: block")..];
    let parsed: serde_yaml::Value = serde_yaml::from_str(block).unwrap();
    let mut out = BTreeSet::new();
    for rule in parsed["rules"].as_sequence().unwrap() {
        for group in rule["apiGroups"].as_sequence().unwrap() {
            for resource in rule["resources"].as_sequence().unwrap() {
                for verb in rule["verbs"].as_sequence().unwrap() {
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
    let mut record = |calls: Vec<Call>| used.extend(calls.iter().map(verb_of));

    // Everything a resource goes through: creation, migration, rollout, a new image whose
    // migration fails, its retry, a key rotation, scaling to one replica (PDB removed).
    let w = World::new("img:1", &jeex_e2e::services::database_url());
    record(w.reconcile().await);
    w.finish_job("img:1", "Complete", "");
    record(w.reconcile().await);
    w.deployment_ready();
    record(w.reconcile().await);
    w.set_image("img:2");
    record(w.reconcile().await);
    let job = w.job_path("img:2");
    let job_name = job.rsplit('/').next().unwrap().to_owned();
    w.finish_job("img:2", "Failed", "BackoffLimitExceeded");
    w.api.put(
        &format!("/api/v1/namespaces/prod/pods/{job_name}-a"),
        json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": format!("{job_name}-a"), "namespace": "prod", "labels": { "job-name": job_name } } }),
    );
    w.api.log(&format!("/api/v1/namespaces/prod/pods/{job_name}-a"), "error\n");
    record(w.reconcile().await);
    w.api.patch(JB, json!({ "metadata": { "annotations": { "jeex.dev/retry-migration": "1", "jeex.dev/rotate-signing-key": "1" } } }));
    record(w.reconcile().await);
    record(w.reconcile().await);
    w.api.patch(JB, json!({ "spec": { "replicas": 1 } }));
    w.finish_job("img:2", "Complete", "");
    record(w.reconcile().await);

    // Leader election.
    let elector = Elector::new(w.api.client(), "ops", "jeex-operator", "a");
    elector.try_claim(Timestamp::now()).await.unwrap();
    elector.try_claim(Timestamp::now()).await.unwrap();
    record(w.api.take_calls());

    // The controller's watches (list + watch of the resource and of what it owns), and the
    // Event recorder's update of a repeated Event's series.
    for resource in [("jeex.dev", "jeexbackends"), ("apps", "deployments"), ("batch", "jobs"), ("", "secrets")] {
        used.insert(grant(resource.0, resource.1, "list"));
        used.insert(grant(resource.0, resource.1, "watch"));
    }
    used.insert(grant("events.k8s.io", "events", "patch"));

    let (leases, cluster): (BTreeSet<Grant>, BTreeSet<Grant>) = used.into_iter().partition(|g| g.1 == "leases");
    let chart = rules("clusterrole.yaml");
    let missing: Vec<_> = cluster.difference(&chart).collect();
    let unused: Vec<_> = chart.difference(&cluster).collect();
    assert!(missing.is_empty() && unused.is_empty(), "ClusterRole: missing {missing:?}, unused {unused:?}");
    assert_eq!(rules("role.yaml"), leases, "the leader Lease Role");
}
