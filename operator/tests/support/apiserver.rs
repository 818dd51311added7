//! A scripted Kubernetes API server on `tower-test`: a faithful model of kube-apiserver for
//! every call the operator makes. No cluster runs in CI, so this double enforces the rules a
//! real server would, and `operator/tests/apiserver.rs` shows it refusing what the real one
//! refuses, with the real status code and reason:
//!
//! - **Authorization** (403 `Forbidden`) against the RBAC rules of the chart as `helm template`
//!   renders it, verbs mapped as the API server maps them (a server-side apply that creates is
//!   also a `create`; `status` and `log` are subresources).
//! - **Server-side apply**: `fieldManager` required (422), apiVersion/kind/name must match the
//!   path (400), fields owned per manager, a conflict without `force` (409 `Conflict`).
//! - **Optimistic concurrency**: a resourceVersion on every object; a write with a stale one,
//!   or a custom-resource update without one, is refused (409 `Conflict`, 422 `Invalid`).
//! - **Validation** (422 `Invalid`): names and labels per kind, immutable fields, and
//!   `JeexBackend` writes checked by the CRD's schema and CEL rules.
//! - **The controllers the operator relies on** (`cluster.rs`), run step by step on a
//!   simulated clock: Deployment rolling updates, ReplicaSets and pods, Jobs with their pods,
//!   logs and TTL, garbage collection by ownerReferences, with a connection meter over the
//!   pods and a check that every live pod accepts every other live pod's tokens.
//!
//! Every call is recorded with its verb and status code, so a test can assert which reads and
//! writes a reconcile made.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::{Client, client::Body};
use serde_json::{Value, json};

use super::{
    cluster::Sim,
    fields::{self, Owners},
    rbac::{Attributes, Authorizer},
    validation,
};

/// One call the operator made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// HTTP method.
    pub method: Method,
    /// Path without the query.
    pub path: String,
    /// The RBAC verb it needed (`create` for an apply that created).
    pub verb: String,
    /// API group.
    pub group: String,
    /// Resource (with `/subresource`).
    pub resource: String,
    /// The status code answered.
    pub code: u16,
}

impl Call {
    /// Whether it asked to change anything.
    pub fn writes(&self) -> bool {
        self.method != Method::GET
    }
}

/// Kinds this server knows: (group, resource) → (apiVersion, kind, has a status subresource).
fn kind_of(group: &str, resource: &str) -> Option<(&'static str, &'static str, bool)> {
    Some(match (group, resource) {
        ("", "secrets") => ("v1", "Secret", false),
        ("", "configmaps") => ("v1", "ConfigMap", false),
        ("", "services") => ("v1", "Service", false),
        ("", "pods") => ("v1", "Pod", true),
        ("apps", "deployments") => ("apps/v1", "Deployment", true),
        ("apps", "replicasets") => ("apps/v1", "ReplicaSet", true),
        ("batch", "jobs") => ("batch/v1", "Job", true),
        ("policy", "poddisruptionbudgets") => ("policy/v1", "PodDisruptionBudget", true),
        ("coordination.k8s.io", "leases") => ("coordination.k8s.io/v1", "Lease", false),
        ("events.k8s.io", "events") => ("events.k8s.io/v1", "Event", false),
        ("jeex.dev", "jeexbackends") => ("jeex.dev/v1alpha1", "JeexBackend", true),
        _ => return None,
    })
}

/// A request path taken apart.
#[derive(Debug, Clone)]
pub struct Target {
    prefix: String,
    group: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
    sub: Option<String>,
}

impl Target {
    fn parse(path: &str) -> Option<Self> {
        let s: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (prefix, group, rest) = match *s.first()? {
            "api" => (format!("/api/{}", s.get(1)?), String::new(), &s[2..]),
            "apis" => (format!("/apis/{}/{}", s.get(1)?, s.get(2)?), (*s.get(1)?).to_owned(), &s[3..]),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
            rest => (None, rest),
        };
        let (resource, name, sub) = match rest {
            [r] => (*r, None, None),
            [r, n] => (*r, Some((*n).to_owned()), None),
            [r, n, sub] => (*r, Some((*n).to_owned()), Some((*sub).to_owned())),
            _ => return None,
        };
        Some(Self { prefix, group, namespace, resource: resource.to_owned(), name, sub })
    }

