//! Project events: every operation state change and progress step. Events are recorded in
//! PostgreSQL with the change they report and relayed from there ([`relay`]) to a per-project
//! history (a Redis stream, or a bounded in-process buffer without Redis), which lets a client
//! resume after its last event ID with no gap and no duplicate — or tells it, with a reset,
//! that continuity cannot be proven. Live delivery reaches local subscribers through one
//! shared subscription per process, never one Redis connection per client.

pub mod memory;
pub mod redis;
pub mod relay;
pub mod tickets;

use std::{
    cmp::Ordering,
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, Ordering as AtomicOrdering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use futures_util::task::AtomicWaker;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    access::{Principal, ProjectScope},
    db::event_outbox::RelayBatch,
};

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
    /// The trace the event was recorded in, when it was traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// What a history read found.
#[derive(Debug, PartialEq)]
pub enum History {
    /// Every retained event after the given ID, oldest first.
    Events(Vec<Event>),
    /// The history cannot prove that nothing after the given ID was lost — it was trimmed past
    /// it, expired, or is a new history (Redis lost its data, or the process restarted) — so
    /// the client must refetch state. Carries every event the history does hold, oldest first.
    Reset(Vec<Event>),
}

/// A history ID as `(ms, seq)`, for ordering.
pub fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    // Digits only (`parse` would take a sign): exactly the documented `<ms>-<seq>` form.
    let digits = |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(ms) || !digits(seq) {
        return None;
    }
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

/// Events a subscriber may have waiting before it is cut off. Nothing polls the stream of a
/// client that stopped reading (its socket is full), so the subscriber itself can never
/// notice; delivery does, and frees what the subscriber holds. The client resumes with
/// `Last-Event-ID` and loses nothing.
pub const CUTOFF: usize = 256;

/// How often the sweeper ends expired subscriptions, asks for keepalives and forgets
/// subscribers that are gone: stream timing needs no timer per connection.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

/// One subscriber, shared by its [`Subscription`], the fan-out and the sweeper.
///
/// Each subscriber has its own queue, so delivering an event to thousands of them touches
/// no lock or counter they all share (a broadcast channel's did: its cost grew with every
/// subscriber on every event).
struct Watch {
    /// Delivered events the subscriber has not taken yet (at most [`CUTOFF`]).
    queue: std::sync::Mutex<VecDeque<Arc<Event>>>,
    waker: AtomicWaker,
    cut: AtomicBool,
    /// The subscriber should send a keepalive.
    keepalive_due: AtomicBool,
    /// The subscriber sent an event since the sweeper last looked: it is not idle, so its
    /// next keepalive is a whole interval away.
    sent: AtomicBool,
    /// The subscription's lifetime is over.
    expired: AtomicBool,
    timing: std::sync::Mutex<Timing>,
    /// Dropped the moment the subscriber ends or is cut off (e.g. a per-user stream slot).
    guard: std::sync::Mutex<Option<Box<dyn Send>>>,
    /// Who the stream serves, for the access re-check ([`Fanout::holders`]).
    holder: std::sync::Mutex<Option<Principal>>,
    /// The holder lost access: the stream ends, and is not told to retry.
    revoked: AtomicBool,
}

/// When the sweeper flags a keepalive and the end of the subscription's lifetime.
#[derive(Default)]
struct Timing {
    keepalive: Option<(Duration, Instant)>,
    end: Option<Instant>,
}

impl Watch {
    fn new() -> Self {
        Self {
            queue: std::sync::Mutex::new(VecDeque::new()),
            waker: AtomicWaker::new(),
            cut: AtomicBool::new(false),
            keepalive_due: AtomicBool::new(false),
            sent: AtomicBool::new(false),
            expired: AtomicBool::new(false),
            timing: std::sync::Mutex::new(Timing::default()),
            guard: std::sync::Mutex::new(None),
            holder: std::sync::Mutex::new(None),
            revoked: AtomicBool::new(false),
        }
    }

    fn cut_off(&self) {
        self.cut.store(true, AtomicOrdering::Release);
        drop(std::mem::take(&mut *lock(&self.queue)));
        let guard = lock(&self.guard).take();
        drop(guard);
        self.waker.wake();
    }

