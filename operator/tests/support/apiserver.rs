//! A scripted Kubernetes API server on `tower-test`: an in-memory object store that answers
//! the calls the operator makes (get, list, create, replace, server-side apply, status merge
//! patch, delete, pod logs) the way the real one does, and records every call so a test can
//! assert which writes happened. No cluster runs in CI; this is the one thing we fake.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use kube::{Client, client::Body};
use serde_json::{Value, json};

/// One call the operator made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// HTTP method.
    pub method: Method,
    /// Path without the query.
    pub path: String,
}

impl Call {
    /// Whether it changed anything.
    pub fn writes(&self) -> bool {
        self.method != Method::GET
    }
}

/// The store and the call log, shared with the test.
#[derive(Clone, Default)]
pub struct ApiServer {
    objects: Arc<Mutex<BTreeMap<String, Value>>>,
    logs: Arc<Mutex<BTreeMap<String, String>>>,
    calls: Arc<Mutex<Vec<Call>>>,
    next_uid: Arc<Mutex<u64>>,
}

fn merge(target: &mut Value, patch: &Value) {
    // RFC 7386 JSON merge patch.
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

fn status(code: StatusCode, reason: &str) -> (StatusCode, Value) {
    (code, json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code.as_u16(), "message": reason }))
}

impl ApiServer {
    /// A client talking to this server.
    pub fn client(&self) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Full<Bytes>>>();
        let server = self.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                respond.send_response(server.answer(request).await);
            }
        });
        Client::new(service, "default")
    }

    /// Puts an object at its API path (e.g. `/api/v1/namespaces/prod/secrets/owner`).
    pub fn put(&self, path: &str, object: Value) {
        self.objects.lock().unwrap().insert(path.to_owned(), object);
    }

    /// The object at `path`.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.objects.lock().unwrap().get(path).cloned()
    }

    /// Applies a merge patch to the stored object at `path` (e.g. a Deployment's status).
    pub fn patch(&self, path: &str, patch: Value) {
        let mut objects = self.objects.lock().unwrap();
        merge(objects.get_mut(path).expect("object exists"), &patch);
    }

    /// Sets the log of a pod.
    pub fn log(&self, pod_path: &str, text: &str) {
        self.logs.lock().unwrap().insert(format!("{pod_path}/log"), text.to_owned());
    }

    /// Every call so far, and forgets them.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    /// Stored objects under `collection` (e.g. `/apis/events.k8s.io/v1/namespaces/prod/events`).
    pub fn list(&self, collection: &str) -> Vec<Value> {
        let prefix = format!("{collection}/");
        self.objects
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
            .map(|(_, v)| v.clone())
            .collect()
    }

    async fn answer(&self, request: Request<Body>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let path = parts.uri.path().to_owned();
        let query = parts.uri.query().unwrap_or("").to_owned();
        self.calls.lock().unwrap().push(Call { method: parts.method.clone(), path: path.clone() });
        if parts.method == Method::GET
            && let Some(text) = self.logs.lock().unwrap().get(&path)
        {
            return Response::builder()
                .status(200)
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from(text.clone())))
                .unwrap();
        }
        let (code, value) = self.handle(&parts.method, &path, &query, &body);
        Response::builder().status(code).header("content-type", "application/json").body(Full::new(Bytes::from(value.to_string()))).unwrap()
    }

    fn stamp(&self, object: &mut Value, existing: Option<&Value>) {
        // Like the API server: stringData is write-only and lands in data.
        if let Some(Value::Object(plain)) = object.as_object_mut().and_then(|o| o.remove("stringData")) {
            use base64::Engine;
            for (k, v) in plain {
                object["data"][k] = base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or_default()).into();
            }
        }
        let meta = &mut object["metadata"];
        let uid = match existing.and_then(|e| e["metadata"]["uid"].as_str()) {
            Some(uid) => uid.to_owned(),
            None => {
                let mut next = self.next_uid.lock().unwrap();
                *next += 1;
                format!("00000000-0000-4000-8000-{:012}", *next)
            }
        };
        meta["uid"] = uid.into();
        meta["resourceVersion"] = "1".into();
        if meta["creationTimestamp"].is_null() {
            meta["creationTimestamp"] = "2026-11-24T00:00:00Z".into();
        }
        if meta["generation"].is_null() {
            meta["generation"] = existing.map_or(json!(1), |e| e["metadata"]["generation"].clone());
        }
        if let Some(status) = existing.and_then(|e| e.get("status")).filter(|_| object.get("status").is_none()) {
            object["status"] = status.clone();
        }
    }

    fn handle(&self, method: &Method, path: &str, query: &str, body: &[u8]) -> (StatusCode, Value) {
        let mut objects = self.objects.lock().unwrap();
        let sent: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        match *method {
            Method::GET => {
                if let Some(object) = objects.get(path) {
                    return (StatusCode::OK, object.clone());
                }
                if !is_collection(path) {
                    return status(StatusCode::NOT_FOUND, "NotFound");
                }
                // A collection: its direct children, filtered by an equality label selector.
                let prefix = format!("{path}/");
                let selector: Vec<(String, String)> = query
                    .split('&')
                    .filter_map(|kv| kv.strip_prefix("labelSelector="))
                    .flat_map(|s| decode(s).split(',').map(str::to_owned).collect::<Vec<_>>())
                    .filter_map(|s| s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
                    .collect();
                let items: Vec<Value> = objects
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
                    .map(|(_, v)| v.clone())
                    .filter(|v| selector.iter().all(|(k, want)| v["metadata"]["labels"][k].as_str() == Some(want)))
                    .collect();
                (StatusCode::OK, json!({ "kind": "List", "apiVersion": "v1", "metadata": { "resourceVersion": "1" }, "items": items }))
            }
            Method::POST => {
                let mut object = sent;
                let name = match object["metadata"]["name"].as_str() {
                    Some(n) => n.to_owned(),
                    None => {
                        let generated = format!("{}{}", object["metadata"]["generateName"].as_str().unwrap_or("obj-"), objects.len());
                        object["metadata"]["name"] = generated.clone().into();
                        generated
                    }
                };
                let key = format!("{path}/{name}");
                if objects.contains_key(&key) {
                    return status(StatusCode::CONFLICT, "AlreadyExists");
                }
                self.stamp(&mut object, None);
                objects.insert(key, object.clone());
                (StatusCode::CREATED, object)
            }
            Method::PUT => {
                let Some(existing) = objects.get(path).cloned() else { return status(StatusCode::NOT_FOUND, "NotFound") };
                let mut object = sent;
                self.stamp(&mut object, Some(&existing));
                objects.insert(path.to_owned(), object.clone());
                (StatusCode::OK, object)
            }
            Method::PATCH => {
                if let Some(item) = path.strip_suffix("/status") {
                    let Some(object) = objects.get_mut(item) else { return status(StatusCode::NOT_FOUND, "NotFound") };
                    merge(object, &json!({ "status": sent["status"] }));
                    return (StatusCode::OK, object.clone());
                }
                // Server-side apply: the applied fields replace ours; status stays.
                let existing = objects.get(path).cloned();
                let mut object = sent;
                self.stamp(&mut object, existing.as_ref());
                objects.insert(path.to_owned(), object.clone());
                (StatusCode::OK, object)
            }
            Method::DELETE => match objects.remove(path) {
                Some(_) => (StatusCode::OK, json!({ "kind": "Status", "apiVersion": "v1", "status": "Success" })),
                None => status(StatusCode::NOT_FOUND, "NotFound"),
            },
            _ => status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
        }
    }
}

/// Percent-decodes a query value.
fn decode(s: &str) -> String {
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

/// Whether `path` names a collection (`…/namespaces/<ns>/<plural>`), not an item.
fn is_collection(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // /api/v1/namespaces/ns/plural (5) or /apis/group/version/namespaces/ns/plural (6).
    matches!((segments.first(), segments.len()), (Some(&"api"), 5) | (Some(&"apis"), 6))
}