    /// The collection (`…/namespaces/<ns>/<resource>`).
    fn collection(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/namespaces/{ns}/{}", self.prefix, self.resource),
            None => format!("{}/{}", self.prefix, self.resource),
        }
    }

    /// Where the item lives.
    fn key(&self) -> Option<String> {
        self.name.as_ref().map(|n| format!("{}/{n}", self.collection()))
    }

    fn resource_with_sub(&self) -> String {
        match &self.sub {
            Some(s) => format!("{}/{s}", self.resource),
            None => self.resource.clone(),
        }
    }
}

/// Everything the server holds.
#[derive(Default)]
pub struct State {
    /// Objects by path.
    pub objects: BTreeMap<String, Value>,
    /// Field ownership by path.
    pub owners: BTreeMap<String, Owners>,
    /// Pod logs by pod path.
    pub logs: BTreeMap<String, String>,
    /// Calls so far.
    pub calls: Vec<Call>,
    /// The last resourceVersion handed out.
    pub revision: u64,
    uids: u64,
    /// The simulated clock.
    pub now: Option<Timestamp>,
    /// The simulated controllers' own state: how pods and Jobs behave, and the meters.
    pub sim: Sim,
}

/// When the simulated clock starts.
pub fn epoch() -> Timestamp {
    "2026-11-24T00:00:00Z".parse().unwrap()
}

impl State {
    /// The simulated time.
    pub fn now(&self) -> Timestamp {
        self.now.unwrap_or_else(epoch)
    }

    /// The next resourceVersion.
    pub fn bump(&mut self) -> String {
        self.revision += 1;
        self.revision.to_string()
    }

    /// A fresh uid.
    pub fn uid(&mut self) -> String {
        self.uids += 1;
        format!("00000000-0000-4000-8000-{:012}", self.uids)
    }

    /// Stores `object` at `path` as the server would after a write: uid, creation time,
    /// resourceVersion, and a generation that moves when the spec changes.
    pub fn store(&mut self, path: &str, mut object: Value) -> Value {
        let existing = self.objects.get(path).cloned();
        if let Some(Value::Object(plain)) = object.as_object_mut().and_then(|o| o.remove("stringData")) {
            use base64::Engine;
            for (k, v) in plain {
                object["data"][k] = base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or_default()).into();
            }
        }
        let uid = match existing.as_ref().and_then(|e| e["metadata"]["uid"].as_str()) {
            Some(uid) => uid.to_owned(),
            None => object["metadata"]["uid"].as_str().map(str::to_owned).unwrap_or_else(|| self.uid()),
        };
        let now = self.now();
        let meta = &mut object["metadata"];
        meta["uid"] = uid.into();
        if meta["creationTimestamp"].is_null() {
            meta["creationTimestamp"] =
                existing.as_ref().map_or_else(|| now.to_string().into(), |e| e["metadata"]["creationTimestamp"].clone());
        }
        let spec_of = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("metadata");
                m.remove("status");
            }
            v
        };
        let generation = match &existing {
            None => json!(1),
            Some(e) if spec_of(e) != spec_of(&object) => json!(e["metadata"]["generation"].as_i64().unwrap_or(1) + 1),
            Some(e) => e["metadata"]["generation"].clone(),
        };
        object["metadata"]["generation"] = generation;
        let unchanged = existing.as_ref().is_some_and(|e| {
            let mut a = e.clone();
            let mut b = object.clone();
            a["metadata"]["resourceVersion"] = Value::Null;
            b["metadata"]["resourceVersion"] = Value::Null;
            a == b
        });
        object["metadata"]["resourceVersion"] =
            if unchanged { existing.as_ref().unwrap()["metadata"]["resourceVersion"].clone() } else { self.bump().into() };
        self.objects.insert(path.to_owned(), object.clone());
        object
    }
}

/// The server, shared with the test.
#[derive(Clone)]
pub struct ApiServer {
    /// Its state; tests and the simulated controllers change it directly.
    pub state: Arc<Mutex<State>>,
    authorizer: Arc<Authorizer>,
}

