//! The in-process limiter store, for a replica without Redis.

use std::{collections::HashMap, sync::Mutex, time::SystemTime};

use super::gcra::{self, Outcome};
use crate::config::Quota;

/// Keys beyond which expired entries are swept.
const SWEEP_AT: usize = 100_000;

/// TATs by key.
#[derive(Default)]
pub struct MemoryStore {
    tats: Mutex<HashMap<String, i64>>,
}

/// Microseconds since the epoch.
pub fn now_micros() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

impl MemoryStore {
    /// Evaluates and records one request against every key.
    pub fn check(&self, keys: &[String], multipliers: &[u32], quota: Quota) -> Outcome {
        let now = now_micros();
        let mut tats = self.tats.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if tats.len() > SWEEP_AT {
            tats.retain(|_, tat| *tat > now);
            // Still full of live keys: start over rather than sweep on every request.
            if tats.len() > SWEEP_AT {
                tats.clear();
            }
        }
        let current: Vec<Option<i64>> = keys.iter().map(|k| tats.get(k).copied()).collect();
        let (outcome, next) = gcra::evaluate(&current, multipliers, now, quota);
        for (key, tat) in keys.iter().zip(next) {
            tats.insert(key.clone(), tat);
        }
        outcome
    }
}
