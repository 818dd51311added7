//! A `JeexBackend` in a simulated cluster, driven one reconcile at a time: the API-server
//! double (RBAC from the rendered chart, server-side apply, conflicts, validation) with its
//! Deployment, ReplicaSet, Job and garbage-collection controllers on a simulated clock.

use std::sync::Arc;

use base64::Engine;
use jeex_e2e::services::database_url;
use jeex_operator::{
    crd::JeexBackend,
    metrics::Metrics,
    objects::Names,
    reconcile::{Context, reconcile},
};
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::apiserver::{ApiServer, Call};

pub const JB: &str = "/apis/jeex.dev/v1alpha1/namespaces/prod/jeexbackends/jeex";
pub const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/prod/deployments/jeex";
pub const JOBS: &str = "/apis/batch/v1/namespaces/prod/jobs";
pub const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/prod/events";
pub const JWT: &str = "/api/v1/namespaces/prod/secrets/jeex-jwt";
pub const DB_APP: &str = "/api/v1/namespaces/prod/secrets/jeex-db-app";

pub fn secret(name: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> =
        data.iter().map(|(k, v)| ((*k).to_owned(), base64::engine::general_purpose::STANDARD.encode(v).into())).collect();
    json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": name, "namespace": "prod" }, "data": data })
}

/// The resource as a platform team applies it (image `image`, 2 replicas, budget 100).
pub fn manifest(image: &str) -> Value {
    json!({
        "apiVersion": "jeex.dev/v1alpha1", "kind": "JeexBackend",
        "metadata": { "name": "jeex", "namespace": "prod" },
        "spec": {
            "image": image,
            "replicas": 2,
            "database": { "ownerSecret": { "name": "owner", "key": "url" }, "maxConnections": 100, "acquireTimeoutSeconds": 5, "maxLifetimeSeconds": 1800, "idleTimeoutSeconds": 600 },
            "auth": { "algorithm": "RS256", "issuer": "jeex", "audience": "jeex-api", "rotationGraceHours": 24 },
            "migrations": { "enabled": true, "timeoutSeconds": 600, "backoffLimit": 1 },
            "rollout": { "paused": false, "dependencyTimeoutSeconds": 3, "progressDeadlineSeconds": 600 },
            "imagePullPolicy": "IfNotPresent",
            "secretRetention": "Retain"
        }
    })
}

pub struct World {
    pub api: ApiServer,
    pub ctx: Arc<Context>,
}

impl World {
    /// A cluster holding the resource (image `image`) and its owner Secret with `owner_url`.
    pub fn new(image: &str, owner_url: &str) -> Self {
        let api = ApiServer::default();
        api.put(JB, manifest(image));
        api.put("/api/v1/namespaces/prod/secrets/owner", secret("owner", &[("url", owner_url)]));
        let ctx = Arc::new(Context::with_clock(api.client(), Metrics::default(), api.clock()));
        Self { api, ctx }
    }

    pub fn resource(&self) -> JeexBackend {
        serde_json::from_value(self.api.get(JB).expect("the resource exists")).unwrap()
    }

    /// One reconcile, which must succeed; the calls it made.
    pub async fn reconcile(&self) -> Vec<Call> {
        self.api.take_calls();
        let result = reconcile(Arc::new(self.resource()), self.ctx.clone()).await;
        let calls = self.api.take_calls();
        if let Err(e) = result {
            panic!("reconcile failed: {e}\ncalls: {calls:#?}");
        }
        calls
    }

    /// One reconcile that may fail.
    pub async fn try_reconcile(&self) -> (Result<Action, String>, Vec<Call>) {
        self.api.take_calls();
        let result = reconcile(Arc::new(self.resource()), self.ctx.clone()).await.map_err(|e| e.to_string());
        (result, self.api.take_calls())
    }

    /// Reconciles and lets the cluster run `seconds` after each, `rounds` times.
    pub async fn run(&self, rounds: usize, seconds: i64) -> Vec<Call> {
        let mut calls = Vec::new();
        for _ in 0..rounds {
            calls.extend(self.reconcile().await);
            self.api.tick(seconds);
        }
        calls
    }

    /// Reconciles until the resource is Ready (at most `rounds` reconciles, 5 s apart).
    pub async fn until_ready(&self, rounds: usize) {
        for _ in 0..rounds {
            self.reconcile().await;
            if self.condition("Ready").0 == "True" {
                return;
            }
            self.api.tick(5);
        }
        panic!("not Ready after {rounds} reconciles: {:#?}", self.status());
    }

    pub fn status(&self) -> Value {
        self.api.get(JB).unwrap()["status"].clone()
    }

    pub fn condition(&self, kind: &str) -> (String, String, String) {
        let status = self.status();
        let c = status["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == kind).cloned().unwrap_or(Value::Null);
        (c["status"].as_str().unwrap_or("").into(), c["reason"].as_str().unwrap_or("").into(), c["message"].as_str().unwrap_or("").into())
    }

    pub fn job_path(&self, image: &str) -> String {
        format!("{JOBS}/{}", Names::of(&self.resource()).migration(image))
    }

    /// A spec change by the platform team (`kubectl apply` of a new manifest).
    pub fn set_spec(&self, patch: Value) {
        self.api.edit(JB, "kubectl-client-side-apply", json!({ "spec": patch }));
    }

    pub fn set_image(&self, image: &str) {
        self.set_spec(json!({ "image": image }));
    }

    pub fn deployment_image(&self) -> Option<String> {
        self.api.get(DEPLOYMENT).map(|d| d["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap().to_owned())
    }

    pub fn events(&self) -> Vec<String> {
        self.api.list(EVENTS).iter().map(|e| e["reason"].as_str().unwrap_or("").to_owned()).collect()
    }

    /// From nothing to `image` ready: the simulated Job and Deployment controllers run.
    pub async fn ready_on(image: &str) -> Self {
        let w = World::new(image, &database_url());
        w.until_ready(30).await;
        w
    }
}