impl Default for ApiServer {
    fn default() -> Self {
        Self::new(Authorizer::operator())
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> (StatusCode, Value) {
    (
        code,
        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": reason, "code": code.as_u16(), "message": message }),
    )
}

fn invalid(kind: &str, group: &str, name: &str, causes: &[(String, String)]) -> (StatusCode, Value) {
    let kind_group = if group.is_empty() { kind.to_owned() } else { format!("{kind}.{group}") };
    let detail: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
    let (code, mut body) =
        status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &format!("{kind_group} \"{name}\" is invalid: {}", detail.join(", ")));
    body["details"] = json!({ "name": name, "group": group, "kind": kind.to_lowercase(),
        "causes": causes.iter().map(|(f, m)| json!({ "reason": "FieldValueInvalid", "field": f, "message": m })).collect::<Vec<_>>() });
    (code, body)
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| kv.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
}

impl ApiServer {
    /// A server authorizing every request with `authorizer`.
    pub fn new(authorizer: Authorizer) -> Self {
        Self { state: Arc::new(Mutex::new(State::default())), authorizer: Arc::new(authorizer) }
    }

    /// The same server (same objects) authorizing with `authorizer` instead: another user.
    pub fn as_user(&self, authorizer: Authorizer) -> Self {
        Self { state: self.state.clone(), authorizer: Arc::new(authorizer) }
    }

