-- Row-level security on every project-scoped table. The server sets, inside each transaction
-- and only transaction-locally (set_config(…, true)), the project it is scoped to and the user
-- it acts for; a pooled connection therefore never carries one request's scope into the next.
-- Policies wrap the setting in a scalar sub-select so it is read once per statement, and
-- compare it with indexed columns. FORCE makes the table owner subject to the policies too;
-- only superusers and BYPASSRLS roles skip them, and the server refuses to run as one outside
-- development.

CREATE FUNCTION jeex_project_id() RETURNS uuid LANGUAGE sql STABLE PARALLEL SAFE AS
$$ SELECT nullif(current_setting('jeex.project_id', true), '')::uuid $$;

CREATE FUNCTION jeex_user_id() RETURNS uuid LANGUAGE sql STABLE PARALLEL SAFE AS
$$ SELECT nullif(current_setting('jeex.user_id', true), '')::uuid $$;

CREATE FUNCTION jeex_api_key_prefix() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS
$$ SELECT nullif(current_setting('jeex.api_key_prefix', true), '') $$;

ALTER TABLE projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE projects FORCE ROW LEVEL SECURITY;
-- The scoped project, read and written.
CREATE POLICY projects_scoped ON projects
    USING (id = (SELECT jeex_project_id()))
    WITH CHECK (id = (SELECT jeex_project_id()));
-- Every project the acting user belongs to, read only ("my projects"), and only while the
-- transaction is not scoped to one project.
CREATE POLICY projects_of_member ON projects FOR SELECT
    USING ((SELECT jeex_project_id()) IS NULL
           AND id IN (SELECT m.project_id FROM project_members m WHERE m.user_id = (SELECT jeex_user_id())));

ALTER TABLE project_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE project_members FORCE ROW LEVEL SECURITY;
CREATE POLICY project_members_scoped ON project_members
    USING (project_id = (SELECT jeex_project_id()))
    WITH CHECK (project_id = (SELECT jeex_project_id()));
-- The acting user's own memberships, read only ("my projects"), outside a project scope.
CREATE POLICY project_members_own ON project_members FOR SELECT
    USING ((SELECT jeex_project_id()) IS NULL AND user_id = (SELECT jeex_user_id()));

ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE documents FORCE ROW LEVEL SECURITY;
CREATE POLICY documents_scoped ON documents
    USING (project_id = (SELECT jeex_project_id()))
    WITH CHECK (project_id = (SELECT jeex_project_id()));

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY api_keys_scoped ON api_keys
    USING (project_id = (SELECT jeex_project_id()))
    WITH CHECK (project_id = (SELECT jeex_project_id()));
-- Authentication finds a presented key by its public prefix before any project is known;
-- exactly that one row becomes readable.
CREATE POLICY api_keys_presented ON api_keys FOR SELECT
    USING (prefix = (SELECT jeex_api_key_prefix()));

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_log_scoped ON audit_log
    USING (project_id = (SELECT jeex_project_id()))
    WITH CHECK (project_id = (SELECT jeex_project_id()));
