//! The reconcile loop: secrets → pools → dependency gate → migrations → rollout → status.
//! Level-triggered and idempotent: each step reads what exists and writes only what differs,
//! so a resource already in its desired state costs reads and no writes. A step that cannot
//! pass stops the ones after it: nothing new starts and the running version keeps serving.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use k8s_openapi::{
    api::{
        batch::v1::Job,
        core::v1::{Pod, Secret},
        policy::v1::PodDisruptionBudget,
    },
    jiff,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams},
    runtime::{
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
    },
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    conditions::{self, Set, Transition},
    crd::{FailedMigration, JeexBackend, JeexBackendStatus, SecretKeyRef},
    objects::{
        MANAGER, Names,
        config::{self, Inputs},
        deployment, hash, job, pdb, service,
    },
    pools, probes, secrets,
};

/// Annotation on the resource: change its value to retry a failed migration of the same image.
pub const RETRY_MIGRATION: &str = "jeex.dev/retry-migration";
/// Annotation on every applied object: the hash of what the operator last applied, so an
/// unchanged object costs a read, not a write.
pub const APPLIED: &str = "jeex.dev/applied";
/// Log lines of a failed migration kept in the status message and the Event.
const LOG_TAIL: i64 = 20;

/// What reconciles share.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Publishes Events.
    pub recorder: Recorder,
    /// Counts reconciles and errors.
    pub metrics: crate::metrics::Metrics,
}

impl Context {
    /// A context on `client`.
    pub fn new(client: Client, metrics: crate::metrics::Metrics) -> Self {
        let reporter = Reporter { controller: MANAGER.into(), instance: std::env::var("POD_NAME").ok() };
        Self { recorder: Recorder::new(client.clone(), reporter), client, metrics }
    }
}

/// Why a reconcile failed (it is retried with back-off).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API refused or failed a call.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A key pair could not be generated.
    #[error(transparent)]
    KeyGen(#[from] secrets::KeyGenError),
}

/// Where this reconcile got to, for the status and the requeue.
struct Progress {
    status: JeexBackendStatus,
    transitions: Vec<Transition>,
    generation: Option<i64>,
    now: jiff::Timestamp,
}

impl Progress {
    fn set(&mut self, kind: &str, ok: bool, reason: &str, message: impl Into<String>) {
        let set = Set { kind, status: ok, reason, message: message.into() };
        if let Some(t) = conditions::record(&mut self.status.conditions, set, self.generation, self.now) {
            self.transitions.push(t);
        }
    }

    /// Waiting on something outside our control: not ready, still reconciling.
    fn waiting(&mut self, phase: &str, reason: &str, message: &str) {
        self.status.phase = Some(phase.into());
        self.set(conditions::READY, false, reason, message);
        self.set(conditions::RECONCILING, true, reason, message);
        self.set(conditions::STALLED, false, reason, "");
    }

    /// Cannot progress until someone changes something.
    fn stalled(&mut self, reason: &str, message: &str) {
        self.status.phase = Some("Failed".into());
        self.set(conditions::READY, false, reason, message);
        self.set(conditions::RECONCILING, false, reason, message);
        self.set(conditions::STALLED, true, reason, message);
    }
}

/// Capped exponential back-off without per-object state: wait about half as long as the
/// condition has been failing, between 5 s and 5 min.
fn backoff(status: &JeexBackendStatus, kind: &str, now: jiff::Timestamp) -> Duration {
    let failing = conditions::since(&status.conditions, kind).map_or(0, |t| now.duration_since(t).as_secs().max(0) as u64);
    Duration::from_secs((failing / 2).clamp(5, 300))
}

/// Reconciles one `JeexBackend`.
#[tracing::instrument(skip_all, fields(namespace = jb.metadata.namespace.as_deref(), name = jb.metadata.name.as_deref()))]
pub async fn reconcile(jb: Arc<JeexBackend>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = run(&jb, &ctx).await;
    ctx.metrics.observe(started.elapsed(), result.is_err());
    result
}

async fn run(jb: &JeexBackend, ctx: &Context) -> Result<Action, Error> {
    let ns = jb.namespace().unwrap_or_else(|| "default".into());
    let mut p = Progress {
        status: jb.status.clone().unwrap_or_default(),
        transitions: Vec::new(),
        generation: jb.metadata.generation,
        now: jiff::Timestamp::now(),
    };
    let action = steps(jb, ctx, &ns, &mut p).await?;
    p.status.observed_generation = jb.metadata.generation;
    finish(jb, ctx, &ns, p).await?;
    Ok(action)
}

