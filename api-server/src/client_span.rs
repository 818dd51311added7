//! Client spans: one span for each call the server makes to PostgreSQL, Redis, Qdrant or an
//! HTTP endpoint, named and attributed by the OpenTelemetry semantic conventions, as a child of
//! the request or worker step that makes it.
//!
//! They are made only inside a sampled trace. With export off there is no trace context at
//! all, and the same holds for background loops that run outside any span (the relay's and the
//! heartbeat's polls, which would otherwise fill the collector with traces of nothing) and for
//! requests the sampler left out. A call then costs one thread-local read.
//!
//! What is recorded is the statement's text with its placeholders, a command's name, a
//! collection, a host: never a parameter value, a command's arguments, a key, or a query string.

use opentelemetry::trace::{Status, TraceContextExt};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `tracing` target of client spans (the log output leaves them out: see
/// [`crate::telemetry`]).
pub const TARGET: &str = "jeex_api::client";

/// Whether the current context belongs to a sampled trace: the one case in which client spans
/// are made.
pub fn sampled() -> bool {
    opentelemetry::Context::map_current(|cx| cx.span().span_context().is_sampled())
}

/// Whether `span` belongs to a sampled trace (a step's span is made only then).
pub fn traced(span: &Span) -> bool {
    span.context().span().span_context().is_sampled()
}

/// The current trace's id (32 hex digits), when the trace is sampled: what an event records so
/// that a client can report the trace that produced it.
pub fn trace_id() -> Option<String> {
    opentelemetry::Context::map_current(|cx| {
        let span = cx.span();
        let context = span.span_context();
        context.is_sampled().then(|| context.trace_id().to_string())
    })
}

/// The current span as a W3C `traceparent` value, when its trace is sampled: what an operation
/// keeps of the request that queued it.
pub fn traceparent() -> Option<String> {
    opentelemetry::Context::map_current(|cx| {
        let span = cx.span();
        let c = span.span_context();
        c.is_sampled().then(|| format!("00-{}-{}-{:02x}", c.trace_id(), c.span_id(), c.trace_flags().to_u8()))
    })
}

/// A stored `traceparent` as the remote span context a link points to.
pub fn remote(traceparent: &str) -> Option<opentelemetry::trace::SpanContext> {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    let mut parts = traceparent.split('-');
    let (Some("00"), Some(trace), Some(span), Some(flags), None) = (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let context = SpanContext::new(
        TraceId::from_hex(trace).ok()?,
        SpanId::from_hex(span).ok()?,
        TraceFlags::new(u8::from_str_radix(flags, 16).ok()?),
        true,
        TraceState::default(),
    );
    context.is_valid().then_some(context)
}

/// Marks `span` as failed with `error_type` (`error.type`, and status Error).
pub fn fail(span: &Span, error_type: &str) {
    if span.is_none() {
        return;
    }
    span.set_attribute("error.type", error_type.to_owned());
    span.set_status(Status::error(error_type.to_owned()));
}

/// Notes on the current span (the request, or the worker's step) the project whose scope it
/// opened: `jeex.project_id`, set only once the membership check has passed.
pub fn scoped(project_id: uuid::Uuid) {
    if sampled() {
        Span::current().set_attribute("jeex.project_id", project_id.to_string());
    }
}

/// Where a database or cache lives, as its spans name it.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// `db.namespace`: the database name (PostgreSQL) or index (Redis).
    pub namespace: String,
    /// `server.address`.
    pub address: String,
    /// `server.port`.
    pub port: u16,
}

/// A span for one SQL statement: named by its summary (`SELECT projects`), with the text as
/// written (placeholders, never values).
pub fn sql(db: &Endpoint, text: &str) -> Span {
    if !sampled() {
        return Span::none();
    }
    let (operation, collection) = summary(text);
    let name = match collection {
        Some(table) => format!("{operation} {table}"),
        None => operation.to_owned(),
    };
    tracing::error_span!(
        target: TARGET,
        "sql",
        otel.name = %name,
        otel.kind = "client",
        db.system.name = "postgresql",
        db.namespace = %db.namespace,
        db.operation.name = operation,
        db.collection.name = collection,
        db.query.summary = %name,
        db.query.text = text.trim(),
        server.address = %db.address,
        server.port = i64::from(db.port),
    )
}

/// Records a failed statement's SQLSTATE (or the kind of failure) on its span.
pub fn sql_failed(span: &Span, err: &sqlx::Error) {
    if span.is_none() {
        return;
    }
    let kind = match err {
        sqlx::Error::Database(e) => {
            let code = e.code().map(|c| c.into_owned()).unwrap_or_default();
            span.set_attribute("db.response.status_code", code.clone());
            code
        }
        sqlx::Error::PoolTimedOut => "pool_timeout".into(),
        sqlx::Error::Io(_) => "io".into(),
        sqlx::Error::Tls(_) => "tls".into(),
        sqlx::Error::RowNotFound => "row_not_found".into(),
        _ => "sqlx".into(),
    };
    fail(span, &kind);
}

/// A span for one Redis command (or a pipeline): its name only, never its arguments (keys
/// carry project ids; values carry events).
pub fn redis(server: &Endpoint, command: &str) -> Span {
    if !sampled() {
        return Span::none();
    }
    tracing::error_span!(
        target: TARGET,
        "redis",
        otel.name = command,
        otel.kind = "client",
        db.system.name = "redis",
        db.namespace = %server.namespace,
        db.operation.name = command,
        server.address = %server.address,
        server.port = i64::from(server.port),
    )
}

/// A span for one vector-index call (`search`, `upsert`, …) on `collection`; `server` is `None`
/// for the embedded engine, which runs in this process.
pub fn qdrant(server: Option<&Endpoint>, operation: &'static str, collection: &str) -> Span {
    if !sampled() {
        return Span::none();
    }
    let span = tracing::error_span!(
        target: TARGET,
        "qdrant",
        otel.name = %format!("{operation} {collection}"),
        otel.kind = if server.is_some() { "client" } else { "internal" },
        db.system.name = "qdrant",
        db.operation.name = operation,
        db.collection.name = collection,
        server.address = tracing::field::Empty,
        server.port = tracing::field::Empty,
    );
    if let Some(server) = server {
        span.record("server.address", server.address.as_str());
        span.record("server.port", i64::from(server.port));
    }
    span
}

/// A span for an outbound HTTP request (the HTTP client conventions). `url` is recorded
/// without its query or credentials.
pub fn http(method: &str, url: &url::Url) -> Span {
    if !sampled() {
        return Span::none();
    }
    let mut full = url.clone();
    full.set_query(None);
    full.set_fragment(None);
    let _ = full.set_username("");
    let _ = full.set_password(None);
    tracing::error_span!(
        target: TARGET,
        "http",
        otel.name = method,
        otel.kind = "client",
        http.request.method = method,
        url.full = full.as_str(),
        server.address = url.host_str().unwrap_or_default(),
        server.port = i64::from(url.port_or_known_default().unwrap_or_default()),
        http.response.status_code = tracing::field::Empty,
    )
}

/// The operation and the table of an SQL statement (`("SELECT", Some("projects"))`): the
/// first data-changing or reading keyword outside parentheses (after a `WITH`'s common table
/// expressions), and the table it names.
pub fn summary(text: &str) -> (&str, Option<&str>) {
    let mut words = Words::new(text);
    let mut operation = None;
    let mut expect_table = false;
    // After `WITH`, the names of its expressions come before the main statement's keyword.
    let mut in_with = false;
    // After a function in `FROM` (`jeex_enter(…)`), the rows come from a sub-select: its
    // `FROM` names the table.
    let mut nested = false;
    while let Some((word, depth)) = words.next() {
        if depth > 0 && !nested {
            continue;
        }
        if expect_table {
            if word.eq_ignore_ascii_case("ONLY") {
                continue;
            }
            if operation == Some("SELECT") && words.called() {
                expect_table = false;
                nested = true;
                continue;
            }
            let table = word.trim_matches('"');
            return (operation.unwrap_or("SQL"), (!table.is_empty()).then_some(table));
        }
        let is = |k: &str| word.eq_ignore_ascii_case(k);
        match operation {
            None if is("WITH") => in_with = true,
            None if ["SELECT", "INSERT", "UPDATE", "DELETE"].iter().any(|k| is(k)) => {
                operation = Some(keyword(word));
                expect_table = operation == Some("UPDATE");
            }
            None if in_with => {}
            None => return (keyword(word), None),
            Some("INSERT") if is("INTO") => expect_table = true,
            Some("SELECT" | "DELETE") if is("FROM") => expect_table = true,
            _ => {}
        }
    }
    (operation.unwrap_or("SQL"), None)
}

/// The canonical spelling of a leading keyword (static, so spans borrow nothing).
fn keyword(word: &str) -> &'static str {
    const KNOWN: [&str; 13] =
        ["SELECT", "INSERT", "UPDATE", "DELETE", "BEGIN", "COMMIT", "ROLLBACK", "SET", "WITH", "LOCK", "CREATE", "ALTER", "DROP"];
    KNOWN.iter().find(|k| k.eq_ignore_ascii_case(word)).copied().unwrap_or("SQL")
}

