//! Phase 4, migrations: the database is migrated for the desired image before any pod runs
//! it, by one Job per image and one Job at a time. An image migrated before (a rollback) needs
//! none. While a Job runs, or after one failed, the Deployment stays on its current version; a
//! failed Job is not retried until the resource changes or [`RETRY_MIGRATION`] asks again.

use std::{ops::ControlFlow, time::Duration};

use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, LogParams, PostParams},
    runtime::{controller::Action, events::EventType},
};

use super::{
    context::{Context, publish},
    error::Error,
    progress::Progress,
};
use crate::{
    conditions,
    crd::{FailedMigration, JeexBackend, SecretKeyRef},
    objects::{Names, job},
};

/// Annotation on the resource: change its value to retry a failed migration of the same image.
pub const RETRY_MIGRATION: &str = "jeex.dev/retry-migration";
/// Log lines of a failed migration kept in the status message and the Event.
const LOG_TAIL: i64 = 20;
/// Images remembered as migrated (for rollbacks).
const MIGRATED_KEPT: usize = 10;

/// Passes once the database is migrated for `spec.image` (or migrations are disabled); the
/// Job runs with the app's credentials `app_database`.
pub(crate) async fn migrate(
    jb: &JeexBackend,
    ctx: &Context,
    ns: &str,
    p: &mut Progress,
    app_database: &SecretKeyRef,
) -> Result<ControlFlow<Action>, Error> {
    let spec = &jb.spec;
    let migrated = p.status.migrated_image.as_deref() == Some(spec.image.as_str()) || p.status.migrated_images.contains(&spec.image);
    if spec.migrations.enabled && !migrated {
        return follow_job(jb, ctx, ns, p, app_database).await;
    }
    if !spec.migrations.enabled {
        p.set(conditions::MIGRATIONS_SUCCEEDED, true, "Disabled", "spec.migrations.enabled is false");
    } else {
        p.status.migrated_image = Some(spec.image.clone());
        p.set(conditions::MIGRATIONS_SUCCEEDED, true, "Migrated", format!("the database is migrated for {}", spec.image));
    }
    Ok(ControlFlow::Continue(()))
}

/// Runs or follows the migration Job; passes once it succeeded.
async fn follow_job(
    jb: &JeexBackend,
    ctx: &Context,
    ns: &str,
    p: &mut Progress,
    app_database: &SecretKeyRef,
) -> Result<ControlFlow<Action>, Error> {
    let image = &jb.spec.image;
    let name = Names::of(jb).migration(image);
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let retry = jb.annotations().get(RETRY_MIGRATION).cloned();
    if let Some(failed) = p.status.failed_migration.clone() {
        let asked_again = jb.metadata.generation.is_some_and(|g| g > failed.generation) || retry != failed.retry;
        if failed.job == name && !asked_again {
            // Stays failed until someone changes the resource or asks for a retry.
            return Ok(ControlFlow::Break(Action::await_change()));
        }
        if jobs.get_opt(&failed.job).await?.is_some() {
            jobs.delete(&failed.job, &DeleteParams::background()).await?;
            // Wait for it to go before a Job of the same name is created.
            return Ok(ControlFlow::Break(Action::requeue(Duration::from_secs(2))));
        }
        p.status.failed_migration = None;
    }
    let Some(existing) = jobs.get_opt(&name).await? else {
        // One migration at a time: a Job for an earlier image that still runs goes first.
        let selector = format!("app.kubernetes.io/instance={},app.kubernetes.io/component=migration", jb.name_any());
        if let Some(running) =
            jobs.list(&ListParams::default().labels(&selector)).await?.items.into_iter().find(|j| job::outcome(j) == job::Outcome::Running)
        {
            let message = format!("waiting for Job {} (an earlier image) to finish before migrating {image}", running.name_any());
            p.waiting("Migrating", "Migrating", &message);
            return Ok(ControlFlow::Break(Action::requeue(Duration::from_secs(10))));
        }
        jobs.create(&PostParams::default(), &job::migration_job(jb, image, app_database)).await?;
        publish(ctx, jb, EventType::Normal, "MigrationStarted", &format!("Job {name} migrates the database for {image}")).await;
        p.set(conditions::MIGRATIONS_SUCCEEDED, false, "Migrating", format!("Job {name} is running"));
        p.waiting("Migrating", "Migrating", &format!("Job {name} is running; the Deployment stays on its current version"));
        return Ok(ControlFlow::Break(Action::requeue(Duration::from_secs(10))));
    };
    match job::outcome(&existing) {
        job::Outcome::Running => {
            p.waiting("Migrating", "Migrating", &format!("Job {name} is running; the Deployment stays on its current version"));
            Ok(ControlFlow::Break(Action::requeue(Duration::from_secs(10))))
        }
        job::Outcome::Succeeded => {
            p.status.migrated_image = Some(image.clone());
            p.status.migrated_images.retain(|i| i != image);
            p.status.migrated_images.push(image.clone());
            let excess = p.status.migrated_images.len().saturating_sub(MIGRATED_KEPT);
            p.status.migrated_images.drain(..excess);
            p.set(conditions::MIGRATIONS_SUCCEEDED, true, "Migrated", format!("Job {name} migrated the database for {image}"));
            Ok(ControlFlow::Continue(()))
        }
        job::Outcome::Failed { reason, message } => {
            let log = failed_log(ctx, ns, &name).await;
            let detail =
                format!("Job {name} failed ({reason}: {message}); the Deployment stays on its current version. Last log lines:\n{log}");
            p.set(conditions::MIGRATIONS_SUCCEEDED, false, "MigrationFailed", &detail);
            p.stalled("MigrationFailed", &detail);
            publish(ctx, jb, EventType::Warning, "MigrationFailed", &detail).await;
            p.status.failed_migration = Some(FailedMigration { job: name, generation: jb.metadata.generation.unwrap_or(0), retry });
            Ok(ControlFlow::Break(Action::await_change()))
        }
    }
}

/// The last lines of the failed Job's newest pod, read before its TTL removes it.
async fn failed_log(ctx: &Context, ns: &str, job: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let Ok(list) = pods.list(&ListParams::default().labels(&format!("job-name={job}"))).await else {
        return "(pods unavailable)".into();
    };
    let Some(newest) = list.items.iter().max_by_key(|p| p.metadata.creation_timestamp.clone()) else {
        return "(no pod left)".into();
    };
    match pods.logs(&newest.name_any(), &LogParams { tail_lines: Some(LOG_TAIL), ..LogParams::default() }).await {
        Ok(log) => {
            // Events and messages are bounded (1 KiB): keep the end, where the error is.
            let log = log.trim_end();
            let start = log.len().saturating_sub(700);
            let start = (start..=log.len()).find(|i| log.is_char_boundary(*i)).unwrap_or(log.len());
            log[start..].to_owned()
        }
        Err(e) => format!("(log unavailable: {e})"),
    }
}
