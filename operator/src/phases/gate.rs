//! Phase 3, the dependency gate: probes PostgreSQL, Redis and Qdrant before anything new
//! starts, since a migration or a rollout against a dependency that is down would fail
//! halfway. While one is down the reconcile waits, checking less often the longer it stays
//! down; the running version keeps serving.

use std::{ops::ControlFlow, time::Duration};

use k8s_openapi::jiff;
use kube::runtime::controller::Action;

use super::progress::Progress;
use crate::{
    conditions,
    crd::{JeexBackend, JeexBackendStatus},
    probes,
};

/// Probes `targets` (each bounded by `rollout.dependencyTimeoutSeconds`); passes when every
/// one answered.
pub(crate) async fn check(jb: &JeexBackend, targets: &probes::Targets, p: &mut Progress) -> ControlFlow<Action> {
    let down = probes::probe(targets, Duration::from_secs(jb.spec.rollout.dependency_timeout_seconds.max(1) as u64)).await;
    if !down.is_empty() {
        let message = down.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        p.set(conditions::DEPENDENCIES_READY, false, "DependencyDown", &message);
        p.waiting("WaitingForDependencies", "DependencyDown", &message);
        return ControlFlow::Break(Action::requeue(backoff(&p.status, conditions::DEPENDENCIES_READY, p.now)));
    }
    p.set(conditions::DEPENDENCIES_READY, true, "Probed", "PostgreSQL, Redis and Qdrant answered");
    ControlFlow::Continue(())
}

/// Capped exponential back-off without per-object state: wait about half as long as the
/// condition has been failing, between 5 s and 5 min.
fn backoff(status: &JeexBackendStatus, kind: &str, now: jiff::Timestamp) -> Duration {
    let failing = conditions::since(&status.conditions, kind).map_or(0, |t| now.duration_since(t).as_secs().max(0) as u64);
    Duration::from_secs((failing / 2).clamp(5, 300))
}
