//! Leader election on a `coordination.k8s.io/v1` Lease: of the operator's replicas only the
//! holder reconciles. A replica takes the Lease when it is free or its holder stopped renewing
//! for a whole lease duration; the API server's optimistic concurrency (resourceVersion)
//! decides a race. A leader that cannot renew in time stops, so two never reconcile at once.
//!
//! Expiry is judged as client-go judges it: by when *this* replica last saw the Lease record
//! change, on its own monotonic clock, never by comparing the holder's `renewTime` with the
//! local wall clock — clocks of two nodes 10 s apart would otherwise make two leaders.

use std::{sync::Mutex, time::Duration};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff,
};
use kube::{Api, Client, api::PostParams};

/// How long a Lease holds without renewal.
pub const DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews (and a follower retries).
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

/// A Lease record as last seen (holder, renewTime), and when this replica first saw it.
type Observed = ((String, Option<MicroTime>), tokio::time::Instant);

/// One replica's claim on the Lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    /// The Lease record (holder, renewTime) last seen, and when (locally) it was first seen.
    observed: Mutex<Option<Observed>>,
}

/// What an attempt found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// We hold the Lease (taken or renewed).
    Held,
    /// Another live replica holds it.
    HeldBy(String),
}

impl Elector {
    /// An elector for the Lease `name` in `namespace`, as `identity` (the pod name).
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Self {
        Self { api: Api::namespaced(client, namespace), name: name.into(), identity: identity.into(), observed: Mutex::new(None) }
    }

    /// Takes or renews the Lease when we may; `now` is what goes into `renewTime`.
    pub async fn try_claim(&self, now: jiff::Timestamp) -> Result<Claim, kube::Error> {
        let fresh = |lease: Option<Lease>, transitions: i32| {
            let mut lease = lease.unwrap_or_else(|| Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                ..Lease::default()
            });
            let acquire = lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) != Some(self.identity.as_str());
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.holder_identity = Some(self.identity.clone());
            spec.lease_duration_seconds = Some(DURATION.as_secs() as i32);
            spec.renew_time = Some(MicroTime(now));
            if acquire {
                spec.acquire_time = Some(MicroTime(now));
                spec.lease_transitions = Some(transitions);
            }
            lease
        };
        let Some(current) = self.api.get_opt(&self.name).await? else {
            return match self.api.create(&PostParams::default(), &fresh(None, 0)).await {
                Ok(_) => Ok(Claim::Held),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Claim::HeldBy("another replica (it was faster)".into())),
                Err(e) => Err(e),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let lasts = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(DURATION.as_secs() as i32).max(1) as u64);
        let record = (holder.clone(), spec.renew_time.clone());
        let local = tokio::time::Instant::now();
        let expired = {
            let mut observed = self.observed.lock().expect("not poisoned");
            match observed.as_ref() {
                Some((seen, since)) if *seen == record => local.duration_since(*since) >= lasts,
                _ => {
                    // Changed (or first seen): it counts as renewed now, whatever renewTime says.
                    *observed = Some((record, local));
                    false
                }
            }
        };
        if holder != self.identity && !holder.is_empty() && !expired {
            return Ok(Claim::HeldBy(holder));
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(holder != self.identity);
        // replace() sends the resourceVersion we read: a concurrent claim makes ours fail.
        match self.api.replace(&self.name, &PostParams::default(), &fresh(Some(current), transitions)).await {
            Ok(_) => Ok(Claim::Held),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Claim::HeldBy("another replica (it was faster)".into())),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_claim(jiff::Timestamp::now()).await {
                Ok(Claim::Held) => return,
                Ok(Claim::HeldBy(holder)) => tracing::info!(%holder, "standing by: another replica leads"),
                Err(e) => tracing::warn!(error = %e, "cannot read or take the leader Lease"),
            }
            tokio::time::sleep(RENEW_EVERY).await;
        }
    }

    /// Renews until a renewal fails for a whole lease duration (or someone else took it);
    /// returns then, and the caller must stop reconciling. `renewed` runs after each renewal.
    pub async fn keep(&self, renewed: impl Fn()) {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            match self.try_claim(jiff::Timestamp::now()).await {
                Ok(Claim::Held) => {
                    last_renewed = tokio::time::Instant::now();
                    renewed();
                }
                Ok(Claim::HeldBy(holder)) => {
                    tracing::error!(%holder, "lost the leader Lease");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "cannot renew the leader Lease"),
            }
            // Stop before our Lease can expire in anyone else's eyes.
            if last_renewed.elapsed() >= DURATION - RENEW_EVERY {
                tracing::error!("could not renew the leader Lease in time");
                return;
            }
        }
    }
}
