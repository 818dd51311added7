//! What kube-apiserver's validation refuses with 422 `Invalid` for the objects the operator
//! writes: object names (DNS-1123 subdomain; DNS-1035 label for Services; 63 characters for
//! Jobs, whose name becomes a pod label), label keys and values, Secret keys, immutable fields
//! (a Job's selector and template, a Deployment's selector), and `JeexBackend` writes checked by
//! the CRD's own schema: structural first (types, required fields, bounds, enums, unknown
//! fields), then its CEL rules.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::cel::Validator;
use serde_json::Value;

/// One refused field: (field path, message).
pub type Cause = (String, String);

fn dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// DNS-1123 subdomain: at most 253 characters, dot-separated labels.
pub fn dns1123_subdomain(s: &str) -> Option<String> {
    if s.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    if s.split('.').all(dns1123_label) {
        None
    } else {
        Some("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".into())
    }
}

/// DNS-1035 label (Service names): at most 63 characters, starting with a letter.
pub fn dns1035_label(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    if dns1123_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase()) {
        None
    } else {
        Some("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character".into())
    }
}

fn qualified_name(s: &str) -> bool {
    let (prefix, name) = s.rsplit_once('/').map_or((None, s), |(p, n)| (Some(p), n));
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    name_ok && prefix.is_none_or(|p| dns1123_subdomain(p).is_none())
}

fn label_value(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    let ok = s.is_empty()
        || (s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()));
    (!ok).then(|| "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'".into())
}

fn labels(at: &str, labels: &Value, out: &mut Vec<Cause>) {
    for (k, v) in labels.as_object().into_iter().flatten() {
        if !qualified_name(k) {
            out.push((at.to_owned(), format!("Invalid value: {k:?}: name part must be a qualified name of at most 63 characters")));
        }
        if let Some(problem) = label_value(v.as_str().unwrap_or("")) {
            out.push((at.to_owned(), format!("Invalid value: {v}: {problem}")));
        }
    }
}

/// Every cause to refuse `object` (of `kind`) as written; `old` is the stored object on update.
pub fn validate(kind: &str, object: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut out = Vec::new();
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    let name_problem = match kind {
        "Service" => dns1035_label(name),
        "Job" if name.len() > 63 => Some("must be no more than 63 characters (it becomes the job-name label of the Job's pods)".into()),
        "Lease" | "Event" => None,
        _ => dns1123_subdomain(name),
    };
    if let Some(problem) = name_problem {
        out.push(("metadata.name".into(), format!("Invalid value: {name:?}: {problem}")));
    }
    labels("metadata.labels", &object["metadata"]["labels"], &mut out);
    let template = matches!(kind, "Deployment" | "ReplicaSet" | "Job").then(|| &object["spec"]["template"]);
    if let Some(t) = template {
        labels("spec.template.labels", &t["metadata"]["labels"], &mut out);
    }
    if kind == "Secret" {
        for key in object["data"].as_object().into_iter().flatten().map(|(k, _)| k) {
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
                out.push((
                    format!("data[{key}]"),
                    "Invalid value: a valid config key must consist of alphanumeric characters, '-', '_' or '.'".into(),
                ));
            }
        }
    }
    if let Some(old) = old {
        let immutable: &[&str] = match kind {
            "Job" => &["selector", "template"],
            "Deployment" | "ReplicaSet" => &["selector"],
            _ => &[],
        };
        for field in immutable {
            // The server fills the Job's selector and template labels itself; compare what both sides set.
            let (before, after) = (&old["spec"][field], &object["spec"][field]);
            if !after.is_null() && before != after {
                out.push((format!("spec.{field}"), "Invalid value: field is immutable".into()));
            }
        }
    }
    if kind == "JeexBackend" {
        out.extend(crd_rejections(object).into_iter().map(|m| ("spec".to_owned(), m)));
    }
    out
}

/// The CRD's `openAPIV3Schema`, as generated (parsed once per test binary).
pub fn crd_schema() -> &'static Value {
    static SCHEMA: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        let crd: CustomResourceDefinition =
            serde_yaml::from_str(&jeex_operator::crd_yaml()).expect("the CRD parses as apiextensions.k8s.io/v1");
        let version = &crd.spec.versions[0];
        serde_json::to_value(version.schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap()).unwrap()
    })
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

/// Every reason the API server would give for refusing the `JeexBackend` `manifest`.
pub fn crd_rejections(manifest: &Value) -> Vec<String> {
    let schema = crd_schema();
    let mut out = Vec::new();
    // apiVersion, kind and metadata are the API server's own, outside the schema.
    let mut body = manifest.clone();
    for own in ["apiVersion", "kind", "metadata"] {
        body.as_object_mut().unwrap().remove(own);
    }
    structural(schema, &body, "", &mut out);
    if out.is_empty()
        && let Err(errors) = Validator::new().validate(schema, manifest, None)
    {
        out.extend(errors.into_vec().into_iter().map(|e| format!("{}: {}", e.field_path, e.message)));
    }
    out
}
