//! The reconcile loop: secrets → pools → dependency gate → migrations → rollout → status.
//! Level-triggered and idempotent: each step reads what exists and writes only what differs,
//! so a resource already in its desired state costs reads and no writes. A step that cannot
//! pass stops the ones after it: nothing new starts and the running version keeps serving.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
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
    objects::{MANAGER, Names, config::Inputs, deployment, hash, job, pdb, service},
    pools, probes, secrets,
};

/// Annotation on the resource: change its value to retry a failed migration of the same image.
pub const RETRY_MIGRATION: &str = "jeex.dev/retry-migration";
/// Annotation on every applied object: the hash of what the operator last applied. An object
/// that carries it and still holds every applied field as applied costs a read, not a write;
/// a field someone changed by hand (drift) is applied again.
pub const APPLIED: &str = "jeex.dev/applied";
/// Log lines of a failed migration kept in the status message and the Event.
const LOG_TAIL: i64 = 20;
/// Images remembered as migrated (for rollbacks).
const MIGRATED_KEPT: usize = 10;
/// The longest a reconcile may take; past it, it fails (and is retried with back-off).
pub const DEADLINE: Duration = Duration::from_secs(120);

/// The time source (the system clock; a test's simulated one).
pub type Clock = Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>;

/// What reconciles share.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Publishes Events.
    pub recorder: Recorder,
    /// Counts reconciles and errors.
    pub metrics: crate::metrics::Metrics,
    /// The time.
    pub clock: Clock,
    /// Consecutive failures per resource (`namespace/name`), for the back-off.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context on `client` with the system clock.
    pub fn new(client: Client, metrics: crate::metrics::Metrics) -> Self {
        Self::with_clock(client, metrics, Arc::new(jiff::Timestamp::now))
    }

    /// A context on `client` telling the time with `clock`.
    pub fn with_clock(client: Client, metrics: crate::metrics::Metrics, clock: Clock) -> Self {
        let reporter = Reporter { controller: MANAGER.into(), instance: std::env::var("POD_NAME").ok() };
        Self { recorder: Recorder::new(client.clone(), reporter), client, metrics, clock, failures: Mutex::default() }
    }
}

/// Why a reconcile failed (written to the status, then retried with back-off).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API refused or failed a call.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A key pair could not be generated.
    #[error(transparent)]
    KeyGen(#[from] secrets::KeyGenError),
    /// The reconcile took longer than [`DEADLINE`].
    #[error("the reconcile took longer than {}s (a Kubernetes or dependency call hung)", DEADLINE.as_secs())]
    Timeout,
}

impl Error {
    /// The condition reason, and whether only a change by someone (RBAC, an admission
    /// policy, the object) can get past it.
    fn reason(&self) -> (&'static str, bool) {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 403 => ("Forbidden", true),
            Error::Kube(kube::Error::Api(s)) if s.code == 422 => ("Invalid", true),
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => ("Conflict", false),
            Error::Timeout => ("ReconcileTimeout", false),
            _ => ("ReconcileError", false),
        }
    }
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

    /// A reconcile error: reported, retried with back-off.
    fn failed(&mut self, error: &Error) {
        let (reason, stalled) = error.reason();
        let message = format!("{error}; retrying with back-off");
        if stalled {
            self.stalled(reason, &message);
        } else {
            self.set(conditions::READY, false, reason, &message);
            self.set(conditions::RECONCILING, true, reason, &message);
        }
    }
}

/// Capped exponential back-off without per-object state: wait about half as long as the
/// condition has been failing, between 5 s and 5 min.
fn backoff(status: &JeexBackendStatus, kind: &str, now: jiff::Timestamp) -> Duration {
    let failing = conditions::since(&status.conditions, kind).map_or(0, |t| now.duration_since(t).as_secs().max(0) as u64);
    Duration::from_secs((failing / 2).clamp(5, 300))
}

fn key_of(jb: &JeexBackend) -> String {
    format!("{}/{}", jb.namespace().unwrap_or_default(), jb.name_any())
}