async fn steps(jb: &JeexBackend, ctx: &Context, ns: &str, p: &mut Progress) -> Result<Action, Error> {
    let spec = &jb.spec;
    let names = Names::of(jb);
    if spec.rollout.paused {
        p.status.phase = Some("Paused".into());
        p.set(conditions::RECONCILING, false, "Paused", "spec.rollout.paused is true: nothing changes until it is false");
        return Ok(Action::await_change());
    }
    let secret_api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);

    // 1. Secrets: read what is given, create what is generated, never overwrite.
    let Some(owner) = read_key(&secret_api, &spec.database.owner_secret).await? else {
        return Ok(missing_secret(p, &spec.database.owner_secret));
    };
    let mut fingerprints = BTreeMap::new();
    let app_database = match &spec.database.app_secret {
        Some(given) => {
            let Some(_) = read_key(&secret_api, given).await? else { return Ok(missing_secret(p, given)) };
            given.clone()
        }
        None => {
            let name = names.db_app();
            if secret_api.get_opt(&name).await?.is_none() {
                match secrets::app_secret(jb, &owner) {
                    Ok(secret) => {
                        secret_api.create(&PostParams::default(), &secret).await?;
                    }
                    Err(problem) => return Ok(bad_secret(p, &spec.database.owner_secret.name, &problem)),
                }
            }
            SecretKeyRef { name, key: "url".into() }
        }
    };
    if let Some(secret) = secret_api.get_opt(&app_database.name).await? {
        fingerprints.insert(app_database.name.clone(), secrets::fingerprint(&secret));
    }
    let key_secret = match &spec.auth.signing_key_secret {
        Some(name) => match secret_api.get_opt(name).await? {
            Some(s) => s,
            None => return Ok(missing_secret(p, &SecretKeyRef { name: name.clone(), key: "<kid>.key.pem".into() })),
        },
        None => {
            let name = names.jwt();
            match secret_api.get_opt(&name).await? {
                None => {
                    let rotation = jb.annotations().get(secrets::ROTATE).cloned();
                    secret_api.create(&PostParams::default(), &secrets::jwt_secret(jb, rotation.as_deref())?).await?
                }
                Some(existing) => match secrets::key_update(jb, &existing, p.now)? {
                    secrets::KeyUpdate::None => existing,
                    secrets::KeyUpdate::Replace(updated) => {
                        publish(
                            ctx,
                            jb,
                            EventType::Normal,
                            "SigningKeyRotated",
                            "the previous public key stays accepted for its grace period",
                        )
                        .await;
                        secret_api.replace(&name, &PostParams::default(), &updated).await?
                    }
                },
            }
        }
    };
    let keys = match secrets::signing_keys(&key_secret) {
        Ok(keys) => keys,
        Err(problem) => return Ok(bad_secret(p, &key_secret.name_any(), &problem)),
    };
    fingerprints.insert(key_secret.name_any(), secrets::fingerprint(&key_secret));
    let mut targets = probes::Targets { postgres: owner, ..probes::Targets::default() };
    if let Some(redis) = &spec.redis {
        let Some(url) = read_key(&secret_api, &redis.url_secret).await? else { return Ok(missing_secret(p, &redis.url_secret)) };
        targets.redis = Some(url);
    }
    if let Some(qdrant) = &spec.qdrant {
        let key = match &qdrant.api_key_secret {
            Some(r) => match read_key(&secret_api, r).await? {
                Some(k) => Some(k),
                None => return Ok(missing_secret(p, r)),
            },
            None => None,
        };
        targets.qdrant = Some((qdrant.url.clone(), key));
    }
    p.set(conditions::SECRETS_READY, true, "SecretsPresent", "");

    // 2. Pools: what fits the connection budget, or nothing rolls.
    let pools = match pools::size(spec.database.max_connections, spec.replicas) {
        Ok(pools) => pools,
        Err(e) => {
            p.status.pools = None;
            p.stalled("ConnectionBudgetTooSmall", &e.to_string());
            return Ok(Action::await_change());
        }
    };
    p.status.pools = Some(pools);

    // 3. Dependency gate.
    let down = probes::probe(&targets, Duration::from_secs(spec.rollout.dependency_timeout_seconds.max(1) as u64)).await;
    if !down.is_empty() {
        let message = down.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        p.set(conditions::DEPENDENCIES_READY, false, "DependencyDown", &message);
        p.waiting("WaitingForDependencies", "DependencyDown", &message);
        return Ok(Action::requeue(backoff(&p.status, conditions::DEPENDENCIES_READY, p.now)));
    }
    p.set(conditions::DEPENDENCIES_READY, true, "Probed", "PostgreSQL, Redis and Qdrant answered");

    // 4. Migrations of the desired image, one Job at a time.
    if spec.migrations.enabled && p.status.migrated_image.as_deref() != Some(spec.image.as_str()) {
        if let Some(action) = migrate(jb, ctx, ns, p, &app_database).await? {
            return Ok(action);
        }
    } else if !spec.migrations.enabled {
        p.set(conditions::MIGRATIONS_SUCCEEDED, true, "Disabled", "spec.migrations.enabled is false");
    }

    // 5. Rollout.
    let inputs = Inputs { pools, keys, app_database, secret_fingerprints: fingerprints };
    apply(ctx, ns, config::config_map(jb, &inputs)).await?;
    let deployment = apply(ctx, ns, deployment::deployment(jb, &spec.image, &inputs)).await?;
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
    let status = deployment.status.unwrap_or_default();
    let ready = status.ready_replicas.unwrap_or(0);
    p.status.ready_replicas = Some(ready);
    let rolled = deployment.metadata.generation.is_some() && status.observed_generation == deployment.metadata.generation;
    let complete = rolled
        && status.updated_replicas.unwrap_or(0) == spec.replicas
        && ready == spec.replicas
        && status.replicas.unwrap_or(0) == spec.replicas;
    if complete {
        p.status.phase = Some("Ready".into());
        p.set(conditions::READY, true, "RolledOut", format!("{ready} of {} replicas ready on {}", spec.replicas, spec.image));
        p.set(conditions::RECONCILING, false, "RolledOut", "");
        p.set(conditions::STALLED, false, "RolledOut", "");
        Ok(Action::requeue(Duration::from_secs(300)))
    } else {
        p.waiting("RollingOut", "RollingOut", &format!("{ready} of {} replicas ready on {}", spec.replicas, spec.image));
        Ok(Action::requeue(Duration::from_secs(10)))
    }
}

