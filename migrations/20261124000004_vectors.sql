-- Document embeddings and the vector outbox. PostgreSQL is the source of truth; the vector
-- index (Qdrant, or the embedded engine) follows it through an outbox written by triggers in
-- the same transaction as the change, so no code path can change a document's vector (or
-- delete its project) without leaving the intent to update the index.

-- A client-supplied embedding. Its length is checked against JEEX_VECTOR_DIM by the API;
-- the database only insists on a non-empty one-dimensional array.
ALTER TABLE documents
    ADD COLUMN embedding real[] CHECK (embedding IS NULL OR (array_ndims(embedding) = 1 AND cardinality(embedding) > 0)),
    -- The content changed after the embedding was made: the vector was dropped and a new
    -- embedding is wanted.
    ADD COLUMN embedding_stale boolean NOT NULL DEFAULT false;

-- One row per intent: "make the index match this document" (document_id set) or "remove this
-- project from the index" (document_id NULL). Rows hold no vector: the worker reads the
-- document's current state when it applies a row, so applying is idempotent and the newest
-- state always wins.
CREATE TABLE vector_outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- No foreign key: a purge must outlive the project it removes.
    project_id  uuid NOT NULL,
    document_id uuid,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vector_outbox_created_idx ON vector_outbox (created_at);

ALTER TABLE vector_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE vector_outbox FORCE ROW LEVEL SECURITY;
-- Written in project scopes (by the triggers below).
CREATE POLICY vector_outbox_scoped ON vector_outbox
    USING (project_id = (SELECT jeex_project_id()))
    WITH CHECK (project_id = (SELECT jeex_project_id()));
-- Drained across projects by the outbox worker, in a transaction that declares itself one.
CREATE POLICY vector_outbox_drain_read ON vector_outbox FOR SELECT
    USING ((SELECT jeex_worker()));
CREATE POLICY vector_outbox_drain_delete ON vector_outbox FOR DELETE
    USING ((SELECT jeex_worker()));

CREATE FUNCTION jeex_document_vector_intent() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO vector_outbox (project_id, document_id) VALUES (NEW.project_id, NEW.id);
    RETURN NULL;
END $$;

-- Only changes the index can see: a vector appearing, changing or going, the language (a
-- payload field) changing, or the document being deleted while it has a vector.
CREATE TRIGGER documents_vector_insert AFTER INSERT ON documents
    FOR EACH ROW WHEN (NEW.embedding IS NOT NULL)
    EXECUTE FUNCTION jeex_document_vector_intent();
CREATE TRIGGER documents_vector_update AFTER UPDATE ON documents
    FOR EACH ROW WHEN (
        OLD.embedding IS DISTINCT FROM NEW.embedding
        OR (NEW.embedding IS NOT NULL AND (OLD.language IS DISTINCT FROM NEW.language
                                           OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at))
    )
    EXECUTE FUNCTION jeex_document_vector_intent();

CREATE FUNCTION jeex_project_vector_purge() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO vector_outbox (project_id, document_id) VALUES (OLD.id, NULL);
    RETURN NULL;
END $$;

CREATE TRIGGER projects_vector_purge AFTER UPDATE ON projects
    FOR EACH ROW WHEN (OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL)
    EXECUTE FUNCTION jeex_project_vector_purge();

ALTER TABLE operations DROP CONSTRAINT operations_kind_check;
ALTER TABLE operations ADD CONSTRAINT operations_kind_check
    CHECK (kind IN ('documents.import', 'project.export', 'documents.reindex'));
