//! Acceptance 2: the database enforces isolation by itself. Under the app role a raw
//! `SELECT * FROM documents` returns only the scoped project's rows, the scope ends with the
//! transaction, rows cannot be planted in another project, and the role cannot change the
//! schema or destroy data wholesale.

mod support;

use sqlx::{PgPool, Row};
use support::db::TestDatabase;
use uuid::Uuid;

async fn arrange(owner: &PgPool) -> (Uuid, Uuid) {
    let user = Uuid::now_v7();
    sqlx::query("INSERT INTO users (id, email, name) VALUES ($1, 'owner@example.com', 'Owner')").bind(user).execute(owner).await.unwrap();
    let (pa, pb) = (Uuid::now_v7(), Uuid::now_v7());
    for (project, docs) in [(pa, 3), (pb, 2)] {
        sqlx::query("INSERT INTO projects (id, name, created_by) VALUES ($1, 'P', $2)")
            .bind(project)
            .bind(user)
            .execute(owner)
            .await
            .unwrap();
        for i in 0..docs {
            sqlx::query("INSERT INTO documents (id, project_id, title) VALUES ($1, $2, $3)")
                .bind(Uuid::now_v7())
                .bind(project)
                .bind(format!("doc {i}"))
                .execute(owner)
                .await
                .unwrap();
        }
    }
    (pa, pb)
}

fn sqlstate(err: sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(e) => e.code().unwrap_or_default().into_owned(),
        other => panic!("expected a database error, got {other}"),
    }
}

#[tokio::test]
async fn raw_queries_under_the_app_role_see_only_the_scoped_project() {
    let db = TestDatabase::create().await;
    let owner = db.owner_pool().await;
    let (pa, pb) = arrange(&owner).await;
    // One connection: what the next transaction sees is what a pooled connection would carry.
    let app = db.app_pool(1).await;

    let mut tx = app.begin().await.unwrap();
    sqlx::query("SELECT set_config('jeex.project_id', $1, true)").bind(pa.to_string()).execute(&mut *tx).await.unwrap();
    let rows = sqlx::query("SELECT * FROM documents").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.get::<Uuid, _>("project_id") == pa));
    // Planting a row in another project is refused by the policy's WITH CHECK.
    let planted = sqlx::query("INSERT INTO documents (id, project_id, title) VALUES ($1, $2, 'planted')")
        .bind(Uuid::now_v7())
        .bind(pb)
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(planted), "42501");
    tx.rollback().await.unwrap();

    // The setting was transaction-local: the same connection now sees nothing at all.
    let unscoped: i64 = sqlx::query_scalar("SELECT count(*) FROM documents").fetch_one(&app).await.unwrap();
    assert_eq!(unscoped, 0);
    let projects: i64 = sqlx::query_scalar("SELECT count(*) FROM projects").fetch_one(&app).await.unwrap();
    assert_eq!(projects, 0);

    let mut tx = app.begin().await.unwrap();
    sqlx::query("SELECT set_config('jeex.project_id', $1, true)").bind(pb.to_string()).execute(&mut *tx).await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM documents").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(count, 2);
    tx.commit().await.unwrap();

    // The role itself: not superuser, no BYPASSRLS, owns nothing.
    let safety = jeex_api::db::roles::inspect(&db.database(false)).await.unwrap();
    assert_eq!(safety.problem(), None, "{safety:?}");
    let owner_safety = jeex_api::db::roles::inspect(&db.database(true)).await.unwrap();
    assert!(owner_safety.problem().is_some(), "the check must flag a superuser");
    // Every table counts, the later ones (operations, vector_outbox) included.
    for table in ["operations", "vector_outbox"] {
        sqlx::query(&format!("ALTER TABLE {table} OWNER TO {}", safety.role)).execute(&owner).await.unwrap();
        let unsafe_role = jeex_api::db::roles::inspect(&db.database(false)).await.unwrap();
        assert!(unsafe_role.problem().is_some_and(|p| p.contains("owns the tables")), "{table}: {unsafe_role:?}");
        sqlx::query(&format!("ALTER TABLE {table} OWNER TO CURRENT_USER")).execute(&owner).await.unwrap();
    }
}

