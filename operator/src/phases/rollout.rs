//! Phase 5, rollout: applies the Deployment, its Service and PodDisruptionBudget, and reports
//! how far the rollout got. Replicas and pool sizes move one safe step at a time so that old
//! and new pods together stay within the connection budget, and a rotation of the generated
//! signing key advances one step per rollout (each waits until every pod runs the last one).

use std::time::Duration;

use k8s_openapi::{
    api::{apps::v1::Deployment, core::v1::Secret, policy::v1::PodDisruptionBudget},
    jiff,
};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, PostParams},
    runtime::{controller::Action, events::EventType},
};

use super::{
    apply::{apply, apply_to},
    context::{Context, publish},
    error::Error,
    handoff::{Budget, Resolved},
    progress::Progress,
};
use crate::{
    conditions,
    crd::{JeexBackend, PoolStatus},
    objects::{Names, config::Inputs, deployment, pdb, service},
    pools, secrets,
};

/// Takes the rollout one step towards `spec.image` and `spec.replicas` within `budget`, with
/// the credentials the secrets phase `resolved`.
pub(crate) async fn roll_out(
    jb: &JeexBackend,
    ctx: &Context,
    ns: &str,
    p: &mut Progress,
    resolved: Resolved,
    budget: Budget,
) -> Result<Action, Error> {
    let spec = &jb.spec;
    let names = Names::of(jb);
    let Resolved { app_database, mut key_secret, generated_keys, mut fingerprints, .. } = resolved;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let live = live_deployment(deployments.get_opt(&names.api()).await?, spec.database.max_connections);
    let mut requeue = Duration::from_secs(300);
    if generated_keys && let Some(expiry) = rotate_keys(jb, ctx, ns, &mut key_secret, &live.keys, p.now).await? {
        // A key that expires sooner brings the next reconcile forward.
        requeue = requeue.min(expiry);
    }
    let keys = match secrets::signing_keys(&key_secret, p.now) {
        Ok(keys) => keys,
        Err(problem) => return Ok(p.bad_secret(&key_secret.name_any(), &problem)),
    };
    fingerprints.insert(key_secret.name_any(), secrets::key_fingerprint(&key_secret, &keys));
    let step = budget.step(live.pools);
    let inputs = Inputs { pools: step.pools, keys, app_database, secret_fingerprints: fingerprints };
    let deployment = apply_to(&deployments, deployment::deployment(jb, &spec.image, step.replicas, &inputs), live.object).await?;
    apply(ctx, ns, service::service(jb)).await?;
    match pdb::pdb(jb) {
        Some(budget) => {
            apply(ctx, ns, budget).await?;
        }
        None => {
            let pdbs: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), ns);
            if pdbs.get_opt(&names.api()).await?.is_some() {
                pdbs.delete(&names.api(), &DeleteParams::default()).await?;
            }
        }
    }
    p.status.current_image = Some(spec.image.clone());
    Ok(report(jb, p, &step, deployment, requeue))
}

/// Advances a rotation of the generated key Secret by at most one step, replacing it and
/// announcing the step. How long until its next key expires, if one does.
async fn rotate_keys(
    jb: &JeexBackend,
    ctx: &Context,
    ns: &str,
    key_secret: &mut Secret,
    rolled: &secrets::Rolled,
    now: jiff::Timestamp,
) -> Result<Option<Duration>, Error> {
    if let secrets::KeyUpdate::Replace(updated, step) = secrets::rotation(jb, key_secret, rolled, now)? {
        let secret_api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
        *key_secret = secret_api.replace(&Names::of(jb).jwt(), &PostParams::default(), &updated).await?;
        publish(ctx, jb, EventType::Normal, "SigningKeyRotation", step).await;
    }
    Ok(secrets::next_expiry(key_secret, now).map(|at| Duration::from_secs(at.duration_since(now).as_secs().max(1) as u64)))
}

