//! Where one reconcile got to: the status it builds and the condition transitions to announce.
//! Every phase records its outcome here (nothing is written while the phases run); the status
//! phase writes it all at the end, so one reconcile costs at most one status write.

use std::time::Duration;

use k8s_openapi::jiff;
use kube::runtime::controller::Action;

use super::error::Error;
use crate::{
    conditions::{self, Set, Transition},
    crd::{JeexBackend, JeexBackendStatus, SecretKeyRef},
};

/// Where this reconcile got to, for the status and the requeue.
pub(crate) struct Progress {
    /// The status as it will be written.
    pub(crate) status: JeexBackendStatus,
    /// Conditions that changed, each announced as an Event.
    pub(crate) transitions: Vec<Transition>,
    generation: Option<i64>,
    /// The time this reconcile started (one instant for every condition it sets).
    pub(crate) now: jiff::Timestamp,
}

impl Progress {
    /// Starts from `jb`'s current status at `now`.
    pub(crate) fn new(jb: &JeexBackend, now: jiff::Timestamp) -> Self {
        Self { status: jb.status.clone().unwrap_or_default(), transitions: Vec::new(), generation: jb.metadata.generation, now }
    }

    /// Sets condition `kind`, remembering the transition when it changed.
    pub(crate) fn set(&mut self, kind: &str, ok: bool, reason: &str, message: impl Into<String>) {
        let set = Set { kind, status: ok, reason, message: message.into() };
        if let Some(t) = conditions::record(&mut self.status.conditions, set, self.generation, self.now) {
            self.transitions.push(t);
        }
    }

    /// Waiting on something outside our control: not ready, still reconciling.
    pub(crate) fn waiting(&mut self, phase: &str, reason: &str, message: &str) {
        self.status.phase = Some(phase.into());
        self.set(conditions::READY, false, reason, message);
        self.set(conditions::RECONCILING, true, reason, message);
        self.set(conditions::STALLED, false, reason, "");
    }

    /// Cannot progress until someone changes something.
    pub(crate) fn stalled(&mut self, reason: &str, message: &str) {
        self.status.phase = Some("Failed".into());
        self.set(conditions::READY, false, reason, message);
        self.set(conditions::RECONCILING, false, reason, message);
        self.set(conditions::STALLED, true, reason, message);
    }

    /// A reconcile error: reported, retried with back-off.
    pub(crate) fn failed(&mut self, error: &Error) {
        let (reason, stalled) = error.reason();
        let message = format!("{error}; retrying with back-off");
        if stalled {
            self.stalled(reason, &message);
        } else {
            self.set(conditions::READY, false, reason, &message);
            self.set(conditions::RECONCILING, true, reason, &message);
        }
    }

    /// A referenced Secret (or its key) does not exist yet: wait for someone to create it.
    pub(crate) fn missing_secret(&mut self, r: &SecretKeyRef) -> Action {
        let message = format!("Secret {} with key {:?} is missing; create it (nothing starts until then)", r.name, r.key);
        self.set(conditions::SECRETS_READY, false, "SecretMissing", &message);
        self.waiting("Pending", "SecretMissing", &message);
        Action::requeue(Duration::from_secs(30))
    }

    /// A Secret exists but cannot be used: stalled until someone fixes it.
    pub(crate) fn bad_secret(&mut self, name: &str, problem: &str) -> Action {
        let message = format!("Secret {name}: {problem}");
        self.set(conditions::SECRETS_READY, false, "SecretInvalid", &message);
        self.stalled("SecretInvalid", &message);
        Action::await_change()
    }
}