    /// A client talking to this server as the operator's ServiceAccount.
    pub fn client(&self) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Full<Bytes>>>();
        let server = self.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                respond.send_response(server.answer(request).await);
            }
        });
        // The operator's own layer, as its real client has it.
        kube::client::ClientBuilder::new(service, "default").with_layer(&jeex_operator::api_calls::ApiCalls::default()).build()
    }

    /// Puts an object at its API path as a cluster admin would (e.g.
    /// `/api/v1/namespaces/prod/secrets/owner`), with server-set metadata.
    pub fn put(&self, path: &str, object: Value) {
        let mut state = self.state.lock().unwrap();
        let before = state.objects.get(path).cloned();
        let stored = state.store(path, object);
        let mut owners = state.owners.remove(path).unwrap_or_default();
        fields::update(before.as_ref(), &stored, &mut owners, "kubectl-create");
        state.owners.insert(path.to_owned(), owners);
    }

    /// The object at `path`.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
    }

    /// A merge patch of the object at `path` by a person or another controller, who becomes
    /// the owner of the fields it changed (as `kubectl edit`, `kubectl scale` do).
    pub fn edit(&self, path: &str, manager: &str, patch: Value) {
        let mut state = self.state.lock().unwrap();
        let before = state.objects.get(path).cloned().expect("object exists");
        let mut after = before.clone();
        merge(&mut after, &patch);
        let stored = state.store(path, after);
        let mut owners = state.owners.remove(path).unwrap_or_default();
        fields::update(Some(&before), &stored, &mut owners, manager);
        state.owners.insert(path.to_owned(), owners);
    }

    /// A merge patch as a controller writes status (no ownership, no generation change).
    pub fn patch(&self, path: &str, patch: Value) {
        let mut state = self.state.lock().unwrap();
        let mut object = state.objects.get(path).cloned().expect("object exists");
        merge(&mut object, &patch);
        state.store(path, object);
    }

    /// Deletes the object at `path` (its dependents go at the next garbage collection).
    pub fn delete(&self, path: &str) {
        let mut state = self.state.lock().unwrap();
        state.objects.remove(path);
        state.owners.remove(path);
    }

    /// Sets the log of a pod.
    pub fn log(&self, pod_path: &str, text: &str) {
        self.state.lock().unwrap().logs.insert(pod_path.to_owned(), text.to_owned());
    }

    /// Every call so far, and forgets them.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.state.lock().unwrap().calls)
    }

    /// Stored objects directly under `collection` (e.g. `/apis/events.k8s.io/v1/namespaces/prod/events`).
    pub fn list(&self, collection: &str) -> Vec<Value> {
        let prefix = format!("{collection}/");
        let state = self.state.lock().unwrap();
        state.objects.iter().filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/')).map(|(_, v)| v.clone()).collect()
    }

    /// Who owns which fields of the object at `path`.
    pub fn owners(&self, path: &str) -> Owners {
        self.state.lock().unwrap().owners.get(path).cloned().unwrap_or_default()
    }

    /// The simulated clock.
    pub fn now(&self) -> Timestamp {
        self.state.lock().unwrap().now()
    }

    /// The simulated clock as the operator's clock.
    pub fn clock(&self) -> jeex_operator::reconcile::Clock {
        let state = self.state.clone();
        Arc::new(move || state.lock().unwrap().now())
    }

    /// Moves the simulated clock on by `seconds` at once, with no controller running in
    /// between (for long quiet spans, like a grace period of hours).
    pub fn advance(&self, seconds: i64) {
        let mut state = self.state.lock().unwrap();
        let next = state.now().checked_add(SignedDuration::from_secs(seconds)).unwrap();
        state.now = Some(next);
    }

    /// Moves the simulated clock on by `seconds`, one second at a time, running the
    /// controllers at each step.
    pub fn tick(&self, seconds: i64) {
        for _ in 0..seconds {
            let mut state = self.state.lock().unwrap();
            let next = state.now().checked_add(SignedDuration::from_secs(1)).unwrap();
            state.now = Some(next);
            super::cluster::step(&mut state);
        }
    }

    async fn answer(&self, request: Request<Body>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let path = parts.uri.path().to_owned();
        let query = parts.uri.query().unwrap_or("").to_owned();
        let content_type = parts.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let (code, answer, attributes) = self.handle(&parts.method, &path, &query, &content_type, &body);
        self.state.lock().unwrap().calls.push(Call {
            method: parts.method.clone(),
            path: path.clone(),
            verb: attributes.as_ref().map(|a| a.verb.clone()).unwrap_or_default(),
            group: attributes.as_ref().map(|a| a.group.clone()).unwrap_or_default(),
            resource: attributes.as_ref().map(|a| a.resource.clone()).unwrap_or_default(),
            code: code.as_u16(),
        });
        let (content_type, bytes) = match answer {
            Answer::Json(v) => ("application/json", Bytes::from(v.to_string())),
            Answer::Text(t) => ("text/plain", Bytes::from(t)),
        };
        Response::builder().status(code).header("content-type", content_type).body(Full::new(bytes)).unwrap()
    }

    fn authorize(&self, attributes: &Attributes) -> Result<(), (StatusCode, Value)> {
        if self.authorizer.allows(attributes) {
            Ok(())
        } else {
            let (code, mut body) = status(StatusCode::FORBIDDEN, "Forbidden", &self.authorizer.refusal(attributes));
            let resource = attributes.resource.split('/').next().unwrap_or_default();
            body["details"] = json!({ "name": attributes.name, "group": attributes.group, "kind": resource });
            Err((code, body))
        }
    }

    fn handle(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        content_type: &str,
        body: &[u8],
    ) -> (StatusCode, Answer, Option<Attributes>) {
        let Some(target) = Target::parse(path) else {
            let (c, v) = status(StatusCode::NOT_FOUND, "NotFound", "the server could not find the requested resource");
            return (c, Answer::Json(v), None);
        };
        let verb = match (method, target.name.is_some()) {
            (&Method::GET, true) => "get",
            (&Method::GET, false) if query_param(query, "watch").is_some_and(|w| w == "true" || w == "1") => "watch",
            (&Method::GET, false) => "list",
            (&Method::POST, _) => "create",
            (&Method::PUT, _) => "update",
            (&Method::PATCH, _) => "patch",
            (&Method::DELETE, true) => "delete",
            (&Method::DELETE, false) => "deletecollection",
            _ => "unknown",
        };
        let mut attributes = Attributes {
            verb: verb.into(),
            group: target.group.clone(),
            resource: target.resource_with_sub(),
            namespace: target.namespace.clone(),
            name: target.name.clone(),
        };
        if let Err((c, v)) = self.authorize(&attributes) {
            return (c, Answer::Json(v), Some(attributes));
        }
        let result = self.serve(method, &target, &mut attributes, query, content_type, body);
        match result {
            Ok((code, answer)) => (code, answer, Some(attributes)),
            Err((code, value)) => (code, Answer::Json(value), Some(attributes)),
        }
    }

    fn serve(
        &self,
        method: &Method,
        target: &Target,
        attributes: &mut Attributes,
        query: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<(StatusCode, Answer), (StatusCode, Value)> {
        let Some((api_version, kind, has_status)) = kind_of(&target.group, &target.resource) else {
            return Err(status(StatusCode::NOT_FOUND, "NotFound", "the server could not find the requested resource"));
        };
        let mut state = self.state.lock().unwrap();
        let key = target.key();
        let not_found = |name: &str| {
            let what = if target.group.is_empty() { target.resource.clone() } else { format!("{}.{}", target.resource, target.group) };
            status(StatusCode::NOT_FOUND, "NotFound", &format!("{what} \"{name}\" not found"))
        };
        let name = target.name.clone().unwrap_or_default();
        match (method, target.sub.as_deref()) {
            (&Method::GET, Some("log")) => {
                let key = key.unwrap();
                if !state.objects.contains_key(&key) {
                    return Err(not_found(&name));
                }
                let mut log = state.logs.get(&key).cloned().unwrap_or_default();
                if let Some(n) = query_param(query, "tailLines").and_then(|n| n.parse::<usize>().ok()) {
                    let lines: Vec<&str> = log.lines().collect();
                    log = lines[lines.len().saturating_sub(n)..].join("\n") + "\n";
                }
                Ok((StatusCode::OK, Answer::Text(log)))
            }
            (&Method::GET, _) if target.name.is_some() => match state.objects.get(&key.unwrap()) {
                Some(o) => Ok((StatusCode::OK, Answer::Json(o.clone()))),
                None => Err(not_found(&name)),
            },
            (&Method::GET, _) => {
                if attributes.verb == "watch" {
                    return Err(status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "this double serves no watches"));
                }
                let selector: Vec<(String, String)> = query_param(query, "labelSelector")
                    .map(|s| decode(s).split(',').filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned()))).collect())
                    .unwrap_or_default();
                let collection = target.collection();
                let items: Vec<Value> = state
                    .objects
                    .iter()
                    .filter(|(k, _)| match &target.namespace {
                        Some(_) => k.strip_prefix(&format!("{collection}/")).is_some_and(|rest| !rest.contains('/')),
                        None => k.starts_with(&target.prefix) && k.rsplit('/').nth(1) == Some(target.resource.as_str()),
                    })
                    .map(|(_, v)| v.clone())
                    .filter(|v| selector.iter().all(|(k, want)| v["metadata"]["labels"][k].as_str() == Some(want)))
                    .collect();
                let list_kind = format!("{kind}List");
                Ok((
                    StatusCode::OK,
                    Answer::Json(
                        json!({ "kind": list_kind, "apiVersion": api_version, "metadata": { "resourceVersion": state.revision.to_string() }, "items": items }),
                    ),
                ))
            }
            (&Method::POST, None) => {
                let mut object: Value = parse_body(body)?;
                check_type(&object, api_version, kind)?;
                if object["metadata"]["name"].as_str().is_none() {
                    let Some(prefix) = object["metadata"]["generateName"].as_str() else {
                        return Err(invalid(
                            kind,
                            &target.group,
                            "",
                            &[("metadata.name".into(), "Required value: name or generateName is required".into())],
                        ));
                    };
                    let generated = format!("{prefix}{:05}", state.revision + 1);
                    object["metadata"]["name"] = generated.into();
                }
                let name = object["metadata"]["name"].as_str().unwrap().to_owned();
                match (object["metadata"]["namespace"].as_str(), target.namespace.as_deref()) {
                    (Some(a), Some(b)) if a != b => {
                        return Err(status(
                            StatusCode::BAD_REQUEST,
                            "BadRequest",
                            "the namespace of the provided object does not match the namespace sent on the request",
                        ));
                    }
                    (_, Some(ns)) => object["metadata"]["namespace"] = ns.into(),
                    _ => {}
                }
                let causes = validation::validate(kind, &object, None);
                if !causes.is_empty() {
                    return Err(invalid(kind, &target.group, &name, &causes));
                }
                let key = format!("{}/{name}", target.collection());
                if state.objects.contains_key(&key) {
                    let what =
                        if target.group.is_empty() { target.resource.clone() } else { format!("{}.{}", target.resource, target.group) };
                    return Err(status(StatusCode::CONFLICT, "AlreadyExists", &format!("{what} \"{name}\" already exists")));
                }
                if has_status && kind != "Pod" {
                    object.as_object_mut().unwrap().remove("status");
                }
                object["metadata"]["resourceVersion"] = Value::Null;
                let stored = state.store(&key, object);
                let manager = query_param(query, "fieldManager").unwrap_or("kube-rs").to_owned();
                let mut owners = Owners::new();
                fields::update(None, &stored, &mut owners, &manager);
                state.owners.insert(key, owners);
                Ok((StatusCode::CREATED, Answer::Json(stored)))
            }
            (&Method::PUT, sub) => {
                let key = key.unwrap();
                let Some(existing) = state.objects.get(&key).cloned() else { return Err(not_found(&name)) };
                let mut object: Value = parse_body(body)?;
                check_type(&object, api_version, kind)?;
                check_name(&object, &name)?;
                check_version(&object, &existing, &target.resource, &target.group, &name)?;
                if kind == "JeexBackend" && object["metadata"]["resourceVersion"].is_null() {
                    return Err(invalid(
                        kind,
                        &target.group,
                        &name,
                        &[("metadata.resourceVersion".into(), "Invalid value: 0x0: must be specified for an update".into())],
                    ));
                }
                object = subresource_view(object, &existing, has_status, sub);
                if sub.is_none() {
                    let causes = validation::validate(kind, &object, Some(&existing));
                    if !causes.is_empty() {
                        return Err(invalid(kind, &target.group, &name, &causes));
                    }
                }
                let stored = state.store(&key, object);
                let manager = query_param(query, "fieldManager").unwrap_or("kube-rs").to_owned();
                let mut owners = state.owners.remove(&key).unwrap_or_default();
                fields::update(Some(&existing), &stored, &mut owners, &manager);
                state.owners.insert(key, owners);
                Ok((StatusCode::OK, Answer::Json(stored)))
            }
            (&Method::PATCH, sub) => {
                let key = key.unwrap();
                let existing = state.objects.get(&key).cloned();
                let sent: Value = parse_body(body)?;
                let manager = query_param(query, "fieldManager").map(decode);
                if content_type.starts_with("application/apply-patch") {
                    let Some(manager) = manager.filter(|m| !m.is_empty()) else {
                        return Err(invalid(
                            "PatchOptions",
                            "meta.k8s.io",
                            "",
                            &[("fieldManager".into(), "Required value: is required for apply patch".into())],
                        ));
                    };
                    check_type(&sent, api_version, kind)?;
                    check_name(&sent, &name)?;
                    if existing.is_none() {
                        // kube-apiserver authorizes an apply that creates as a create, too.
                        let create = Attributes { verb: "create".into(), ..attributes.clone() };
                        drop(state);
                        self.authorize(&create)?;
                        *attributes = create;
                        state = self.state.lock().unwrap();
                    }
                    if let Some(existing) = &existing {
                        check_version(&sent, existing, &target.resource, &target.group, &name)?;
                    }
                    let force = query_param(query, "force").is_some_and(|f| f == "true");
                    let mut owners = state.owners.remove(&key).unwrap_or_default();
                    let mut applied = sent.clone();
                    if has_status && sub.is_none() {
                        applied.as_object_mut().unwrap().remove("status");
                    }
                    let result = fields::apply(existing.as_ref(), &mut owners, &manager, &applied, force);
                    let mut object = match result {
                        Ok(object) => object,
                        Err(conflicts) => {
                            state.owners.insert(key, owners.clone());
                            let list: Vec<String> = conflicts
                                .iter()
                                .map(|c| format!("conflict with \"{}\": {}", c.manager, fields::dotted(&c.field)))
                                .collect();
                            let (code, mut body) = status(
                                StatusCode::CONFLICT,
                                "Conflict",
                                &format!(
                                    "Apply failed with {} conflict{}: {}",
                                    conflicts.len(),
                                    if conflicts.len() == 1 { "" } else { "s" },
                                    list.join(", ")
                                ),
                            );
                            body["details"] = json!({ "causes": conflicts.iter().map(|c| json!({ "reason": "FieldManagerConflict", "message": format!("conflict with \"{}\"", c.manager), "field": fields::dotted(&c.field) })).collect::<Vec<_>>() });
                            return Err((code, body));
                        }
                    };
                    object["apiVersion"] = api_version.into();
                    object["kind"] = kind.into();
                    object["metadata"]["name"] = name.clone().into();
                    if let Some(ns) = &target.namespace {
                        object["metadata"]["namespace"] = ns.clone().into();
                    }
                    if let Some(existing) = &existing {
                        for server_set in ["uid", "creationTimestamp", "generation", "resourceVersion"] {
                            object["metadata"][server_set] = existing["metadata"][server_set].clone();
                        }
                        if let Some(s) = existing.get("status") {
                            object["status"] = s.clone();
                        }
                    }
                    let causes = validation::validate(kind, &object, existing.as_ref());
                    if !causes.is_empty() {
                        return Err(invalid(kind, &target.group, &name, &causes));
                    }
                    let stored = state.store(&key, object);
                    state.owners.insert(key, owners);
                    return Ok((if existing.is_none() { StatusCode::CREATED } else { StatusCode::OK }, Answer::Json(stored)));
                }
                if !(content_type.starts_with("application/merge-patch+json")
                    || content_type.starts_with("application/strategic-merge-patch+json"))
                {
                    return Err(status(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "UnsupportedMediaType",
                        &format!("this double does not take {content_type} patches"),
                    ));
                }
                let Some(existing) = existing else { return Err(not_found(&name)) };
                check_version(&sent, &existing, &target.resource, &target.group, &name)?;
                let mut object = existing.clone();
                merge(&mut object, &sent);
                object = subresource_view(object, &existing, has_status, sub);
                let causes = validation::validate(kind, &object, Some(&existing));
                if !causes.is_empty() {
                    return Err(invalid(kind, &target.group, &name, &causes));
                }
                let stored = state.store(&key, object);
                let mut owners = state.owners.remove(&key).unwrap_or_default();
                fields::update(Some(&existing), &stored, &mut owners, manager.as_deref().unwrap_or("kube-rs"));
                state.owners.insert(key, owners);
                Ok((StatusCode::OK, Answer::Json(stored)))
            }
            (&Method::DELETE, None) if target.name.is_some() => {
                let key = key.unwrap();
                match state.objects.remove(&key) {
                    Some(gone) => {
                        state.owners.remove(&key);
                        Ok((StatusCode::OK, Answer::Json(gone)))
                    }
                    None => Err(not_found(&name)),
                }
            }
            _ => Err(status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )),
        }
    }
}

