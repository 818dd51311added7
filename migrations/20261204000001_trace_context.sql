-- Trace context. An operation keeps the W3C trace context of the request that queued it, so the
-- worker's trace links back to that request; each recorded event keeps the trace it was
-- recorded in, so a client can report it. Both are NULL when the work was not traced (export
-- off, or the trace not sampled).

ALTER TABLE operations ADD COLUMN traceparent text
    CHECK (traceparent ~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$');

ALTER TABLE event_outbox ADD COLUMN trace_id text
    CHECK (trace_id ~ '^[0-9a-f]{32}$');
