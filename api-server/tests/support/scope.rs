//! Project scopes for tests that drive a part (the event bus, the vector index) directly: a
//! member and projects arranged as the owner, then each scope opened through the real
//! membership check — there is no other way to get one.

use jeex_api::{
    access::{Caller, Principal, ProjectScope, Viewer},
    deps::Dependencies,
};
use uuid::Uuid;

use super::db::TestDatabase;

/// `n` projects of one new member, and the member's scope in each.
pub async fn project_scopes(db: &TestDatabase, n: usize) -> Vec<ProjectScope> {
    let owner = db.owner_pool().await;
    let user = Uuid::now_v7();
    sqlx::query("INSERT INTO users (id, email, name) VALUES ($1, $2, 'scope test')")
        .bind(user)
        .bind(format!("{}@example.com", user.simple()))
        .execute(&owner)
        .await
        .unwrap();
    let config = super::config(&[("DATABASE_URL", &db.app_url)]);
    let deps = Dependencies::connect(&config, &db.app_url).unwrap();
    let caller = Caller { principal: Principal::User { user_id: user }, correlation_id: "test".into() };
    let mut scopes = Vec::with_capacity(n);
    for _ in 0..n {
        let project = Uuid::now_v7();
        sqlx::query("INSERT INTO projects (id, name, language, created_by) VALUES ($1, 'scope test', 'en', $2)")
            .bind(project)
            .bind(user)
            .execute(&owner)
            .await
            .unwrap();
        sqlx::query("INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, 'owner')")
            .bind(project)
            .bind(user)
            .execute(&owner)
            .await
            .unwrap();
        let scoped = deps.db.scoped::<Viewer>(&caller, project).await.unwrap();
        scopes.push(scoped.scope().clone());
    }
    deps.close().await;
    scopes
}

/// `user`'s scope in `project` of the running `app`.
pub async fn of(app: &super::TestApp, user: &super::session::User, project: &str) -> ProjectScope {
    let caller = Caller { principal: Principal::User { user_id: user.id.parse().unwrap() }, correlation_id: "test".into() };
    let scoped = app.deps.db.scoped::<Viewer>(&caller, project.parse().unwrap()).await.unwrap();
    scoped.scope().clone()
}
