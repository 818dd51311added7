//! Where SQL runs: a transaction ([`Tx`]), one connection ([`Conn`]) or the pool ([`Pooled`]), each an sqlx executor that
//! gives every statement its client span ([`crate::client_span::sql`]) when the request or
//! step running it is traced. Every query of the server goes through one of the three, so none
//! is missing from a trace.

use std::{
    fmt,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::{FutureExt, Stream, future::BoxFuture, stream::BoxStream};
use sqlx::{
    Describe, Either, Execute, Executor, PgPool, Postgres, Transaction,
    pool::PoolConnection,
    postgres::{PgQueryResult, PgRow, PgStatement, PgTypeInfo},
};
use tracing::{Instrument, Span};

use super::backend::Backend;
use crate::client_span;

/// A transaction whose statements are traced. Dropped without [`Tx::commit`], it rolls back.
pub struct Tx {
    tx: Transaction<'static, Postgres>,
    db: Arc<Backend>,
}

impl fmt::Debug for Tx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tx")
    }
}

impl Tx {
    /// Takes a connection from `pool` and begins.
    pub(crate) async fn begin(pool: &PgPool, db: &Arc<Backend>) -> Result<Self, sqlx::Error> {
        let pool = pool.clone();
        Self::started(db, async move { pool.begin().await }).await
    }

    /// Takes a connection from `pool` and sends `statement`, which must leave it in a
    /// transaction (sqlx checks): one simple-protocol message, so one round trip however many
    /// statements it holds.
    pub(crate) async fn begin_with(pool: &PgPool, db: &Arc<Backend>, statement: String) -> Result<Self, sqlx::Error> {
        let pool = pool.clone();
        Self::started(db, async move { pool.begin_with(statement).await }).await
    }

    /// Runs `begin` in a task of its own, so it finishes even when the request that asked
    /// for it goes away (a timeout, a client that hung up): dropped while waiting for the
    /// server's answer, sqlx would hand the connection back to the pool inside a transaction it
    /// does not know of (it counts the transaction only once the server confirmed it), with
    /// this scope's settings in it. Finished, a `Transaction` nobody takes rolls back.
    async fn started(
        db: &Arc<Backend>,
        begin: impl Future<Output = Result<Transaction<'static, Postgres>, sqlx::Error>> + Send + 'static,
    ) -> Result<Self, sqlx::Error> {
        let span = client_span::sql(db.endpoint(), "BEGIN");
        let begun = tokio::spawn(begin.instrument(span.clone()))
            .await
            .unwrap_or_else(|_| Err(sqlx::Error::Io(std::io::Error::other("the transaction's start was interrupted"))));
        let tx = begun.inspect_err(|e| {
            db.note(e);
            client_span::sql_failed(&span, e);
        })?;
        Ok(Self { tx, db: db.clone() })
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        let span = client_span::sql(self.db.endpoint(), "COMMIT");
        self.tx.commit().instrument(span.clone()).await.inspect_err(|e| {
            self.db.note(e);
            client_span::sql_failed(&span, e);
        })
    }
}

/// One pooled connection for a few statements in a row, each its own transaction (a write's
/// check, then the write). Dropped, it returns to the pool.
pub struct Conn {
    conn: PoolConnection<Postgres>,
    db: Arc<Backend>,
}

impl Conn {
    /// Takes a connection from `pool`.
    pub(crate) async fn acquire(pool: &PgPool, db: &Arc<Backend>) -> Result<Self, sqlx::Error> {
        let conn = pool.acquire().await.inspect_err(|e| db.note(e))?;
        Ok(Self { conn, db: db.clone() })
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
    pool: &'a PgPool,
    db: &'a Backend,
}

impl<'a> Pooled<'a> {
    /// `pool`, with spans naming `db`.
    pub(crate) fn new(pool: &'a PgPool, db: &'a Backend) -> Self {
        Self { pool, db }
    }
}

impl fmt::Debug for Pooled<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pooled")
    }
}

/// A statement's rows (or results), inside its span, its error noted.
struct InSpan<'e, T> {
    inner: BoxStream<'e, Result<T, sqlx::Error>>,
    span: Span,
    db: &'e Backend,
}

impl<T> Stream for InSpan<'_, T> {
    type Item = Result<T, sqlx::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        let next = this.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Err(e))) = &next {
            this.db.note(e);
            client_span::sql_failed(&this.span, e);
        }
        next
    }
}

type Step = Either<PgQueryResult, PgRow>;

fn fetch_many<'e, T: Send + 'e>(
    span: Span,
    db: &'e Backend,
    inner: BoxStream<'e, Result<T, sqlx::Error>>,
) -> BoxStream<'e, Result<T, sqlx::Error>> {
    Box::pin(InSpan { inner, span, db })
}

fn fetch_optional<'e>(
    span: Span,
    db: &'e Backend,
    inner: BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>,
) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>> {
    if span.is_none() {
        return inner.map(move |result| result.inspect_err(|e| db.note(e))).boxed();
    }
    inner
        .instrument(span.clone())
        .map(move |result| {
            result.inspect_err(|e| {
                db.note(e);
                client_span::sql_failed(&span, e);
            })
        })
        .boxed()
}

/// The executor methods of each, each handing the statement to `$inner` inside its span.
macro_rules! traced_executor {
    ($this:ident => $inner:expr, $db:expr) => {
        type Database = Postgres;

        fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Step, sqlx::Error>>
        where
            'c: 'e,
            E: 'q + Execute<'q, Postgres>,
        {
            let $this = self;
            let span = client_span::sql($db.endpoint(), query.sql());
            fetch_many(span, $db, $inner.fetch_many(query))
        }

        fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
        where
            'c: 'e,
            E: 'q + Execute<'q, Postgres>,
        {
            let $this = self;
            let span = client_span::sql($db.endpoint(), query.sql());
            fetch_optional(span, $db, $inner.fetch_optional(query))
        }

        fn prepare_with<'e, 'q: 'e>(self, sql: &'q str, parameters: &'e [PgTypeInfo]) -> BoxFuture<'e, Result<PgStatement<'q>, sqlx::Error>>
        where
            'c: 'e,
        {
            let $this = self;
            $inner.prepare_with(sql, parameters)
        }

        fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>>
        where
            'c: 'e,
        {
            let $this = self;
            $inner.describe(sql)
        }
    };
}

impl<'c> Executor<'c> for &'c mut Tx {
    traced_executor!(this => &mut *this.tx, &this.db);
}

impl<'c> Executor<'c> for &'c mut Conn {
    traced_executor!(this => &mut *this.conn, &this.db);
}

impl<'c> Executor<'c> for Pooled<'c> {
    traced_executor!(this => this.pool, this.db);
}