enum Answer {
    Json(Value),
    Text(String),
}

fn parse_body(body: &[u8]) -> Result<Value, (StatusCode, Value)> {
    serde_json::from_slice(body)
        .or_else(|_| serde_yaml::from_slice(body))
        .map_err(|e| status(StatusCode::BAD_REQUEST, "BadRequest", &format!("the body of the request could not be decoded: {e}")))
}

fn check_type(object: &Value, api_version: &str, kind: &str) -> Result<(), (StatusCode, Value)> {
    let sent = (object["apiVersion"].as_str(), object["kind"].as_str());
    // A plain create or update may leave them out (the client's type implies them); an apply may not.
    if sent.0.is_some_and(|v| v != api_version) || sent.1.is_some_and(|k| k != kind) {
        return Err(status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "the API version and kind in the data ({}, {}) do not match the expected {api_version}, {kind}",
                sent.0.unwrap_or(""),
                sent.1.unwrap_or("")
            ),
        ));
    }
    Ok(())
}

fn check_name(object: &Value, name: &str) -> Result<(), (StatusCode, Value)> {
    match object["metadata"]["name"].as_str() {
        Some(n) if n != name => Err(status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("the name of the object ({n}) does not match the name on the URL ({name})"),
        )),
        _ => Ok(()),
    }
}

fn check_version(sent: &Value, existing: &Value, resource: &str, group: &str, name: &str) -> Result<(), (StatusCode, Value)> {
    match sent["metadata"]["resourceVersion"].as_str() {
        Some(rv) if Some(rv) != existing["metadata"]["resourceVersion"].as_str() => {
            let what = if group.is_empty() { resource.to_owned() } else { format!("{resource}.{group}") };
            Err(status(
                StatusCode::CONFLICT,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on {what} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// A write to the main resource keeps the stored status; a write to `/status` keeps all else.
fn subresource_view(mut object: Value, existing: &Value, has_status: bool, sub: Option<&str>) -> Value {
    if !has_status {
        return object;
    }
    match sub {
        Some("status") => {
            let mut kept = existing.clone();
            kept["status"] = object["status"].take();
            kept["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"].clone();
            kept
        }
        _ => {
            match existing.get("status") {
                Some(s) => object["status"] = s.clone(),
                None => {
                    object.as_object_mut().map(|o| o.remove("status"));
                }
            }
            object
        }
    }
}

/// RFC 7386 JSON merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Percent-decodes a query value.
pub fn decode(s: &str) -> String {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
