//! The API Deployment: restricted pods with probes, rolled one surge pod at a time
//! (`maxUnavailable: 0`), spread over nodes, restarted whenever their configuration changes.
//! Settings are written into the pod template itself, not read from a ConfigMap: a pod of an
//! older ReplicaSet that restarts mid-rollout keeps the settings (pool size, signing key) it
//! was rolled out with, instead of picking up the next version's.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment},
        core::v1::{
            Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction, PodSpec, PodTemplateSpec, Probe, SecretVolumeSource,
            TopologySpreadConstraint, Volume, VolumeMount,
        },
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};

use super::{
    HTTP_PORT, JWT_DIR, Names,
    config::{self, Inputs},
    container_security, meta, pod_security, selector,
};
use crate::{crd::JeexBackend, pools::SURGE};

/// Annotation whose change restarts the pods.
pub const CHECKSUM: &str = "jeex.dev/config-checksum";

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction { path: Some(path.into()), port: IntOrString::String("http".into()), ..HTTPGetAction::default() }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

/// The Deployment running `image` on `replicas` pods (the spec's, or a step towards it while
/// the connection budget is moved safely; see `pools::step`).
pub fn deployment(jb: &JeexBackend, image: &str, replicas: i32, inputs: &Inputs) -> Deployment {
    let spec = &jb.spec;
    let pod = spec.pod.clone().unwrap_or_default();
    let select = selector(jb, "api");
    // The operator's selector labels win over extra labels of the same name.
    let mut pod_labels: BTreeMap<String, String> = pod.labels.clone();
    pod_labels.extend(super::labels(jb, "api"));
    let mut annotations = pod.annotations.clone();
    annotations.insert(CHECKSUM.into(), config::checksum(jb, inputs));
    let container = Container {
        name: "api".into(),
        image: Some(image.into()),
        image_pull_policy: Some(spec.image_pull_policy.as_str().into()),
        args: Some(vec!["serve".into()]),
        ports: Some(vec![ContainerPort { name: Some("http".into()), container_port: HTTP_PORT, ..ContainerPort::default() }]),
        env: Some(
            config::settings(jb, inputs)
                .into_iter()
                .map(|(name, value)| EnvVar { name, value: Some(value), ..EnvVar::default() })
                .chain(config::secret_env(jb, inputs))
                .collect(),
        ),
        resources: spec.resources.clone(),
        // Started: the process answers at all; ready: its dependencies and schema are;
        // live: the process still serves (never depends on anything else).
        startup_probe: Some(http_probe("/health/live", 2, 30)),
        readiness_probe: Some(http_probe("/health/ready", 5, 3)),
        liveness_probe: Some(http_probe("/health/live", 10, 3)),
        volume_mounts: Some(vec![
            VolumeMount { name: "jwt".into(), mount_path: JWT_DIR.into(), read_only: Some(true), ..VolumeMount::default() },
            VolumeMount { name: "tmp".into(), mount_path: "/tmp".into(), ..VolumeMount::default() },
        ]),
        security_context: Some(container_security()),
        ..Container::default()
    };
    Deployment {
        metadata: meta(jb, Names::of(jb).api(), "api"),
        spec: DeploymentSpec {
            replicas: Some(replicas),
            progress_deadline_seconds: Some(spec.rollout.progress_deadline_seconds),
            selector: LabelSelector { match_labels: Some(select.clone()), ..LabelSelector::default() },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(SURGE)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            revision_history_limit: Some(5),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(pod_labels), annotations: Some(annotations), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    // The API never talks to Kubernetes.
                    automount_service_account_token: Some(false),
                    security_context: Some(pod_security()),
                    termination_grace_period_seconds: Some(30),
                    image_pull_secrets: (!spec.image_pull_secrets.is_empty()).then(|| spec.image_pull_secrets.clone()),
                    node_selector: (!pod.node_selector.is_empty()).then(|| pod.node_selector.clone()),
                    tolerations: (!pod.tolerations.is_empty()).then(|| pod.tolerations.clone()),
                    affinity: pod.affinity.clone(),
                    topology_spread_constraints: Some(vec![TopologySpreadConstraint {
                        max_skew: 1,
                        topology_key: "kubernetes.io/hostname".into(),
                        when_unsatisfiable: "ScheduleAnyway".into(),
                        label_selector: Some(LabelSelector { match_labels: Some(select), ..LabelSelector::default() }),
                        ..TopologySpreadConstraint::default()
                    }]),
                    volumes: Some(vec![
                        Volume {
                            name: "jwt".into(),
                            secret: Some(SecretVolumeSource {
                                secret_name: Some(inputs.keys.secret.clone()),
                                default_mode: Some(0o440),
                                ..SecretVolumeSource::default()
                            }),
                            ..Volume::default()
                        },
                        Volume { name: "tmp".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Volume::default() },
                    ]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{config::tests::inputs, fixtures};

    #[test]
    fn pods_are_restricted_probed_and_rolled_without_losing_capacity() {
        let jb = fixtures::minimal();
        let d = deployment(&jb, "ghcr.io/jeex/jeex-api:1.0.0", 2, &inputs());
        let spec = &d.spec;
        let rolling = spec.strategy.as_ref().unwrap().rolling_update.as_ref().unwrap();
        assert_eq!((rolling.max_surge.clone(), rolling.max_unavailable.clone()), (Some(IntOrString::Int(1)), Some(IntOrString::Int(0))));
        let pod = spec.template.spec.as_ref().unwrap();
        let security = pod.security_context.as_ref().unwrap();
        assert_eq!(security.run_as_non_root, Some(true));
        assert_eq!(security.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        assert_eq!(pod.automount_service_account_token, Some(false));
        let c = &pod.containers[0];
        let cs = c.security_context.as_ref().unwrap();
        assert_eq!((cs.read_only_root_filesystem, cs.allow_privilege_escalation), (Some(true), Some(false)));
        assert_eq!(cs.capabilities.as_ref().unwrap().drop.as_deref(), Some(&["ALL".to_owned()][..]));
        let path = |p: &Option<Probe>| p.as_ref().unwrap().http_get.as_ref().unwrap().path.clone().unwrap();
        assert_eq!(path(&c.readiness_probe), "/health/ready");
        assert_eq!(path(&c.liveness_probe), "/health/live");
        assert_eq!(path(&c.startup_probe), "/health/live");
        assert!(pod.topology_spread_constraints.as_ref().is_some_and(|t| !t.is_empty()));
        let owner = &d.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.controller), ("JeexBackend", Some(true)));
    }

    #[test]
    fn extra_labels_never_break_the_selector_and_the_checksum_is_on_the_pods() {
        let mut jb = fixtures::minimal();
        jb.spec.pod = Some(crate::crd::PodSpec {
            labels: BTreeMap::from([("app.kubernetes.io/instance".into(), "hijack".into()), ("team".into(), "a".into())]),
            ..Default::default()
        });
        let d = deployment(&jb, "img", 2, &inputs());
        let template = d.spec.template.metadata.as_ref().unwrap();
        let labels = template.labels.as_ref().unwrap();
        assert_eq!(labels["app.kubernetes.io/instance"], "jeex");
        assert_eq!(labels["team"], "a");
        assert_eq!(template.annotations.as_ref().unwrap()[CHECKSUM], config::checksum(&jb, &inputs()));
        let env = d.spec.template.spec.as_ref().unwrap().containers[0].env.clone().unwrap();
        let pool = env.iter().find(|e| e.name == "JEEX_DB_POOL_SIZE").and_then(|e| e.value.clone());
        assert_eq!(pool, Some(inputs().pools.per_replica.to_string()), "settings live in the pod template");
        assert!(d.spec.template.spec.as_ref().unwrap().containers[0].env_from.is_none(), "no ConfigMap a restarting pod could re-read");
    }
}
