//! The migration Job: `jeex-api migrate` of one image with the owner's credentials, under a
//! deadline and a retry limit, removed some time after it finishes.

use std::collections::BTreeMap;

use k8s_openapi::api::{
    batch::v1::{Job, JobSpec},
    core::v1::{Container, EmptyDirVolumeSource, EnvVar, PodSpec, PodTemplateSpec, Volume, VolumeMount},
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{Names, config::from_secret, container_security, meta, pod_security, selector};
use crate::crd::{JeexBackend, SecretKeyRef};

/// Annotation naming the image a Job migrates.
pub const IMAGE: &str = "jeex.dev/image";
/// Seconds a finished Job (and its pod's log) stays. The operator reads a failed Job's log as
/// soon as it sees the failure; this only bounds clutter.
pub const TTL_AFTER_FINISHED: i32 = 3600;

/// The Job that migrates the database for `image`.
pub fn migration_job(jb: &JeexBackend, image: &str, app_database: &SecretKeyRef) -> Job {
    let spec = &jb.spec;
    let mut metadata = meta(jb, Names::of(jb).migration(image), "migration");
    metadata.annotations = Some(BTreeMap::from([(IMAGE.to_owned(), image.to_owned())]));
    let env = vec![
        EnvVar { name: "JEEX_ENV".into(), value: Some("production".into()), ..EnvVar::default() },
        EnvVar { name: "JEEX_LOG_FORMAT".into(), value: Some("json".into()), ..EnvVar::default() },
        from_secret("JEEX_MIGRATE_DATABASE_URL", &spec.database.owner_secret),
        // The app role to create or update and grant (its password comes with the URL).
        from_secret("DATABASE_URL", app_database),
    ];
    let pod_labels = selector(jb, "migration");
    Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(spec.migrations.backoff_limit),
            active_deadline_seconds: Some(spec.migrations.timeout_seconds),
            ttl_seconds_after_finished: Some(TTL_AFTER_FINISHED),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(pod_labels), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    automount_service_account_token: Some(false),
                    security_context: Some(pod_security()),
                    image_pull_secrets: (!spec.image_pull_secrets.is_empty()).then(|| spec.image_pull_secrets.clone()),
                    containers: vec![Container {
                        name: "migrate".into(),
                        image: Some(image.into()),
                        image_pull_policy: Some(spec.image_pull_policy.as_str().into()),
                        args: Some(vec!["migrate".into()]),
                        env: Some(env),
                        security_context: Some(container_security()),
                        volume_mounts: Some(vec![VolumeMount { name: "tmp".into(), mount_path: "/tmp".into(), ..VolumeMount::default() }]),
                        ..Container::default()
                    }],
                    volumes: Some(vec![Volume {
                        name: "tmp".into(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Volume::default()
                    }]),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

/// Where a migration Job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Still running (or not started).
    Running,
    /// Finished successfully.
    Succeeded,
    /// Failed for good: retries used up or deadline passed. kube-runtime's `is_job_completed`
    /// never reports this, so the conditions are read here.
    Failed {
        /// The Job condition's reason, e.g. `BackoffLimitExceeded`, `DeadlineExceeded`.
        reason: String,
        /// Its message.
        message: String,
    },
}

/// Reads a Job's terminal conditions.
pub fn outcome(job: &Job) -> Outcome {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref()).into_iter().flatten();
    for c in conditions.filter(|c| c.status == "True") {
        match c.type_.as_str() {
            "Complete" | "SuccessCriteriaMet" => return Outcome::Succeeded,
            "Failed" | "FailureTarget" => {
                return Outcome::Failed {
                    reason: c.reason.clone().unwrap_or_else(|| "Failed".into()),
                    message: c.message.clone().unwrap_or_default(),
                };
            }
            _ => {}
        }
    }
    Outcome::Running
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};

    use super::*;
    use crate::objects::fixtures;

    fn app() -> SecretKeyRef {
        SecretKeyRef { name: "jeex-db-app".into(), key: "url".into() }
    }

    #[test]
    fn one_job_per_image_with_the_owner_credentials_deadline_and_ttl() {
        let jb = fixtures::minimal();
        let a = migration_job(&jb, "img:1", &app());
        assert_eq!(a.metadata.name, migration_job(&jb, "img:1", &app()).metadata.name, "stable per image");
        assert_ne!(a.metadata.name, migration_job(&jb, "img:2", &app()).metadata.name);
        assert!(a.metadata.name.as_deref().unwrap().starts_with("jeex-migrate-"));
        let spec = a.spec.as_ref().unwrap();
        assert_eq!((spec.backoff_limit, spec.active_deadline_seconds, spec.ttl_seconds_after_finished), (Some(1), Some(600), Some(3600)));
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let c = &pod.containers[0];
        assert_eq!(c.args.as_deref(), Some(&["migrate".to_owned()][..]));
        let owner = c.env.as_ref().unwrap().iter().find(|e| e.name == "JEEX_MIGRATE_DATABASE_URL").unwrap();
        assert_eq!(owner.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap().name, "owner");
        assert_eq!(c.security_context.as_ref().unwrap().read_only_root_filesystem, Some(true));
    }

    fn with(kind: &str, reason: &str) -> Job {
        Job {
            status: Some(JobStatus {
                conditions: Some(vec![JobCondition {
                    type_: kind.into(),
                    status: "True".into(),
                    reason: Some(reason.into()),
                    message: Some("Job has reached the specified backoff limit".into()),
                    ..JobCondition::default()
                }]),
                ..JobStatus::default()
            }),
            ..Job::default()
        }
    }

    #[test]
    fn failure_is_read_from_the_conditions() {
        assert_eq!(outcome(&Job::default()), Outcome::Running);
        assert_eq!(outcome(&with("Complete", "")), Outcome::Succeeded);
        assert_eq!(
            outcome(&with("Failed", "BackoffLimitExceeded")),
            Outcome::Failed { reason: "BackoffLimitExceeded".into(), message: "Job has reached the specified backoff limit".into() }
        );
        assert!(matches!(outcome(&with("Failed", "DeadlineExceeded")), Outcome::Failed { .. }));
    }
}
