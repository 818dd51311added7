//! The generated CRD: committed copy in step with the code, a valid `apiextensions.k8s.io/v1`
//! object, every example accepted and every invalid example rejected for the reason it states —
//! checked the way the API server does: structural schema first (types, required fields,
//! bounds, enums, unknown fields), then the CEL rules with defaults applied.

use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::cel::Validator;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn schema() -> Value {
    let crd: CustomResourceDefinition =
        serde_yaml::from_str(&jeex_operator::crd_yaml()).expect("the CRD parses as apiextensions.k8s.io/v1");
    let version = &crd.spec.versions[0];
    serde_json::to_value(version.schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap()).unwrap()
}

fn name(path: &str) -> &str {
    path.trim_start_matches('.')
}

/// Structural checks the API server makes before CEL: one message per violation.
fn structural(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    if value.is_null() {
        if !schema["nullable"].as_bool().unwrap_or(false) {
            out.push(format!("{} must not be null", name(path)));
        }
        return;
    }
    let ty = schema["type"].as_str();
    let int_or_string = schema["x-kubernetes-int-or-string"].as_bool().unwrap_or(false);
    let type_ok = match ty {
        _ if int_or_string => value.is_i64() || value.is_string(),
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        out.push(format!("{} must be of type {}", name(path), ty.unwrap_or("?")));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed.iter().map(|v| v.as_str().map_or(v.to_string(), str::to_owned)).collect();
        out.push(format!("{} must be one of {}", name(path), names.join(", ")));
    }
    if let (Some(min), Some(n)) = (schema["minimum"].as_f64(), value.as_f64())
        && n < min
    {
        out.push(format!("{} must be at least {min}", name(path)));
    }
    if let (Some(max), Some(n)) = (schema["maximum"].as_f64(), value.as_f64())
        && n > max
    {
        out.push(format!("{} must be at most {max}", name(path)));
    }
    if let Some(object) = value.as_object() {
        for required in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !object.contains_key(required) {
                out.push(format!("{} is required", name(&format!("{path}.{required}"))));
            }
        }
        let preserve = schema["x-kubernetes-preserve-unknown-fields"].as_bool().unwrap_or(false);
        for (key, child) in object {
            let child_path = format!("{path}.{key}");
            if let Some(sub) = schema["properties"].get(key) {
                structural(sub, child, &child_path, out);
            } else if schema["additionalProperties"].is_object() {
                structural(&schema["additionalProperties"], child, &child_path, out);
            } else if !preserve && schema.get("properties").is_some() {
                out.push(format!("{} is an unknown field", name(&child_path)));
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            structural(items, item, &format!("{path}[{i}]"), out);
        }
    }
}

/// Every reason the API server would give for refusing `manifest`.
fn rejections(manifest: &Value) -> Vec<String> {
    let schema = schema();
    let mut out = Vec::new();
    // apiVersion, kind and metadata are the API server's own, outside the schema.
    let mut body = manifest.clone();
    for own in ["apiVersion", "kind", "metadata"] {
        body.as_object_mut().unwrap().remove(own);
    }
    structural(&schema, &body, "", &mut out);
    if out.is_empty()
        && let Err(errors) = Validator::new().validate(&schema, manifest, None)
    {
        out.extend(errors.into_vec().into_iter().map(|e| format!("{}: {}", e.field_path, e.message)));
    }
    out
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
    let shipped = std::fs::read_to_string(repo().join("charts/jeex-operator/crds/jeexbackend.yaml")).unwrap();
    assert!(shipped == jeex_operator::crd_yaml(), "charts/jeex-operator/crds/jeexbackend.yaml is stale: copy crds/jeexbackend.yaml");
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
