//! The in-process history, for a single replica without Redis: a bounded buffer per project
//! with the same ID format and the same reset rule as the Redis stream.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use uuid::Uuid;

use super::{Event, History, Retention, compare_ids};

struct Log {
    events: VecDeque<Event>,
    /// Largest ID dropped from this log (the reset rule compares against it).
    max_dropped: Option<String>,
}

/// Histories by project.
pub struct MemoryBus {
    retention: Retention,
    state: Mutex<(HashMap<Uuid, Log>, (u64, u64))>,
}

impl MemoryBus {
    /// Empty.
    pub fn new(retention: Retention) -> Self {
        Self { retention, state: Mutex::new((HashMap::new(), (0, 0))) }
    }

    /// Assigns the next ID and appends.
    pub fn append(&self, mut event: Event) -> Event {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (logs, last) = &mut *state;
        let ms = u64::try_from(event.time.timestamp_millis()).unwrap_or(0);
        *last = if ms > last.0 { (ms, 0) } else { (last.0, last.1 + 1) };
        event.id = format!("{}-{}", last.0, last.1);
        let log = logs.entry(event.project_id).or_insert_with(|| Log { events: VecDeque::new(), max_dropped: None });
        log.events.push_back(event.clone());
        while log.events.len() > self.retention.max_len {
            log.max_dropped = log.events.pop_front().map(|e| e.id);
        }
        event
    }

    /// Events after `after`, or a reset when some were dropped.
    pub fn history(&self, project: Uuid, after: Option<&str>) -> History {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(log) = state.0.get(&project) else {
            return History::Events(Vec::new());
        };
        let Some(after) = after else { return History::Events(log.events.iter().cloned().collect()) };
        if log.max_dropped.as_deref().is_some_and(|dropped| compare_ids(dropped, after).is_gt()) {
            return History::Reset;
        }
        History::Events(log.events.iter().filter(|e| compare_ids(&e.id, after).is_gt()).cloned().collect())
    }
}
