//! The shared limiter: a Lua script evaluates and records every key of a request atomically,
//! on Redis's own clock (so replicas with skewed clocks agree), one round trip per request.
//!
//! Requests that arrive while a round trip is under way share the next one: a batch goes out
//! as soon as the previous answer is in, holding whatever queued meanwhile (nothing waits for
//! a timer, so a lone request goes at once). Under load, Redis runs one script and the
//! process makes one write and one read for many requests instead of one each.

use std::sync::Arc;

use redis::{Script, aio::ConnectionManager};
use tokio::sync::{mpsc, oneshot};

use super::gcra::{Outcome, params};
use crate::config::Quota;

/// Requests evaluated by one script run at most.
const MAX_BATCH: usize = 64;

/// ARGV: the request count, then per request its window, its key count k and its keys'
/// emission intervals (µs); KEYS: every request's keys in order. The requests are evaluated
/// one after the other, exactly as separate runs would (a key two requests share sees the
/// first one's count), with the arithmetic of `gcra::evaluate`. Returns {allowed, remaining,
/// reset µs} per request, flattened. Every key is read with one `MGET` and each changed key
/// written once: Lua's calls into Redis are most of its cost.
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
for r = 1, tonumber(ARGV[1]) do
  local window, n = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local next = {}
  local retry = 0
  for j = 1, n do
    local v = tat[KEYS[k + j]]
    if v < now then v = now end
    v = v + tonumber(ARGV[a + 1 + j])
    next[j] = v
    if v - now - window > retry then retry = v - now - window end
  end
  if retry > 0 then
    out[#out + 1] = 0; out[#out + 1] = 0; out[#out + 1] = retry
  else
    local remaining, reset = -1, 0
    for j = 1, n do
      local key, ahead = KEYS[k + j], next[j] - now
      tat[key] = next[j]
      changed[key] = true
      local left = math.floor((window - ahead) / tonumber(ARGV[a + 1 + j]))
      if remaining < 0 or left < remaining then remaining = left end
      if ahead > reset then reset = ahead end
    end
    out[#out + 1] = 1; out[#out + 1] = remaining; out[#out + 1] = reset
  end
  a = a + 2 + n
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
}

/// The Redis store: hands requests to the batching task.
pub struct RedisStore {
    queue: mpsc::UnboundedSender<Pending>,
}

impl RedisStore {
    /// Uses `conn` (the shared, self-reconnecting connection). Starts the batching task, which
    /// ends when the store is dropped.
    pub fn new(conn: ConnectionManager) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(batches(pending, conn, Script::new(GCRA)));
        Self { queue }
    }

    /// Evaluates and records one request against every key.
    pub async fn check(&self, keys: Vec<String>, multipliers: &[u32], quota: Quota) -> Result<Outcome, StoreError> {
        let (base, window) = params(quota);
        let intervals = multipliers.iter().map(|m| (base / i64::from((*m).max(1))).max(1)).collect();
        let (reply, answer) = oneshot::channel();
        let closed = || Arc::new(redis::RedisError::from((redis::ErrorKind::Client, "the rate limiter's Redis task has stopped")));
        self.queue.send(Pending { keys, intervals, window, reply }).map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

/// Sends one batch at a time: whatever queued while the last one was out.
async fn batches(mut pending: mpsc::UnboundedReceiver<Pending>, conn: ConnectionManager, script: Script) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match run(&conn, &script, &batch).await {
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

/// One script run for `batch`; an outcome per request, in order.
async fn run(conn: &ConnectionManager, script: &Script, batch: &[Pending]) -> Result<Vec<Outcome>, redis::RedisError> {
    let mut invocation = script.prepare_invoke();
    invocation.arg(batch.len());
    for p in batch {
        invocation.arg(p.window).arg(p.keys.len());
        for (key, interval) in p.keys.iter().zip(&p.intervals) {
            invocation.key(key).arg(interval);
        }
    }
    let flat: Vec<i64> = invocation.invoke_async(&mut conn.clone()).await?;
    if flat.len() != batch.len() * 3 {
        return Err(redis::RedisError::from((
            redis::ErrorKind::Parse,
            "the rate limiter's script answered for the wrong number of requests",
        )));
    }
    Ok(flat
        .chunks_exact(3)
        .map(|o| Outcome { allowed: o[0] == 1, remaining: o[1].max(0) as u64, reset_secs: (o[2].max(0) as u64).div_ceil(1_000_000).max(1) })
        .collect())
}
