//! The Redis transport: a stream per project is the history (`XADD` with approximate
//! `MAXLEN` and a TTL); one script appends and publishes atomically; one pub/sub subscription
//! per process feeds every local subscriber.
//!
//! The subscription runs on a thread of its own: the fan-out never waits in the runtime's
//! queue behind the connection tasks it feeds, and the tasks it wakes join the runtime's
//! shared queue in order (first woken, first written) rather than the waking worker's local
//! queue, which runs the newest first. With 5,000 streams this made an event's first-to-last
//! delivery spread shorter and steadier (`cargo bench --bench sse`). The thread asks the
//! kernel for short time slices ([`crate::sched`]), so an event starts going out as soon as
//! it arrives rather than after a busy worker's slice.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;
use redis::{AsyncCommands, Script, aio::ConnectionManager};
use uuid::Uuid;

use super::{BusError, Event, Fanout, History, Retention, compare_ids};

/// KEYS[1] stream, KEYS[2] channel; ARGV: max length, TTL (s), the event JSON without its id.
/// Returns the new ID. The published message is `<id> <json>`.
const PUBLISH: &str = r"
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', KEYS[2], id .. ' ' .. ARGV[3])
return id
";

/// The Redis side of the bus.
pub struct RedisBus {
    conn: ConnectionManager,
    prefix: String,
    retention: Retention,
    script: Script,
    /// Dropped with the bus: ends the subscription.
    _stop: tokio::sync::watch::Sender<()>,
}

impl RedisBus {
    /// Starts the shared subscription (reconnecting until the bus is dropped) and returns the
    /// bus.
    pub fn start(client: redis::Client, conn: ConnectionManager, prefix: &str, retention: Retention, fanout: Arc<Fanout>) -> Self {
        let channel = format!("{prefix}events");
        let (stop, stopped) = tokio::sync::watch::channel(());
        let run = until_stopped(client.clone(), channel.clone(), fanout.clone(), stopped.clone());
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
            tokio::spawn(until_stopped(client, channel, fanout, stopped));
        }
        Self { conn, prefix: prefix.to_owned(), retention, script: Script::new(PUBLISH), _stop: stop }
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

    /// Retained events after `after`; a reset when the stream dropped any of them.
    pub async fn history(&self, project: Uuid, after: Option<&str>) -> Result<History, BusError> {
        let key = self.stream(project);
        let mut conn = self.conn.clone();
        let err = |e: redis::RedisError| BusError(e.to_string());
        if let Some(after) = after {
            let exists: bool = conn.exists(&key).await.map_err(err)?;
            if !exists {
                // The whole history expired (or never existed): the client must refetch.
                return Ok(History::Reset);
            }
            // Trimming drops the oldest entries: when any were dropped and `after` is older
            // than the first one kept, the client may have missed some.
            let info: redis::Value = redis::cmd("XINFO").arg("STREAM").arg(&key).query_async(&mut conn).await.map_err(err)?;
            let info = StreamInfo::from(&info);
            if info.added > info.length && info.first.as_deref().is_none_or(|first| compare_ids(after, first).is_lt()) {
                return Ok(History::Reset);
            }
        }
        let start = after.map_or_else(|| "-".to_owned(), |a| format!("({a}"));
        let entries: Vec<(String, Vec<(String, String)>)> =
            redis::cmd("XRANGE").arg(&key).arg(start).arg("+").query_async(&mut conn).await.map_err(err)?;
        let events = entries
            .into_iter()
            .filter_map(|(id, fields)| {
                let json = fields.into_iter().find(|(k, _)| k == "e")?.1;
                let mut event: Event = serde_json::from_str(&json).ok()?;
                event.id = id;
                Some(event)
            })
            .collect();
        Ok(History::Events(events))
    }
}

/// What `XINFO STREAM` says about trimming (Redis 7).
struct StreamInfo {
    length: i64,
    added: i64,
    first: Option<String>,
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
            length: get("length").and_then(|v| redis::from_redis_value(v).ok()).unwrap_or(0),
            added: get("entries-added").and_then(|v| redis::from_redis_value(v).ok()).unwrap_or(0),
            first: get("recorded-first-entry-id").and_then(|v| redis::from_redis_value(v).ok()),
        }
    }
}

/// The subscription until `stopped`'s sender is dropped.
async fn until_stopped(client: redis::Client, channel: String, fanout: Arc<Fanout>, mut stopped: tokio::sync::watch::Receiver<()>) {
    tokio::select! {
        () = subscription(client, channel, fanout) => {}
        _ = stopped.changed() => {}
    }
}

/// The one subscription of this process: every published event reaches the local
/// subscribers of its project. Reconnects with a short back-off whenever Redis goes away.
async fn subscription(client: redis::Client, channel: String, fanout: Arc<Fanout>) {
    let mut delay = Duration::from_millis(100);
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if let Err(e) = pubsub.subscribe(&channel).await {
                    tracing::warn!(error = %e, "event subscription failed");
                } else {
                    delay = Duration::from_millis(100);
                    let mut messages = pubsub.into_on_message();
                    while let Some(msg) = messages.next().await {
                        let Ok(payload) = msg.get_payload::<String>() else { continue };
                        let Some((id, json)) = payload.split_once(' ') else { continue };
                        if let Ok(mut event) = serde_json::from_str::<Event>(json) {
                            event.id = id.to_owned();
                            fanout.deliver(event);
                        }
                    }
                    tracing::warn!("event subscription ended; reconnecting");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot open the event subscription; retrying"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
