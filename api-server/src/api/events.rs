//! Server-Sent Events: a project's events, or one operation's. Each event carries `id:` (its
//! history ID), `event:` (its type) and `data:` (JSON). `Last-Event-ID` (header or
//! `last_event_id`) resumes right after that event with no gap and no duplicate; an ID older
//! than the history gets `event: reset`. Keepalive comments every 15 s; after
//! `JEEX_SSE_MAX_LIFETIME` the stream ends with a `retry:` hint. A client that cannot keep up
//! is disconnected (it resumes and loses nothing), so a connection's memory stays bounded.

use std::{pin::Pin, sync::Arc, time::Duration};

use futures_util::Stream;
use poem::web::{Data, sse::Event as SseEvent};
use poem_openapi::{
    Object, OpenApi,
    param::{Header, Path, Query},
    payload::{EventStream, Json},
};
use tokio::sync::{broadcast::error::RecvError, mpsc};
use uuid::Uuid;

use super::ApiTags;
use crate::{
    auth::principal::{Auth, Caller, Principal},
    db::{operations, scope::Scoped},
    error::{ApiError, ErrorCode, FieldError},
    events::{
        Event, EventBus, History, compare_ids, parse_id,
        tickets::{Grant, TICKET_TTL},
    },
    state::{AppState, StreamSlot},
};

/// A single-use stream ticket.
#[derive(Debug, Object)]
pub struct StreamTicket {
    /// Pass as `?ticket=` to one of the project's event streams, once, within `expires_in`.
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

/// Keepalive comment interval.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Events buffered per connection before a slow client is disconnected.
const BUFFER: usize = 256;
/// Milliseconds a client should wait before reconnecting after the lifetime ends.
const RETRY_MS: u64 = 1000;

/// One streamed event (the `data:` of an SSE message; `id:` and `event:` repeat `id` and `type`).
#[derive(Debug, Clone, Object)]
pub struct StreamEvent {
    /// History ID; send it back as `Last-Event-ID` to resume. Empty for `reset`.
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
    /// The whole message, already encoded (shared by every connection streaming the event).
    #[oai(skip)]
    pub rendered: Option<Arc<str>>,
}

impl From<Event> for StreamEvent {
    fn from(e: Event) -> Self {
        Self { id: e.id, kind: e.kind, project_id: e.project_id, operation_id: e.operation_id, data: e.data, time: e.time, rendered: None }
    }
}

impl StreamEvent {
    /// A live event for one more connection: the encoding is made by the first connection and
    /// shared by the rest.
    fn shared(e: &Event) -> Self {
        let rendered = e
            .rendered
            .get_or_init(|| {
                let full = StreamEvent::from(e.clone());
                Arc::from(serde_json::to_string(&poem_openapi::types::ToJSON::to_json(&full)).unwrap_or_default())
            })
            .clone();
        Self {
            id: e.id.clone(),
            kind: e.kind.clone(),
            project_id: e.project_id,
            operation_id: e.operation_id,
            data: serde_json::Value::Null,
            time: e.time,
            rendered: Some(rendered),
        }
    }
}

/// What the producer hands the response: an event, or the end-of-life retry hint.
enum Item {
    Event(StreamEvent),
    Retry,
}

type Events = EventStream<Pin<Box<dyn Stream<Item = StreamEvent> + Send>>>;

const RETRY_MARKER: &str = "__retry";

fn to_sse(item: StreamEvent) -> SseEvent {
    if item.kind == RETRY_MARKER {
        return SseEvent::retry(RETRY_MS);
    }
    let data = match &item.rendered {
        Some(rendered) => rendered.to_string(),
        None => serde_json::to_string(&poem_openapi::types::ToJSON::to_json(&item)).unwrap_or_default(),
    };
    let event = SseEvent::message(data).event_type(item.kind.clone());
    if item.id.is_empty() { event } else { event.id(item.id) }
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

fn stream(
    bus: EventBus,
    project: Uuid,
    after: Option<String>,
    filter: Filter,
    lifetime: Duration,
    first: Vec<Event>,
    slot: StreamSlot,
) -> Events {
    let (tx, rx) = mpsc::channel::<Item>(BUFFER);
    tokio::spawn(async move {
        produce(bus, project, after, filter, lifetime, first, tx).await;
        // The slot is held exactly as long as the stream produces.
        drop(slot);
    });
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        let event = match item {
            Item::Event(e) => e,
            Item::Retry => StreamEvent {
                id: String::new(),
                kind: RETRY_MARKER.into(),
                project_id: Uuid::nil(),
                operation_id: None,
                data: serde_json::Value::Null,
                time: chrono::Utc::now(),
                rendered: None,
            },
        };
        Some((event, rx))
    });
    EventStream::new(Box::pin(events) as Pin<Box<dyn Stream<Item = StreamEvent> + Send>>).keep_alive(KEEPALIVE).to_event(to_sse)
}

