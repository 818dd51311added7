//! Server-Sent Events: a project's events, or one operation's. Each event carries `id:` (its
//! history ID), `event:` (its type) and `data:` (JSON). `Last-Event-ID` (header or
//! `last_event_id`) resumes right after that event with no gap and no duplicate; an ID whose
//! continuity the history cannot prove (trimmed, expired, or from a history Redis lost) gets
//! `event: reset`, then every event the history holds — and, on an operation's stream, the
//! operation's current state. A keepalive comment after 15 s without an event; after
//! `JEEX_SSE_MAX_LIFETIME` the stream ends with a `retry:` hint, and so does a stream that
//! cannot be served without a gap now (Redis unreachable): the client comes back and resumes.
//! A client that cannot keep up is disconnected (it resumes and loses nothing), so a
//! connection's memory stays bounded.

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use poem::{Body, IntoResponse, Response, web::Data};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Header, Path, Query},
    payload::{Json, Payload},
    registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry},
    types::{ToJSON, Type},
};
use uuid::Uuid;

use super::{ApiTags, access::project, views::Operation};
use crate::{
    access::{Caller, Principal, ProjectScope, Viewer},
    db::operations,
    error::{ApiError, ErrorCode, FieldError},
    events::{Event, History, Subscription, compare_ids, parse_id, tickets::Grant},
    state::{AppState, StreamSlot},
};

/// A stream ticket.
#[derive(Debug, Object)]
pub struct StreamTicket {
    /// Pass as `?ticket=` to this project's event streams. The same URL keeps working for
    /// `EventSource`'s reconnects until `expires_in` runs out, while the caller's access lasts.
    pub ticket: String,
    /// Seconds the ticket stays valid.
    pub expires_in: u64,
}

/// A slot under the per-user stream cap, or 429.
fn slot(state: &AppState, caller: &Caller) -> Result<StreamSlot, ApiError> {
    let who = match &caller.principal {
        Principal::User { user_id } => format!("user:{user_id}"),
        Principal::ApiKey { key_id, .. } => format!("key:{key_id}"),
    };
    let max = state.config().events.max_streams_per_user as usize;
    state.open_stream(who, max).ok_or_else(|| {
        ApiError::Status(ErrorCode::RateLimited, format!("at most {max} event streams may be open at once; close one first"))
    })
}

/// A stream that sent nothing for this long gets a keepalive comment (flagged by the bus's
/// sweeper, so no timer is re-armed on every event).
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Milliseconds a client should wait before reconnecting after the lifetime ends.
const RETRY_MS: u64 = 1000;
/// Milliseconds a client should wait before reconnecting when its stream could not be served
/// without a gap (Redis unreachable).
const RETRY_UNAVAILABLE_MS: u64 = 2000;
/// How long a stream opening waits for the live feed (the Redis subscription) to come up
/// before it asks the client to come back.
const LIVE_WAIT: Duration = Duration::from_secs(2);
/// Bytes of ready events written as one chunk; a client that is behind gets its backlog in
/// few large writes instead of one write per event.
const MAX_CHUNK: usize = 16 * 1024;

/// One streamed event (the `data:` of an SSE message; `id:` and `event:` repeat `id` and `type`).
#[derive(Debug, Clone, Object)]
pub struct StreamEvent {
    /// History ID; send it back as `Last-Event-ID` to resume. Empty for `reset` and for an
    /// operation's current state sent after a reset or for an operation that already ended
    /// (their SSE messages have no `id:`, so the client's resume point stays where it was).
    pub id: String,
    /// `operation.queued`, `operation.progress`, …, or `reset`.
    #[oai(rename = "type")]
    pub kind: String,
    /// The project.
    pub project_id: Uuid,
    /// The operation, for operation events.
    pub operation_id: Option<Uuid>,
    /// Payload.
    pub data: serde_json::Value,
    /// When it was published.
    pub time: chrono::DateTime<chrono::Utc>,
    /// The W3C trace ID (32 hex digits) of the work that recorded the event — the request that
    /// queued or cancelled an operation, the worker that ran it — when that work was traced;
    /// quote it when reporting a problem. Absent when tracing is off or the trace was not
    /// sampled.
    #[oai(skip_serializing_if_is_none)]
    pub trace_id: Option<String>,
}

/// The event's whole SSE message (`id:`, `event:`, `data:`), encoded on first use and then
/// shared by every connection that streams it.
fn frame(e: &Event) -> Bytes {
    e.frame
        .get_or_init(|| {
            let json = StreamEvent {
                id: e.id.clone(),
                kind: e.kind.clone(),
                project_id: e.project_id,
                operation_id: e.operation_id,
                data: e.data.clone(),
                time: e.time,
                trace_id: e.trace_id.clone(),
            }
            .to_json_string();
            let mut out = String::with_capacity(json.len() + e.id.len() + e.kind.len() + 24);
            if !e.id.is_empty() {
                out.push_str("id: ");
                out.push_str(&e.id);
                out.push('\n');
            }
            // Event types are ours (no line breaks); compact JSON has none either.
            out.push_str("event: ");
            out.push_str(&e.kind);
            out.push_str("\ndata: ");
            out.push_str(&json);
            out.push_str("\n\n");
            Bytes::from(out)
        })
        .clone()
}

