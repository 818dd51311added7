//! The database the statements run on: its name in their spans, and the moment a connection to
//! it was last found dead.
//!
//! The pool does not test a connection before handing it out (a round trip per request).
//! Instead every statement's error is looked at ([`Backend::note`]): one that says the
//! connection is gone (a restart, a failover, a network cut) marks the moment, and the pool
//! then drops, unused, every idle connection opened before it ([`Backend::predates_loss`]), which
//! most likely died the same way. So a restart costs the statements on their way when it
//! happened and the one that found out, not one failed request per pooled connection.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use crate::client_span::Endpoint;

/// The database, as the statements see it.
#[derive(Debug)]
pub struct Backend {
    endpoint: Endpoint,
    since: Instant,
    /// Microseconds after `since` of the last loss, plus one (0: none yet).
    lost: AtomicU64,
}

impl Backend {
    /// The database at `endpoint`, with no connection lost yet.
    pub fn new(endpoint: Endpoint) -> Self {
        Self { endpoint, since: Instant::now(), lost: AtomicU64::new(0) }
    }

    /// How spans name it.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Marks now as a loss if `err` says the connection is gone: an I/O or protocol error, or
    /// SQLSTATE class 08 (connection exception) or 57P01–57P03 (the server shutting down,
    /// crashed, or starting up). Returns whether it did.
    pub fn note(&self, err: &sqlx::Error) -> bool {
        let gone = match err {
            sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
            _ => false,
        };
        if gone {
            let at = u64::try_from(self.since.elapsed().as_micros()).unwrap_or(u64::MAX - 1) + 1;
            self.lost.fetch_max(at, Ordering::Relaxed);
        }
        gone
    }

    /// Whether a connection `age` old was opened before the last loss.
    pub fn predates_loss(&self, age: Duration) -> bool {
        match self.lost.load(Ordering::Relaxed) {
            0 => false,
            lost => self.since.elapsed().saturating_sub(age) < Duration::from_micros(lost - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Backend;
    use crate::client_span::Endpoint;

    fn backend() -> Backend {
        Backend::new(Endpoint { namespace: "jeex".into(), address: "127.0.0.1".into(), port: 5432 })
    }

    #[test]
    fn only_connection_errors_mark_a_loss_and_only_older_connections_predate_it() {
        let b = backend();
        std::thread::sleep(Duration::from_millis(20));
        assert!(!b.predates_loss(Duration::from_millis(10)), "nothing was lost yet");
        b.note(&sqlx::Error::RowNotFound);
        b.note(&sqlx::Error::PoolTimedOut);
        assert!(!b.predates_loss(Duration::from_millis(15)), "neither error says a connection died");
        b.note(&sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)));
        assert!(b.predates_loss(Duration::from_millis(15)), "opened before the loss");
        std::thread::sleep(Duration::from_millis(20));
        assert!(!b.predates_loss(Duration::from_millis(10)), "opened after the loss");
    }
}
