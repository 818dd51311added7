//! The Redis transport: a stream per project is the history (`XADD` with approximate
//! `MAXLEN` and a TTL); one script appends and publishes atomically; one pub/sub subscription
//! per process feeds every local subscriber.
//!
//! Each stream begins with a marker entry (no event): the history's generation. Redis may
//! lose its data (a restart without persistence) and a new stream then begins with a new
//! marker, so an ID outside the stream's span — older than its first entry, or newer than
//! the last ID it generated — is from a history that is gone, and the client gets a reset.
//! While the subscription is down nothing is delivered live, so every open stream is ended
//! (its client resumes from the history) when it drops and again when it is back.
//!
//! The subscription runs on a thread of its own: the fan-out never waits in the runtime's
//! queue behind the connection tasks it feeds, and the tasks it wakes join the runtime's
//! shared queue in order (first woken, first written) rather than the waking worker's local
//! queue, which runs the newest first. With 5,000 streams this made an event's first-to-last
//! delivery spread shorter and steadier (`cargo bench --bench sse`). The thread asks the
//! kernel for short time slices ([`crate::sched`]), so an event starts going out as soon as
//! it arrives rather than after a busy worker's slice.

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;

use futures_util::StreamExt;
use redis::{AsyncCommands, Script};
use uuid::Uuid;

use super::{BusError, Event, Fanout, History, Retention, compare_ids};
use crate::deps::redis::Connection;

/// KEYS[1] stream, KEYS[2] channel; ARGV: max length, TTL (s), the event JSON without its id.
/// Returns the new ID. The published message is `<id> <json>`. A new stream gets its
/// generation marker first.
const PUBLISH: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('XADD', KEYS[1], '*', 'generation', '1') end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', KEYS[2], id .. ' ' .. ARGV[3])
return id
";

