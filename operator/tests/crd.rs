//! The generated CRD: committed copy in step with the code, a valid `apiextensions.k8s.io/v1`
//! object, every example accepted and every invalid example rejected for the reason it states —
//! checked the way the API server does: structural schema first (types, required fields,
//! bounds, enums, unknown fields), then the CEL rules with defaults applied.

use std::path::{Path, PathBuf};

mod support;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};
use support::validation;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn rejections(manifest: &Value) -> Vec<String> {
    validation::crd_rejections(manifest)
}

fn load(path: &Path) -> (String, Value) {
    let text = std::fs::read_to_string(path).unwrap();
    let value: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (text, value)
}

#[test]
fn the_committed_crd_is_what_the_code_generates() {
    let committed = std::fs::read_to_string(repo().join("crds/jeexbackend.yaml")).expect("crds/jeexbackend.yaml exists");
    assert!(committed == jeex_operator::crd_yaml(), "crds/jeexbackend.yaml is stale: run `jeex-operator crd > crds/jeexbackend.yaml`");
}

#[test]
fn the_chart_ships_the_same_crd() {
    let shipped = std::fs::read_to_string(repo().join("charts/jeex-operator/templates/crd.yaml")).unwrap();
    assert!(
        shipped == jeex_operator::crd_chart_template(),
        "charts/jeex-operator/templates/crd.yaml is stale: run `jeex-operator crd --chart > charts/jeex-operator/templates/crd.yaml`"
    );
}

#[test]
fn the_crd_has_the_promised_shape() {
    let crd: CustomResourceDefinition = serde_yaml::from_str(&jeex_operator::crd_yaml()).unwrap();
    assert_eq!(crd.spec.group, "jeex.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names.as_deref(), Some(&["jb".to_owned()][..]));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(), "status subresource");
    let columns: Vec<&str> = version.additional_printer_columns.iter().flatten().map(|c| c.name.as_str()).collect();
    assert_eq!(columns, ["Ready", "Phase", "Image", "Replicas", "Age"]);
    let text = jeex_operator::crd_yaml();
    assert!(text.contains("x-kubernetes-validations"), "cross-field rules are CEL in the schema");
}

#[test]
fn every_example_is_accepted() {
    let mut seen = 0;
    for entry in std::fs::read_dir(repo().join("crds/examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let (_, manifest) = load(&path);
            assert_eq!(rejections(&manifest), Vec::<String>::new(), "{}", path.display());
            // And the operator reads it.
            let _: jeex_operator::crd::JeexBackend = serde_json::from_value(manifest).unwrap();
            seen += 1;
        }
    }
    assert!(seen >= 2);
}

#[test]
fn every_invalid_example_is_rejected_for_the_reason_it_states() {
    let mut seen = 0;
    for entry in std::fs::read_dir(repo().join("crds/examples/invalid")).unwrap() {
        let path = entry.unwrap().path();
        let (text, manifest) = load(&path);
        let reason = text.lines().next().and_then(|l| l.strip_prefix("# rejected: ")).expect("first line states the reason").trim();
        let found = rejections(&manifest);
        assert!(found.iter().any(|r| r.contains(reason)), "{}: expected a rejection like {reason:?}, got {found:?}", path.display());
        seen += 1;
    }
    assert!(seen >= 5);
}

fn with_spec(patch: Value) -> Value {
    let mut m: Value = serde_yaml::from_str(&std::fs::read_to_string(repo().join("crds/examples/minimal.yaml")).unwrap()).unwrap();
    support::apiserver::merge(&mut m, &json!({ "spec": patch }));
    m
}

#[test]
fn the_budget_rule_admits_exactly_the_budgets_the_operator_can_size() {
    for replicas in [0, 1, 4, 15, 16, 17, 50, 100] {
        let edge = (3..).find(|b| jeex_operator::pools::size(*b, replicas).is_ok()).unwrap();
        for budget in (3..=8).chain(edge - 3..=edge + 3).chain([100, 1000, 100_000]) {
            let admitted = rejections(&with_spec(json!({ "replicas": replicas, "database": { "maxConnections": budget } }))).is_empty();
            let sized = jeex_operator::pools::size(budget, replicas).is_ok();
            assert_eq!(admitted, sized, "replicas {replicas}, budget {budget}: admission {admitted}, operator {sized}");
        }
    }
}

#[test]
fn a_key_algorithm_the_operator_cannot_generate_needs_a_signing_key_secret() {
    for algorithm in ["ES256", "EdDSA"] {
        let found = rejections(&with_spec(json!({ "auth": { "algorithm": algorithm } })));
        assert!(found.iter().any(|r| r.contains("need auth.signingKeySecret")), "{algorithm}: {found:?}");
        assert!(rejections(&with_spec(json!({ "auth": { "algorithm": algorithm, "signingKeySecret": "keys" } }))).is_empty());
    }
    assert!(rejections(&with_spec(json!({ "auth": { "algorithm": "RS256" } }))).is_empty());
}

#[test]
fn names_too_long_for_the_derived_job_or_service_are_refused() {
    let named = |name: &str| {
        let mut m = with_spec(json!({}));
        m["metadata"]["name"] = name.into();
        rejections(&m)
    };
    let longest = "a".repeat(44);
    assert!(named(&longest).is_empty(), "{:?}", named(&longest));
    // The derived objects of the longest admitted name are valid for the API server too.
    let mut m = with_spec(json!({}));
    m["metadata"]["name"] = longest.clone().into();
    m["metadata"]["uid"] = "u".into();
    let jb: jeex_operator::crd::JeexBackend = serde_json::from_value(m).unwrap();
    let job = jeex_operator::objects::Names::of(&jb).migration("img");
    assert!(validation::validate("Job", &json!({ "metadata": { "name": job } }), None).is_empty(), "{job}");
    assert!(validation::dns1035_label(&longest).is_none());
    for bad in ["a".repeat(45), "1jeex".into(), "jeex.prod".into(), "Jeex".into()] {
        assert!(named(&bad).iter().any(|r| r.contains("metadata.name must be a DNS-1035 label")), "{bad}: {:?}", named(&bad));
    }
}

#[test]
fn rate_limits_the_crd_admits_are_ones_the_api_parses_and_vice_versa_for_the_canonical_form() {
    // The API's own parser lives in jeex-api (tests/tests/operator_config.rs holds the two
    // together); here, the CRD's side of the contract on its edges.
    let admitted = |v: &str| rejections(&with_spec(json!({ "rateLimit": { "reads": v } }))).is_empty();
    for ok in ["off", "1/s", "120/60s", "600/min", "5/h", "1000000/min", "10/24h", "1/86400s", "3/1440m", "7/1440min", "100/10s"] {
        assert!(admitted(ok), "{ok} must be admitted");
    }
    for bad in ["25h", "1/25h", "1/86401s", "0/s", "1000001/min", "1/0s", "10/1d", "on", "10 / min", "-1/s", "1/1441min"] {
        assert!(!admitted(bad), "{bad} must be refused");
    }
}
