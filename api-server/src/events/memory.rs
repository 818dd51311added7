//! The in-process history, for a single replica without Redis: a bounded buffer per project
//! with the same ID format and the same reset rule as the Redis stream. It lives as long as
//! the process: after a restart, a client resuming with an earlier ID gets a reset.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Mutex,
};

use uuid::Uuid;

use super::{Event, History, Retention, compare_ids};

struct Log {
    events: VecDeque<Event>,
    /// The first ID this process gave the project: an older one is from another history.
    first: String,
    /// Largest ID dropped from this log (the reset rule compares against it).
    max_dropped: Option<String>,
}

/// Histories by project.
pub struct MemoryBus {
    retention: Retention,
    state: Mutex<(HashMap<Uuid, Log>, (u64, u64))>,
    /// Outbox rows appended by the relay pass whose removal has not committed yet.
    relayed: Mutex<HashSet<i64>>,
}

impl MemoryBus {
    /// Empty.
    pub fn new(retention: Retention) -> Self {
        Self { retention, state: Mutex::new((HashMap::new(), (0, 0))), relayed: Mutex::default() }
    }

    /// Assigns the next ID and appends.
    pub fn append(&self, mut event: Event) -> Event {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (logs, last) = &mut *state;
        // Now, not the event's time: a relayed event recorded before a restart must not get an
        // ID a client of the earlier process may hold.
        let ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        *last = if ms > last.0 { (ms, 0) } else { (last.0, last.1 + 1) };
        event.id = format!("{}-{}", last.0, last.1);
        let log =
            logs.entry(event.project_id).or_insert_with(|| Log { events: VecDeque::new(), first: event.id.clone(), max_dropped: None });
        log.events.push_back(event.clone());
        while log.events.len() > self.retention.max_len {
            log.max_dropped = log.events.pop_front().map(|e| e.id);
        }
        event
    }

    /// Appends a relayed event unless its outbox row was appended already.
    pub fn append_once(&self, seq: i64, draft: Event) -> Option<Event> {
        if !self.relayed.lock().unwrap_or_else(|p| p.into_inner()).insert(seq) {
            return None;
        }
        Some(self.append(draft))
    }

    /// The relay pass committed: its rows are gone from the outbox.
    pub fn relay_committed(&self, seqs: &[i64]) {
        let mut relayed = self.relayed.lock().unwrap_or_else(|p| p.into_inner());
        for seq in seqs {
            relayed.remove(seq);
        }
    }

    /// Events after `after`, or a reset when continuity from `after` cannot be proven.
    pub fn history(&self, project: Uuid, after: Option<&str>) -> History {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(log) = state.0.get(&project) else {
            // Nothing recorded by this process: an ID from before is from another history.
            return if after.is_some() { History::Reset(Vec::new()) } else { History::Events(Vec::new()) };
        };
        let all = || log.events.iter().cloned().collect();
        let Some(after) = after else { return History::Events(all()) };
        let last = log.events.back().map_or(log.first.as_str(), |e| e.id.as_str());
        let trimmed_past = log.max_dropped.as_deref().is_some_and(|dropped| compare_ids(dropped, after).is_gt());
        if trimmed_past || compare_ids(after, &log.first).is_lt() || compare_ids(after, last).is_gt() {
            return History::Reset(all());
        }
        History::Events(log.events.iter().filter(|e| compare_ids(&e.id, after).is_gt()).cloned().collect())
    }
}
