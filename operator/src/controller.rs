//! `jeex-operator run`: serve `/healthz`, `/readyz` and `/metrics`, wait for the leader
//! Lease, then run the controller: it watches `JeexBackend`s, the Deployments and Jobs they
//! own and every Secret they read (given or generated), and reconciles each change.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::{apps::v1::Deployment, batch::v1::Job, core::v1::Secret};
use kube::{
    Api,
    api::ListParams,
    runtime::{Controller, reflector::ObjectRef, watcher},
};

use crate::{
    api_calls::ApiCalls,
    crd::JeexBackend,
    lease::Elector,
    metrics::Metrics,
    reconcile::{self, Context},
    secrets,
};

/// `/healthz` fails when a reconcile has run this long (past its own deadline, so the loop is
/// stuck) or a leader has not renewed its Lease for this long.
pub const STUCK: Duration = Duration::from_secs(300);

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where `/healthz`, `/readyz` and `/metrics` listen.
    pub http_addr: SocketAddr,
    /// Namespace of the leader Lease (the operator's own).
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// Whether to take the leader Lease before reconciling (off for a single local replica).
    pub leader_election: bool,
    /// The meter the reconcile metrics are exported with, when telemetry is on.
    pub meter: Option<opentelemetry::metrics::Meter>,
}

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No cluster credentials.
    #[error("cannot reach Kubernetes (in a pod: the service account; outside: KUBECONFIG): {0}")]
    Client(#[from] kube::Error),
    /// No cluster configuration at all.
    #[error("cannot reach Kubernetes: no configuration found (in a pod: the service account; outside: KUBECONFIG): {0}")]
    Config(#[from] kube::config::InferConfigError),
    /// The CRD is missing.
    #[error("the JeexBackend CRD is not installed or not readable ({0}); apply crds/jeexbackend.yaml (the Helm chart does)")]
    NoCrd(kube::Error),
    /// The HTTP port is taken.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Leadership was lost: exit and let Kubernetes restart the pod as a follower.
    #[error("lost the leader Lease; stopping so that only one replica reconciles")]
    LostLease,
}

/// Runs until SIGTERM (exit 0) or until leadership is lost (error).
pub async fn run(settings: Settings) -> Result<(), RunError> {
    let config = kube::Config::infer().await?;
    // Every API call the reconciles make gets its client span.
    let calls = ApiCalls::for_cluster(&config.cluster_url);
    let client = kube::client::ClientBuilder::try_from(config)?.with_layer(&calls).build();
    let metrics = settings.meter.as_ref().map(Metrics::exported_with).unwrap_or_default();
    let listener =
        tokio::net::TcpListener::bind(settings.http_addr).await.map_err(|source| RunError::Listen { addr: settings.http_addr, source })?;
    let leading = Arc::new(AtomicBool::new(false));
    tokio::spawn(serve_http(listener, metrics.clone(), leading.clone()));

    let backends: Api<JeexBackend> = Api::all(client.clone());
    backends.list(&ListParams::default().limit(1)).await.map_err(RunError::NoCrd)?;

    let elector = Elector::new(client.clone(), &settings.namespace, "jeex-operator", &settings.identity);
    if settings.leader_election {
        tracing::info!(identity = %settings.identity, "waiting for the leader Lease");
        elector.acquire().await;
        metrics.renewed();
        leading.store(true, Ordering::Relaxed);
        tracing::info!("leading: reconciling");
    }
    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=jeex-operator");
    let ctx = Arc::new(Context::new(client.clone(), metrics.clone()));
    let controller = Controller::new(backends, watcher::Config::default().any_semantic());
    let resources = controller.store();
    // Generated Secrets are not owned (they outlive the resource) and given ones never were:
    // a Secret maps to every resource in its namespace that reads it.
    let readers = move |secret: Secret| {
        let (ns, name) = (secret.metadata.namespace.clone(), secret.metadata.name.clone().unwrap_or_default());
        resources
            .state()
            .into_iter()
            .filter(|jb| jb.metadata.namespace == ns && secrets::referenced(jb).contains(&name))
            .map(|jb| ObjectRef::from_obj(&*jb))
            .collect::<Vec<_>>()
    };
    let controller = controller
        .owns(Api::<Deployment>::all(client.clone()), owned.clone())
        .owns(Api::<Job>::all(client.clone()), owned)
        .watches(Api::<Secret>::all(client.clone()), watcher::Config::default(), readers)
        .shutdown_on_signal()
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(name = %object.name, namespace = ?object.namespace, "reconciled"),
                Err(e) => tracing::warn!(error = %e, "reconcile error"),
            }
        });
    if settings.leader_election {
        tokio::select! {
            () = controller => Ok(()),
            () = elector.keep(|| metrics.renewed()) => Err(RunError::LostLease),
        }
    } else {
        controller.await;
        Ok(())
    }
}

/// `/healthz` (the control loop is not stuck), `/readyz` (it serves) and `/metrics`.
async fn serve_http(listener: tokio::net::TcpListener, metrics: Metrics, leading: Arc<AtomicBool>) {
    loop {
        let Ok((socket, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        let leading = leading.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let metrics = metrics.clone();
                let leading = leading.load(Ordering::Relaxed);
                async move {
                    let (status, body) = match req.uri().path() {
                        "/healthz" => match metrics.unhealthy(STUCK, leading) {
                            None => (200, "ok".to_owned()),
                            Some(why) => (503, why),
                        },
                        "/readyz" => (200, "ok".to_owned()),
                        "/metrics" => (200, metrics.render()),
                        _ => (404, "not found".to_owned()),
                    };
                    Ok::<_, Infallible>(
                        Response::builder()
                            .status(status)
                            .header("content-type", "text/plain; version=0.0.4")
                            .body(Full::new(Bytes::from(body)))
                            .expect("static response"),
                    )
                }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(socket), service).await;
        });
    }
}
