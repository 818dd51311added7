//! Where the real PostgreSQL and Redis for tests are. `.ci/test` starts them; override with
//! `TEST_DATABASE_URL` / `TEST_REDIS_URL`.

/// PostgreSQL URL for tests (a database the test command creates).
pub fn database_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/jeex_test".into())
}

/// The test database with the schema applied by the real `jeex-api migrate` (once per test
/// process; concurrent processes are safe: migrate holds an advisory lock).
pub fn migrated_database_url() -> String {
    static DONE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let url = database_url();
        let (status, stdout, stderr) = crate::binary::run(&["migrate"], &[("DATABASE_URL", &url)]);
        assert!(status.success(), "jeex-api migrate failed:\n{stdout}\n{stderr}");
        url
    })
    .clone()
}

/// Redis URL for tests.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/15".into())
}

/// `host:port` of the test Redis, for proxies.
pub fn redis_addr() -> String {
    let url = redis_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let host_port = rest.split('/').next().unwrap_or(rest);
    host_port.rsplit('@').next().unwrap_or(host_port).to_string()
}