    /// Queues `event`; false when the subscriber is gone or was cut off for falling behind.
    fn offer(&self, event: &Arc<Event>) -> bool {
        if self.cut.load(AtomicOrdering::Acquire) {
            return false;
        }
        let mut queue = lock(&self.queue);
        if queue.len() >= CUTOFF {
            drop(queue);
            self.cut_off();
            return false;
        }
        queue.push_back(event.clone());
        drop(queue);
        self.waker.wake();
        true
    }

    /// Flags what is due at `now`; false when the subscriber is gone.
    fn tick(&self, now: Instant) -> bool {
        if self.cut.load(AtomicOrdering::Acquire) {
            return false;
        }
        let mut timing = lock(&self.timing);
        let mut wake = false;
        if timing.end.is_some_and(|end| now >= end) {
            timing.end = None;
            self.expired.store(true, AtomicOrdering::Release);
            wake = true;
        }
        if let Some((every, next)) = &mut timing.keepalive {
            if self.sent.swap(false, AtomicOrdering::AcqRel) {
                *next = now + *every;
            } else if now >= *next {
                *next = now + *every;
                self.keepalive_due.store(true, AtomicOrdering::Release);
                wake = true;
            }
        }
        drop(timing);
        if wake {
            self.waker.wake();
        }
        true
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A local subscriber's live events of one project.
pub struct Subscription {
    watch: Arc<Watch>,
}

/// The subscriber fell behind (more than [`CUTOFF`] events waiting): it must resume from the
/// history.
#[derive(Debug, PartialEq, Eq)]
pub struct Lagged;

impl Subscription {
    /// Keeps `guard` until this subscription ends or is cut off, whichever comes first.
    pub fn hold(&self, guard: impl Send + 'static) {
        *lock(&self.watch.guard) = Some(Box::new(guard));
    }

    /// Drops the guard now.
    pub fn release(&self) {
        self.watch.cut_off();
    }

    /// Asks for a keepalive after every `every` without an event (see [`Self::keepalive_due`]
    /// and [`Self::sent`]) and ends the subscription's lifetime at `end` (see
    /// [`Self::expired`]), to within the sweeper's half second. Both wake the subscriber's
    /// task.
    ///
    /// Why not every `every`, busy or not: a keepalive for a stream that is sending anyway
    /// costs a wake-up and a write per stream (5,000 of them at once for a busy project),
    /// and delays that project's events meanwhile.
    pub fn schedule(&self, every: Duration, end: Instant) {
        *lock(&self.watch.timing) = Timing { keepalive: Some((every, Instant::now() + every)), end: Some(end) };
    }

    /// Tells the sweeper the subscriber sent an event, so no keepalive is due for another
    /// interval. A plain store: called on every write.
    pub fn sent(&self) {
        self.watch.sent.store(true, AtomicOrdering::Relaxed);
    }

    /// Whether a keepalive is due (true once for each one the sweeper flags).
    pub fn keepalive_due(&self) -> bool {
        self.watch.keepalive_due.swap(false, AtomicOrdering::AcqRel)
    }

    /// Whether the lifetime given to [`Self::schedule`] is over (or access was revoked).
    pub fn expired(&self) -> bool {
        self.watch.expired.load(AtomicOrdering::Acquire)
    }

    /// Records who the stream serves, so the access re-check can end it.
    pub fn held_by(&self, principal: Principal) {
        *lock(&self.watch.holder) = Some(principal);
    }

    /// Whether the holder lost access to the project ([`Fanout::revoke`]).
    pub fn revoked(&self) -> bool {
        self.watch.revoked.load(AtomicOrdering::Acquire)
    }

    fn next_event(&self) -> Option<Result<Arc<Event>, Lagged>> {
        if self.watch.cut.load(AtomicOrdering::Acquire) {
            return Some(Err(Lagged));
        }
        lock(&self.watch.queue).pop_front().map(Ok)
    }
}

impl futures_util::Stream for Subscription {
    type Item = Result<Arc<Event>, Lagged>;

    fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if let Some(next) = self.next_event() {
            return Poll::Ready(Some(next));
        }
        self.watch.waker.register(cx.waker());
        // Delivered between the first look and the registration: take it now.
        match self.next_event() {
            Some(next) => Poll::Ready(Some(next)),
            None => Poll::Pending,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.watch.cut_off();
    }
}

/// Local fan-out: the subscribers of each project. Events travel as `Arc`s, so a
/// subscriber's copy costs a reference count, not a deep clone.
#[derive(Default)]
pub struct Fanout {
    channels: std::sync::Mutex<HashMap<Uuid, Vec<Arc<Watch>>>>,
    /// The process is stopping: every subscription's lifetime is over, new ones' at once.
    ending: AtomicBool,
}

impl Fanout {
    /// A subscription to `project`'s live events.
    pub fn subscribe(&self, project: Uuid) -> Subscription {
        let watch = Arc::new(Watch::new());
        // Read under the lock `end_all` takes: a subscription is either flagged there or here.
        let mut channels = lock(&self.channels);
        if self.ending.load(AtomicOrdering::Acquire) {
            watch.expired.store(true, AtomicOrdering::Release);
        }
        channels.entry(project).or_default().push(watch.clone());
        drop(channels);
        Subscription { watch }
    }

    /// Hands `event` to its project's local subscribers, if any, and forgets the ones gone.
    pub fn deliver(&self, event: Event) {
        self.deliver_shared(Arc::new(event));
    }

    fn deliver_shared(&self, event: Arc<Event>) {
        let mut channels = lock(&self.channels);
        let project = event.project_id;
        if let Some(watches) = channels.get_mut(&project) {
            watches.retain(|watch| watch.offer(&event));
            if watches.is_empty() {
                channels.remove(&project);
            }
        }
    }

    /// Ends every subscription's lifetime now, and those opened from now on at once.
    fn end_all(&self) {
        let channels = lock(&self.channels);
        self.ending.store(true, AtomicOrdering::Release);
        for watch in channels.values().flatten() {
            watch.expired.store(true, AtomicOrdering::Release);
            watch.waker.wake();
        }
    }

    /// Ends the lifetime of every open subscription now (they close with a `retry:` hint and
    /// their clients resume from the history), without refusing new ones: the live feed was
    /// interrupted, and what it missed is in the history.
    fn interrupt(&self) {
        let channels = lock(&self.channels);
        for watch in channels.values().flatten() {
            watch.expired.store(true, AtomicOrdering::Release);
            watch.waker.wake();
        }
    }

    /// Each distinct (project, holder) of the open subscriptions.
    pub fn holders(&self) -> Vec<(Uuid, Principal)> {
        let channels = lock(&self.channels);
        let mut out = std::collections::HashSet::new();
        for (project, watches) in channels.iter() {
            out.extend(watches.iter().filter_map(|watch| lock(&watch.holder).clone()).map(|holder| (*project, holder)));
        }
        out.into_iter().collect()
    }

    /// Ends every subscription of `holder` to `project` now: its access is gone.
    pub fn revoke(&self, project: Uuid, holder: &Principal) -> usize {
        let channels = lock(&self.channels);
        let mut ended = 0;
        for watch in channels.get(&project).into_iter().flatten() {
            if lock(&watch.holder).as_ref() == Some(holder) {
                watch.revoked.store(true, AtomicOrdering::Release);
                watch.expired.store(true, AtomicOrdering::Release);
                watch.waker.wake();
                ended += 1;
            }
        }
        ended
    }

    /// Ends expired subscriptions, flags keepalives, forgets subscribers that are gone.
    fn sweep(&self) {
        let now = Instant::now();
        let mut channels = lock(&self.channels);
        channels.retain(|_, watches| {
            watches.retain(|watch| watch.tick(now));
            !watches.is_empty()
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
    /// Wakes the relay: an event was just recorded here.
    recorded: Arc<tokio::sync::Notify>,
}

/// Publishing or reading history failed (Redis unreachable).
#[derive(Debug, thiserror::Error)]
#[error("event bus: {0}")]
pub struct BusError(pub String);

impl EventBus {
    /// On Redis (with the shared subscription task started) when `redis` is given, in process
    /// otherwise.
    pub fn new(redis: Option<(::redis::Client, crate::deps::redis::Connection)>, prefix: &str, retention: Retention) -> Self {
        let fanout = Arc::new(Fanout::default());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweeper(Arc::downgrade(&fanout)));
        }
        let backend = match redis {
            Some((client, conn)) => Backend::Redis(redis::RedisBus::start(client, conn, prefix, retention, fanout.clone())),
            None => Backend::Memory(memory::MemoryBus::new(retention)),
        };
        Self { backend: Arc::new(backend), fanout, recorded: Arc::default() }
    }

    /// Appends an event to the scope's project history and delivers it live, atomically.
    /// Operation events are not published this way but recorded in PostgreSQL and relayed
    /// ([`relay`]).
    pub async fn publish(
        &self,
        scope: &ProjectScope,
        kind: &str,
        operation: Option<Uuid>,
        data: serde_json::Value,
    ) -> Result<Event, BusError> {
        let draft = Event {
            frame: Default::default(),
            id: String::new(),
            kind: kind.to_owned(),
            project_id: scope.project_id(),
            operation_id: operation,
            data,
            time: Utc::now(),
            trace_id: crate::client_span::trace_id(),
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

    /// Appends relayed events (outbox order `seq`, event), in order, each at most once: an
    /// event whose `seq` this pass's earlier attempt appended already (its removal from the
    /// outbox did not commit) is skipped. Returns the IDs given (`None` for skipped ones).
    pub async fn append_relayed(&self, batch: RelayBatch) -> Result<Vec<Option<String>>, BusError> {
        let batch: Vec<(i64, Event)> = batch
            .into_rows()
            .into_iter()
            .map(|r| {
                let event = Event {
                    frame: Default::default(),
                    id: String::new(),
                    kind: r.kind,
                    project_id: r.project_id,
                    operation_id: r.operation_id,
                    data: r.data.0,
                    time: r.created_at,
                    trace_id: r.trace_id,
                };
                (r.seq, event)
            })
            .collect();
        match &*self.backend {
            Backend::Redis(bus) => bus.append_relayed(&batch).await,
            Backend::Memory(bus) => Ok(batch
                .into_iter()
                .map(|(seq, draft)| {
                    let event = bus.append_once(seq, draft)?;
                    let id = event.id.clone();
                    self.fanout.deliver(event);
                    Some(id)
                })
                .collect()),
        }
    }

    /// The relayed events' (`seqs`) removal from the outbox committed: they can never come
    /// again.
    pub async fn relay_committed(&self, seqs: &[i64]) {
        match &*self.backend {
            Backend::Redis(bus) => bus.relay_committed(seqs).await,
            Backend::Memory(bus) => bus.relay_committed(seqs),
        }
    }

    /// Tells the relay that an event was recorded (it relays at once instead of at its next
    /// look).
    pub fn recorded(&self) {
        self.recorded.notify_one();
    }

    /// Waits until [`Self::recorded`] is called.
    pub async fn wait_recorded(&self) {
        self.recorded.notified().await;
    }

    /// Waits up to `limit` for live delivery to work (the shared Redis subscription is up);
    /// whether it does.
    pub async fn live(&self, limit: Duration) -> bool {
        match &*self.backend {
            Backend::Redis(bus) => bus.subscribed(limit).await,
            Backend::Memory(_) => true,
        }
    }

    /// Whether live delivery works now.
    pub fn is_live(&self) -> bool {
        match &*self.backend {
            Backend::Redis(bus) => bus.is_subscribed(),
            Backend::Memory(_) => true,
        }
    }

    /// Retained events of the scope's project after `after` (all retained ones when `None`).
    pub async fn history(&self, scope: &ProjectScope, after: Option<&str>) -> Result<History, BusError> {
        let project = scope.project_id();
        match &*self.backend {
            Backend::Redis(bus) => bus.history(project, after).await,
            Backend::Memory(bus) => Ok(bus.history(project, after)),
        }
    }

    /// Live events of the scope's project from now on.
    pub fn subscribe(&self, scope: &ProjectScope) -> Subscription {
        self.fanout.subscribe(scope.project_id())
    }

    /// Each distinct (project, holder) streaming from this replica.
    pub fn holders(&self) -> Vec<(Uuid, Principal)> {
        self.fanout.holders()
    }

    /// Ends `holder`'s streams of `project` on this replica; returns how many.
    pub fn revoke(&self, project: Uuid, holder: &Principal) -> usize {
        self.fanout.revoke(project, holder)
    }

    /// Ends the lifetime of every local subscription now (and of any opened later): their
    /// streams close with a `retry:` hint, and the clients resume on another replica. Called
    /// when the server starts draining, which would otherwise wait out its whole grace
    /// period on streams that never end by themselves.
    pub fn end_streams(&self) {
        self.fanout.end_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_feed_ends_open_subscriptions_but_not_later_ones() {
        let fanout = Fanout::default();
        let open = fanout.subscribe(Uuid::now_v7());
        fanout.interrupt();
        assert!(open.expired() && !open.revoked());
        assert!(!fanout.subscribe(Uuid::now_v7()).expired());
    }

    fn event(project: Uuid, n: usize) -> Event {
        Event {
            frame: Default::default(),
            id: format!("1-{n}"),
            kind: "t".into(),
            project_id: project,
            operation_id: None,
            data: serde_json::Value::Null,
            time: Utc::now(),
            trace_id: None,
        }
    }

    #[tokio::test]
    async fn a_subscriber_that_stops_taking_events_is_cut_off_and_others_get_everything() {
        use futures_util::StreamExt;
        let fanout = Fanout::default();
        let (project, other) = (Uuid::now_v7(), Uuid::now_v7());
        let mut reader = fanout.subscribe(project);
        let stalled = fanout.subscribe(project);
        let mut elsewhere = fanout.subscribe(other);
        let (freed_tx, mut freed) = tokio::sync::oneshot::channel::<()>();
        stalled.hold(freed_tx);
        for n in 0..CUTOFF + 1 {
            fanout.deliver(event(project, n));
            assert_eq!(reader.next().await.unwrap().unwrap().id, format!("1-{n}"));
        }
        // The guard is dropped at the cut-off, not when the stalled subscriber finally looks.
        assert!(freed.try_recv().is_err_and(|e| e == tokio::sync::oneshot::error::TryRecvError::Closed));
        let mut stalled = stalled;
        assert_eq!(stalled.next().await.unwrap(), Err(Lagged));
        assert_eq!(lock(&fanout.channels)[&project].len(), 1, "the cut-off subscriber is forgotten");
        // Nothing of the project reached the other project's subscriber.
        assert!(futures_util::poll!(elsewhere.next()).is_pending());
    }

    #[tokio::test]
    async fn the_sweeper_flags_keepalives_and_ends_lifetimes() {
        let fanout = Fanout::default();
        let sub = fanout.subscribe(Uuid::now_v7());
        sub.schedule(Duration::from_millis(1), Instant::now() + Duration::from_secs(3600));
        assert!(!sub.keepalive_due());
        std::thread::sleep(Duration::from_millis(2));
        fanout.sweep();
        assert!(sub.keepalive_due());
        assert!(!sub.keepalive_due(), "answered once");
        assert!(!sub.expired());
        sub.schedule(Duration::from_secs(15), Instant::now());
        fanout.sweep();
        assert!(sub.expired());
        drop(sub);
        fanout.sweep();
        assert!(lock(&fanout.channels).is_empty(), "gone subscribers and empty projects are forgotten");
    }

    #[test]
    fn a_subscriber_that_sends_gets_its_keepalive_only_after_a_quiet_interval() {
        let fanout = Fanout::default();
        let sub = fanout.subscribe(Uuid::now_v7());
        sub.schedule(Duration::from_millis(20), Instant::now() + Duration::from_secs(3600));
        std::thread::sleep(Duration::from_millis(25));
        sub.sent();
        fanout.sweep();
        assert!(!sub.keepalive_due(), "an event went out since the last sweep");
        std::thread::sleep(Duration::from_millis(10));
        fanout.sweep();
        assert!(!sub.keepalive_due(), "the interval counts from the sweep that saw the event");
        std::thread::sleep(Duration::from_millis(15));
        fanout.sweep();
        assert!(sub.keepalive_due(), "quiet for a whole interval");
    }

    #[test]
    fn ending_all_streams_ends_open_and_later_subscriptions() {
        let fanout = Fanout::default();
        let open = fanout.subscribe(Uuid::now_v7());
        assert!(!open.expired());
        fanout.end_all();
        assert!(open.expired());
        assert!(fanout.subscribe(Uuid::now_v7()).expired(), "a stream opened while draining ends at once");
    }

    #[test]
    fn ids_order_numerically() {
        assert_eq!(compare_ids("9-0", "10-0"), Ordering::Less);
        assert_eq!(compare_ids("10-2", "10-10"), Ordering::Less);
        assert_eq!(compare_ids("10-2", "10-2"), Ordering::Equal);
        assert_eq!(parse_id("garbage"), None);
    }
}
