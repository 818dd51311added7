//! Status conditions with Kubernetes semantics: one entry per type, `lastTransitionTime`
//! moves only when the status flips, and kstatus's `Reconciling`/`Stalled` are kept so Flux
//! and Argo CD read health without custom scripts.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff,
};

/// Everything is in place and the API serves the desired image.
pub const READY: &str = "Ready";
/// PostgreSQL, Redis and Qdrant answered their probes.
pub const DEPENDENCIES_READY: &str = "DependenciesReady";
/// Every Secret the pods need exists.
pub const SECRETS_READY: &str = "SecretsReady";
/// The desired image's migrations succeeded.
pub const MIGRATIONS_SUCCEEDED: &str = "MigrationsSucceeded";
/// kstatus: the operator is still working towards the desired state.
pub const RECONCILING: &str = "Reconciling";
/// kstatus: the operator cannot make progress without a change from someone.
pub const STALLED: &str = "Stalled";

/// One condition to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set<'a> {
    /// Condition type.
    pub kind: &'a str,
    /// `True`, `False` or `Unknown`.
    pub status: bool,
    /// PascalCase reason.
    pub reason: &'a str,
    /// Human-readable detail.
    pub message: String,
}

/// A transition that happened, for an Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Condition type.
    pub kind: String,
    /// New status.
    pub status: bool,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
}

fn word(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

/// Records `set` in `conditions`; returns the transition when the status flipped (or the
/// condition is new). Reason and message updates keep `lastTransitionTime`.
pub fn record(conditions: &mut Vec<Condition>, set: Set<'_>, generation: Option<i64>, now: jiff::Timestamp) -> Option<Transition> {
    let status = word(set.status).to_owned();
    let transition = Transition { kind: set.kind.into(), status: set.status, reason: set.reason.into(), message: set.message.clone() };
    match conditions.iter_mut().find(|c| c.type_ == set.kind) {
        Some(existing) => {
            let flipped = existing.status != status;
            if flipped {
                existing.last_transition_time = Time(now);
            }
            existing.status = status;
            existing.reason = set.reason.into();
            existing.message = set.message;
            existing.observed_generation = generation;
            flipped.then_some(transition)
        }
        None => {
            conditions.push(Condition {
                type_: set.kind.into(),
                status,
                reason: set.reason.into(),
                message: set.message,
                observed_generation: generation,
                last_transition_time: Time(now),
            });
            Some(transition)
        }
    }
}

/// Whether `kind` is `True`.
pub fn is_true(conditions: &[Condition], kind: &str) -> bool {
    conditions.iter().any(|c| c.type_ == kind && c.status == "True")
}

/// When `kind` last flipped.
pub fn since(conditions: &[Condition], kind: &str) -> Option<jiff::Timestamp> {
    conditions.iter().find(|c| c.type_ == kind).map(|c| c.last_transition_time.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transition_time_moves_only_when_the_status_flips() {
        let t0 = jiff::Timestamp::from_second(1_000).unwrap();
        let t1 = jiff::Timestamp::from_second(2_000).unwrap();
        let t2 = jiff::Timestamp::from_second(3_000).unwrap();
        let mut c = Vec::new();
        let down = |m: &str| Set { kind: DEPENDENCIES_READY, status: false, reason: "DependencyDown", message: m.into() };
        assert!(record(&mut c, down("postgres: refused"), Some(1), t0).is_some(), "new");
        assert!(record(&mut c, down("redis: refused"), Some(1), t1).is_none(), "same status: no transition");
        assert_eq!((c[0].last_transition_time.0, c[0].message.as_str()), (t0, "redis: refused"));
        let up = Set { kind: DEPENDENCIES_READY, status: true, reason: "Probed", message: String::new() };
        assert!(record(&mut c, up, Some(2), t2).is_some());
        assert_eq!((c[0].last_transition_time.0, c[0].status.as_str()), (t2, "True"));
        assert_eq!(c.len(), 1);
        assert!(is_true(&c, DEPENDENCIES_READY));
    }
}
