//! The API-server double refuses what kube-apiserver refuses, with the real status code and
//! reason: a test that passes against it cannot hide a call a cluster would turn down.
//! Each request goes through a kube `Client` as the operator's ServiceAccount.

mod support;

use k8s_openapi::api::{
    apps::v1::Deployment,
    batch::v1::Job,
    core::v1::{ConfigMap, Secret, Service},
};
use kube::{
    Api,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    core::{ApiResource, GroupVersionKind},
};
use serde_json::{Value, json};
use support::{apiserver::ApiServer, rbac::Authorizer, world::manifest};

/// Code and reason of a refused call.
fn refused<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String, String) {
    match result {
        Err(kube::Error::Api(s)) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn deployment(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "namespace": "prod" },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } }, "spec": { "containers": [{ "name": "api", "image": image }] } }
        }
    })
}

/// A server-side apply by the operator's field manager.
fn apply() -> PatchParams {
    PatchParams::apply("jeex-operator")
}

#[tokio::test]
async fn authorization_follows_the_rendered_chart_rbac() {
    let api = ApiServer::default();
    let client = api.client();
    // Not granted at all: ConfigMaps.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "prod");
    let (code, reason, message) = refused(cms.get("x").await);
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        message,
        "configmaps \"x\" is forbidden: User \"system:serviceaccount:ops:jeex-operator\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"prod\""
    );
    // Pods may be listed, and their log read, but not read one by one.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "prod");
    assert!(pods.list(&Default::default()).await.is_ok());
    assert_eq!(refused(pods.get("p").await).0, 403);
    // Leases only in the operator's own namespace (a Role, not a ClusterRole).
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(client.clone(), "prod");
    assert_eq!(refused(leases.get("jeex-operator").await).1, "Forbidden");
    // The resource's status is its own subresource: patchable; the resource itself is not.
    api.put("/apis/jeex.dev/v1alpha1/namespaces/prod/jeexbackends/jeex", manifest("img:1"));
    let gvk = GroupVersionKind::gvk("jeex.dev", "v1alpha1", "JeexBackend");
    let jbs: Api<DynamicObject> = Api::namespaced_with(client.clone(), "prod", &ApiResource::from_gvk_with_plural(&gvk, "jeexbackends"));
    assert!(jbs.patch_status("jeex", &PatchParams::default(), &Patch::Merge(json!({ "status": { "phase": "Ready" } }))).await.is_ok());
    let (code, _, message) = refused(jbs.patch("jeex", &PatchParams::default(), &Patch::Merge(json!({ "spec": { "replicas": 3 } }))).await);
    assert_eq!(code, 403);
    assert!(message.contains("cannot patch resource \"jeexbackends\""), "{message}");
}

#[tokio::test]
async fn an_apply_that_creates_needs_create_as_well_as_patch() {
    // The chart as it was before: patch on deployments, no create.
    let mut objects = support::chart::rendered().to_vec();
    for o in objects.iter_mut().filter(|o| o["kind"] == "ClusterRole") {
        for rule in o["rules"].as_array_mut().unwrap() {
            if let Some(verbs) = rule["verbs"].as_array_mut() {
                verbs.retain(|v| v != "create");
            }
        }
    }
    let api = ApiServer::new(Authorizer::from_objects(&objects, "ops", "jeex-operator"));
    let deployments: Api<Deployment> = Api::namespaced(api.client(), "prod");
    let (code, reason, message) = refused(deployments.patch("jeex", &apply().force(), &Patch::Apply(deployment("jeex", "img:1"))).await);
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert!(message.contains("cannot create resource \"deployments\""), "{message}");
    // Once it exists, the same apply is a patch and is allowed.
    api.put("/apis/apps/v1/namespaces/prod/deployments/jeex", deployment("jeex", "img:0"));
    assert!(deployments.patch("jeex", &apply().force(), &Patch::Apply(deployment("jeex", "img:1"))).await.is_ok());
}