fn resume_point(header: Option<String>, query: Option<String>) -> Result<Option<String>, ApiError> {
    match header.or(query).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(id) if parse_id(&id).is_some() => Ok(Some(id)),
        Some(_) => Err(ApiError::Validation {
            detail: "Last-Event-ID is not an event ID".into(),
            errors: vec![FieldError { field: "Last-Event-ID".into(), message: "must be an id: value this stream sent".into() }],
        }),
    }
}

/// Which events a stream carries and when it ends.
#[derive(Clone, Copy)]
struct Filter {
    operation: Option<Uuid>,
}

impl Filter {
    fn admits(&self, e: &Event) -> bool {
        self.operation.is_none_or(|op| e.operation_id == Some(op))
    }

    /// An operation stream ends after the operation's terminal event.
    fn ends_after(&self, e: &Event) -> bool {
        self.operation.is_some() && matches!(e.kind.as_str(), "operation.succeeded" | "operation.failed" | "operation.cancelled")
    }
}

/// Frames gathered for one write: a single frame is passed on as is (shared, not copied).
#[derive(Default)]
enum Chunk {
    #[default]
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Chunk {
    fn push(&mut self, frame: Bytes) {
        *self = match std::mem::take(self) {
            Chunk::Empty => Chunk::One(frame),
            Chunk::One(first) => {
                let mut many = BytesMut::with_capacity((first.len() + frame.len()) * 4);
                many.extend_from_slice(&first);
                many.extend_from_slice(&frame);
                Chunk::Many(many)
            }
            Chunk::Many(mut many) => {
                many.extend_from_slice(&frame);
                Chunk::Many(many)
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Chunk::Empty => 0,
            Chunk::One(b) => b.len(),
            Chunk::Many(m) => m.len(),
        }
    }

    fn take(&mut self) -> Option<Bytes> {
        match std::mem::take(self) {
            Chunk::Empty => None,
            Chunk::One(b) => Some(b),
            Chunk::Many(m) => Some(m.freeze()),
        }
    }
}

/// One event stream, polled directly by the connection that writes it: history after the
/// resume point, then live events deduplicated by ID. No task or timer of its own: a
/// connection costs its subscription (a queue of what it has not sent yet) and whatever the
/// socket holds.
struct Feed {
    /// Events to send before live ones.
    backlog: VecDeque<Event>,
    live: Subscription,
    /// The last ID sent, so live events the history already covered are skipped. Cleared by
    /// the first live event past it: live events arrive in ID order, so later ones are newer.
    last: Option<String>,
    filter: Filter,
    /// The stream cannot be served without a gap now: it only tells the client to come back.
    come_back: bool,
    done: bool,
}

/// How a stream begins: what to send before live events, and where the client stands.
struct Opening {
    backlog: Vec<Event>,
    last: Option<String>,
    /// The history could not prove continuity (a reset was queued).
    reset: bool,
    /// The stream cannot be served without a gap now (Redis unreachable).
    come_back: bool,
}

/// Subscribes to the scope's live events and then reads its history after `after` (in that
/// order: nothing published in between is missed).
async fn open(state: &AppState, scope: &ProjectScope, after: Option<String>, filter: Filter, first: Vec<Event>) -> (Subscription, Opening) {
    let bus = state.events();
    let project = scope.project_id();
    let mut opening = Opening { backlog: first, last: after.clone(), reset: false, come_back: false };
    if opening.backlog.iter().any(|e| filter.ends_after(e)) {
        // A final state from the database: nothing live to wait for.
        return (bus.subscribe(scope), opening);
    }
    // Without the live feed, what is published meanwhile would be missed: wait a moment for
    // it, or ask the client to come back. Asked again once subscribed: had it gone down in
    // between, this subscription would not have been ended with the others.
    let live_up = bus.live(LIVE_WAIT).await;
    let live = bus.subscribe(scope);
    opening.come_back = !(live_up && bus.is_live());
    if opening.come_back {
        return (live, opening);
    }
    let events = match bus.history(scope, after.as_deref()).await {
        Ok(History::Events(events)) => events,
        Ok(History::Reset(events)) => {
            opening.reset = true;
            opening.last = None;
            opening.backlog.push(Event {
                frame: Default::default(),
                id: String::new(),
                kind: "reset".into(),
                project_id: project,
                operation_id: filter.operation,
                data: serde_json::json!({
                    "reason": "the event history cannot show everything after Last-Event-ID; fetch the current state (the events it holds follow)"
                }),
                time: chrono::Utc::now(),
                trace_id: None,
            });
            events
        }
        Err(e) => {
            tracing::warn!(error = %e, "event history unavailable; the client is asked to come back");
            opening.come_back = true;
            return (live, opening);
        }
    };
    for e in events.into_iter().filter(|e| filter.admits(e)) {
        opening.last = Some(e.id.clone());
        opening.backlog.push(e);
    }
    (live, opening)
}

/// An operation's current state as a stream event (no ID: it is no history entry).
fn snapshot(op: &operations::Operation) -> Event {
    let op = Operation::from(op.clone());
    let status = poem_openapi::types::ToJSON::to_json(&op.status).and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    Event {
        frame: Default::default(),
        id: String::new(),
        kind: format!("operation.{status}"),
        project_id: op.project_id,
        operation_id: Some(op.id),
        data: poem_openapi::types::ToJSON::to_json(&op).unwrap_or_default(),
        time: chrono::Utc::now(),
        trace_id: None,
    }
}

impl Feed {
    fn new(live: Subscription, opening: Opening, filter: Filter, lifetime: Duration, slot: StreamSlot, holder: Principal) -> Self {
        live.hold(slot);
        live.held_by(holder);
        // Keepalives and the end of the lifetime come from the bus's sweeper, which wakes the
        // stream: no timer per connection.
        live.schedule(KEEPALIVE, std::time::Instant::now() + lifetime);
        Self { backlog: opening.backlog.into(), live, last: opening.last, filter, come_back: opening.come_back, done: false }
    }

    fn finish(&mut self) {
        self.done = true;
        self.live.release();
    }
}

impl Stream for Feed {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        // Access gone (the access re-check ended it): end now; a reconnect is refused.
        if this.live.revoked() {
            this.finish();
            return Poll::Ready(None);
        }
        // Not servable without a gap now: the client comes back a little later.
        if this.come_back {
            this.finish();
            return Poll::Ready(Some(Ok(Bytes::from(format!("retry: {RETRY_UNAVAILABLE_MS}\n\n")))));
        }
        // Lifetime over (the sweeper woke us, or the live feed was interrupted): end now; the
        // client resumes where it was.
        if this.live.expired() {
            this.finish();
            return Poll::Ready(Some(Ok(Bytes::from(format!("retry: {RETRY_MS}\n\n")))));
        }
        let mut chunk = Chunk::default();
        while chunk.len() < MAX_CHUNK {
            if let Some(e) = this.backlog.pop_front() {
                chunk.push(frame(&e));
                if this.filter.ends_after(&e) {
                    this.finish();
                    break;
                }
                continue;
            }
            match this.live.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(e))) => {
                    if !this.filter.admits(&e) {
                        continue;
                    }
                    if let Some(last) = &this.last {
                        if compare_ids(&e.id, last).is_le() {
                            continue;
                        }
                        this.last = None;
                    }
                    chunk.push(frame(&e));
                    if this.filter.ends_after(&e) {
                        this.finish();
                        break;
                    }
                }
                // Too slow: it fell behind the shared channel, or was cut off while it did
                // not read. It resumes with Last-Event-ID and loses nothing.
                Poll::Ready(Some(Err(_)) | None) => {
                    this.finish();
                    break;
                }
                Poll::Pending => break,
            }
        }
        if let Some(bytes) = chunk.take() {
            this.live.sent();
            return Poll::Ready(Some(Ok(bytes)));
        }
        if this.done {
            return Poll::Ready(None);
        }
        // Nothing to send: the live subscription is registered for a wake-up, which the
        // sweeper also gives when a keepalive is due.
        if this.live.keepalive_due() {
            return Poll::Ready(Some(Ok(Bytes::from_static(b":\n\n"))));
        }
        Poll::Pending
    }
}