/// A relay pass. KEYS[1] channel, KEYS[2] the pass's set of appended outbox rows, KEYS[3..]
/// each event's stream; ARGV: max length, TTL (s), then each event's outbox `seq` and JSON.
/// Appends and publishes each event whose `seq` is not in the set yet (a retried pass skips
/// what its first attempt appended), atomically. Returns the IDs given (`''` when skipped).
const RELAY: &str = r"
local ids = {}
for i = 3, #KEYS do
  local seq, body = ARGV[2 * i - 3], ARGV[2 * i - 2]
  if redis.call('SISMEMBER', KEYS[2], seq) == 1 then
    ids[#ids + 1] = ''
  else
    if redis.call('EXISTS', KEYS[i]) == 0 then redis.call('XADD', KEYS[i], '*', 'generation', '1') end
    local id = redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[1], '*', 'e', body)
    redis.call('EXPIRE', KEYS[i], ARGV[2])
    redis.call('SADD', KEYS[2], seq)
    redis.call('PUBLISH', KEYS[1], id .. ' ' .. body)
    ids[#ids + 1] = id
  end
end
redis.call('EXPIRE', KEYS[2], 86400)
return ids
";

/// The Redis side of the bus.
pub struct RedisBus {
    conn: Connection,
    prefix: String,
    retention: Retention,
    script: Script,
    relay: Script,
    /// Whether the shared subscription is up.
    subscribed: watch::Receiver<bool>,
    /// Dropped with the bus: ends the subscription.
    _stop: watch::Sender<()>,
}

impl RedisBus {
    /// Starts the shared subscription (reconnecting until the bus is dropped) and returns the
    /// bus.
    pub fn start(client: redis::Client, conn: Connection, prefix: &str, retention: Retention, fanout: Arc<Fanout>) -> Self {
        let channel = format!("{prefix}events");
        let (stop, stopped) = watch::channel(());
        let (up, subscribed) = watch::channel(false);
        let live = Live { fanout, up: Arc::new(up) };
        let run = until_stopped(client.clone(), channel.clone(), live.clone(), stopped.clone());
        let on_thread = tokio::runtime::Builder::new_current_thread().enable_all().build().and_then(|runtime| {
            std::thread::Builder::new().name("jeex-events".into()).spawn(move || {
                // It runs briefly per event, and every stream waits for it: see `sched`.
                let short = crate::sched::prefer_short_slices();
                tracing::debug!(short_slices = short, "event subscription thread started");
                runtime.block_on(run)
            })
        });
        if let Err(e) = on_thread {
            tracing::warn!(error = %e, "no thread of its own for the event subscription; it shares the runtime");
            tokio::spawn(until_stopped(client, channel, live, stopped));
        }
        Self {
            conn,
            prefix: prefix.to_owned(),
            retention,
            script: Script::new(PUBLISH),
            relay: Script::new(RELAY),
            subscribed,
            _stop: stop,
        }
    }

    /// Waits up to `limit` for the shared subscription to be up; whether it is.
    pub async fn subscribed(&self, limit: Duration) -> bool {
        let mut up = self.subscribed.clone();
        tokio::time::timeout(limit, up.wait_for(|up| *up)).await.is_ok_and(|r| r.is_ok())
    }

    /// Whether the shared subscription is up now.
    pub fn is_subscribed(&self) -> bool {
        *self.subscribed.borrow()
    }

    fn relay_set(&self) -> String {
        format!("{}events:relaying", self.prefix)
    }

    /// Appends a relay pass's events (see [`RELAY`]).
    pub async fn append_relayed(&self, batch: &[(i64, Event)]) -> Result<Vec<Option<String>>, BusError> {
        let mut call = self.relay.key(format!("{}events", self.prefix));
        call.key(self.relay_set()).arg(self.retention.max_len).arg(self.retention.ttl.as_secs().max(1));
        for (seq, event) in batch {
            let body = serde_json::to_string(event).map_err(|e| BusError(e.to_string()))?;
            call.key(self.stream(event.project_id)).arg(seq).arg(body);
        }
        let mut conn = self.conn.clone();
        let ids: Vec<String> = call.invoke_async(&mut conn).await.map_err(|e| BusError(e.to_string()))?;
        Ok(ids.into_iter().map(|id| (!id.is_empty()).then_some(id)).collect())
    }

    /// Forgets the committed pass's rows (they are gone from the outbox), and only those: a
    /// pass of another replica may have added its own meanwhile. A failure only leaves rows
    /// that can never come again in the set (it expires a day after the last pass).
    pub async fn relay_committed(&self, seqs: &[i64]) {
        if seqs.is_empty() {
            return;
        }
        let mut conn = self.conn.clone();
        let _: Result<(), _> = conn.srem(self.relay_set(), seqs).await;
    }

    fn stream(&self, project: Uuid) -> String {
        format!("{}events:{project}", self.prefix)
    }

    /// Appends and publishes.
    pub async fn publish(&self, mut event: Event) -> Result<Event, BusError> {
        let body = serde_json::to_string(&event).map_err(|e| BusError(e.to_string()))?;
        let mut conn = self.conn.clone();
        let id: String = self
            .script
            .key(self.stream(event.project_id))
            .key(format!("{}events", self.prefix))
            .arg(self.retention.max_len)
            .arg(self.retention.ttl.as_secs().max(1))
            .arg(body)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| BusError(e.to_string()))?;
        event.id = id;
        Ok(event)
    }

    /// Retained events after `after`; a reset (with every retained event) when `after` lies
    /// outside the stream's span: trimmed away, expired, or from a history Redis lost.
    pub async fn history(&self, project: Uuid, after: Option<&str>) -> Result<History, BusError> {
        let key = self.stream(project);
        let mut conn = self.conn.clone();
        let err = |e: redis::RedisError| BusError(e.to_string());
        let reader = self.conn.clone();
        let range = |start: String| {
            let (key, mut conn) = (key.clone(), reader.clone());
            async move {
                redis::cmd("XRANGE").arg(&key).arg(start).arg("+").query_async::<Vec<(String, Vec<(String, String)>)>>(&mut conn).await
            }
        };
        let Some(after) = after else { return Ok(History::Events(Self::events(range("-".to_owned()).await.map_err(err)?))) };
        // The range first, then the span: trimming between the two shows in the span, so no
        // trimmed event is skipped unnoticed.
        let entries = range(format!("({after}")).await.map_err(err)?;
        let exists: bool = conn.exists(&key).await.map_err(err)?;
        if !exists {
            // The whole history expired, was lost, or never existed: refetch.
            return Ok(History::Reset(Vec::new()));
        }
        let info: redis::Value = redis::cmd("XINFO").arg("STREAM").arg(&key).query_async(&mut conn).await.map_err(err)?;
        let info = StreamInfo::from(&info);
        // The first entry is the generation marker until trimming drops it; either way an ID
        // before it was never in this stream's retained span.
        let before_first = info.first.as_deref().is_none_or(|first| compare_ids(after, first).is_lt());
        let after_last = info.last.as_deref().is_none_or(|last| compare_ids(after, last).is_gt());
        if before_first || after_last {
            return Ok(History::Reset(Self::events(range("-".to_owned()).await.map_err(err)?)));
        }
        Ok(History::Events(Self::events(entries)))
    }

    /// The events among stream entries (the generation marker is none).
    fn events(entries: Vec<(String, Vec<(String, String)>)>) -> Vec<Event> {
        entries
            .into_iter()
            .filter_map(|(id, fields)| {
                let json = fields.into_iter().find(|(k, _)| k == "e")?.1;
                let mut event: Event = serde_json::from_str(&json).ok()?;
                event.id = id;
                Some(event)
            })
            .collect()
    }
}

