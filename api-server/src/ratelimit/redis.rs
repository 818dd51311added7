//! The shared limiter: a Lua script evaluates and records every key of a request atomically,
//! on Redis's own clock (so replicas with skewed clocks agree), one round trip per request.
//!
//! Requests that arrive while a round trip is under way share the next one: a batch goes out
//! as soon as the previous answer is in, holding whatever queued meanwhile (nothing waits for
//! a timer, so a lone request goes at once). Under load, Redis runs one script and the
//! process makes one write and one read for many requests instead of one each.
//!
//! Requests of a batch arrived together, so any order of evaluating them is a valid one. Those
//! that name the same keys under the same quota (one client's burst) go as one group: the
//! script admits as many of them as fit at once, and the process works out each one's figures
//! with `gcra::nth`, the arithmetic the in-memory store uses. Lua runs per group and key, not
//! per request: its interpreter is most of a script run's cost.

use std::{collections::HashMap, sync::Arc};

use redis::Script;

use tracing::Instrument;

use crate::{client_span, deps::redis::Connection};
use tokio::sync::{mpsc, oneshot};

use super::gcra::{self, Outcome};
use crate::config::Quota;

/// Requests evaluated by one script run at most.
const MAX_BATCH: usize = 64;

/// ARGV: the group count, then per group its window, its key count n, its request count m
/// and its keys' emission intervals (µs); KEYS: every group's keys in order. Groups are
/// evaluated one after the other (a key two groups share sees the first one's admissions).
/// Returns per group the number admitted, then how far each key's TAT stood ahead of now
/// before them (µs, 0 for a new or lapsed key): flattened. Every key is read with one `MGET`
/// and each changed key written once.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local stored = #KEYS > 0 and redis.call('MGET', unpack(KEYS)) or {}
local tat = {}
for i = 1, #KEYS do
  if tat[KEYS[i]] == nil then tat[KEYS[i]] = tonumber(stored[i]) or now end
end
local changed = {}
local out = {}
local a, k = 2, 0
for g = 1, tonumber(ARGV[1]) do
  local window, n, admit = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local slot = #out + 1
  out[slot] = 0
  for j = 1, n do
    local ahead = tat[KEYS[k + j]] - now
    if ahead < 0 then ahead = 0 end
    out[slot + j] = ahead
    local interval = tonumber(ARGV[a + 2 + j])
    local fits = math.floor((window - ahead) / interval)
    -- The division is in doubles and may round up to a whole number; the product is exact.
    if fits * interval > window - ahead then fits = fits - 1 end
    if fits < admit then admit = fits end
  end
  if admit > 0 then
    out[slot] = admit
    for j = 1, n do
      local key = KEYS[k + j]
      tat[key] = now + out[slot + j] + admit * tonumber(ARGV[a + 2 + j])
      changed[key] = true
    end
  end
  a = a + 3 + n
  k = k + n
end
for key in pairs(changed) do
  -- A stored TAT is at least one interval (>= 1 us) ahead, so the expiry is at least 1 ms.
  redis.call('SET', key, string.format('%.0f', tat[key]), 'PX', math.ceil((tat[key] - now) / 1000))
end
return out
";

/// Why Redis could not decide (shared by every request of the failed batch).
pub type StoreError = Arc<redis::RedisError>;

/// One request waiting for its batch.
struct Pending {
    keys: Vec<String>,
    /// Emission interval of each key, µs.
    intervals: Vec<i64>,
    window: i64,
    reply: oneshot::Sender<Result<Outcome, StoreError>>,
    /// The asking request's span, when it is traced: the batch's Redis call belongs to it.
    span: tracing::Span,
}

/// The Redis store: hands requests to the batching task.
pub struct RedisStore {
    queue: mpsc::UnboundedSender<Pending>,
}

