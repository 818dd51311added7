//! The connection pool: PostgreSQL connections opened on demand, handed out one at a time, and
//! taken back without a round trip.
//!
//! sqlx's own pool sends a `Sync` and waits for the answer on every connection it takes back,
//! after the response is out: one more round trip per request, for PostgreSQL and for us, and
//! one that waits without a limit on a peer that stopped answering (keeping its place in the
//! pool). This pool knows instead, from the statements themselves, whether a connection is fit
//! to reuse:
//! - a statement still on its way when its lease ends (the request was cancelled, a stream was
//!   left unfinished) leaves the connection in an unknown state: it is closed, not reused;
//! - a transaction dropped without a commit has its `ROLLBACK` queued: a task of its own sends it
//!   (bounded by [`SETTLE_TIMEOUT`]) before the connection is reused;
//! - a statement that found the connection dead closes it, and the [`Backend`] marks the moment,
//!   so idle connections opened before it are dropped unused;
//! - a connection past its lifetime or idle time is closed when next looked at, and a sweep closes
//!   idle ones on a quiet server too.

use std::{
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::future::BoxFuture;
use sqlx::{
    ConnectOptions, Connection, PgConnection, TransactionManager,
    postgres::{PgConnectOptions, PgTransactionManager},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::backend::Backend;

/// How long a connection may take to roll back a dropped transaction, or to say goodbye, before
/// it is closed without waiting.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How many connections the pool opens, how long a caller waits for one, and how long one lives.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most connections open at once.
    pub max_connections: u32,
    /// How long [`Pool::acquire`] waits for a connection, opening one included.
    pub acquire_timeout: Duration,
    /// Connections older than this are closed instead of reused.
    pub max_lifetime: Duration,
    /// Connections idle longer than this are closed.
    pub idle_timeout: Duration,
}

/// The pool. Cloning shares it.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    options: PgConnectOptions,
    limits: Limits,
    backend: Arc<Backend>,
    /// One permit per connection that may be open; a lease holds one.
    permits: Arc<Semaphore>,
    /// Idle connections, the most recently used last (taken first, so the others age out).
    idle: Mutex<Vec<Idle>>,
    open: Arc<AtomicU32>,
    closed: AtomicBool,
}

/// A connection and when it was opened; while it exists it counts as open.
struct Live {
    conn: PgConnection,
    opened: Instant,
    _open: Counted,
}

struct Counted(Arc<AtomicU32>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Idle {
    live: Live,
    since: Instant,
}

impl Pool {
    /// A pool connecting with `options` lazily, on the first [`Pool::acquire`] that finds no
    /// idle connection. Inside a Tokio runtime it also starts the sweep that closes idle
    /// connections past their time.
    pub fn new(options: PgConnectOptions, limits: Limits, backend: Arc<Backend>) -> Self {
        // A u32 always fits (tokio's limit is usize::MAX >> 3).
        let max = usize::try_from(limits.max_connections).unwrap_or(Semaphore::MAX_PERMITS);
        let shared = Arc::new(Shared {
            options,
            limits,
            backend,
            permits: Arc::new(Semaphore::new(max)),
            idle: Mutex::new(Vec::new()),
            open: Arc::new(AtomicU32::new(0)),
            closed: AtomicBool::new(false),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep(Arc::downgrade(&shared)));
        }
        Self { shared }
    }

    /// The database, as the statements see it.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.shared.backend
    }

    /// A connection: an idle one still fit to use, or a new one. Waits at most the acquire
    /// timeout in all (`PoolTimedOut`).
    pub async fn acquire(&self) -> Result<Lease, sqlx::Error> {
        let shared = &self.shared;
        let deadline = tokio::time::Instant::now() + shared.limits.acquire_timeout;
        let permit = match tokio::time::timeout_at(deadline, shared.permits.clone().acquire_owned()).await {
            Err(_) => return Err(sqlx::Error::PoolTimedOut),
            Ok(Err(_)) => return Err(sqlx::Error::PoolClosed),
            Ok(Ok(permit)) => permit,
        };
        if shared.closed.load(Ordering::Acquire) {
            return Err(sqlx::Error::PoolClosed);
        }
        loop {
            let next = shared.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some(idle) = next else { break };
            let age = idle.live.opened.elapsed();
            if shared.backend.predates_loss(age) {
                // Most likely dead the same way: not worth a goodbye.
                drop(idle);
            } else if age >= shared.limits.max_lifetime || idle.since.elapsed() >= shared.limits.idle_timeout {
                retire(idle.live);
            } else {
                return Ok(Lease::new(idle.live, permit, shared.clone()));
            }
        }
        let connect = shared.options.connect();
        match tokio::time::timeout_at(deadline, connect).await {
            Err(_) => Err(sqlx::Error::PoolTimedOut),
            Ok(Err(e)) => {
                shared.backend.note(&e);
                Err(e)
            }
            Ok(Ok(conn)) => {
                shared.open.fetch_add(1, Ordering::Relaxed);
                let live = Live { conn, opened: Instant::now(), _open: Counted(shared.open.clone()) };
                Ok(Lease::new(live, permit, shared.clone()))
            }
        }
    }

    /// Connections open (in use or idle), and how many of them are idle.
    pub fn connections(&self) -> (u32, usize) {
        let idle = self.shared.idle.lock().unwrap_or_else(|e| e.into_inner()).len();
        (self.shared.open.load(Ordering::Relaxed), idle)
    }

    /// Closes the pool: no more leases; waits (at most [`SETTLE_TIMEOUT`]) for those out to come
    /// back, then closes every connection.
    pub async fn close(&self) {
        let shared = &self.shared;
        shared.closed.store(true, Ordering::Release);
        let all = shared.limits.max_connections;
        let _ = tokio::time::timeout(SETTLE_TIMEOUT, shared.permits.acquire_many(all)).await;
        shared.permits.close();
        let idle = std::mem::take(&mut *shared.idle.lock().unwrap_or_else(|e| e.into_inner()));
        let goodbyes = idle.into_iter().map(|i| tokio::time::timeout(SETTLE_TIMEOUT, i.live.conn.close()));
        futures_util::future::join_all(goodbyes).await;
    }
}

