//! Where SQL runs: a transaction ([`Tx`]), one connection ([`Conn`]) or the pool ([`Pooled`]), each an sqlx executor that
//! gives every statement its client span ([`crate::client_span::sql`]) when the request or
//! step running it is traced. Every query of the server goes through one of the three, so none
//! is missing from a trace.

use std::{
    borrow::Cow,
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

use futures_util::{FutureExt, Stream, StreamExt, TryStreamExt, future::BoxFuture, stream::BoxStream};
use sqlx::{
    Describe, Either, Execute, Executor, Postgres, TransactionManager,
    postgres::{PgQueryResult, PgRow, PgStatement, PgTransactionManager, PgTypeInfo},
};
use tracing::{Instrument, Span};

use super::{
    backend::Backend,
    pool::{Lease, Pool, State},
};
use crate::client_span;

/// A transaction whose statements are traced. Dropped without [`Tx::commit`], it rolls back
/// (the pool sends the `ROLLBACK` before the connection is reused).
pub struct Tx {
    lease: Lease,
    /// Begun and neither committed nor rolled back.
    open: bool,
}

impl fmt::Debug for Tx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tx")
    }
}

impl Tx {
    /// Takes a connection from `pool` and begins.
    pub(crate) async fn begin(pool: &Pool) -> Result<Self, sqlx::Error> {
        Self::started(pool, None).await
    }

    /// Takes a connection from `pool` and sends `statement`, which must leave it in a
    /// transaction (sqlx checks): one simple-protocol message, so one round trip however many
    /// statements it holds.
    pub(crate) async fn begin_with(pool: &Pool, statement: String) -> Result<Self, sqlx::Error> {
        Self::started(pool, Some(statement)).await
    }

    /// Runs the start in a task of its own, so it finishes even when the request that asked
    /// for it goes away (a timeout, a client that hung up): dropped while waiting for the
    /// server's answer, the connection would be in a transaction nobody knows of (the pool would
    /// close it, but the work would be lost for nothing). Finished, a `Tx` nobody takes rolls back.
    async fn started(pool: &Pool, statement: Option<String>) -> Result<Self, sqlx::Error> {
        let span = client_span::sql(pool.backend().endpoint(), "BEGIN");
        let pool = pool.clone();
        let begin = async move {
            let mut lease = pool.acquire().await?;
            lease.run(|conn| PgTransactionManager::begin(conn, statement.map(Cow::Owned))).await?;
            Ok(Self { lease, open: true })
        };
        let begun = tokio::spawn(begin.instrument(span.clone()))
            .await
            .unwrap_or_else(|_| Err(sqlx::Error::Io(std::io::Error::other("the transaction's start was interrupted"))));
        begun.inspect_err(|e| client_span::sql_failed(&span, e))
    }

    /// Commits.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let span = client_span::sql(self.lease.backend().endpoint(), "COMMIT");
        let committed = self.lease.run(PgTransactionManager::commit).instrument(span.clone()).await;
        if committed.is_ok() {
            self.open = false;
        }
        committed.inspect_err(|e| client_span::sql_failed(&span, e))
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.open {
            self.lease.start_rollback();
        }
    }
}

/// One pooled connection for a few statements in a row, each its own transaction (a write's
/// check, then the write). Dropped, it returns to the pool.
pub struct Conn {
    lease: Lease,
}

impl Conn {
    /// Takes a connection from `pool`.
    pub(crate) async fn acquire(pool: &Pool) -> Result<Self, sqlx::Error> {
        Ok(Self { lease: pool.acquire().await? })
    }
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Conn")
    }
}

/// The pool, as an executor of single statements (each on a connection of its own).
#[derive(Clone, Copy)]
pub struct Pooled<'a> {
    pool: &'a Pool,
}

impl<'a> Pooled<'a> {
    /// `pool`, each statement on a connection of its own.
    pub fn new(pool: &'a Pool) -> Self {
        Self { pool }
    }
}

impl fmt::Debug for Pooled<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pooled")
    }
}

/// A statement's rows (or results), inside its span; when they end, the lease's connection is
/// free again (unless the statement found it dead).
struct InSpan<'e, T> {
    inner: BoxStream<'e, Result<T, sqlx::Error>>,
    span: Span,
    state: &'e mut State,
    db: &'e Backend,
}

impl<T> Stream for InSpan<'_, T> {
    type Item = Result<T, sqlx::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        let next = this.inner.as_mut().poll_next(cx);
        match &next {
            Poll::Ready(Some(Err(e))) => {
                this.state.failed(e, this.db);
                client_span::sql_failed(&this.span, e);
            }
            Poll::Ready(None) => this.state.busy = false,
            _ => {}
        }
        next
    }
}

