//! A fresh database per test: created on the test server, migrated by the real `migrate`
//! code as the owner (`postgres`), and used by the app through a role that owns nothing and
//! is not superuser — so row-level security binds exactly as in production.

use std::str::FromStr;

use sqlx::{
    Connection, PgConnection, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

/// The non-superuser role tests connect the app as.
pub const APP_ROLE: &str = "jeex_test_app";

/// A database that is dropped when the value is.
pub struct TestDatabase {
    /// Database name.
    pub name: String,
    /// Owner (superuser) URL.
    pub owner_url: String,
    /// App-role URL.
    pub app_url: String,
}

fn with_database(url: &str, database: &str, user: &str) -> String {
    let options = PgConnectOptions::from_str(url).expect("TEST_DATABASE_URL parses");
    format!("postgres://{user}@{}:{}/{database}", options.get_host(), options.get_port())
}

impl TestDatabase {
    /// Creates and migrates a database named after the test.
    pub async fn create() -> Self {
        let base = jeex_e2e::services::database_url();
        let admin_url = with_database(&base, "postgres", "postgres");
        let name = format!("jeex_t_{}", uuid::Uuid::now_v7().simple());
        let mut admin = PgConnection::connect(&admin_url).await.expect("connect to the test PostgreSQL as postgres");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("create test database");
        // Test processes run in parallel: a concurrent CREATE ROLE may win the race.
        let created = sqlx::query(&format!("CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS")).execute(&mut admin).await;
        if let Err(sqlx::Error::Database(e)) = &created {
            assert!(matches!(e.code().as_deref(), Some("42710" | "23505")), "create role: {e}");
        }
        admin.close().await.ok();
        let db = Self { owner_url: with_database(&base, &name, "postgres"), app_url: with_database(&base, &name, APP_ROLE), name };
        jeex_api::db::migrate::run(&db.owner_url, Some(&jeex_api::db::migrate::AppRole::named(APP_ROLE)))
            .await
            .expect("migrate the test database");
        db
    }

    /// A pool connected as the app role.
    pub async fn app_pool(&self, max: u32) -> PgPool {
        PgPoolOptions::new().max_connections(max).connect(&self.app_url).await.expect("connect as the app role")
    }

    /// The server's database handle, connected as the app role (or as the owner), for the
    /// repository functions that take one.
    pub fn database(&self, as_owner: bool) -> jeex_api::db::Database {
        let pool = jeex_api::config::PoolConfig {
            size: 2,
            max_overflow: 0,
            acquire_timeout: std::time::Duration::from_secs(5),
            max_lifetime: std::time::Duration::from_secs(600),
            idle_timeout: std::time::Duration::from_secs(60),
        };
        jeex_api::db::Database::connect_lazy(if as_owner { &self.owner_url } else { &self.app_url }, &pool).expect("database URL")
    }

    /// A pool connected as the owner (to arrange and inspect data behind the app's back).
    pub async fn owner_pool(&self) -> PgPool {
        PgPoolOptions::new().max_connections(2).connect(&self.owner_url).await.expect("connect as owner")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = with_database(&jeex_e2e::services::database_url(), "postgres", "postgres");
        let name = self.name.clone();
        // Drop runs inside the test's runtime; a thread with its own runtime can block.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await.ok()
            })
        })
        .join();
    }
}
