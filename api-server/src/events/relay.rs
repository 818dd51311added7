//! The relay: moves recorded events from the PostgreSQL outbox to the event history, oldest
//! first, in batches. Every replica runs one; a transaction-level advisory lock lets one pass
//! run at a time across them, so events leave in the order they were recorded. A pass deletes
//! the rows it appended in the same transaction; when the history is unreachable (Redis down)
//! the transaction rolls back, the rows stay, and the relay retries every second at most —
//! events are delayed, never dropped. A pass retried after its appends but before its commit
//! skips what it appended already ([`EventBus::append_relayed`]), so each event enters the
//! history once.

use std::time::Duration;

use tokio::{sync::watch, task::JoinHandle};

use super::{BusError, EventBus};
use crate::db::{Database, event_outbox};

/// Events relayed per transaction.
pub const BATCH: i64 = 500;
/// How long an idle relay waits for a local recording before looking anyway (events recorded
/// on another replica that is not relaying itself).
const IDLE: Duration = Duration::from_millis(100);
/// How long to wait when another replica holds the relay lock.
const BUSY: Duration = Duration::from_millis(2);
/// First and longest wait after a failure.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(1));

/// Why a pass failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// PostgreSQL.
    #[error("database: {}", crate::db::describe(.0))]
    Database(#[from] sqlx::Error),
    /// The history (Redis).
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// What one pass did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pass {
    /// Another replica is relaying.
    Busy,
    /// Relayed this many events.
    Relayed(usize),
}

/// Relays one batch.
pub async fn pass(db: &Database, bus: &EventBus) -> Result<Pass, RelayError> {
    let Some(mut tx) = event_outbox::begin_relay(db).await? else { return Ok(Pass::Busy) };
    let batch = tx.oldest(BATCH).await?;
    if batch.is_empty() {
        return Ok(Pass::Relayed(0));
    }
    let seqs = batch.seqs();
    bus.append_relayed(batch).await?;
    tx.remove(&seqs).await?;
    tx.commit().await?;
    bus.relay_committed(&seqs).await;
    Ok(Pass::Relayed(seqs.len()))
}

/// The running relay; stops when dropped.
pub struct Relay {
    handle: Option<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
}

impl Relay {
    /// Stops between passes (a pass in flight rolls back; another replica, or this one after
    /// a restart, relays its events).
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(handle) = self.handle.take() {
            handle.abort();
            let _ = handle.await;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            handle.abort();
        }
    }
}

/// Starts relaying `db`'s outbox to `bus`.
pub fn spawn(db: Database, bus: EventBus) -> Relay {
    let (shutdown, stopped) = watch::channel(false);
    Relay { handle: Some(tokio::spawn(run(db, bus, stopped))), shutdown }
}

async fn run(db: Database, bus: EventBus, mut shutdown: watch::Receiver<bool>) {
    let mut delay = BACKOFF.0;
    let mut failing = false;
    while !*shutdown.borrow() {
        let wait = match pass(&db, &bus).await {
            Ok(Pass::Busy) => BUSY,
            Ok(Pass::Relayed(n)) => {
                if failing {
                    tracing::info!("relaying events again");
                    failing = false;
                }
                delay = BACKOFF.0;
                if n as i64 == BATCH {
                    continue;
                }
                tokio::select! {
                    () = bus.wait_recorded() => {}
                    () = tokio::time::sleep(IDLE) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "events cannot be relayed; they wait in PostgreSQL and follow once this recovers");
                    failing = true;
                }
                let wait = delay;
                delay = (delay * 2).min(BACKOFF.1);
                wait
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
}
