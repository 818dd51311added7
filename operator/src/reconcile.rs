//! The reconcile loop: secrets → pools → dependency gate → migrations → rollout → status.
//! Level-triggered and idempotent: each step reads what exists and writes only what differs,
//! so a resource already in its desired state costs reads and no writes. A step that cannot
//! pass stops the ones after it: nothing new starts and the running version keeps serving.
//! Each step is a phase of its own under `phases/`; this module runs them in order.

use std::{ops::ControlFlow, sync::Arc, time::Duration};

use kube::{
    ResourceExt,
    runtime::{controller::Action, events::EventType},
};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use crate::phases::{
    apply::APPLIED,
    context::{Clock, Context},
    error::{DEADLINE, Error},
    migrate::RETRY_MIGRATION,
};
use crate::{
    conditions,
    crd::JeexBackend,
    phases::{context::publish, gate, migrate, pools, progress::Progress, rollout, secrets, status},
};

fn key_of(jb: &JeexBackend) -> String {
    format!("{}/{}", jb.namespace().unwrap_or_default(), jb.name_any())
}

/// Reconciles one `JeexBackend`, in a span of its own: the root of a trace whose children are
/// the reconcile's API calls and dependency probes. Its fields are the log lines' own, as they
/// always were; the trace's attributes are set on the exported span only.
pub async fn reconcile(jb: Arc<JeexBackend>, ctx: Arc<Context>) -> Result<Action, Error> {
    let (namespace, name) = (jb.metadata.namespace.as_deref(), jb.metadata.name.as_deref());
    let span = tracing::info_span!(parent: None, "reconcile", namespace, name);
    span.set_attribute("k8s.namespace.name", namespace.unwrap_or_default().to_owned());
    span.set_attribute("jeex.backend.name", name.unwrap_or_default().to_owned());
    if let Some(generation) = jb.metadata.generation {
        span.set_attribute("jeex.backend.generation", generation);
    }
    let started = std::time::Instant::now();
    let _running = ctx.metrics.running();
    let result = tokio::time::timeout(DEADLINE, run(&jb, &ctx)).instrument(span.clone()).await.unwrap_or(Err(Error::Timeout));
    ctx.metrics.observe(started.elapsed(), result.is_err());
    match &result {
        Ok(action) => {
            span.set_attribute("jeex.reconcile.outcome", if *action == Action::await_change() { "done" } else { "requeue" });
        }
        Err(e) => {
            span.set_attribute("jeex.reconcile.outcome", "error");
            span.set_attribute("error.type", e.reason().0);
            span.set_status(opentelemetry::trace::Status::error(e.to_string()));
        }
    }
    if result.is_ok() {
        ctx.failures.lock().expect("not poisoned").remove(&key_of(&jb));
    }
    result
}

async fn run(jb: &JeexBackend, ctx: &Context) -> Result<Action, Error> {
    let ns = jb.namespace().unwrap_or_else(|| "default".into());
    let mut p = Progress::new(jb, (ctx.clock)());
    let outcome = steps(jb, ctx, &ns, &mut p).await;
    p.status.observed_generation = jb.metadata.generation;
    match outcome {
        Ok(action) => {
            status::write(jb, ctx, &ns, p).await?;
            Ok(action)
        }
        Err(error) => {
            // What got done (a migration that succeeded) and why it stopped reach the status.
            p.failed(&error);
            publish(ctx, jb, EventType::Warning, error.reason().0, &error.to_string()).await;
            if let Err(e) = status::write(jb, ctx, &ns, p).await {
                tracing::warn!(error = %e, "cannot write the status of a failed reconcile");
            }
            Err(error)
        }
    }
}

/// A phase's output when the reconcile goes on; otherwise `steps` returns the phase's Action.
macro_rules! next {
    ($phase:expr) => {
        match $phase {
            ControlFlow::Continue(output) => output,
            ControlFlow::Break(action) => return Ok(action),
        }
    };
}

/// The phases in order, each given what the ones before it found. Status is written by `run`,
/// after this returns either way.
async fn steps(jb: &JeexBackend, ctx: &Context, ns: &str, p: &mut Progress) -> Result<Action, Error> {
    next!(paused(jb, p));
    let resolved = next!(secrets::resolve(jb, ctx, ns, p).await?);
    let budget = next!(pools::fit(jb, p));
    next!(gate::check(jb, &resolved.targets, p).await);
    next!(migrate::migrate(jb, ctx, ns, p, &resolved.app_database).await?);
    rollout::roll_out(jb, ctx, ns, p, resolved, budget).await
}

/// A paused resource holds every phase: nothing is read or written until it is resumed.
fn paused(jb: &JeexBackend, p: &mut Progress) -> ControlFlow<Action> {
    if !jb.spec.rollout.paused {
        return ControlFlow::Continue(());
    }
    p.status.phase = Some("Paused".into());
    p.set(conditions::RECONCILING, false, "Paused", "spec.rollout.paused is true: nothing changes until it is false");
    ControlFlow::Break(Action::await_change())
}

/// Retries a failed reconcile with exponential back-off per resource: 5 s, 10 s, 20 s, … up to
/// 5 minutes; a success resets it.
pub fn error_policy(jb: Arc<JeexBackend>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = {
        let mut map = ctx.failures.lock().expect("not poisoned");
        let n = map.entry(key_of(&jb)).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let delay = retry_delay(failures);
    tracing::warn!(%error, failures, retry_in_s = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}

/// The wait after `failures` consecutive failures.
pub fn retry_delay(failures: u32) -> Duration {
    Duration::from_secs(5u64.saturating_mul(1 << failures.saturating_sub(1).min(6)).min(300))
}
