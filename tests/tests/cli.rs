//! The `jeex-api` command line: configuration errors, `check`, `openapi`.

use jeex_e2e::{
    binary::run,
    net::closed_port,
    services::{migrated_database_url, redis_url},
};

#[test]
fn a_bad_value_exits_non_zero_with_one_line_naming_the_variable() {
    for (var, value) in [("JEEX_HTTP_ADDR", "nonsense"), ("JEEX_BODY_LIMIT", "huge"), ("JEEX_ENV", "prod"), ("JEEX_LOG_FORMAT", "xml")] {
        let (status, stdout, stderr) = run(&["serve"], &[(var, value), ("DATABASE_URL", &migrated_database_url())]);
        assert_eq!(status.code(), Some(2), "{var}={value}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "exactly one line: {stderr:?}");
        assert!(lines[0].contains(var) && lines[0].contains("example:"), "{}", lines[0]);
        assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
        assert!(stdout.is_empty());
    }
}

#[test]
fn a_database_url_without_jeex_env_is_a_production_deployment() {
    // What `docker run -e DATABASE_URL=… jeex-api` does: no JEEX_ENV. Production rules apply
    // (no generated key, no dev-login), and the refusal names JEEX_ENV as well as the gap.
    let (status, stdout, stderr) = run(&["serve"], &[("JEEX_ENV", ""), ("DATABASE_URL", &migrated_database_url())]);
    assert_eq!(status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("JEEX_JWT_PRIVATE_KEY") && stderr.contains("JEEX_ENV is unset"), "{stderr}");
    let (status, stdout, _) = run(&["check"], &[("JEEX_ENV", ""), ("DATABASE_URL", &migrated_database_url())]);
    assert!(!status.success() && stdout.contains("JEEX_ENV=production") && stdout.contains("jwt: UNUSABLE"), "{stdout}");
    // Without DATABASE_URL it is the first look (README command 1); tests/serve.rs starts that
    // with JEEX_ENV unset and signs in through dev-login.
}

#[test]
fn production_refuses_insecure_settings() {
    let (status, _, stderr) = run(
        &["serve"],
        &[
            ("JEEX_ENV", "production"),
            ("DATABASE_URL", &migrated_database_url()),
            ("JEEX_CORS_ORIGINS", "*"),
            ("JEEX_CORS_ALLOW_CREDENTIALS", "true"),
        ],
    );
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("JEEX_CORS_ORIGINS"), "{stderr}");
    let (status, _, stderr) = run(&["serve"], &[("JEEX_ENV", "production")]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
    // Outside development no key is generated: a missing signing key stops start-up.
    let (status, _, stderr) = run(&["serve"], &[("JEEX_ENV", "production"), ("DATABASE_URL", &migrated_database_url())]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("JEEX_JWT_PRIVATE_KEY"), "{stderr}");
    let missing = [
        ("JEEX_ENV", "staging"),
        ("DATABASE_URL", &migrated_database_url()),
        ("JEEX_JWT_PRIVATE_KEY", "/nonexistent/k.key.pem"),
        ("JEEX_JWT_PUBLIC_KEYS", "/nonexistent/k.pub.pem"),
    ];
    let (status, _, stderr) = run(&["serve"], &missing);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("JEEX_JWT_PRIVATE_KEY") && stderr.contains("/nonexistent/k.key.pem"), "{stderr}");
}

#[test]
fn check_reports_every_dependency_and_fails_naming_the_broken_one() {
    let (status, stdout, _) = run(&["check"], &[("DATABASE_URL", &migrated_database_url()), ("REDIS_URL", &redis_url())]);
    assert!(status.success(), "{stdout}");
    assert!(
        stdout.contains("postgres: healthy") && stdout.contains("redis: healthy") && stdout.contains("qdrant: healthy (embedded"),
        "{stdout}"
    );

    let broken = format!("redis://127.0.0.1:{}/0", closed_port());
    let (status, stdout, _) =
        run(&["check"], &[("DATABASE_URL", &migrated_database_url()), ("REDIS_URL", &broken), ("JEEX_HEALTH_TIMEOUT", "1s")]);
    assert_eq!(status.code(), Some(1));
    assert!(stdout.contains("redis: UNHEALTHY"), "{stdout}");
    assert!(stdout.contains("postgres: healthy"), "{stdout}");
}

#[test]
fn help_documents_every_variable() {
    let (status, stdout, _) = run(&["serve", "--help"], &[]);
    assert!(status.success());
    for var in ["JEEX_HTTP_ADDR", "DATABASE_URL", "JEEX_DB_POOL_MAX_OVERFLOW", "OTEL_EXPORTER_OTLP_ENDPOINT", "JEEX_LOG_FORMAT"] {
        assert!(stdout.contains(var), "--help lacks {var}");
    }
}

#[test]
fn the_committed_spec_matches_the_binary() {
    let (status, json, _) = run(&["openapi"], &[]);
    assert!(status.success());
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../api-server/openapi.json")).expect("api-server/openapi.json");
    assert_eq!(json.trim_end(), committed.trim_end(), "api-server/openapi.json is stale: run `jeex-api openapi > api-server/openapi.json`");
    let (status, yaml, _) = run(&["openapi", "--format", "yaml"], &[]);
    assert!(status.success() && yaml.starts_with("openapi:"));
}

#[test]
fn check_without_database_url_probes_the_private_cluster() {
    let data = std::env::temp_dir().join(format!("jeex-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let (status, stdout, stderr) = run(&["check"], &[("JEEX_DATA_DIR", data.to_str().unwrap())]);
    assert!(status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("postgres: healthy") && stdout.contains("redis: disabled"), "{stdout}");
    assert!(stdout.contains("schema: up to date") && stdout.contains("database role: jeex_app"), "{stdout}");
    assert!(!data.join("postgres/data/postmaster.pid").exists(), "check stops the cluster it started");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn serve_refuses_a_vector_index_of_another_dimension() {
    let dir = std::env::temp_dir().join(format!("jeex-e2e-shape-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let vector_dir = dir.display().to_string();
    let db = migrated_database_url();
    // `check` probes the embedded index, which creates it with 8 dimensions.
    let (status, stdout, _) = run(&["check"], &[("DATABASE_URL", &db), ("JEEX_VECTOR_DIR", &vector_dir), ("JEEX_VECTOR_DIM", "8")]);
    assert!(status.success() && stdout.contains("qdrant: healthy (embedded"), "{stdout}");
    let (status, _, stderr) = run(
        &["serve"],
        &[("DATABASE_URL", &db), ("JEEX_VECTOR_DIR", &vector_dir), ("JEEX_VECTOR_DIM", "16"), ("JEEX_HTTP_ADDR", "127.0.0.1:0")],
    );
    assert_eq!(status.code(), Some(2), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains("8-dimensional cosine") && last.contains("JEEX_VECTOR_DIM=16") && last.contains("documents.reindex"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn both_images_are_production_deployments() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for file in ["api-server/Dockerfile", "operator/Dockerfile"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let env_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("ENV ")).collect();
        assert!(env_lines.iter().any(|l| l.split_whitespace().any(|w| w == "JEEX_ENV=production")), "{file}: {env_lines:?}");
    }
}
