//! Project events: every operation state change and progress step. A per-project history
//! (a Redis stream, or a bounded in-process buffer without Redis) lets a client resume after
//! its last event ID with no gap and no duplicate; live delivery reaches local subscribers
//! through one shared subscription per process, never one Redis connection per client.

pub mod memory;
pub mod redis;
pub mod tickets;

use std::{
    cmp::Ordering,
    collections::HashMap,
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use uuid::Uuid;

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The whole SSE message, encoded once and shared by every connection that streams this
    /// event (5,000 subscribers must not mean 5,000 encodings).
    #[serde(skip)]
    pub frame: std::sync::OnceLock<bytes::Bytes>,
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

/// Live events the shared channel of a project keeps for its slowest local subscriber; one
/// further behind is told it lagged.
const LIVE_BUFFER: usize = 1024;

/// Events a subscriber may fall behind before the sweeper cuts it off. Nothing polls the
/// stream of a client that stopped reading (its socket is full), so the subscriber itself can
/// never notice; the sweeper does, and frees what the subscriber holds.
pub const CUTOFF: u64 = 256;

/// How often the sweeper looks for subscribers that fell behind.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

/// One project's local channel.
struct Channel {
    tx: broadcast::Sender<Arc<Event>>,
    /// Events sent on `tx` so far.
    sent: u64,
    watches: Vec<Weak<Watch>>,
}

/// What the sweeper knows of one subscriber.
struct Watch {
    /// `Channel::sent` when the subscription began.
    base: u64,
    /// Events the subscriber has taken from the channel.
    taken: AtomicU64,
    cut: AtomicBool,
    /// Dropped the moment the subscriber ends or is cut off (e.g. a per-user stream slot).
    guard: std::sync::Mutex<Option<Box<dyn Send>>>,
}

impl Watch {
    fn cut_off(&self) {
        self.cut.store(true, AtomicOrdering::Release);
        let guard = self.guard.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(guard);
    }
}

/// A local subscriber's live events of one project.
pub struct Subscription {
    live: BroadcastStream<Arc<Event>>,
    watch: Arc<Watch>,
}

/// The subscriber fell behind (the shared channel overwrote events it had not taken yet, or
/// the sweeper cut it off): it must resume from the history.
#[derive(Debug, PartialEq, Eq)]
pub struct Lagged;

impl Subscription {
    /// Keeps `guard` until this subscription ends or is cut off, whichever comes first.
    pub fn hold(&self, guard: impl Send + 'static) {
        *self.watch.guard.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(guard));
    }

    /// Drops the guard now.
    pub fn release(&self) {
        self.watch.cut_off();
    }
}

impl futures_util::Stream for Subscription {
    type Item = Result<Arc<Event>, Lagged>;

    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.watch.cut.load(AtomicOrdering::Acquire) {
            return Poll::Ready(Some(Err(Lagged)));
        }
        match std::pin::Pin::new(&mut self.live).poll_next(cx) {
            Poll::Ready(Some(Ok(event))) => {
                self.watch.taken.fetch_add(1, AtomicOrdering::Relaxed);
                Poll::Ready(Some(Ok(event)))
            }
            Poll::Ready(Some(Err(_))) => Poll::Ready(Some(Err(Lagged))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.watch.cut_off();
    }
}

/// Local fan-out: one broadcast channel per project with subscribers. Events travel as
/// `Arc`s, so a subscriber's copy costs a reference count, not a deep clone.
#[derive(Default)]
pub struct Fanout {
    channels: std::sync::Mutex<HashMap<Uuid, Channel>>,
}

impl Fanout {
    /// A subscription to `project`'s live events.
    pub fn subscribe(&self, project: Uuid) -> Subscription {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let channel =
            channels.entry(project).or_insert_with(|| Channel { tx: broadcast::channel(LIVE_BUFFER).0, sent: 0, watches: Vec::new() });
        let watch = Arc::new(Watch {
            base: channel.sent,
            taken: AtomicU64::new(0),
            cut: AtomicBool::new(false),
            guard: std::sync::Mutex::new(None),
        });
        channel.watches.push(Arc::downgrade(&watch));
        Subscription { live: BroadcastStream::new(channel.tx.subscribe()), watch }
    }

    /// Hands `event` to its project's local subscribers, if any.
    pub fn deliver(&self, event: Event) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = channels.get_mut(&event.project_id) {
            channel.sent += 1;
            let _ = channel.tx.send(Arc::new(event));
        }
    }

    /// Cuts off every subscriber more than [`CUTOFF`] events behind and forgets channels
    /// nobody listens to any more.
    fn sweep(&self) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.retain(|_, channel| {
            let sent = channel.sent;
            channel.watches.retain(|weak| {
                let Some(watch) = weak.upgrade() else { return false };
                let behind = sent - watch.base - watch.taken.load(AtomicOrdering::Relaxed).min(sent - watch.base);
                if behind > CUTOFF {
                    watch.cut_off();
                    return false;
                }
                !watch.cut.load(AtomicOrdering::Acquire)
            });
            channel.tx.receiver_count() > 0
        });
    }
}

/// Sweeps until the fan-out is gone.
async fn sweeper(fanout: Weak<Fanout>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(fanout) = fanout.upgrade() else { return };
        fanout.sweep();
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
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweeper(Arc::downgrade(&fanout)));
        }
        let backend = match redis {
            Some((client, conn)) => Backend::Redis(redis::RedisBus::start(client, conn, prefix, retention, fanout.clone())),
            None => Backend::Memory(memory::MemoryBus::new(retention)),
        };
        Self { backend: Arc::new(backend), fanout }
    }

    /// Appends an event to its project's history and delivers it live, atomically.
    pub async fn publish(&self, project: Uuid, kind: &str, operation: Option<Uuid>, data: serde_json::Value) -> Result<Event, BusError> {
        let draft = Event {
            frame: Default::default(),
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
    pub fn subscribe(&self, project: Uuid) -> Subscription {
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
