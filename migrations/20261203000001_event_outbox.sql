-- Operation events, durable. Each event is written in the same transaction as the operation
-- state change it reports, so the two can never disagree; the replicas relay the rows to the
-- event history (Redis Streams, or the in-process history) in order and delete them in the
-- transaction that relayed them. A Redis outage therefore delays events, never drops them.

CREATE TABLE event_outbox (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- No foreign keys: an event may outlive its operation's retention, and relaying the
    -- event of a deleted project is harmless (nobody can stream it).
    project_id   uuid NOT NULL,
    operation_id uuid,
    kind         text NOT NULL CHECK (kind ~ '^[a-z_]+(\.[a-z_]+)+$'),
    data         jsonb NOT NULL CHECK (jsonb_typeof(data) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);

ALTER TABLE event_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_outbox FORCE ROW LEVEL SECURITY;
-- Written in project scopes (an API request queueing or cancelling an operation)...
CREATE POLICY event_outbox_scoped ON event_outbox FOR INSERT
    WITH CHECK (project_id = (SELECT jeex_project_id()));
-- ...and by the workers, in the transactions that change an operation they hold.
CREATE POLICY event_outbox_worker ON event_outbox FOR INSERT
    WITH CHECK ((SELECT jeex_worker()));
-- Relayed (read, then deleted) across projects, in a transaction that declares itself a worker.
CREATE POLICY event_outbox_relay_read ON event_outbox FOR SELECT
    USING ((SELECT jeex_worker()));
CREATE POLICY event_outbox_relay_delete ON event_outbox FOR DELETE
    USING ((SELECT jeex_worker()));
