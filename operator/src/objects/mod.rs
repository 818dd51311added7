//! Pure functions that build every object the operator applies, from the resource and what
//! the reconciler learned (pool sizes, key IDs, checksums). No I/O here: each builder is unit
//! tested on representative specs.

pub mod config;
pub mod deployment;
pub mod job;
pub mod pdb;
pub mod service;

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{Capabilities, PodSecurityContext, SeccompProfile, SecurityContext},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use crate::crd::JeexBackend;

/// The field manager of every server-side apply.
pub const MANAGER: &str = "jeex-operator";
/// The port the API listens on inside the pod.
pub const HTTP_PORT: i32 = 8080;
/// Where the JWT key files are mounted.
pub const JWT_DIR: &str = "/var/run/jeex/jwt";
/// UID/GID the containers run as (distroless `nonroot`).
pub const NON_ROOT: i64 = 65532;

/// Names of the objects derived from one resource.
pub struct Names {
    base: String,
}

impl Names {
    /// Names for `jb`.
    pub fn of(jb: &JeexBackend) -> Self {
        Self { base: jb.name_any() }
    }

    /// The Deployment, Service and PodDisruptionBudget.
    pub fn api(&self) -> String {
        self.base.clone()
    }

    /// The generated JWT key Secret.
    pub fn jwt(&self) -> String {
        format!("{}-jwt", self.base)
    }

    /// The generated app database credentials Secret.
    pub fn db_app(&self) -> String {
        format!("{}-db-app", self.base)
    }

    /// The migration Job for `image`: one name per image, so a retry after a fix of the
    /// resource (same image) finds its own Job and a new image never trips over an old one.
    pub fn migration(&self, image: &str) -> String {
        format!("{}-migrate-{}", self.base, &hash(image)[..10])
    }
}

/// Hex SHA-256 of `text`.
pub fn hash(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Labels that select the resource's pods of one component.
pub fn selector(jb: &JeexBackend, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "jeex-api".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), jb.name_any()),
        ("app.kubernetes.io/component".to_owned(), component.to_owned()),
    ])
}

/// Labels on every object the operator owns.
pub fn labels(jb: &JeexBackend, component: &str) -> BTreeMap<String, String> {
    let mut labels = selector(jb, component);
    labels.insert("app.kubernetes.io/managed-by".into(), MANAGER.into());
    labels
}

/// The owner reference that ties an object's life to the resource.
pub fn owner(jb: &JeexBackend) -> OwnerReference {
    jb.controller_owner_ref(&()).expect("a JeexBackend read from the API server has a uid")
}

/// Metadata of an owned object.
pub fn meta(jb: &JeexBackend, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: jb.namespace(),
        labels: Some(labels(jb, component)),
        owner_references: Some(vec![owner(jb)]),
        ..ObjectMeta::default()
    }
}

/// The restricted pod security context (Pod Security Standards `restricted`).
pub fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(NON_ROOT),
        run_as_group: Some(NON_ROOT),
        fs_group: Some(NON_ROOT),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..SeccompProfile::default() }),
        ..PodSecurityContext::default()
    }
}

/// The restricted container security context.
pub fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Capabilities::default() }),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..SeccompProfile::default() }),
        ..SecurityContext::default()
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use crate::crd::JeexBackend;

    /// A resource as the API server returns it (defaults applied, uid set).
    pub fn backend(yaml_spec: &str) -> JeexBackend {
        let manifest = format!(
            "apiVersion: jeex.dev/v1alpha1\nkind: JeexBackend\nmetadata: {{ name: jeex, namespace: prod, uid: 5e1c3a4b-0000-4000-8000-000000000001, generation: 3 }}\nspec:\n{}",
            yaml_spec.lines().map(|l| format!("  {l}\n")).collect::<String>()
        );
        serde_yaml::from_str(&manifest).unwrap()
    }

    /// The minimal example's spec.
    pub fn minimal() -> JeexBackend {
        backend("image: ghcr.io/jeex/jeex-api:1.0.0\ndatabase:\n  ownerSecret: { name: owner }\n  maxConnections: 100")
    }
}
