//! Project events: every operation state change and progress step. A per-project history
//! (a Redis stream, or a bounded in-process buffer without Redis) lets a client resume after
//! its last event ID with no gap and no duplicate; live delivery reaches local subscribers
//! through one shared subscription per process, never one Redis connection per client.

pub mod memory;
pub mod redis;
pub mod tickets;

use std::{cmp::Ordering, collections::HashMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The SSE `data:` JSON, rendered once and shared by every connection that streams this
    /// event (5,000 subscribers must not mean 5,000 encodings).
    #[serde(skip)]
    pub rendered: std::sync::OnceLock<Arc<str>>,
    /// History ID (`<ms>-<seq>`, ordered), the SSE `id:`.
    pub id: String,
    /// Event type, e.g. `operation.progress`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The project.
    pub project_id: Uuid,
    /// The operation, for operation events.
    pub operation_id: Option<Uuid>,
    /// Payload.
    pub data: serde_json::Value,
    /// When it was published.
    pub time: DateTime<Utc>,
}

/// What a history read found.
#[derive(Debug, PartialEq)]
pub enum History {
    /// Every retained event after the given ID, oldest first.
    Events(Vec<Event>),
    /// Events after the given ID were dropped from the history: refetch state.
    Reset,
}

/// A history ID as `(ms, seq)`, for ordering.
pub fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Orders two history IDs; unparsable IDs sort first.
pub fn compare_ids(a: &str, b: &str) -> Ordering {
    parse_id(a).cmp(&parse_id(b))
}

/// History retention.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Events kept per project (approximately, in Redis).
    pub max_len: usize,
    /// How long a quiet project's history lives.
    pub ttl: Duration,
}

/// Buffered live events per local subscriber; a slower subscriber falls behind and is told so.
const LIVE_BUFFER: usize = 1024;

/// Local fan-out: one broadcast channel per project with subscribers. Events travel as
/// `Arc`s, so a subscriber's copy costs a reference count, not a deep clone.
#[derive(Default)]
pub struct Fanout {
    channels: std::sync::Mutex<HashMap<Uuid, broadcast::Sender<Arc<Event>>>>,
}

impl Fanout {
    /// A receiver of `project`'s live events.
    pub fn subscribe(&self, project: Uuid) -> broadcast::Receiver<Arc<Event>> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.retain(|_, tx| tx.receiver_count() > 0);
        channels.entry(project).or_insert_with(|| broadcast::channel(LIVE_BUFFER).0).subscribe()
    }

    /// Hands `event` to its project's local subscribers, if any.
    pub fn deliver(&self, event: Event) {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = channels.get(&event.project_id) {
            let _ = tx.send(Arc::new(event));
        }
    }
}

enum Backend {
    Redis(redis::RedisBus),
    Memory(memory::MemoryBus),
}

/// The event bus of this process.
#[derive(Clone)]
pub struct EventBus {
    backend: Arc<Backend>,
    fanout: Arc<Fanout>,
}

/// Publishing or reading history failed (Redis unreachable).
#[derive(Debug, thiserror::Error)]
#[error("event bus: {0}")]
pub struct BusError(pub String);

impl EventBus {
    /// On Redis (with the shared subscription task started) when `redis` is given, in process
    /// otherwise.
    pub fn new(redis: Option<(::redis::Client, ::redis::aio::ConnectionManager)>, prefix: &str, retention: Retention) -> Self {
        let fanout = Arc::new(Fanout::default());
        let backend = match redis {
            Some((client, conn)) => Backend::Redis(redis::RedisBus::start(client, conn, prefix, retention, fanout.clone())),
            None => Backend::Memory(memory::MemoryBus::new(retention)),
        };
        Self { backend: Arc::new(backend), fanout }
    }

    /// Appends an event to its project's history and delivers it live, atomically.
    pub async fn publish(&self, project: Uuid, kind: &str, operation: Option<Uuid>, data: serde_json::Value) -> Result<Event, BusError> {
        let draft = Event {
            rendered: Default::default(),
            id: String::new(),
            kind: kind.to_owned(),
            project_id: project,
            operation_id: operation,
            data,
            time: Utc::now(),
        };
        match &*self.backend {
            Backend::Redis(bus) => bus.publish(draft).await,
            Backend::Memory(bus) => {
                let event = bus.append(draft);
                self.fanout.deliver(event.clone());
                Ok(event)
            }
        }
    }

    /// Retained events of `project` after `after` (all retained ones when `None`).
    pub async fn history(&self, project: Uuid, after: Option<&str>) -> Result<History, BusError> {
        match &*self.backend {
            Backend::Redis(bus) => bus.history(project, after).await,
            Backend::Memory(bus) => Ok(bus.history(project, after)),
        }
    }

    /// Live events of `project` from now on.
    pub fn subscribe(&self, project: Uuid) -> broadcast::Receiver<Arc<Event>> {
        self.fanout.subscribe(project)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_numerically() {
        assert_eq!(compare_ids("9-0", "10-0"), Ordering::Less);
        assert_eq!(compare_ids("10-2", "10-10"), Ordering::Less);
        assert_eq!(compare_ids("10-2", "10-2"), Ordering::Equal);
        assert_eq!(parse_id("garbage"), None);
    }
}
