//! Authorization as kube-apiserver's RBAC authorizer decides it, from the rules of the chart
//! rendered by real Helm: the ClusterRoles bound to the operator's ServiceAccount apply in
//! every namespace, Roles only in their own. A request is allowed when one rule matches its
//! API group, resource (with subresource, e.g. `pods/log`), verb and, when the rule lists
//! them, resource name.

use serde_json::Value;

use super::chart;

/// One RBAC rule.
#[derive(Debug, Clone)]
struct Rule {
    groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
    names: Vec<String>,
    /// `None`: every namespace (a ClusterRole through a ClusterRoleBinding).
    namespace: Option<String>,
}

/// What a request asks to do, in RBAC's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// API group ("" for the core group).
    pub group: String,
    /// Resource, with `/subresource` when there is one.
    pub resource: String,
    /// Namespace of the request (`None` for a cluster-wide list).
    pub namespace: Option<String>,
    /// Object name, when the request names one.
    pub name: Option<String>,
}

/// The rules granted to one ServiceAccount.
#[derive(Debug, Clone)]
pub struct Authorizer {
    /// `system:serviceaccount:<namespace>:<name>`.
    pub user: String,
    rules: Vec<Rule>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
}

fn rules_of(role: &Value, namespace: Option<String>) -> Vec<Rule> {
    role["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| Rule {
            groups: strings(&r["apiGroups"]),
            resources: strings(&r["resources"]),
            verbs: strings(&r["verbs"]),
            names: strings(&r["resourceNames"]),
            namespace: namespace.clone(),
        })
        .collect()
}

impl Authorizer {
    /// What the chart's bindings grant the ServiceAccount `name` in `namespace`.
    pub fn from_objects(objects: &[Value], namespace: &str, name: &str) -> Self {
        let binds_us =
            |binding: &Value| {
                binding["subjects"].as_array().into_iter().flatten().any(|s| {
                    s["kind"] == "ServiceAccount" && s["name"] == name && s["namespace"].as_str().unwrap_or(namespace) == namespace
                })
            };
        let find = |kind: &str, role_name: &str, ns: Option<&str>| {
            objects.iter().find(|o| {
                o["kind"] == kind && o["metadata"]["name"] == role_name && (ns.is_none() || o["metadata"]["namespace"].as_str() == ns)
            })
        };
        let mut rules = Vec::new();
        for binding in objects.iter().filter(|o| binds_us(o)) {
            let role_ref = &binding["roleRef"];
            let role_name = role_ref["name"].as_str().unwrap_or_default();
            match (binding["kind"].as_str(), role_ref["kind"].as_str()) {
                (Some("ClusterRoleBinding"), Some("ClusterRole")) => {
                    rules.extend(find("ClusterRole", role_name, None).map(|r| rules_of(r, None)).unwrap_or_default());
                }
                (Some("RoleBinding"), Some(kind)) => {
                    let ns = binding["metadata"]["namespace"].as_str().unwrap_or(namespace).to_owned();
                    let role = if kind == "Role" { find("Role", role_name, Some(&ns)) } else { find("ClusterRole", role_name, None) };
                    rules.extend(role.map(|r| rules_of(r, Some(ns.clone()))).unwrap_or_default());
                }
                _ => {}
            }
        }
        Self { user: format!("system:serviceaccount:{namespace}:{name}"), rules }
    }

    /// The operator's ServiceAccount as the rendered chart binds it.
    pub fn operator() -> Self {
        Self::from_objects(chart::rendered(), chart::NAMESPACE, chart::RELEASE)
    }

    /// Whether one rule allows `a`.
    pub fn allows(&self, a: &Attributes) -> bool {
        let any = |list: &[String], want: &str| list.iter().any(|x| x == "*" || x == want);
        self.rules.iter().any(|r| {
            any(&r.groups, &a.group)
                && any(&r.resources, &a.resource)
                && any(&r.verbs, &a.verb)
                && (r.names.is_empty() || a.name.as_deref().is_some_and(|n| r.names.iter().any(|x| x == n)))
                && (r.namespace.is_none() || r.namespace == a.namespace)
        })
    }

    /// kube-apiserver's refusal message.
    pub fn refusal(&self, a: &Attributes) -> String {
        let (resource, sub) = a.resource.split_once('/').map_or((a.resource.as_str(), None), |(r, s)| (r, Some(s)));
        let object = match &a.name {
            Some(n) if a.group.is_empty() => format!("{resource} \"{n}\""),
            Some(n) => format!("{resource}.{} \"{n}\"", a.group),
            None if a.group.is_empty() => resource.to_owned(),
            None => format!("{resource}.{}", a.group),
        };
        let what = match sub {
            Some(s) => format!("resource \"{resource}/{s}\""),
            None => format!("resource \"{resource}\""),
        };
        let scope = match &a.namespace {
            Some(ns) => format!(" in the namespace \"{ns}\""),
            None => " at the cluster scope".to_owned(),
        };
        format!("{object} is forbidden: User \"{}\" cannot {} {what} in API group \"{}\"{scope}", self.user, a.verb, a.group)
    }
}
