//! `jeex-operator run`: serve `/healthz`, `/readyz` and `/metrics`, wait for the leader
//! Lease, then run the controller: it watches `JeexBackend`s and the Deployments, Jobs and
//! Secrets they own, and reconciles each change.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::{apps::v1::Deployment, batch::v1::Job, core::v1::Secret};
use kube::{
    Api, Client,
    api::ListParams,
    runtime::{Controller, watcher},
};

use crate::{
    crd::JeexBackend,
    lease::Elector,
    metrics::Metrics,
    reconcile::{self, Context},
};

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
}

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No cluster credentials.
    #[error("cannot reach Kubernetes (in a pod: the service account; outside: KUBECONFIG): {0}")]
    Client(#[from] kube::Error),
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
    let client = Client::try_default().await?;
    let metrics = Metrics::default();
    let listener =
        tokio::net::TcpListener::bind(settings.http_addr).await.map_err(|source| RunError::Listen { addr: settings.http_addr, source })?;
    tokio::spawn(serve_http(listener, metrics.clone()));

    let backends: Api<JeexBackend> = Api::all(client.clone());
    backends.list(&ListParams::default().limit(1)).await.map_err(RunError::NoCrd)?;

    let elector = Elector::new(client.clone(), &settings.namespace, "jeex-operator", &settings.identity);
    if settings.leader_election {
        tracing::info!(identity = %settings.identity, "waiting for the leader Lease");
        elector.acquire().await;
        tracing::info!("leading: reconciling");
    }
    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=jeex-operator");
    let ctx = Arc::new(Context::new(client.clone(), metrics));
    let controller = Controller::new(backends, watcher::Config::default().any_semantic())
        .owns(Api::<Deployment>::all(client.clone()), owned.clone())
        .owns(Api::<Job>::all(client.clone()), owned.clone())
        .owns(Api::<Secret>::all(client.clone()), owned)
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
            () = elector.keep() => Err(RunError::LostLease),
        }
    } else {
        controller.await;
        Ok(())
    }
}

/// `/healthz` (the process runs), `/readyz` (it serves) and `/metrics`.
async fn serve_http(listener: tokio::net::TcpListener, metrics: Metrics) {
    loop {
        let Ok((socket, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let (status, body) = match req.uri().path() {
                        "/healthz" | "/readyz" => (200, "ok".to_owned()),
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
