//! What one phase hands the next. The types live here, below the phases, so that a phase
//! takes another's output without importing that phase.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use crate::{
    crd::{PoolStatus, SecretKeyRef},
    pools, probes,
};

/// What the secrets phase resolved: every credential the later phases use.
pub(crate) struct Resolved {
    /// The app's database credentials (given, or the generated Secret).
    pub(crate) app_database: SecretKeyRef,
    /// The JWT key Secret as read (or just created).
    pub(crate) key_secret: Secret,
    /// Whether the operator generated the key Secret (and so rotates it).
    pub(crate) generated_keys: bool,
    /// A fingerprint of every Secret the pods read, by name: a changed one rolls the pods.
    pub(crate) fingerprints: BTreeMap<String, String>,
    /// Where the gate probes PostgreSQL, Redis and Qdrant.
    pub(crate) targets: probes::Targets,
}

/// A connection budget the pools phase found room in for the desired replicas. Only
/// [`Budget::check`] makes one, so the rollout's steps within it always exist.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    max_connections: i32,
    replicas: i32,
}

impl Budget {
    /// The budget with the pools sizing `replicas` under `max_connections`, or why none fits.
    pub(crate) fn check(max_connections: i32, replicas: i32) -> Result<(Self, PoolStatus), pools::NoPoolFits> {
        let target = pools::size(max_connections, replicas)?;
        Ok((Self { max_connections, replicas }, target))
    }

    /// The next safe step from what runs (`live`) towards the desired replicas and pools.
    pub(crate) fn step(&self, live: Option<pools::Live>) -> pools::Step {
        pools::step(self.max_connections, self.replicas, live).expect("the target pool fits (checked when the budget was made)")
    }
}