/// Runs or follows the migration Job. `None` when migrations succeeded and the rollout may go on.
async fn migrate(
    jb: &JeexBackend,
    ctx: &Context,
    ns: &str,
    p: &mut Progress,
    app_database: &SecretKeyRef,
) -> Result<Option<Action>, Error> {
    let image = &jb.spec.image;
    let name = Names::of(jb).migration(image);
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let retry = jb.annotations().get(RETRY_MIGRATION).cloned();
    if let Some(failed) = p.status.failed_migration.clone() {
        let asked_again = jb.metadata.generation.is_some_and(|g| g > failed.generation) || retry != failed.retry;
        if failed.job == name && !asked_again {
            // Stays failed until someone changes the resource or asks for a retry.
            return Ok(Some(Action::await_change()));
        }
        if jobs.get_opt(&failed.job).await?.is_some() {
            jobs.delete(&failed.job, &DeleteParams::background()).await?;
            // Wait for it to go before a Job of the same name is created.
            return Ok(Some(Action::requeue(Duration::from_secs(2))));
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
            return Ok(Some(Action::requeue(Duration::from_secs(10))));
        }
        jobs.create(&PostParams::default(), &job::migration_job(jb, image, app_database)).await?;
        publish(ctx, jb, EventType::Normal, "MigrationStarted", &format!("Job {name} migrates the database for {image}")).await;
        p.set(conditions::MIGRATIONS_SUCCEEDED, false, "Migrating", format!("Job {name} is running"));
        p.waiting("Migrating", "Migrating", &format!("Job {name} is running; the Deployment stays on its current version"));
        return Ok(Some(Action::requeue(Duration::from_secs(10))));
    };
    match job::outcome(&existing) {
        job::Outcome::Running => {
            p.waiting("Migrating", "Migrating", &format!("Job {name} is running; the Deployment stays on its current version"));
            Ok(Some(Action::requeue(Duration::from_secs(10))))
        }
        job::Outcome::Succeeded => {
            p.status.migrated_image = Some(image.clone());
            p.set(conditions::MIGRATIONS_SUCCEEDED, true, "Migrated", format!("Job {name} migrated the database for {image}"));
            Ok(None)
        }
        job::Outcome::Failed { reason, message } => {
            let log = failed_log(ctx, ns, &name).await;
            let detail =
                format!("Job {name} failed ({reason}: {message}); the Deployment stays on its current version. Last log lines:\n{log}");
            p.set(conditions::MIGRATIONS_SUCCEEDED, false, "MigrationFailed", &detail);
            p.stalled("MigrationFailed", &detail);
            publish(ctx, jb, EventType::Warning, "MigrationFailed", &detail).await;
            p.status.failed_migration = Some(FailedMigration { job: name, generation: jb.metadata.generation.unwrap_or(0), retry });
            Ok(Some(Action::await_change()))
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

fn missing_secret(p: &mut Progress, r: &SecretKeyRef) -> Action {
    let message = format!("Secret {} with key {:?} is missing; create it (nothing starts until then)", r.name, r.key);
    p.set(conditions::SECRETS_READY, false, "SecretMissing", &message);
    p.waiting("Pending", "SecretMissing", &message);
    Action::requeue(Duration::from_secs(30))
}

fn bad_secret(p: &mut Progress, name: &str, problem: &str) -> Action {
    let message = format!("Secret {name}: {problem}");
    p.set(conditions::SECRETS_READY, false, "SecretInvalid", &message);
    p.stalled("SecretInvalid", &message);
    Action::await_change()
}

async fn read_key(api: &Api<Secret>, r: &SecretKeyRef) -> Result<Option<String>, Error> {
    Ok(api.get_opt(&r.name).await?.and_then(|s| secrets::string(&s, &r.key)))
}

/// Server-side applies `desired` unless the object already carries the same applied hash.
async fn apply<K>(ctx: &Context, ns: &str, mut desired: K) -> Result<K, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let name = desired.name_any();
    let digest = hash(&serde_json::to_string(&desired).expect("objects serialise"));
    if let Some(existing) = api.get_opt(&name).await?
        && existing.annotations().get(APPLIED) == Some(&digest)
    {
        return Ok(existing);
    }
    desired.annotations_mut().insert(APPLIED.into(), digest);
    // The full object for server-side apply carries its type.
    let mut body = serde_json::to_value(&desired).expect("objects serialise");
    body["apiVersion"] = K::api_version(&()).into();
    body["kind"] = K::kind(&()).into();
    Ok(api.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&body)).await?)
}