#[tokio::test]
async fn server_side_apply_needs_a_manager_matching_type_and_name_and_reports_conflicts() {
    let api = ApiServer::default();
    let deployments: Api<Deployment> = Api::namespaced(api.client(), "prod");
    // No field manager.
    let (code, reason, message) =
        refused(deployments.patch("jeex", &PatchParams::default(), &Patch::Apply(deployment("jeex", "img:1"))).await);
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(message.contains("fieldManager: Required value: is required for apply patch"), "{message}");
    // Kind and name must match the path.
    let mut wrong_kind = deployment("jeex", "img:1");
    wrong_kind["kind"] = "StatefulSet".into();
    assert_eq!(refused(deployments.patch("jeex", &apply(), &Patch::Apply(wrong_kind)).await).0, 400);
    let (code, _, message) = refused(deployments.patch("jeex", &apply(), &Patch::Apply(deployment("other", "img:1"))).await);
    assert_eq!(code, 400);
    assert!(message.contains("does not match the name on the URL"), "{message}");

    // Created by the operator; then someone scales it by hand.
    deployments.patch("jeex", &apply(), &Patch::Apply(deployment("jeex", "img:1"))).await.unwrap();
    let path = "/apis/apps/v1/namespaces/prod/deployments/jeex";
    api.edit(path, "kubectl-scale", json!({ "spec": { "replicas": 5 } }));
    // Without force the operator's apply conflicts on exactly that field ...
    let (code, reason, message) = refused(deployments.patch("jeex", &apply(), &Patch::Apply(deployment("jeex", "img:1"))).await);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert_eq!(message, "Apply failed with 1 conflict: conflict with \"kubectl-scale\": .spec.replicas");
    // ... a field it does not set stays the other manager's, and force takes it back.
    let d = deployments.patch("jeex", &apply().force(), &Patch::Apply(deployment("jeex", "img:1"))).await.unwrap();
    assert_eq!(d.spec.replicas, Some(1));
    assert!(api.owners(path)["jeex-operator"].contains(&vec!["spec".to_owned(), "replicas".to_owned()]));
    // A field the operator stops applying is removed, since nobody else owns it.
    let mut fewer = deployment("jeex", "img:1");
    fewer["metadata"]["labels"] = json!({ "team": "a" });
    deployments.patch("jeex", &apply(), &Patch::Apply(fewer)).await.unwrap();
    deployments.patch("jeex", &apply(), &Patch::Apply(deployment("jeex", "img:1"))).await.unwrap();
    assert!(api.get(path).unwrap()["metadata"]["labels"].get("team").is_none());
}

#[tokio::test]
async fn writes_with_a_stale_resource_version_conflict() {
    let api = ApiServer::default();
    let secrets: Api<Secret> = Api::namespaced(api.client(), "prod");
    let created =
        secrets.create(&PostParams::default(), &serde_json::from_value(support::world::secret("s", &[("k", "1")])).unwrap()).await.unwrap();
    let mut first = created.clone();
    first.data.as_mut().unwrap().insert("k".into(), k8s_openapi::ByteString(b"2".to_vec()));
    secrets.replace("s", &PostParams::default(), &first).await.unwrap();
    // The second writer still holds the old resourceVersion.
    let mut second = created;
    second.data.as_mut().unwrap().insert("k".into(), k8s_openapi::ByteString(b"3".to_vec()));
    let (code, reason, message) = refused(secrets.replace("s", &PostParams::default(), &second).await);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(message.contains("the object has been modified"), "{message}");
    // Creating what exists is AlreadyExists.
    let again = refused(secrets.create(&PostParams::default(), &serde_json::from_value(support::world::secret("s", &[])).unwrap()).await);
    assert_eq!((again.0, again.1.as_str()), (409, "AlreadyExists"));
}

#[tokio::test]
async fn names_labels_and_immutable_fields_are_validated() {
    let api = ApiServer::default();
    let client = api.client();
    let services: Api<Service> = Api::namespaced(client.clone(), "prod");
    let service =
        |name: &str| json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": name }, "spec": { "ports": [{ "port": 80 }] } });
    let (code, reason, message) = refused(services.patch(&"a".repeat(64), &apply().force(), &Patch::Apply(service(&"a".repeat(64)))).await);
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(message.contains("metadata.name") && message.contains("no more than 63 characters"), "{message}");
    assert_eq!(refused(services.patch("1api", &apply().force(), &Patch::Apply(service("1api"))).await).0, 422, "DNS-1035: a letter first");

    let jobs: Api<Job> = Api::namespaced(client.clone(), "prod");
    let job = |name: &str, image: &str| {
        json!({ "apiVersion": "batch/v1", "kind": "Job", "metadata": { "name": name },
            "spec": { "template": { "spec": { "restartPolicy": "Never", "containers": [{ "name": "m", "image": image }] } } } })
    };
    let long = format!("{}-migrate-0123456789", "x".repeat(45));
    let (code, _, message) = refused(jobs.create(&PostParams::default(), &serde_json::from_value(job(&long, "i")).unwrap()).await);
    assert_eq!(code, 422, "{message}");
    jobs.create(&PostParams::default(), &serde_json::from_value(job("m", "img:1")).unwrap()).await.unwrap();
    // The operator may not patch Jobs at all (the chart grants no patch) ...
    assert_eq!(refused(jobs.patch("m", &apply().force(), &Patch::Apply(job("m", "img:2"))).await).0, 403);
    // ... and nobody may change a Job's template.
    let admin_jobs: Api<Job> = Api::namespaced(api.as_user(Authorizer::from_objects(&admin_rbac(), "ops", "admin")).client(), "prod");
    let (code, _, message) = refused(admin_jobs.patch("m", &apply().force(), &Patch::Apply(job("m", "img:2"))).await);
    assert_eq!(code, 422);
    assert!(message.contains("spec.template") && message.contains("field is immutable"), "{message}");

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "prod");
    deployments.patch("d", &apply().force(), &Patch::Apply(deployment("d", "i"))).await.unwrap();
    let mut reselect = deployment("d", "i");
    reselect["spec"]["selector"]["matchLabels"]["tier"] = "x".into();
    reselect["spec"]["template"]["metadata"]["labels"]["tier"] = "x".into();
    assert!(refused(deployments.patch("d", &apply().force(), &Patch::Apply(reselect)).await).2.contains("spec.selector"));
    let mut label = deployment("e", "i");
    label["metadata"]["labels"] = json!({ "team": "x".repeat(64) });
    assert_eq!(refused(deployments.patch("e", &apply().force(), &Patch::Apply(label)).await).0, 422, "label values: 63 at most");
}

