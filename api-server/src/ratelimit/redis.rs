//! The shared limiter: one Lua script evaluates and records every key of a request in one
//! round trip, atomically, on Redis's own clock (so replicas with skewed clocks agree).

use redis::{Script, aio::ConnectionManager};

use super::gcra::{Outcome, params};
use crate::config::Quota;

/// KEYS: the request's buckets. ARGV: the window, then each key's emission interval (µs). Returns
/// {allowed, remaining, reset µs} with the same arithmetic as `gcra::evaluate`. Redis runs it on
/// every limited request, so it reads every key with one `MGET` (Lua's calls into Redis are
/// most of its cost).
const GCRA: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local window = tonumber(ARGV[1])
-- One read for every key (a missing one, false, starts at now); the list then holds the new TATs.
local tats = #KEYS > 0 and redis.call('MGET', unpack(KEYS)) or {}
local retry = 0
for i = 1, #KEYS do
  local tat = tonumber(tats[i]) or now
  if tat < now then tat = now end
  tat = tat + tonumber(ARGV[i + 1])
  tats[i] = tat
  if tat - now - window > retry then retry = tat - now - window end
end
if retry > 0 then
  return {0, 0, retry}
end
local remaining = -1
local reset = 0
for i = 1, #KEYS do
  local ahead = tats[i] - now
  -- ahead is at least one interval (>= 1 us), so the expiry is at least 1 ms.
  redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', math.ceil(ahead / 1000))
  local left = math.floor((window - ahead) / tonumber(ARGV[i + 1]))
  if remaining < 0 or left < remaining then remaining = left end
  if ahead > reset then reset = ahead end
end
return {1, remaining, reset}
";

/// The script, loaded once and run by hash (`EVALSHA`, falling back to `EVAL`).
pub struct RedisStore {
    conn: ConnectionManager,
    script: Script,
}

impl RedisStore {
    /// Uses `conn` (the shared, self-reconnecting connection).
    pub fn new(conn: ConnectionManager) -> Self {
        Self { conn, script: Script::new(GCRA) }
    }

    /// Evaluates and records one request against every key.
    pub async fn check(&self, keys: &[String], multipliers: &[u32], quota: Quota) -> Result<Outcome, redis::RedisError> {
        let (base, window) = params(quota);
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(window);
        for (key, m) in keys.iter().zip(multipliers) {
            invocation.key(key);
            invocation.arg((base / i64::from((*m).max(1))).max(1));
        }
        let mut conn = self.conn.clone();
        let (allowed, remaining, micros): (i64, i64, i64) = invocation.invoke_async(&mut conn).await?;
        let reset_secs = (micros.max(0) as u64).div_ceil(1_000_000).max(1);
        Ok(Outcome { allowed: allowed == 1, remaining: remaining.max(0) as u64, reset_secs })
    }
}
