//! The Helm chart as real Helm renders it: every object parses strictly into its Kubernetes
//! type (a field the type does not know is an error, as with `kubectl apply
//! --validate=strict`), the CRD is the generated one and is upgraded by `helm upgrade`, the
//! values schema accepts a parent chart's `global`, and the two replicas prefer two nodes.

mod support;

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::ServiceAccount,
        rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use support::chart::{self, chart_dir, render};

/// Paths present in `sent` that the typed round trip lost or changed.
fn lost(sent: &Value, kept: &Value, path: &str, out: &mut Vec<String>) {
    match (sent, kept) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    Some(w) => lost(v, w, &format!("{path}.{k}"), out),
                    None if v.is_null() => {}
                    None => out.push(format!("{path}.{k}: unknown field")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                lost(v, w, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a == b => {}
        // Quantities and int-or-strings may be written either way.
        (Value::Number(n), Value::String(s)) | (Value::String(s), Value::Number(n)) if n.to_string() == *s => {}
        (a, b) => out.push(format!("{path}: {a} became {b}")),
    }
}

fn strict<K: DeserializeOwned + Serialize>(object: &Value) -> Result<(), Vec<String>> {
    let typed: K = serde_json::from_value(object.clone()).map_err(|e| vec![e.to_string()])?;
    let mut out = Vec::new();
    lost(object, &serde_json::to_value(&typed).unwrap(), "", &mut out);
    if out.is_empty() { Ok(()) } else { Err(out) }
}

/// Parses `object` strictly into the k8s-openapi type of its kind.
fn parse_strictly(object: &Value) -> Result<(), Vec<String>> {
    let kind = (object["apiVersion"].as_str().unwrap_or(""), object["kind"].as_str().unwrap_or(""));
    match kind {
        ("v1", "ServiceAccount") => strict::<ServiceAccount>(object),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => strict::<ClusterRole>(object),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => strict::<ClusterRoleBinding>(object),
        ("rbac.authorization.k8s.io/v1", "Role") => strict::<Role>(object),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => strict::<RoleBinding>(object),
        ("apps/v1", "Deployment") => strict::<Deployment>(object),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => strict::<CustomResourceDefinition>(object),
        other => Err(vec![format!("no typed check for {other:?}: add one")]),
    }
}

#[test]
fn every_rendered_object_parses_strictly_with_default_and_example_values() {
    let example = chart_dir().join("ci/example-values.yaml");
    for values in [vec![], vec![example.as_path()]] {
        let objects = render(&values).unwrap_or_else(|e| panic!("helm template {values:?}: {e}"));
        let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
        for kind in ["CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment"]
        {
            assert!(kinds.contains(&kind), "{kind} rendered with {values:?}: {kinds:?}");
        }
        for object in &objects {
            if let Err(problems) = parse_strictly(object) {
                panic!("{} {} ({values:?}): {problems:?}", object["kind"], object["metadata"]["name"]);
            }
        }
    }
}

#[test]
fn the_strict_parse_refuses_a_field_its_type_does_not_have() {
    let mut deployment = chart::object("Deployment", chart::RELEASE).clone();
    deployment["spec"]["replica"] = 2.into();
    let problems = parse_strictly(&deployment).unwrap_err();
    assert_eq!(problems, vec![".spec.replica: unknown field".to_owned()]);
    let mut role = chart::object("ClusterRole", chart::RELEASE).clone();
    role["rules"][0]["verb"] = serde_json::json!(["get"]);
    assert!(parse_strictly(&role).unwrap_err()[0].contains("verb: unknown field"));
}

#[test]
fn the_crd_is_a_template_upgraded_by_helm_and_kept_on_uninstall() {
    let crd = chart::object("CustomResourceDefinition", "jeexbackends.jeex.dev");
    assert_eq!(crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep");
    assert_eq!(crd["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm", "owned by the release, so upgrades change it");
    let generated: Value = serde_yaml::from_str(&jeex_operator::crd_yaml()).unwrap();
    assert_eq!(crd["spec"], generated["spec"], "the rendered CRD is the generated one");
    assert!(!chart_dir().join("crds").exists(), "nothing under crds/: Helm never upgrades those");

    let off = tempfile("crds: { install: false }\n");
    let objects = render(&[off.as_path()]).unwrap();
    assert!(objects.iter().all(|o| o["kind"] != "CustomResourceDefinition"), "crds.install=false leaves the CRD out");
}

#[test]
fn the_values_schema_accepts_global_and_refuses_unknown_values() {
    let global = tempfile("global: { imageRegistry: r.example.com, anything: [1, 2] }\n");
    render(&[global.as_path()]).expect("a parent chart's global values are accepted");
    let typo = tempfile("replica: 3\n");
    let err = render(&[typo.as_path()]).unwrap_err();
    assert!(err.contains("replica"), "{err}");
}

#[test]
fn the_two_replicas_prefer_different_nodes_and_liveness_is_probed() {
    let d = chart::object("Deployment", chart::RELEASE);
    let term = &d["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(term["podAffinityTerm"]["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(term["podAffinityTerm"]["labelSelector"]["matchLabels"], d["spec"]["selector"]["matchLabels"]);
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
}

fn tempfile(text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("jeex-values-{}-{}.yaml", std::process::id(), support::unique()));
    std::fs::write(&path, text).unwrap();
    path
}
