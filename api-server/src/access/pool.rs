//! The connection pool: PostgreSQL connections opened on demand, handed out one at a time, and
//! taken back without a round trip.
//!
//! sqlx's own pool sends a `Sync` and waits for the answer on every connection it takes back,
//! after the response is out: one more round trip per request, for PostgreSQL and for us, and
//! one that waits without a limit on a peer that stopped answering (keeping its place in the
//! pool). This pool knows instead, from the statements themselves, whether a connection is fit
//! to reuse:
//! - a statement still on its way when its lease ends (the request was cancelled, a stream was
//!   left unfinished), or a transaction dropped without a commit (its `ROLLBACK` queued), is
//!   settled before the connection is reused: a task of its own reads the rest of the answer and
//!   waits until the connection is ready, keeping the connection's place in the pool meanwhile
//!   (so a storm of cancelled slow statements cannot open more sessions than the pool's size). A
//!   connection that does not settle within [`Limits::settle_timeout`] is closed;
//! - a statement that found the connection dead (or an error that ended the session) closes it,
//!   and the [`Backend`] marks the moment, so idle connections opened before it are dropped unused;
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
    postgres::{PgConnectOptions, PgDatabaseError, PgSeverity, PgTransactionManager},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::backend::Backend;

/// How long a connection may take to say goodbye, or [`Pool::close`] may wait for leases.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// How long a connection may take to finish a cancelled statement or roll back a dropped
    /// transaction before it is closed instead of reused.
    pub settle_timeout: Duration,
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

impl Live {
    /// `conn`, just opened, counted in `open` for as long as it exists.
    fn new(conn: PgConnection, open: &Arc<AtomicU32>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self { conn, opened: Instant::now(), _open: Counted(open.clone()) }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Idle {
    live: Live,
    since: Instant,
}

impl Idle {
    /// Past its lifetime or its idle time: to be closed, not reused.
    fn expired(&self, limits: &Limits) -> bool {
        self.live.opened.elapsed() >= limits.max_lifetime || self.since.elapsed() >= limits.idle_timeout
    }
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
            if shared.backend.predates_loss(idle.live.opened.elapsed()) {
                // Most likely dead the same way: not worth a goodbye.
                drop(idle);
            } else if idle.expired(&shared.limits) {
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
            Ok(Ok(conn)) => Ok(Lease::new(Live::new(conn, &shared.open), permit, shared.clone())),
        }
    }

    /// Connections open (in use or idle), and how many of them are idle.
    pub fn connections(&self) -> (u32, usize) {
        let idle = self.shared.idle.lock().unwrap_or_else(|e| e.into_inner()).len();
        (self.shared.open.load(Ordering::Relaxed), idle)
    }

    /// Closes the pool: no more leases; waits (at most 5 s) for those out to come back, then
    /// says goodbye to the idle connections (any still out close when they come back).
    pub async fn close(&self) {
        let shared = &self.shared;
        shared.closed.store(true, Ordering::Release);
        let all = shared.limits.max_connections;
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT, shared.permits.acquire_many(all)).await;
        shared.permits.close();
        let idle = std::mem::take(&mut *shared.idle.lock().unwrap_or_else(|e| e.into_inner()));
        let goodbyes = idle.into_iter().map(|i| tokio::time::timeout(GOODBYE_TIMEOUT, i.live.conn.close()));
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
            let _ = tokio::time::timeout(GOODBYE_TIMEOUT, conn.close()).await;
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
            let (expired, keep) = std::mem::take(&mut *idle).into_iter().partition(|i| i.expired(&shared.limits));
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
    state: State,
    /// A transaction was dropped: its `ROLLBACK` is queued on the connection.
    rolled_back: bool,
    permit: Option<OwnedSemaphorePermit>,
    shared: Arc<Shared>,
}

impl Lease {
    fn new(live: Live, permit: OwnedSemaphorePermit, shared: Arc<Shared>) -> Self {
        Self { live: Some(live), state: State::default(), rolled_back: false, permit: Some(permit), shared }
    }

    /// Runs `statement` on the connection, marked busy while it is on its way: when it ends, the
    /// connection is fit to reuse again unless the statement found it dead.
    pub(crate) async fn run<'a, T>(
        &'a mut self,
        statement: impl FnOnce(&'a mut PgConnection) -> BoxFuture<'a, Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let (conn, state, db) = self.start_split();
        let outcome = statement(conn).await;
        match &outcome {
            Ok(_) => state.busy = false,
            Err(e) => state.failed(e, db),
        }
        outcome
    }

    /// Split access for a statement's stream: the connection, and its [`State`], marked busy
    /// here (the stream marks it when it ends or fails).
    pub(crate) fn start_split(&mut self) -> (&mut PgConnection, &mut State, &Backend) {
        self.state.busy = true;
        let live = self.live.as_mut().expect("a lease holds its connection until dropped");
        (&mut live.conn, &mut self.state, &self.shared.backend)
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

/// What a lease knows of its connection's state.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// A statement (or a transaction's start or end) was sent and has not finished.
    pub(crate) busy: bool,
    /// A statement found the connection dead, or its session ended.
    dead: bool,
}

impl State {
    /// The statement on its way failed with `err`.
    pub(crate) fn failed(&mut self, err: &sqlx::Error, db: &Backend) {
        self.busy = false;
        let gone = db.note(err);
        self.dead |= gone || ends_session(err);
    }
}

/// Whether `err` is a FATAL or PANIC error: PostgreSQL ended the session after sending it (an
/// idle-session timeout, the database dropped, an administrator's `pg_terminate_backend`).
fn ends_session(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|e| e.try_downcast_ref::<PgDatabaseError>())
        .is_some_and(|e| matches!(e.severity(), PgSeverity::Fatal | PgSeverity::Panic))
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(mut live) = self.live.take() else { return };
        if self.state.dead {
            return;
        }
        if !self.state.busy && !self.rolled_back {
            self.shared.put_back(live);
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (shared, permit) = (self.shared.clone(), self.permit.take());
        runtime.spawn(async move {
            // `ping` sends what is queued (a ROLLBACK), then reads every answer still due,
            // a cancelled statement's too, until the connection is ready.
            match tokio::time::timeout(shared.limits.settle_timeout, live.conn.ping()).await {
                Ok(Ok(())) if PgTransactionManager::get_transaction_depth(&live.conn) == 0 => shared.put_back(live),
                Ok(Err(e)) => {
                    shared.backend.note(&e);
                }
                _ => {}
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
