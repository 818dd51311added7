-- "My projects" (projects_of_member) asks the same question as before, with a lighter plan.
--
-- The policy is permissive, so PostgreSQL ORs it into every statement that reads projects,
-- scoped ones included, where it never runs (the scoped project matches first). Yet every
-- execution set up its sub-select over project_members, with that table's own policies and
-- their settings, which cost a scoped read about a tenth of PostgreSQL's work (pgbench,
-- docs/performance.md). The memberships now come from a PL/pgSQL function, which the planner
-- cannot inline: the sub-select left in the plan is one function call, still hashed and still
-- run at most once per statement, so a listing reads what it did (and costs within a tenth).
--
-- The function runs as the caller (not SECURITY DEFINER), so project_members' policies apply
-- inside it exactly as they applied to the sub-select: who can see which project is unchanged.
CREATE FUNCTION jeex_member_projects() RETURNS SETOF uuid
LANGUAGE plpgsql STABLE PARALLEL SAFE ROWS 50 AS $$
BEGIN
    RETURN QUERY SELECT m.project_id FROM project_members m WHERE m.user_id = jeex_user_id();
END $$;

DROP POLICY projects_of_member ON projects;
CREATE POLICY projects_of_member ON projects FOR SELECT
    USING ((SELECT jeex_project_id()) IS NULL AND id IN (SELECT jeex_member_projects()));