type Step = Either<PgQueryResult, PgRow>;

/// The statement's rows on `lease`'s connection, inside `span`.
fn lease_fetch_many<'e, 'q: 'e, E>(span: Span, lease: &'e mut Lease, query: E) -> BoxStream<'e, Result<Step, sqlx::Error>>
where
    E: 'q + Execute<'q, Postgres>,
{
    let (conn, state, db) = lease.start_split();
    Box::pin(InSpan { inner: conn.fetch_many(query), span, state, db })
}

/// The statement's one row (or none) on `lease`'s connection, inside `span`.
fn lease_fetch_optional<'e, 'q: 'e, E>(span: Span, lease: &'e mut Lease, query: E) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
where
    E: 'q + Execute<'q, Postgres>,
{
    in_span(span, lease.run(move |conn| conn.fetch_optional(query)).boxed())
}

fn in_span<'e, T: Send + 'e>(span: Span, inner: BoxFuture<'e, Result<T, sqlx::Error>>) -> BoxFuture<'e, Result<T, sqlx::Error>> {
    if span.is_none() {
        return inner;
    }
    inner.instrument(span.clone()).map(move |result| result.inspect_err(|e| client_span::sql_failed(&span, e))).boxed()
}

/// The executor methods of a [`Tx`] and a [`Conn`]: each statement on the lease's connection,
/// inside its span.
macro_rules! lease_executor {
    ($this:ident => $lease:expr) => {
        type Database = Postgres;

        fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Step, sqlx::Error>>
        where
            'c: 'e,
            E: 'q + Execute<'q, Postgres>,
        {
            let $this = self;
            let span = client_span::sql($lease.backend().endpoint(), query.sql());
            lease_fetch_many(span, &mut $lease, query)
        }

        fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
        where
            'c: 'e,
            E: 'q + Execute<'q, Postgres>,
        {
            let $this = self;
            let span = client_span::sql($lease.backend().endpoint(), query.sql());
            lease_fetch_optional(span, &mut $lease, query)
        }

        fn prepare_with<'e, 'q: 'e>(self, sql: &'q str, parameters: &'e [PgTypeInfo]) -> BoxFuture<'e, Result<PgStatement<'q>, sqlx::Error>>
        where
            'c: 'e,
        {
            let $this = self;
            $lease.run(move |conn| conn.prepare_with(sql, parameters)).boxed()
        }

        fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>>
        where
            'c: 'e,
        {
            let $this = self;
            $lease.run(move |conn| conn.describe(sql)).boxed()
        }
    };
}

impl<'c> Executor<'c> for &'c mut Tx {
    lease_executor!(this => this.lease);
}

impl<'c> Executor<'c> for &'c mut Conn {
    lease_executor!(this => this.lease);
}

/// Runs `$statement` (a closure over the connection) on a connection of the pool's own, given
/// back as soon as the statement is done.
macro_rules! on_own_lease {
    ($pool:expr, $statement:expr) => {{
        let pool = $pool;
        async move { pool.acquire().await?.run($statement).await }
    }};
}

/// Each statement on a connection of its own, given back as soon as the statement is done. A
/// statement's rows are read whole before they are handed on (the connection is back in the pool
/// by then): single statements here return a row or a page.
impl<'c> Executor<'c> for Pooled<'c> {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Step, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let span = client_span::sql(self.pool.backend().endpoint(), query.sql());
        let run = on_own_lease!(self.pool, move |conn| conn.fetch_many(query).try_collect::<Vec<Step>>().boxed());
        futures_util::stream::once(in_span(span, run.boxed()))
            .flat_map(|steps| {
                let items: Vec<Result<Step, sqlx::Error>> = match steps {
                    Ok(steps) => steps.into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                };
                futures_util::stream::iter(items)
            })
            .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let span = client_span::sql(self.pool.backend().endpoint(), query.sql());
        in_span(span, on_own_lease!(self.pool, move |conn| conn.fetch_optional(query)).boxed())
    }

    fn prepare_with<'e, 'q: 'e>(self, sql: &'q str, parameters: &'e [PgTypeInfo]) -> BoxFuture<'e, Result<PgStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        on_own_lease!(self.pool, move |conn| conn.prepare_with(sql, parameters)).boxed()
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>>
    where
        'c: 'e,
    {
        on_own_lease!(self.pool, move |conn| conn.describe(sql)).boxed()
    }
}
