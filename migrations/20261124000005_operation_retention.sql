-- Operations do not keep their data forever. An operation's input (an import's documents, up
-- to 65 MiB) serves only its worker, so it goes when the operation ends; the operation itself,
-- with its result, is deleted JEEX_OPERATION_RETENTION after it ended, by the workers.

-- Ended operations' inputs, dropped under the worker's policy (RLS binds the table's owner
-- too, and this runs in no project's scope).
SELECT set_config('jeex.worker', 'claim', true);
ALTER TABLE operations ALTER COLUMN input DROP NOT NULL;
UPDATE operations SET input = NULL WHERE finished_at IS NOT NULL;
-- Every path that ends an operation must drop its input; one that forgets fails loudly.
ALTER TABLE operations ADD CONSTRAINT operations_input_until_finished CHECK ((input IS NULL) = (finished_at IS NOT NULL));

-- What the pruning scans: only ended operations, oldest first.
CREATE INDEX operations_finished_idx ON operations (finished_at) WHERE finished_at IS NOT NULL;

-- Deleting is the workers' alone, and only of ended operations: a project-scoped transaction
-- (an API request) deletes none, and no transaction deletes one still queued or running.
CREATE POLICY operations_prune ON operations FOR DELETE
    USING ((SELECT jeex_worker()));
CREATE POLICY operations_prune_only_ended ON operations AS RESTRICTIVE FOR DELETE
    USING ((SELECT jeex_worker()) AND finished_at IS NOT NULL);