/// Reconciles one `JeexBackend`.
#[tracing::instrument(skip_all, fields(namespace = jb.metadata.namespace.as_deref(), name = jb.metadata.name.as_deref()))]
pub async fn reconcile(jb: Arc<JeexBackend>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let _running = ctx.metrics.running();
    let result = tokio::time::timeout(DEADLINE, run(&jb, &ctx)).await.unwrap_or(Err(Error::Timeout));
    ctx.metrics.observe(started.elapsed(), result.is_err());
    if result.is_ok() {
        ctx.failures.lock().expect("not poisoned").remove(&key_of(&jb));
    }
    result
}

async fn run(jb: &JeexBackend, ctx: &Context) -> Result<Action, Error> {
    let ns = jb.namespace().unwrap_or_else(|| "default".into());
    let mut p = Progress {
        status: jb.status.clone().unwrap_or_default(),
        transitions: Vec::new(),
        generation: jb.metadata.generation,
        now: (ctx.clock)(),
    };
    let outcome = steps(jb, ctx, &ns, &mut p).await;
    p.status.observed_generation = jb.metadata.generation;
    match outcome {
        Ok(action) => {
            finish(jb, ctx, &ns, p).await?;
            Ok(action)
        }
        Err(error) => {
            // What got done (a migration that succeeded) and why it stopped reach the status.
            p.failed(&error);
            publish(ctx, jb, EventType::Warning, error.reason().0, &error.to_string()).await;
            if let Err(e) = finish(jb, ctx, &ns, p).await {
                tracing::warn!(error = %e, "cannot write the status of a failed reconcile");
            }
            Err(error)
        }
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
        (Some(per_replica), Some(overflow)) => {
            crate::crd::PoolStatus { per_replica, overflow, migration: pools::MIGRATION, worst_case_total: 0 }
        }
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
            let Some(secret) = secret_api.get_opt(&given.name).await? else { return Ok(missing_secret(p, given)) };
            if secrets::string(&secret, &given.key).is_none() {
                return Ok(missing_secret(p, given));
            }
            fingerprints.insert(given.name.clone(), secrets::fingerprint(&secret));
            given.clone()
        }
        None => {
            let name = names.db_app();
            let secret = match secret_api.get_opt(&name).await? {
                Some(s) => s,
                None => match secrets::app_secret(jb, &owner) {
                    Ok(secret) => secret_api.create(&PostParams::default(), &secret).await?,
                    Err(problem) => return Ok(bad_secret(p, &spec.database.owner_secret.name, &problem)),
                },
            };
            fingerprints.insert(name.clone(), secrets::fingerprint(&secret));
            SecretKeyRef { name, key: "url".into() }
        }
    };
    let generated_keys = spec.auth.signing_key_secret.is_none();
    let mut key_secret = match &spec.auth.signing_key_secret {
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
                Some(existing) => existing,
            }
        }
    };
    if let Err(problem) = secrets::signing_keys(&key_secret, p.now) {
        return Ok(bad_secret(p, &key_secret.name_any(), &problem));
    }
    let mut targets = probes::Targets { postgres: owner, ..probes::Targets::default() };
    if let Some(redis) = &spec.redis {
        let Some((url, fingerprint)) = read_watched(&secret_api, &redis.url_secret).await? else {
            return Ok(missing_secret(p, &redis.url_secret));
        };
        fingerprints.insert(redis.url_secret.name.clone(), fingerprint);
        targets.redis = Some(url);
    }
    if let Some(qdrant) = &spec.qdrant {
        let key = match &qdrant.api_key_secret {
            Some(r) => match read_watched(&secret_api, r).await? {
                Some((k, fingerprint)) => {
                    fingerprints.insert(r.name.clone(), fingerprint);
                    Some(k)
                }
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

    // 4. Migrations of the desired image, one Job at a time; an image migrated before (a
    //    rollback) needs none.
    let migrated = p.status.migrated_image.as_deref() == Some(spec.image.as_str()) || p.status.migrated_images.contains(&spec.image);
    if spec.migrations.enabled && !migrated {
        if let Some(action) = migrate(jb, ctx, ns, p, &app_database).await? {
            return Ok(action);
        }
    } else if !spec.migrations.enabled {
        p.set(conditions::MIGRATIONS_SUCCEEDED, true, "Disabled", "spec.migrations.enabled is false");
    } else {
        p.status.migrated_image = Some(spec.image.clone());
        p.set(conditions::MIGRATIONS_SUCCEEDED, true, "Migrated", format!("the database is migrated for {}", spec.image));
    }

    // 5. Rollout, one safe step at a time.
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let live = live_deployment(deployments.get_opt(&names.api()).await?, spec.database.max_connections);
    let mut requeue = Duration::from_secs(300);
    if generated_keys {
        if let secrets::KeyUpdate::Replace(updated, step) = secrets::rotation(jb, &key_secret, &live.keys, p.now)? {
            key_secret = secret_api.replace(&names.jwt(), &PostParams::default(), &updated).await?;
            publish(ctx, jb, EventType::Normal, "SigningKeyRotation", step).await;
        }
        if let Some(at) = secrets::next_expiry(&key_secret, p.now) {
            requeue = requeue.min(Duration::from_secs(at.duration_since(p.now).as_secs().max(1) as u64));
        }
    }
    let keys = match secrets::signing_keys(&key_secret, p.now) {
        Ok(keys) => keys,
        Err(problem) => return Ok(bad_secret(p, &key_secret.name_any(), &problem)),
    };
    fingerprints.insert(key_secret.name_any(), secrets::key_fingerprint(&key_secret, &keys));
    let step = pools::step(spec.database.max_connections, spec.replicas, live.pools).expect("the target pool fits (checked above)");
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
        Ok(Action::requeue(requeue))
    } else if let Some(c) = deadline.filter(|_| rolled) {
        let message = format!(
            "the rollout of {} made no progress for {}s ({}); {ready} of {} replicas ready. Pods that never become ready are the usual cause: see `kubectl describe` of the Deployment and its pods. A new image or spec change rolls again",
            spec.image,
            spec.rollout.progress_deadline_seconds,
            c.message.as_deref().unwrap_or("ProgressDeadlineExceeded"),
            spec.replicas
        );
        p.stalled("ProgressDeadlineExceeded", &message);
        Ok(Action::requeue(Duration::from_secs(60)))
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
            p.status.migrated_images.retain(|i| i != image);
            p.status.migrated_images.push(image.clone());
            let excess = p.status.migrated_images.len().saturating_sub(MIGRATED_KEPT);
            p.status.migrated_images.drain(..excess);
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

/// A referenced Secret's value and its fingerprint (so rotating it rolls the pods).
async fn read_watched(api: &Api<Secret>, r: &SecretKeyRef) -> Result<Option<(String, String)>, Error> {
    Ok(api.get_opt(&r.name).await?.and_then(|s| secrets::string(&s, &r.key).map(|v| (v, secrets::fingerprint(&s)))))
}

/// Whether `live` holds every field of `applied` with the applied value (fields the server
/// or other managers added are fine; one we set and someone changed is not).
fn holds(live: &serde_json::Value, applied: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => a.iter().all(|(k, v)| v.is_null() || l.get(k).is_some_and(|lv| holds(lv, v))),
        (Value::Array(l), Value::Array(a)) => l.len() == a.len() && l.iter().zip(a).all(|(lv, av)| holds(lv, av)),
        (l, a) => l == a,
    }
}

/// Server-side applies `desired` unless the live object already holds it.
async fn apply<K>(ctx: &Context, ns: &str, desired: K) -> Result<K, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let existing = api.get_opt(&desired.name_any()).await?;
    apply_to(&api, desired, existing).await
}

/// Server-side applies `desired` (force: the operator owns these fields) unless `existing`
/// (just read) carries the same applied hash and still holds every applied field.
async fn apply_to<K>(api: &Api<K>, mut desired: K, existing: Option<K>) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = desired.name_any();
    let digest = hash(&serde_json::to_string(&desired).expect("objects serialise"));
    desired.annotations_mut().insert(APPLIED.into(), digest);
    // The applied hash is one of the fields held, so a changed desired object is applied too.
    if let Some(existing) = existing
        && holds(&serde_json::to_value(&existing).expect("objects serialise"), &serde_json::to_value(&desired).expect("objects serialise"))
    {
        return Ok(existing);
    }
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