/// A `text/event-stream` response of [`StreamEvent`]s.
pub struct Events(Feed);

impl Payload for Events {
    const CONTENT_TYPE: &'static str = "text/event-stream";

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            items: Some(Box::new(StreamEvent::schema_ref())),
            ..MetaSchema::new_with_format("array", "event-stream")
        }))
    }

    fn register(registry: &mut Registry) {
        StreamEvent::register(registry);
    }
}

impl ApiResponse for Events {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType { content_type: Self::CONTENT_TYPE, schema: Self::schema_ref() }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        StreamEvent::register(registry);
    }
}

impl IntoResponse for Events {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(Self::CONTENT_TYPE)
            // Proxies must pass each event on at once.
            .header("X-Accel-Buffering", "no")
            .body(Body::from_bytes_stream(self.0))
    }
}

/// Event stream endpoints.
pub struct EventsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Events")]
impl EventsApi {
    /// A ticket for `EventSource`, which cannot send headers: pass it as `?ticket=` to this
    /// project's event streams. `EventSource` reconnects with the same URL (and
    /// `Last-Event-ID`), so the ticket opens streams again until it expires
    /// (`JEEX_SSE_TICKET_TTL`, one hour by default) — as this caller, and only while the
    /// caller still has access. Long-lived tokens never go into URLs.
    #[oai(path = "/projects/:project_id/events/ticket", method = "post")]
    async fn ticket(&self, state: Data<&AppState>, project_id: project::Path<Viewer>) -> Result<Json<StreamTicket>, ApiError> {
        project_id.open(&state).await?.commit().await?;
        let ttl = state.config().events.ticket_ttl;
        let ticket = state.access_tokens().issue_ticket(Grant::new(&project_id.caller().principal, project_id.id()), ttl)?;
        Ok(Json(StreamTicket { ticket, expires_in: ttl.as_secs() }))
    }