/// Sends history after `after`, then live events, deduplicated by ID; ends on the stream's
/// terminal event, at the end of its lifetime, when the client goes, or when it falls behind.
async fn produce(
    bus: EventBus,
    project: Uuid,
    after: Option<String>,
    filter: Filter,
    lifetime: Duration,
    first: Vec<Event>,
    tx: mpsc::Sender<Item>,
) {
    // Subscribe before reading history: nothing published in between is missed.
    let mut live = bus.subscribe(project);
    let send = |e: Event| {
        let ends = filter.ends_after(&e);
        (tx.try_send(Item::Event(e.into())).is_ok(), ends)
    };
    let send_shared = |e: &Event| {
        let ends = filter.ends_after(e);
        (tx.try_send(Item::Event(StreamEvent::shared(e))).is_ok(), ends)
    };
    for e in first {
        let (ok, ends) = send(e);
        if !ok || ends {
            return;
        }
    }
    let mut last = after.clone();
    match bus.history(project, after.as_deref()).await {
        Ok(History::Reset) => {
            let reset = Event {
                rendered: Default::default(),
                id: String::new(),
                kind: "reset".into(),
                project_id: project,
                operation_id: filter.operation,
                data: serde_json::json!({ "reason": "events after Last-Event-ID are no longer kept; fetch the current state" }),
                time: chrono::Utc::now(),
            };
            if !send(reset).0 {
                return;
            }
            last = None;
        }
        Ok(History::Events(events)) => {
            for e in events.into_iter().filter(|e| filter.admits(e)) {
                last = Some(e.id.clone());
                let (ok, ends) = send(e);
                if !ok || ends {
                    return;
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "event history unavailable; streaming live events only");
        }
    }
    let deadline = tokio::time::sleep(lifetime);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            received = live.recv() => match received {
                Ok(e) => {
                    if !filter.admits(&e) || last.as_deref().is_some_and(|l| compare_ids(&e.id, l).is_le()) {
                        continue;
                    }
                    last = Some(e.id.clone());
                    let (ok, ends) = send_shared(&e);
                    if !ok || ends {
                        // Full buffer: the client is too slow; it resumes with Last-Event-ID.
                        return;
                    }
                }
                // Fell behind the shared channel: same remedy as a full buffer.
                Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
            },
            () = &mut deadline => {
                let _ = tx.try_send(Item::Retry);
                return;
            }
            () = tx.closed() => return,
        }
    }
}

/// Event stream endpoints.
pub struct EventsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Events")]
impl EventsApi {
    /// A single-use ticket for `EventSource`, which cannot send headers: pass it as
    /// `?ticket=` to one of this project's event streams within a minute. Long-lived tokens
    /// never go into URLs.
    #[oai(path = "/projects/:project_id/events/ticket", method = "post")]
    async fn ticket(&self, state: Data<&AppState>, auth: Auth, project_id: Path<Uuid>) -> Result<Json<StreamTicket>, ApiError> {
        Scoped::begin(&state.deps().postgres, &auth.0, project_id.0).await?.commit().await?;
        let ticket = state
            .tickets()
            .issue(&Grant::new(&auth.0.principal, project_id.0))
            .await
            .map_err(|_| ApiError::Status(ErrorCode::Unavailable, "stream tickets are unavailable; retry shortly".into()))?;
        Ok(Json(StreamTicket { ticket, expires_in: TICKET_TTL.as_secs() }))
    }

    /// Every event of the project, live (`text/event-stream`).
    #[oai(path = "/projects/:project_id/events", method = "get")]
    async fn project_events(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        project_id: Path<Uuid>,
        /// Resume after this event.
        #[oai(name = "Last-Event-ID")]
        last_event_id: Header<Option<String>>,
        /// Resume after this event (for clients that cannot set headers).
        #[oai(name = "last_event_id")]
        last_event_id_query: Query<Option<String>>,
        /// A stream ticket (`POST …/events/ticket`), instead of a header credential.
        #[oai(name = "ticket")]
        _ticket: Query<Option<String>>,
    ) -> Result<Events, ApiError> {
        let after = resume_point(last_event_id.0, last_event_id_query.0)?;
        Scoped::begin(&state.deps().postgres, &auth.0, project_id.0).await?.commit().await?;
        let slot = slot(&state, &auth.0)?;
        let lifetime = state.config().events.max_lifetime;
        Ok(stream(state.events().clone(), project_id.0, after, Filter { operation: None }, lifetime, Vec::new(), slot))
    }

    /// One operation's events; ends after its terminal event. For an operation that already
    /// ended, sends its final state and ends.
    #[oai(path = "/projects/:project_id/operations/:operation_id/events", method = "get")]
    #[allow(clippy::too_many_arguments)] // each one is a documented request parameter
    async fn operation_events(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        project_id: Path<Uuid>,
        operation_id: Path<Uuid>,
        /// Resume after this event.
        #[oai(name = "Last-Event-ID")]
        last_event_id: Header<Option<String>>,
        /// Resume after this event (for clients that cannot set headers).
        #[oai(name = "last_event_id")]
        last_event_id_query: Query<Option<String>>,
        /// A stream ticket (`POST …/events/ticket`), instead of a header credential.
        #[oai(name = "ticket")]
        _ticket: Query<Option<String>>,
    ) -> Result<Events, ApiError> {
        let after = resume_point(last_event_id.0, last_event_id_query.0)?;
        let mut s = Scoped::begin(&state.deps().postgres, &auth.0, project_id.0).await?;
        let op = operations::get(&mut s, operation_id.0).await?;
        s.commit().await?;
        let mut first = Vec::new();
        if op.status.is_terminal() {
            let status = poem_openapi::types::ToJSON::to_json(&op.status).and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            first.push(Event {
                rendered: Default::default(),
                id: String::new(),
                kind: format!("operation.{status}"),
                project_id: op.project_id,
                operation_id: Some(op.id),
                data: poem_openapi::types::ToJSON::to_json(&op).unwrap_or_default(),
                time: chrono::Utc::now(),
            });
        }
        let slot = slot(&state, &auth.0)?;
        let lifetime = state.config().events.max_lifetime;
        Ok(stream(state.events().clone(), project_id.0, after, Filter { operation: Some(operation_id.0) }, lifetime, first, slot))
    }
}