#[tokio::test]
async fn jeexbackend_writes_are_checked_by_the_crd_schema_and_cel() {
    let api = ApiServer::default();
    let path = "/apis/jeex.dev/v1alpha1/namespaces/prod/jeexbackends/jeex";
    api.put(path, manifest("img:1"));
    // The operator may not write the spec, so play a person's client with full rights.
    let admin = api.as_user(Authorizer::from_objects(&admin_rbac(), "ops", "admin"));
    let gvk = GroupVersionKind::gvk("jeex.dev", "v1alpha1", "JeexBackend");
    let jbs: Api<DynamicObject> = Api::namespaced_with(admin.client(), "prod", &ApiResource::from_gvk_with_plural(&gvk, "jeexbackends"));
    let bad = |patch: Value| {
        let mut m = manifest("img:1");
        support::apiserver::merge(&mut m, &json!({ "spec": patch }));
        m
    };
    for (patch, expect) in [
        (json!({ "auth": { "algorithm": "ES256" } }), "need auth.signingKeySecret"),
        (json!({ "replicas": 30, "database": { "maxConnections": 34 } }), "database.maxConnections is too small"),
        (json!({ "rateLimit": { "reads": "1/25h" } }), "rateLimit values"),
        (json!({ "replicas": -1 }), "spec.replicas must be at least 0"),
        (json!({ "telemetry": { "spanQueue": 200000 } }), "spec.telemetry.spanQueue must be at most 131072"),
        (json!({ "unknown": 1 }), "spec.unknown is an unknown field"),
    ] {
        let (code, reason, message) = refused(jbs.patch("jeex", &apply().force(), &Patch::Apply(bad(patch.clone()))).await);
        assert_eq!((code, reason.as_str()), (422, "Invalid"), "{patch}");
        assert!(message.contains(expect), "{patch}: {message}");
    }
    // An update without a resourceVersion is refused for custom resources.
    let mut current = api.get(path).unwrap();
    current["metadata"].as_object_mut().unwrap().remove("resourceVersion");
    let object: DynamicObject = serde_json::from_value(current).unwrap();
    let (code, _, message) = refused(jbs.replace("jeex", &PostParams::default(), &object).await);
    assert_eq!(code, 422);
    assert!(message.contains("must be specified for an update"), "{message}");
}

/// RBAC granting everything, for a test client playing a cluster admin.
fn admin_rbac() -> Vec<Value> {
    vec![
        json!({ "kind": "ClusterRole", "metadata": { "name": "admin" }, "rules": [{ "apiGroups": ["*"], "resources": ["*"], "verbs": ["*"] }] }),
        json!({ "kind": "ClusterRoleBinding", "metadata": { "name": "admin" }, "roleRef": { "kind": "ClusterRole", "name": "admin" },
            "subjects": [{ "kind": "ServiceAccount", "name": "admin", "namespace": "ops" }] }),
    ]
}

#[tokio::test]
async fn the_other_rules_it_models_refuse_too() {
    let api = ApiServer::default();
    let admin = api.as_user(Authorizer::from_objects(&admin_rbac(), "ops", "admin")).client();
    // A name that is no DNS-1123 subdomain (422), and a label key that is no qualified name.
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), "prod");
    let (code, reason, message) = refused(deployments.patch("Jeex_API", &apply(), &Patch::Apply(deployment("Jeex_API", "i"))).await);
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(message.contains("RFC 1123 subdomain"), "{message}");
    let mut label = deployment("d", "i");
    label["metadata"]["labels"] = json!({ "bad key!": "x" });
    assert_eq!(refused(deployments.patch("d", &apply(), &Patch::Apply(label)).await).0, 422);
    // A Secret key that is no config key.
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "prod");
    let bad_key: Secret = serde_json::from_value(support::world::secret("s", &[("a/b", "x")])).unwrap();
    let (code, _, message) = refused(secrets.create(&PostParams::default(), &bad_key).await);
    assert_eq!(code, 422, "{message}");
    // An object for another namespace than the request's (400).
    let mut elsewhere: Secret = serde_json::from_value(support::world::secret("t", &[])).unwrap();
    elsewhere.metadata.namespace = Some("other".into());
    let (code, reason, _) = refused(secrets.create(&PostParams::default(), &elsewhere).await);
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));
    // Neither name nor generateName (422).
    let mut nameless: Secret = serde_json::from_value(support::world::secret("u", &[])).unwrap();
    nameless.metadata.name = None;
    assert_eq!(refused(secrets.create(&PostParams::default(), &nameless).await).0, 422);
    // A merge patch of what does not exist (404).
    assert_eq!(refused(secrets.patch("missing", &PatchParams::default(), &Patch::Merge(json!({ "data": {} }))).await).0, 404);
}