impl Shared {
    /// Takes a connection back, fit for reuse.
    fn put_back(&self, live: Live) {
        if self.closed.load(Ordering::Acquire) {
            retire(live);
            return;
        }
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(Idle { live, since: Instant::now() });
    }
}

/// Closes `live` politely (a `Terminate` message), in a task of its own, when there is a runtime.
fn retire(live: Live) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let Live { conn, _open, .. } = live;
        runtime.spawn(async move {
            let _ = tokio::time::timeout(SETTLE_TIMEOUT, conn.close()).await;
            drop(_open);
        });
    }
}

/// Closes idle connections past their idle time or lifetime, so a quiet server gives them back
/// too; ends with the pool.
async fn sweep(pool: Weak<Shared>) {
    let every = match pool.upgrade() {
        Some(shared) => {
            (shared.limits.idle_timeout.min(shared.limits.max_lifetime) / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
        }
        None => return,
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(shared) = pool.upgrade() else { return };
        if shared.closed.load(Ordering::Acquire) {
            return;
        }
        let expired: Vec<Idle> = {
            let mut idle = shared.idle.lock().unwrap_or_else(|e| e.into_inner());
            let (keep, expired) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|i| i.since.elapsed() < shared.limits.idle_timeout && i.live.opened.elapsed() < shared.limits.max_lifetime);
            *idle = keep;
            expired
        };
        for i in expired {
            retire(i.live);
        }
    }
}

/// One connection, lent out; it goes back to the pool when dropped (see the module's doc for
/// when it is closed instead).
pub struct Lease {
    live: Option<Live>,
    /// A statement (or a transaction's start or end) was sent and has not finished.
    busy: bool,
    /// A transaction was dropped: its `ROLLBACK` is queued on the connection.
    rolled_back: bool,
    permit: Option<OwnedSemaphorePermit>,
    shared: Arc<Shared>,
}

impl Lease {
    fn new(live: Live, permit: OwnedSemaphorePermit, shared: Arc<Shared>) -> Self {
        Self { live: Some(live), busy: false, rolled_back: false, permit: Some(permit), shared }
    }

    /// Runs `statement` on the connection, marked busy while it is on its way: when it ends, the
    /// connection is fit to reuse again unless the statement found it dead.
    pub(crate) async fn run<'a, T>(
        &'a mut self,
        statement: impl FnOnce(&'a mut PgConnection) -> BoxFuture<'a, Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let (conn, busy, db) = self.start_split();
        let outcome = statement(conn).await;
        *busy = match &outcome {
            Ok(_) => false,
            Err(e) => db.note(e),
        };
        outcome
    }

    /// Split access for a statement's stream: the connection, and the flag saying a statement
    /// is on its way on it (set here; the stream clears it when it ends).
    pub(crate) fn start_split(&mut self) -> (&mut PgConnection, &mut bool, &Backend) {
        self.busy = true;
        let live = self.live.as_mut().expect("a lease holds its connection until dropped");
        (&mut live.conn, &mut self.busy, &self.shared.backend)
    }

    /// Queues the `ROLLBACK` of the open transaction (a transaction dropped without commit); it
    /// is sent before the connection is reused.
    pub(crate) fn start_rollback(&mut self) {
        if let Some(live) = self.live.as_mut() {
            PgTransactionManager::start_rollback(&mut live.conn);
            self.rolled_back = true;
        }
    }

    /// The database, as the statements see it.
    pub(crate) fn backend(&self) -> &Backend {
        &self.shared.backend
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(mut live) = self.live.take() else { return };
        if self.busy {
            // Cancelled mid-statement: what the connection says next is unknown. Close it.
            return;
        }
        if !self.rolled_back {
            self.shared.put_back(live);
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (shared, permit) = (self.shared.clone(), self.permit.take());
        runtime.spawn(async move {
            // `ping` flushes the queued ROLLBACK and waits until the connection is ready.
            if let Ok(Ok(())) = tokio::time::timeout(SETTLE_TIMEOUT, live.conn.ping()).await {
                shared.put_back(live);
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
