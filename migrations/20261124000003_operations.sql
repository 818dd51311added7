-- Long-running operations (the seed schema's agent_executions, generalised). Workers in any
-- replica claim them with FOR UPDATE SKIP LOCKED and hold a lease they keep renewing; a
-- replica that dies leaves an expired lease, and another replica resumes the operation.

CREATE TABLE operations (
    id                uuid PRIMARY KEY,
    project_id        uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    kind              text NOT NULL CHECK (kind IN ('documents.import', 'project.export')),
    status            text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    progress          smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    input             jsonb NOT NULL CHECK (jsonb_typeof(input) = 'object'),
    result            jsonb,
    error             text,
    -- The user, or the API key, that started it.
    created_by        uuid REFERENCES users (id) ON DELETE SET NULL,
    created_by_key    uuid REFERENCES api_keys (id) ON DELETE SET NULL,
    attempt           integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts      integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    lease_owner       text,
    lease_expires_at  timestamptz,
    cancel_requested  boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    CHECK ((status IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL))
);
CREATE INDEX operations_project_id_idx ON operations (project_id, id);
CREATE INDEX operations_project_created_idx ON operations (project_id, created_at DESC);
-- What workers scan: only unfinished operations.
CREATE INDEX operations_claimable_idx ON operations (created_at) WHERE status IN ('queued', 'running');

ALTER TABLE operations ENABLE ROW LEVEL SECURITY;
ALTER TABLE operations FORCE ROW LEVEL SECURITY;
CREATE POLICY operations_scoped ON operations
    USING (project_id = (SELECT jeex_project_id()))
    WITH CHECK (project_id = (SELECT jeex_project_id()));

-- Workers claim across projects, and only in a transaction that declares itself the claim
-- (set_config('jeex.worker', 'claim', true)); the work itself runs in project scopes.
CREATE FUNCTION jeex_worker() RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS
$$ SELECT coalesce(current_setting('jeex.worker', true), '') = 'claim' $$;
-- Reading and updating only: a worker never creates or deletes operations.
CREATE POLICY operations_claim_read ON operations FOR SELECT
    USING ((SELECT jeex_worker()));
CREATE POLICY operations_claim_update ON operations FOR UPDATE
    USING ((SELECT jeex_worker()))
    WITH CHECK ((SELECT jeex_worker()));