/// What `XINFO STREAM` says about the stream's span (Redis 7).
struct StreamInfo {
    first: Option<String>,
    last: Option<String>,
}

impl From<&redis::Value> for StreamInfo {
    fn from(info: &redis::Value) -> Self {
        let pairs: Vec<(String, redis::Value)> = match info {
            redis::Value::Map(map) => {
                map.iter().filter_map(|(k, v)| Some((redis::from_redis_value_ref::<String>(k).ok()?, v.clone()))).collect()
            }
            redis::Value::Array(items) => items
                .chunks(2)
                .filter_map(|kv| Some((redis::from_redis_value_ref::<String>(kv.first()?).ok()?, kv.get(1)?.clone())))
                .collect(),
            _ => Vec::new(),
        };
        let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        Self {
            first: get("recorded-first-entry-id").and_then(|v| redis::from_redis_value(v).ok()),
            last: get("last-generated-id").and_then(|v| redis::from_redis_value(v).ok()),
        }
    }
}

/// Live delivery: the local subscribers, and whether the shared subscription feeding them is
/// up.
#[derive(Clone)]
struct Live {
    fanout: Arc<Fanout>,
    up: Arc<watch::Sender<bool>>,
}

impl Live {
    /// The subscription went up or down: every open stream may have missed events (or will),
    /// so each ends and its client resumes from the history. Streams end before the flag
    /// says "up", so none opened after it is ended needlessly.
    fn set(&self, up: bool) {
        if *self.up.borrow() == up {
            return;
        }
        if up {
            self.fanout.interrupt();
            self.up.send_replace(true);
        } else {
            // Down first: a stream opening now sees it after subscribing (`RedisBus::is_subscribed`) and is
            // told to come back, or is subscribed already and ended here.
            self.up.send_replace(false);
            self.fanout.interrupt();
        }
    }
}

/// The subscription until `stopped`'s sender is dropped.
async fn until_stopped(client: redis::Client, channel: String, live: Live, mut stopped: watch::Receiver<()>) {
    tokio::select! {
        () = subscription(client, channel, live) => {}
        _ = stopped.changed() => {}
    }
}

/// Longest wait between two attempts to subscribe again: a Redis that is back is used within
/// about a second.
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(1);

/// The one subscription of this process: every published event reaches the local
/// subscribers of its project. Reconnects with a short back-off whenever Redis goes away.
async fn subscription(client: redis::Client, channel: String, live: Live) {
    let mut delay = Duration::from_millis(100);
    let mut warned = false;
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if let Err(e) = pubsub.subscribe(&channel).await {
                    tracing::warn!(error = %e, "event subscription failed");
                } else {
                    delay = Duration::from_millis(100);
                    if warned {
                        tracing::info!("event subscription is back");
                    }
                    live.set(true);
                    let mut messages = pubsub.into_on_message();
                    while let Some(msg) = messages.next().await {
                        let Ok(payload) = msg.get_payload::<String>() else { continue };
                        let Some((id, json)) = payload.split_once(' ') else { continue };
                        if let Ok(mut event) = serde_json::from_str::<Event>(json) {
                            event.id = id.to_owned();
                            live.fanout.deliver(event);
                        }
                    }
                    live.set(false);
                    tracing::warn!("event subscription ended; open streams resume from the history once it is back");
                    warned = true;
                }
            }
            Err(e) => {
                live.set(false);
                if !warned {
                    tracing::warn!(error = %e, "cannot open the event subscription; retrying every second at most");
                    warned = true;
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RESUBSCRIBE_MAX);
    }
}
