//! What every phase is handed: the API client, the Event recorder, the metrics and the
//! clock, and how a phase publishes an Event with them. It sits below the phases so that each
//! of them and `reconcile.rs` share it without importing one another.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use k8s_openapi::jiff;
use kube::{
    Client, Resource,
    runtime::events::{Event, EventType, Recorder, Reporter},
};

use crate::{crd::JeexBackend, objects::MANAGER};

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
    pub(crate) failures: Mutex<HashMap<String, u32>>,
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

/// Publishes an Event on `jb`. Best effort: a refused Event is logged and the reconcile goes
/// on, since the status carries the same news.
pub(crate) async fn publish(ctx: &Context, jb: &JeexBackend, kind: EventType, reason: &str, note: &str) {
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