/// The words of an SQL text with their parenthesis depth, skipping string literals and
/// comments; a quoted identifier is one word.
struct Words<'a> {
    text: &'a str,
    at: usize,
    depth: usize,
}

impl<'a> Words<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, at: 0, depth: 0 }
    }

    /// Whether the word just read is called: an opening parenthesis follows it.
    fn called(&self) -> bool {
        self.text[self.at..].trim_start().starts_with('(')
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = (&'a str, usize);

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.at) {
            match b {
                b'(' => self.depth += 1,
                b')' => self.depth = self.depth.saturating_sub(1),
                // A literal, to its closing quote (an escaped '' reads as two literals).
                b'\'' => self.at += bytes[self.at + 1..].iter().position(|&c| c == b'\'').map_or(bytes.len(), |n| n + 1),
                b'-' if bytes.get(self.at + 1) == Some(&b'-') => {
                    self.at += bytes[self.at..].iter().position(|&c| c == b'\n').unwrap_or(bytes.len() - self.at)
                }
                _ if b.is_ascii_alphanumeric() || b == b'_' || b == b'"' => {
                    let start = self.at;
                    let mut quoted = false;
                    while let Some(&c) = bytes.get(self.at) {
                        if c == b'"' {
                            quoted = !quoted;
                        } else if !(quoted || c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'$')) {
                            break;
                        }
                        self.at += 1;
                    }
                    return Some((&self.text[start..self.at], self.depth));
                }
                _ => {}
            }
            self.at += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{remote, summary};

    #[test]
    fn a_stored_traceparent_becomes_a_remote_context() {
        let c = remote("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").expect("valid");
        assert_eq!(c.trace_id().to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(c.span_id().to_string(), "b7ad6b7169203331");
        assert!(c.is_sampled() && c.is_remote());
        for bad in [
            "",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-xyz-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        ] {
            assert!(remote(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn statements_are_summarised_by_operation_and_table() {
        assert_eq!(summary("SELECT p.id FROM projects p WHERE p.id = $1"), ("SELECT", Some("projects")));
        assert_eq!(summary("  insert into documents (id) VALUES ($1)"), ("INSERT", Some("documents")));
        assert_eq!(summary("UPDATE operations SET status = 'running' WHERE id = $1"), ("UPDATE", Some("operations")));
        assert_eq!(summary("DELETE FROM event_outbox WHERE seq = ANY($1)"), ("DELETE", Some("event_outbox")));
        assert_eq!(summary("SELECT set_config('jeex.user_id', $1, true)"), ("SELECT", None));
        // A statement that enters its project reads from the sub-select after `jeex_enter`.
        assert_eq!(
            summary(
                "SELECT p.id FROM jeex_enter($1, $2, $3, $4) AS entered(role) CROSS JOIN LATERAL (SELECT * FROM projects WHERE id = $3 OFFSET 0) p"
            ),
            ("SELECT", Some("projects"))
        );
        assert_eq!(summary("SELECT jeex_enter($1, $2, $3, $4) AS role"), ("SELECT", None));
        assert_eq!(summary("BEGIN"), ("BEGIN", None));
        assert_eq!(summary("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"), ("SET", None));
        // The main statement of a WITH, not its common table expressions.
        assert_eq!(
            summary("WITH gone AS (DELETE FROM documents WHERE id = $1 RETURNING id) SELECT count(*) FROM gone"),
            ("SELECT", Some("gone"))
        );
        assert_eq!(summary("WITH x AS (SELECT 1 FROM a) INSERT INTO audit_log SELECT * FROM x"), ("INSERT", Some("audit_log")));
        // A FROM inside a function call or a literal is not the table.
        assert_eq!(summary("SELECT extract(epoch FROM now()), 'FROM users' FROM projects"), ("SELECT", Some("projects")));
        assert_eq!(summary("-- a comment FROM x\nSELECT 1"), ("SELECT", None));
        assert_eq!(summary(r#"SELECT 1 FROM "Quoted Table""#), ("SELECT", Some("Quoted Table")));
        assert_eq!(summary("VACUUM"), ("SQL", None));
    }
}
