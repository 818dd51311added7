//! The operator's Helm chart as real Helm renders it (`helm template`), for the tests that
//! check its objects and for the API-server double, which authorizes the operator's calls with
//! the rendered RBAC rather than a hand-kept list. Helm comes from `JEEX_HELM` (set by
//! `.ci/test`, which installs Helm 4) or `helm` on the PATH.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use serde::Deserialize;
use serde_json::Value;

/// Release name and namespace every rendering uses.
pub const RELEASE: &str = "jeex-operator";
/// The operator's own namespace (its Lease lives there).
pub const NAMESPACE: &str = "ops";

/// The chart's folder.
pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/jeex-operator")
}

fn helm() -> String {
    std::env::var("JEEX_HELM").unwrap_or_else(|_| "helm".into())
}

/// Every object `helm template` renders with the given values files (none: the defaults).
pub fn render(values: &[&Path]) -> Result<Vec<Value>, String> {
    let mut command = Command::new(helm());
    command.args(["template", RELEASE]).arg(chart_dir()).args(["--namespace", NAMESPACE]);
    for file in values {
        command.arg("--values").arg(file);
    }
    let out = command
        .output()
        .map_err(|e| format!("cannot run Helm ({e}): run .ci/test once (it installs Helm 4 under ~/.cache/jeex-tools) or set JEEX_HELM"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).map_err(|e| e.to_string())?;
    let mut objects = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc).map_err(|e| e.to_string())?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

/// The chart rendered with its default values (once per test binary).
pub fn rendered() -> &'static [Value] {
    static OBJECTS: OnceLock<Vec<Value>> = OnceLock::new();
    OBJECTS.get_or_init(|| render(&[]).unwrap_or_else(|e| panic!("helm template failed: {e}")))
}

/// The rendered object of `kind` named `name`.
pub fn object(kind: &str, name: &str) -> &'static Value {
    rendered()
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("the chart renders no {kind} {name}"))
}