#[tokio::test]
async fn the_app_role_cannot_alter_drop_or_truncate() {
    let db = TestDatabase::create().await;
    let owner = db.owner_pool().await;
    let (pa, _) = arrange(&owner).await;
    let app = db.app_pool(1).await;
    for sql in [
        "ALTER TABLE documents ADD COLUMN stolen text",
        "ALTER TABLE documents DISABLE ROW LEVEL SECURITY",
        "DROP POLICY documents_scoped ON documents",
        "DROP TABLE documents",
        "TRUNCATE documents",
        "TRUNCATE audit_log",
        "CREATE TABLE side_channel (x text)",
    ] {
        let err = sqlx::query(sql).execute(&app).await.unwrap_err();
        assert_eq!(sqlstate(err), "42501", "{sql} must be refused for lack of privilege");
    }
    // Inside a scope, rows may not be hard-deleted, and the audit log is append-only.
    let mut tx = app.begin().await.unwrap();
    sqlx::query("SELECT set_config('jeex.project_id', $1, true)").bind(pa.to_string()).execute(&mut *tx).await.unwrap();
    for sql in ["DELETE FROM documents", "DELETE FROM audit_log", "UPDATE audit_log SET action = 'x.y'"] {
        let err = sqlx::query(sql).execute(&mut *tx).await.unwrap_err();
        assert_eq!(sqlstate(err), "42501", "{sql}");
        tx.rollback().await.unwrap();
        tx = app.begin().await.unwrap();
        sqlx::query("SELECT set_config('jeex.project_id', $1, true)").bind(pa.to_string()).execute(&mut *tx).await.unwrap();
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM documents").fetch_one(&owner).await.unwrap();
    assert_eq!(count, 5, "nothing was lost");
}

#[tokio::test]
async fn operations_are_deleted_only_by_the_workers_pruning_and_only_once_ended() {
    let db = TestDatabase::create().await;
    let owner = db.owner_pool().await;
    let (pa, pb) = arrange(&owner).await;
    let add = |project: Uuid, ended_days_ago: Option<i32>| {
        let owner = owner.clone();
        async move {
            let id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO operations (id, project_id, kind, status, input, finished_at, created_at) \
                 VALUES ($1, $2, 'project.export', \
                         CASE WHEN $3::int IS NULL THEN 'queued' ELSE 'succeeded' END, \
                         CASE WHEN $3::int IS NULL THEN '{}'::jsonb END, \
                         now() - make_interval(days => $3::int), now() - interval '30 days')",
            )
            .bind(id)
            .bind(project)
            .bind(ended_days_ago)
            .execute(&owner)
            .await
            .unwrap();
            id
        }
    };
    let (old_queued, old_a, old_b, recent) = (add(pa, None).await, add(pa, Some(8)).await, add(pb, Some(9)).await, add(pa, Some(1)).await);
    let app = db.app_pool(1).await;
    let remaining = || async {
        let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM operations ORDER BY id").fetch_all(&owner).await.unwrap();
        ids
    };

    // A project scope (an API request) deletes nothing, ended or not.
    let mut tx = app.begin().await.unwrap();
    sqlx::query("SELECT set_config('jeex.project_id', $1, true)").bind(pa.to_string()).execute(&mut *tx).await.unwrap();
    assert_eq!(sqlx::query("DELETE FROM operations").execute(&mut *tx).await.unwrap().rows_affected(), 0);
    tx.commit().await.unwrap();
    assert_eq!(remaining().await.len(), 4);

    // Pruning deletes what ended before the retention, in every project, and nothing else.
    let deleted = jeex_api::db::operations::prune(&db.database(false), std::time::Duration::from_secs(7 * 86_400), 100).await.unwrap();
    assert_eq!(deleted, 2);
    let mut kept = vec![old_queued, recent];
    kept.sort();
    assert_eq!(remaining().await, kept, "{old_a} and {old_b} were the ones past their retention");

    // Even the worker's own transaction cannot delete an operation that has not ended.
    let mut tx = app.begin().await.unwrap();
    sqlx::query("SELECT set_config('jeex.worker', 'claim', true)").execute(&mut *tx).await.unwrap();
    assert_eq!(sqlx::query("DELETE FROM operations").execute(&mut *tx).await.unwrap().rows_affected(), 1, "only the recent, ended one");
    tx.rollback().await.unwrap();

    // Ending an operation without dropping its input is refused by the table itself.
    let err = sqlx::query("UPDATE operations SET status = 'succeeded', finished_at = now() WHERE id = $1")
        .bind(old_queued)
        .execute(&owner)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(err), "23514");
}

