-- Entering a project scope inside the statement (or transaction) that works in it, so a scoped
-- request needs no round trips of its own before its work: the server calls
-- jeex_enter(user, key, project, needed role) first thing in a statement, or in its BEGIN.
--
-- It sets the settings the row-level policies read, transaction-locally (an autocommit
-- statement's transaction is the statement itself), and only then checks, under those policies,
-- that the caller may act in the project: a live member of the live project (a user), or a live,
-- unexpired key of it. It refuses by raising, so nothing of the statement that called it runs for
-- anyone else: SQLSTATE JX404 for "no such project" and "not yours" alike (the two must be
-- indistinguishable), JX403 for a member whose role is weaker than needed. Returns the role.
--
-- PL/pgSQL runs its statements in order, so the settings are in place before the check reads
-- anything; a statement that reads project rows takes them from a LATERAL sub-select that depends
-- on this function's result, so those rows are read after it has run. Were that order ever broken,
-- the policies would see no settings and show nothing: the failure is an empty answer, never
-- another project's rows.
CREATE FUNCTION jeex_enter(acting_user uuid, acting_key uuid, project uuid, needs text) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    held text;
BEGIN
    IF project IS NULL OR (acting_user IS NULL) = (acting_key IS NULL)
       OR array_position(ARRAY['viewer', 'editor', 'owner'], needs) IS NULL THEN
        RAISE EXCEPTION 'jeex_enter needs a project, exactly one of a user or a key, and a role' USING ERRCODE = '22023';
    END IF;
    PERFORM set_config('jeex.user_id', coalesce(acting_user::text, ''), true),
            set_config('jeex.project_id', project::text, true);
    IF acting_user IS NOT NULL THEN
        SELECT m.role INTO held
        FROM project_members m JOIN projects p ON p.id = m.project_id JOIN users u ON u.id = m.user_id
        WHERE m.project_id = project AND m.user_id = acting_user AND p.deleted_at IS NULL AND u.deleted_at IS NULL;
    ELSE
        -- The key itself too: a stream ticket or an open stream outlives the request that
        -- authenticated the key, and a revoked key must stop there as well.
        SELECT k.role INTO held
        FROM projects p JOIN api_keys k ON k.project_id = p.id
        WHERE p.id = project AND p.deleted_at IS NULL AND k.id = acting_key AND k.deleted_at IS NULL
          AND (k.expires_at IS NULL OR k.expires_at > now());
    END IF;
    IF held IS NULL THEN
        RAISE EXCEPTION 'no such project' USING ERRCODE = 'JX404';
    END IF;
    IF array_position(ARRAY['viewer', 'editor', 'owner'], held) < array_position(ARRAY['viewer', 'editor', 'owner'], needs) THEN
        RAISE EXCEPTION 'this needs the % role in the project', needs USING ERRCODE = 'JX403';
    END IF;
    RETURN held;
END $$;

-- The same for a user acting outside any one project ("my projects", creating a project): the
-- settings name the user and no project. Refuses with JX401 when the user is deleted: their
-- tokens stop working here, not only when they expire.
CREATE FUNCTION jeex_enter_user(acting_user uuid) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF acting_user IS NULL THEN
        RAISE EXCEPTION 'jeex_enter_user needs a user' USING ERRCODE = '22023';
    END IF;
    PERFORM set_config('jeex.user_id', acting_user::text, true), set_config('jeex.project_id', '', true);
    IF NOT EXISTS (SELECT 1 FROM users WHERE id = acting_user AND deleted_at IS NULL) THEN
        RAISE EXCEPTION 'missing or invalid credentials' USING ERRCODE = 'JX401';
    END IF;
END $$;
