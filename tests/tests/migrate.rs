//! Acceptance 6 and the refusals of `jeex-api migrate`: two runs at once on an empty database
//! both succeed and apply the schema once; a database with an unknown migration or a changed
//! checksum is refused with a clear message; the server's role gets its grants.

use std::thread;

use jeex_e2e::{binary::run, services::database_url};
use sqlx::{Connection, PgConnection};

const APP_ROLE: &str = "jeex_e2e_app";

fn url(database: &str, user: &str) -> String {
    let base = database_url();
    let rest = base.split_once('@').map_or(base.as_str(), |(_, r)| r);
    let host = rest.split('/').next().unwrap_or(rest);
    format!("postgres://{user}@{host}/{database}")
}

async fn admin(database: &str) -> PgConnection {
    PgConnection::connect(&url(database, "postgres")).await.expect("connect as postgres")
}

fn migrations_on_disk() -> i64 {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
    std::fs::read_dir(dir).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "sql")).count() as i64
}

#[tokio::test]
async fn concurrent_migrations_apply_once_and_tampering_is_refused() {
    let name = format!("jeex_m_{}", uuid::Uuid::now_v7().simple());
    let mut root = admin("postgres").await;
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut root).await.unwrap();
    if let Err(sqlx::Error::Database(e)) = sqlx::query(&format!("CREATE ROLE {APP_ROLE} LOGIN")).execute(&mut root).await {
        assert!(matches!(e.code().as_deref(), Some("42710" | "23505")), "{e}");
    }
    let owner_url = url(&name, "postgres");
    let app_url = url(&name, APP_ROLE);
    let env = [("JEEX_ENV", "staging"), ("DATABASE_URL", app_url.as_str()), ("JEEX_MIGRATE_DATABASE_URL", owner_url.as_str())];
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();

    let runs: Vec<_> = (0..2)
        .map(|_| {
            let env = env.clone();
            thread::spawn(move || {
                let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                run(&["migrate"], &pairs)
            })
        })
        .collect();
    let outputs: Vec<_> = runs.into_iter().map(|h| h.join().unwrap()).collect();
    for (status, stdout, stderr) in &outputs {
        assert!(status.success(), "both runs exit 0:\n{stdout}\n{stderr}");
        assert!(stdout.contains(&format!("granted role \"{APP_ROLE}\"")), "{stdout}");
    }
    let applied_lines: usize = outputs.iter().map(|(_, out, _)| out.lines().filter(|l| l.starts_with("applied ")).count()).sum();
    assert_eq!(applied_lines as i64, migrations_on_disk(), "each migration applied by exactly one run");
    assert!(outputs.iter().any(|(_, out, _)| out.contains("schema up to date")), "the waiting run found nothing to do");

    let mut db = admin(&name).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success").fetch_one(&mut db).await.unwrap();
    assert_eq!(rows, migrations_on_disk());

    // The server's role can work with the tables but owns none of them.
    let mut app = PgConnection::connect(&app_url).await.unwrap();
    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM projects").fetch_one(&mut app).await.unwrap();
    assert_eq!(visible, 0);
    app.close().await.unwrap();

    // A changed checksum is refused, and so is a migration this binary does not know.
    let original: Vec<u8> =
        sqlx::query_scalar("SELECT checksum FROM _sqlx_migrations ORDER BY version LIMIT 1").fetch_one(&mut db).await.unwrap();
    sqlx::query("UPDATE _sqlx_migrations SET checksum = '\\x00' WHERE version = (SELECT min(version) FROM _sqlx_migrations)")
        .execute(&mut db)
        .await
        .unwrap();
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, _, stderr) = run(&["migrate"], &pairs);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("changed after it was applied"), "{stderr}");
    sqlx::query("UPDATE _sqlx_migrations SET checksum = $1 WHERE checksum = '\\x00'").bind(&original).execute(&mut db).await.unwrap();
    let (status, stdout, _) = run(&["migrate"], &pairs);
    assert!(status.success() && stdout.contains("schema up to date"), "restored, the database is accepted again: {stdout}");
    sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (99990101000000, 'from the future', true, '\\x01', 0)")
        .execute(&mut db)
        .await
        .unwrap();
    let (status, _, stderr) = run(&["migrate"], &pairs);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("99990101000000") && stderr.contains("does not know"), "{stderr}");
    db.close().await.unwrap();

    // Outside development the owner URL must be given.
    let (status, _, stderr) = run(&["migrate"], &[("JEEX_ENV", "staging"), ("DATABASE_URL", &app_url)]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("JEEX_MIGRATE_DATABASE_URL"), "{stderr}");

    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&mut root).await.unwrap();
}

/// The role's stored password hash (the test server runs as a superuser, which may read it).
async fn password_hash(root: &mut PgConnection, role: &str) -> Option<String> {
    sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1").bind(role).fetch_optional(root).await.unwrap().flatten()
}

#[tokio::test]
async fn migrate_creates_the_app_role_from_its_url_and_updates_its_password() {
    // What the operator's migration Job does with generated credentials.
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let (name, role) = (format!("jeex_m_{suffix}"), format!("jeex_gen_{}", &suffix[20..]));
    let mut root = admin("postgres").await;
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut root).await.unwrap();
    let owner_url = url(&name, "postgres");
    let with_password = |pw: &str| {
        let base = url(&name, &role);
        base.replacen(&format!("{role}@"), &format!("{role}:{pw}@"), 1)
    };
    let migrate = |app_url: String| {
        let owner_url = owner_url.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                run(&["migrate"], &[("JEEX_ENV", "staging"), ("DATABASE_URL", &app_url), ("JEEX_MIGRATE_DATABASE_URL", &owner_url)])
            })
            .await
            .unwrap()
        }
    };
    let (status, stdout, stderr) = migrate(with_password("first-Secret1")).await;
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("granted role \"{role}\"")), "{stdout}");
    let first = password_hash(&mut root, &role).await.expect("created with a password");
    let can_login: bool = sqlx::query_scalar(
        "SELECT rolcanlogin AND NOT rolsuper AND NOT rolcreaterole AND NOT rolcreatedb FROM pg_roles WHERE rolname = $1",
    )
    .bind(&role)
    .fetch_one(&mut root)
    .await
    .unwrap();
    assert!(can_login, "LOGIN and nothing else");
    assert!(!stdout.contains("first-Secret1") && !stderr.contains("first-Secret1"), "the password is never printed");

    let (status, stdout, stderr) = migrate(with_password("second-Secret2")).await;
    assert!(status.success(), "{stdout}\n{stderr}");
    assert_ne!(password_hash(&mut root, &role).await.unwrap(), first, "a new password replaces the old one");

    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&mut root).await.unwrap();
    sqlx::query(&format!("DROP ROLE {role}")).execute(&mut root).await.unwrap();
}