#[tokio::test]
async fn outside_a_scope_the_policy_alone_shows_a_user_exactly_their_projects() {
    let db = TestDatabase::create().await;
    let owner = db.owner_pool().await;
    let (pa, pb) = arrange(&owner).await;
    let (member, stranger) = (Uuid::now_v7(), Uuid::now_v7());
    for (user, email) in [(member, "member@example.com"), (stranger, "stranger@example.com")] {
        sqlx::query("INSERT INTO users (id, email, name) VALUES ($1, $2, 'U')").bind(user).bind(email).execute(&owner).await.unwrap();
    }
    let pc = Uuid::now_v7();
    sqlx::query("INSERT INTO projects (id, name, created_by) VALUES ($1, 'C', $2)").bind(pc).bind(member).execute(&owner).await.unwrap();
    for (project, user) in [(pa, member), (pc, member), (pb, stranger)] {
        sqlx::query("INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, 'viewer')")
            .bind(project)
            .bind(user)
            .execute(&owner)
            .await
            .unwrap();
    }
    let app = db.app_pool(1).await;
    // A bare SELECT with no join and no WHERE: only the policies decide what comes back.
    let visible = |user: Option<Uuid>, project: Option<Uuid>| {
        let app = app.clone();
        async move {
            let mut tx = app.begin().await.unwrap();
            sqlx::query("SELECT set_config('jeex.user_id', $1, true), set_config('jeex.project_id', $2, true)")
                .bind(user.map(|u| u.to_string()).unwrap_or_default())
                .bind(project.map(|p| p.to_string()).unwrap_or_default())
                .execute(&mut *tx)
                .await
                .unwrap();
            let mut ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM projects").fetch_all(&mut *tx).await.unwrap();
            tx.rollback().await.unwrap();
            ids.sort();
            ids
        }
    };
    let mut mine = vec![pa, pc];
    mine.sort();
    assert_eq!(visible(Some(member), None).await, mine, "outside a scope: the member's projects, and only those");
    assert_eq!(visible(Some(stranger), None).await, vec![pb]);
    assert_eq!(visible(None, None).await, Vec::<Uuid>::new(), "no user: nothing");
    assert_eq!(visible(Some(Uuid::now_v7()), None).await, Vec::<Uuid>::new(), "a user of no project: nothing");
    // Inside a scope the listing policy is off: the scoped project only, even for its member.
    assert_eq!(visible(Some(member), Some(pc)).await, vec![pc]);
    assert_eq!(visible(Some(stranger), Some(pa)).await, vec![pa], "the scope alone decides (membership is jeex_enter's check)");

    // A temporary table of the same name, made on the session (the one connection), naming the
    // member in the stranger's project: the policy still reads the real memberships.
    sqlx::query("CREATE TEMP TABLE project_members (project_id uuid, user_id uuid, role text)").execute(&app).await.unwrap();
    sqlx::query("INSERT INTO project_members VALUES ($1, $2, 'owner')").bind(pb).bind(member).execute(&app).await.unwrap();
    assert_eq!(visible(Some(member), None).await, mine, "a temporary project_members stands in for nothing");
}
