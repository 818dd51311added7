-- "My projects" (projects_of_member) asks the same question as before, with a lighter plan.
--
-- The policy is permissive, so PostgreSQL ORs it into every statement that reads projects,
-- scoped ones included, where it never decides anything (a scoped statement has a project
-- setting, so its first condition is false). Yet every execution set up its sub-select over
-- project_members, with that table's own policies and their settings, which cost a scoped read
-- about a tenth of PostgreSQL's work (pgbench, docs/performance.md). The memberships now come
-- from a PL/pgSQL function, which the planner cannot inline: what is left in the plan is a
-- hashed sub-select of one function call, run when a row first needs it, as the old sub-select
-- was, so a listing reads what it did (and costs within a tenth).
--
-- The function runs as the caller (not SECURITY DEFINER), so project_members' own policies apply
-- inside it as they applied to the sub-select. PL/pgSQL looks names up when it runs, where a
-- temporary table comes first; so the body names the table and the setting's function with the
-- schema they were made in (the migration's), as the policy's own expression was bound to them:
-- a temporary table called project_members cannot stand in for the real one.
DO $migration$
BEGIN
    EXECUTE format($create$
        CREATE FUNCTION jeex_member_projects() RETURNS SETOF uuid
        LANGUAGE plpgsql STABLE PARALLEL SAFE ROWS 50 AS $body$
        BEGIN
            RETURN QUERY SELECT m.project_id FROM %1$I.project_members m WHERE m.user_id = %1$I.jeex_user_id();
        END $body$
    $create$, current_schema());
END $migration$;

DROP POLICY projects_of_member ON projects;
CREATE POLICY projects_of_member ON projects FOR SELECT
    USING ((SELECT jeex_project_id()) IS NULL AND id IN (SELECT jeex_member_projects()));
