//! A `JeexBackend` in a scripted cluster, driven one reconcile at a time.

use std::sync::Arc;

use base64::Engine;
use jeex_e2e::services::database_url;
use jeex_operator::{
    crd::JeexBackend,
    metrics::Metrics,
    objects::Names,
    reconcile::{Context, reconcile},
};
use serde_json::{Value, json};

use super::apiserver::{ApiServer, Call};

pub const JB: &str = "/apis/jeex.dev/v1alpha1/namespaces/prod/jeexbackends/jeex";
pub const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/prod/deployments/jeex";
pub const JOBS: &str = "/apis/batch/v1/namespaces/prod/jobs";
pub const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/prod/events";

pub fn secret(name: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> =
        data.iter().map(|(k, v)| ((*k).to_owned(), base64::engine::general_purpose::STANDARD.encode(v).into())).collect();
    json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": name, "namespace": "prod", "uid": format!("uid-{name}") }, "data": data })
}

pub struct World {
    pub api: ApiServer,
    pub ctx: Arc<Context>,
}

impl World {
    /// A cluster holding the resource (image `image`) and its owner Secret with `owner_url`.
    pub fn new(image: &str, owner_url: &str) -> Self {
        let api = ApiServer::default();
        api.put(
            JB,
            json!({
                "apiVersion": "jeex.dev/v1alpha1", "kind": "JeexBackend",
                "metadata": { "name": "jeex", "namespace": "prod", "uid": "5e1c3a4b-0000-4000-8000-000000000001", "generation": 1 },
                "spec": {
                    "image": image,
                    "replicas": 2,
                    "database": { "ownerSecret": { "name": "owner" }, "maxConnections": 100 },
                    "auth": { "algorithm": "RS256", "issuer": "jeex", "audience": "jeex-api", "rotationGraceHours": 24 },
                    "migrations": { "enabled": true, "timeoutSeconds": 600, "backoffLimit": 1 },
                    "rollout": { "paused": false, "dependencyTimeoutSeconds": 3 },
                    "imagePullPolicy": "IfNotPresent"
                }
            }),
        );
        api.put("/api/v1/namespaces/prod/secrets/owner", secret("owner", &[("url", owner_url)]));
        let ctx = Arc::new(Context::new(api.client(), Metrics::default()));
        Self { api, ctx }
    }

    pub fn resource(&self) -> JeexBackend {
        serde_json::from_value(self.api.get(JB).unwrap()).unwrap()
    }

    /// One reconcile; the calls it made.
    pub async fn reconcile(&self) -> Vec<Call> {
        self.api.take_calls();
        reconcile(Arc::new(self.resource()), self.ctx.clone()).await.expect("reconcile");
        self.api.take_calls()
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

    pub fn finish_job(&self, image: &str, kind: &str, reason: &str) {
        self.api.patch(
            &self.job_path(image),
            json!({ "status": { "conditions": [{ "type": kind, "status": "True", "reason": reason, "message": "as reported by the Job controller" }] } }),
        );
    }

    pub fn set_image(&self, image: &str) {
        let generation = self.api.get(JB).unwrap()["metadata"]["generation"].as_i64().unwrap();
        self.api.patch(JB, json!({ "spec": { "image": image }, "metadata": { "generation": generation + 1 } }));
    }

    pub fn deployment_ready(&self) {
        self.api
            .patch(DEPLOYMENT, json!({ "status": { "observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2 } }));
    }

    pub fn deployment_image(&self) -> Option<String> {
        self.api.get(DEPLOYMENT).map(|d| d["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap().to_owned())
    }

    pub fn events(&self) -> Vec<String> {
        self.api.list(EVENTS).iter().map(|e| e["reason"].as_str().unwrap_or("").to_owned()).collect()
    }

    /// From nothing to v1 ready: fresh reconcile, the Job succeeds, the pods become ready.
    pub async fn ready_on(image: &str) -> Self {
        let w = World::new(image, &database_url());
        w.reconcile().await;
        w.finish_job(image, "Complete", "");
        w.reconcile().await;
        w.deployment_ready();
        w.reconcile().await;
        w
    }
}