impl RedisStore {
    /// Uses `conn` (the shared, self-reconnecting connection). Starts the batching task, which
    /// ends when the store is dropped.
    pub fn new(conn: Connection) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(batches(pending, conn, Script::new(GCRA)));
        Self { queue }
    }

    /// Evaluates and records one request against every key.
    pub async fn check(&self, keys: Vec<String>, multipliers: &[u32], quota: Quota) -> Result<Outcome, StoreError> {
        let (intervals, window) = gcra::intervals(multipliers, quota);
        let (reply, answer) = oneshot::channel();
        let closed = || Arc::new(redis::RedisError::from((redis::ErrorKind::Client, "the rate limiter's Redis task has stopped")));
        let span = if client_span::sampled() { tracing::Span::current() } else { tracing::Span::none() };
        self.queue.send(Pending { keys, intervals, window, reply, span }).map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

/// Sends one batch at a time: whatever queued while the last one was out.
async fn batches(mut pending: mpsc::UnboundedReceiver<Pending>, conn: Connection, script: Script) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match run(&conn, &script, &batch).instrument(batch_span(&batch)).await {
            Ok(outcomes) => {
                for (p, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = p.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for p in batch.drain(..) {
                    let _ = p.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// The span of a batch's check: a child of the first traced request in it, linked to the
/// others (one Redis call answers them all). None when no request in it is traced.
fn batch_span(batch: &[Pending]) -> tracing::Span {
    let mut traced = batch.iter().map(|p| &p.span).filter(|s| !s.is_none());
    let Some(first) = traced.next() else { return tracing::Span::none() };
    let span = tracing::error_span!(target: client_span::TARGET, parent: first, "rate limit", otel.name = "rate limit check", jeex.batch.size = batch.len() as i64);
    for other in traced {
        span.follows_from(other);
    }
    span
}

/// Requests of a batch with the same keys, intervals and window, by their place in the batch.
struct Group<'a> {
    keys: &'a [String],
    intervals: &'a [i64],
    window: i64,
    members: Vec<usize>,
}

/// Groups `batch` by keys and quota, in order of first appearance.
fn groups(batch: &[Pending]) -> Vec<Group<'_>> {
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut index: HashMap<(&[String], &[i64], i64), usize> = HashMap::new();
    for (i, p) in batch.iter().enumerate() {
        let at = *index.entry((&p.keys, &p.intervals, p.window)).or_insert_with(|| {
            groups.push(Group { keys: &p.keys, intervals: &p.intervals, window: p.window, members: Vec::new() });
            groups.len() - 1
        });
        groups[at].members.push(i);
    }
    groups
}

/// One script run for `batch`; an outcome per request, in order.
async fn run(conn: &Connection, script: &Script, batch: &[Pending]) -> Result<Vec<Outcome>, redis::RedisError> {
    let groups = groups(batch);
    let mut invocation = script.prepare_invoke();
    invocation.arg(groups.len());
    for g in &groups {
        invocation.arg(g.window).arg(g.keys.len()).arg(g.members.len());
        for (key, interval) in g.keys.iter().zip(g.intervals) {
            invocation.key(key).arg(interval);
        }
    }
    let flat: Vec<i64> = invocation.invoke_async(&mut conn.clone()).await?;
    let wrong = || redis::RedisError::from((redis::ErrorKind::Parse, "the rate limiter's script answered in an unexpected shape"));
    if flat.len() != groups.iter().map(|g| 1 + g.keys.len()).sum::<usize>() {
        return Err(wrong());
    }
    let mut outcomes = vec![None; batch.len()];
    let mut at = 0;
    for g in &groups {
        let admitted = u64::try_from(flat[at]).map_err(|_| wrong())?;
        let ahead = &flat[at + 1..at + 1 + g.keys.len()];
        if admitted > g.members.len() as u64 {
            return Err(wrong());
        }
        for (n, &member) in (1..).zip(&g.members) {
            outcomes[member] = Some(gcra::nth(ahead, g.intervals, g.window, admitted, n));
        }
        at += 1 + g.keys.len();
    }
    // Every request belongs to exactly one group, so every place is filled.
    outcomes.into_iter().collect::<Option<Vec<_>>>().ok_or_else(wrong)
}