/// Records how far the rollout of `deployment` (as just applied) got and when to look again:
/// after `requeue` once it is complete, a stall when it made no progress, soon while it moves.
fn report(jb: &JeexBackend, p: &mut Progress, step: &pools::Step, deployment: Deployment, requeue: Duration) -> Action {
    let spec = &jb.spec;
    let status = deployment.status.unwrap_or_default();
    let ready = status.ready_replicas.unwrap_or(0);
    p.status.ready_replicas = Some(ready);
    let rolled = deployment.metadata.generation.is_some() && status.observed_generation == deployment.metadata.generation;
    let complete = rolled
        && step.last
        && status.updated_replicas.unwrap_or(0) == spec.replicas
        && ready == spec.replicas
        && status.replicas.unwrap_or(0) == spec.replicas;
    let deadline = status.conditions.iter().flatten().find(|c| {
        c.type_.as_deref() == Some("Progressing")
            && c.status.as_deref() == Some("False")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if complete {
        p.status.phase = Some("Ready".into());
        p.set(conditions::READY, true, "RolledOut", format!("{ready} of {} replicas ready on {}", spec.replicas, spec.image));
        p.set(conditions::RECONCILING, false, "RolledOut", "");
        p.set(conditions::STALLED, false, "RolledOut", "");
        Action::requeue(requeue)
    } else if let Some(c) = deadline.filter(|_| rolled) {
        let message = format!(
            "the rollout of {} made no progress for {}s ({}); {ready} of {} replicas ready. Pods that never become ready are the usual cause: see `kubectl describe` of the Deployment and its pods. A new image or spec change rolls again",
            spec.image,
            spec.rollout.progress_deadline_seconds,
            c.message.as_deref().unwrap_or("ProgressDeadlineExceeded"),
            spec.replicas
        );
        p.stalled("ProgressDeadlineExceeded", &message);
        Action::requeue(Duration::from_secs(60))
    } else {
        let message = if step.last {
            format!("{ready} of {} replicas ready on {}", spec.replicas, spec.image)
        } else {
            format!(
                "{ready} of {} replicas ready on {}; moving to {} replicas in steps so the connection budget holds: now {} replicas with pools of {}",
                step.replicas,
                spec.image,
                spec.replicas,
                step.replicas,
                step.pools.per_replica + step.pools.overflow
            )
        };
        p.waiting("RollingOut", "RollingOut", &message);
        Action::requeue(Duration::from_secs(10))
    }
}

/// What the live Deployment runs.
struct LiveDeployment {
    object: Option<Deployment>,
    pools: Option<pools::Live>,
    keys: secrets::Rolled,
}

fn env_of(d: &Deployment, name: &str) -> Option<String> {
    let pod = d.spec.template.spec.as_ref()?;
    pod.containers.first()?.env.as_ref()?.iter().find(|e| e.name == name)?.value.clone()
}

/// Reads what the live Deployment's pod template carries and whether its rollout is over.
fn live_deployment(d: Option<Deployment>, budget: i32) -> LiveDeployment {
    let Some(d) = d else { return LiveDeployment { object: None, pools: None, keys: secrets::Rolled::default() } };
    let spec_replicas = d.spec.replicas.unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    let settled = d.metadata.generation.is_some()
        && status.observed_generation == d.metadata.generation
        && status.updated_replicas.unwrap_or(0) == spec_replicas
        && status.ready_replicas.unwrap_or(0) == spec_replicas
        && status.replicas.unwrap_or(0) == spec_replicas;
    let number = |name| env_of(&d, name).and_then(|v| v.parse::<i32>().ok());
    let live_pools = match (number("JEEX_DB_POOL_SIZE"), number("JEEX_DB_POOL_MAX_OVERFLOW")) {
        (Some(per_replica), Some(overflow)) => PoolStatus { per_replica, overflow, migration: pools::MIGRATION, worst_case_total: 0 },
        // Pods of an older operator read their pools elsewhere: assume what it computed.
        _ => pools::size(budget, spec_replicas).unwrap_or_default(),
    };
    let kid = |path: &str| path.rsplit('/').next().unwrap_or("").split('.').next().unwrap_or("").to_owned();
    let keys = secrets::Rolled {
        signs: env_of(&d, "JEEX_JWT_PRIVATE_KEY").map(|p| kid(&p)),
        accepts: env_of(&d, "JEEX_JWT_PUBLIC_KEYS").map(|l| l.split(',').map(kid).collect()).unwrap_or_default(),
        settled,
    };
    LiveDeployment { pools: Some(pools::Live { replicas: spec_replicas, pools: live_pools, settled }), keys, object: Some(d) }
}