async fn publish(ctx: &Context, jb: &JeexBackend, kind: EventType, reason: &str, note: &str) {
    let event = Event {
        type_: kind,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &jb.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "cannot publish an Event");
    }
}

/// Writes the status when it changed and an Event for every condition transition.
async fn finish(jb: &JeexBackend, ctx: &Context, ns: &str, p: Progress) -> Result<(), Error> {
    for t in &p.transitions {
        let bad = if t.kind == conditions::STALLED { t.status } else { !t.status && t.kind != conditions::RECONCILING };
        let kind = if bad { EventType::Warning } else { EventType::Normal };
        let note = format!("{} is {}: {}", t.kind, if t.status { "True" } else { "False" }, t.message);
        publish(ctx, jb, kind, &t.reason, &note).await;
    }
    if jb.status.as_ref() != Some(&p.status) {
        let api: Api<JeexBackend> = Api::namespaced(ctx.client.clone(), ns);
        // A merge patch keeps fields it does not mention: clear the ones that went away.
        let mut status = serde_json::to_value(&p.status).expect("status serialises");
        if let (Some(old), Some(new)) = (serde_json::to_value(&jb.status).ok().as_ref().and_then(|o| o.as_object()), status.as_object_mut())
        {
            for gone in old.keys().filter(|k| !new.contains_key(*k)).cloned().collect::<Vec<_>>() {
                new.insert(gone, serde_json::Value::Null);
            }
        }
        api.patch_status(&jb.name_any(), &PatchParams::default(), &Patch::Merge(serde_json::json!({ "status": status }))).await?;
    }
    Ok(())
}

/// Retries a failed reconcile with back-off.
pub fn error_policy(_jb: Arc<JeexBackend>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "reconcile failed");
    Action::requeue(Duration::from_secs(15))
}