    /// Every event of the project, live (`text/event-stream`).
    #[oai(path = "/projects/:project_id/events", method = "get")]
    async fn project_events(
        &self,
        state: Data<&AppState>,
        project_id: project::Path<Viewer>,
        /// Resume after this event.
        #[oai(name = "Last-Event-ID", validator(pattern = r"^([0-9]{1,19}-[0-9]{1,19})?$"))]
        last_event_id: Header<Option<String>>,
        /// Resume after this event (for clients that cannot set headers).
        #[oai(name = "last_event_id", validator(pattern = r"^([0-9]{1,19}-[0-9]{1,19})?$"))]
        last_event_id_query: Query<Option<String>>,
        /// A stream ticket (`POST …/events/ticket`), instead of a header credential.
        #[oai(name = "ticket")]
        _ticket: Query<Option<String>>,
    ) -> Result<Events, ApiError> {
        let after = resume_point(last_event_id.0, last_event_id_query.0)?;
        let s = project_id.open(&state).await?;
        let scope = s.scope().clone();
        s.commit().await?;
        let slot = slot(&state, project_id.caller())?;
        let filter = Filter { operation: None };
        let (live, opening) = open(&state, &scope, after, filter, Vec::new()).await;
        Ok(Events(Feed::new(live, opening, filter, state.config().events.max_lifetime, slot, project_id.caller().principal.clone())))
    }

    /// One operation's events; ends after its terminal event. For an operation that already
    /// ended, sends its final state and ends.
    #[oai(path = "/projects/:project_id/operations/:operation_id/events", method = "get")]
    #[allow(clippy::too_many_arguments)] // each one is a documented request parameter
    async fn operation_events(
        &self,
        state: Data<&AppState>,
        project_id: project::Path<Viewer>,
        operation_id: Path<Uuid>,
        /// Resume after this event.
        #[oai(name = "Last-Event-ID", validator(pattern = r"^([0-9]{1,19}-[0-9]{1,19})?$"))]
        last_event_id: Header<Option<String>>,
        /// Resume after this event (for clients that cannot set headers).
        #[oai(name = "last_event_id", validator(pattern = r"^([0-9]{1,19}-[0-9]{1,19})?$"))]
        last_event_id_query: Query<Option<String>>,
        /// A stream ticket (`POST …/events/ticket`), instead of a header credential.
        #[oai(name = "ticket")]
        _ticket: Query<Option<String>>,
    ) -> Result<Events, ApiError> {
        let after = resume_point(last_event_id.0, last_event_id_query.0)?;
        let mut s = project_id.open(&state).await?;
        let op = operations::get(&mut s, operation_id.0).await?;
        let scope = s.scope().clone();
        s.commit().await?;
        // An operation that ended, asked for without a resume point: its final state, and the
        // stream ends. With one, the client gets what it missed from the history first.
        let first = if op.status.is_terminal() && after.is_none() { vec![snapshot(&op)] } else { Vec::new() };
        let slot = slot(&state, project_id.caller())?;
        let filter = Filter { operation: Some(operation_id.0) };
        let (live, mut opening) = open(&state, &scope, after, filter, first).await;
        let ended = opening.backlog.iter().any(|e| filter.ends_after(e));
        if !opening.come_back && !ended && (opening.reset || op.status.is_terminal()) {
            // Some of its events may be gone (a reset), or the history no longer holds its end:
            // its current state follows what the history holds (read after subscribing, so it
            // is no older than any event sent before it).
            let mut s = project_id.open(&state).await?;
            let now = operations::get(&mut s, operation_id.0).await?;
            s.commit().await?;
            opening.backlog.push(snapshot(&now));
        }
        Ok(Events(Feed::new(live, opening, filter, state.config().events.max_lifetime, slot, project_id.caller().principal.clone())))
    }
}
